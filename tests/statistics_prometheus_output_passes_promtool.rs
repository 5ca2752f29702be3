//! The Prometheus exposition of a pool under load passes `promtool check
//! metrics` (Debian's `prometheus` package; `.ci/run` installs it), and
//! carries the series the reference and the operators ask for.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TrackingFactory, config, eventually};
use rusty_db::pool::{ConnectionPool, PoolStatistics};

/// A pool name that needs every escape: quote, backslash, newline.
const NAME: &str = "busy \"main\" pool\\db\nreplica";
/// How `NAME` reads inside a label.
const ESCAPED: &str = "busy \\\"main\\\" pool\\\\db\\nreplica";

/// Pipes `text` through `promtool check metrics`: `None` if promtool is not
/// installed, else its complaints (empty when it accepts the text).
fn promtool(text: &str) -> Option<String> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("promtool reads its input");
    let out = child.wait_with_output().expect("promtool runs");
    let complaints = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some(if out.status.success() { complaints.trim().to_string() } else { format!("{}: {complaints}", out.status) })
}

fn assert_promtool_accepts(text: &str) {
    match promtool(text) {
        None => eprintln!("skipped the promtool check: promtool is not on PATH (Debian package `prometheus`)"),
        Some(complaints) => assert!(complaints.is_empty(), "promtool complains:\n{complaints}\n--- input:\n{text}"),
    }
}

/// Runs six threads against a four-connection pool (short timeouts, some
/// connections marked broken) and returns its exposition mid-run.
fn busy_exposition(pool: &ConnectionPool<common::TestConn>) -> String {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let stop = &stop;
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut conn) = pool.acquire_timeout(Duration::from_millis(1)) {
                        n += 1;
                        if (n + t) % 97 == 0 {
                            conn.mark_broken();
                        }
                        std::thread::yield_now();
                    }
                }
            });
        }
        assert!(eventually(|| {
            let s = pool.statistics();
            s.acquires > 2_000 && s.timeouts > 0 && s.closed_by_reason.broken > 0
        }));
        let text = pool.statistics().to_prometheus(NAME);
        stop.store(true, Ordering::Relaxed);
        text
    })
}

#[test]
fn a_busy_pools_exposition_passes_promtool() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(config().name(NAME).build().unwrap(), factory.clone()).unwrap();
    let text = busy_exposition(&pool);
    for family in [
        "rustydb_pool_connections gauge",
        "rustydb_pool_active_connections gauge",
        "rustydb_pool_idle_connections gauge",
        "rustydb_pool_wait_queue_size gauge",
        "rustydb_pool_connections_created_total counter",
        "rustydb_pool_connections_closed_total counter",
        "rustydb_pool_acquire_failures_total counter",
        "rustydb_pool_leaks_detected_total counter",
        "rustydb_pool_wait_seconds summary",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "no {family:?} in\n{text}");
    }
    let pool_label = format!("{{pool=\"{ESCAPED}\"");
    let series = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty());
    assert!(series.clone().all(|l| l.contains(&pool_label)), "a series without the pool label in\n{text}");
    assert!(series.clone().any(|l| l.starts_with("rustydb_pool_wait_seconds{") && l.contains("quantile=\"0.99\"")));
    let broken = format!("rustydb_pool_connections_closed_total{pool_label},reason=\"broken\"}} ");
    assert!(series.clone().any(|l| l.starts_with(&broken)), "no {broken:?} in\n{text}");
    assert!(!text.contains("rustydb_pool_connections_total"), "the reference's gauge name is not valid");
    assert_promtool_accepts(&text);
    factory.assert_no_violations();
}

#[test]
fn several_pools_share_each_family_and_still_pass_promtool() {
    let factory = TrackingFactory::new();
    let (a, b) = (
        ConnectionPool::new(config().name("a").build().unwrap(), factory.clone()).unwrap(),
        ConnectionPool::new(config().name("b").enable_statistics(false).build().unwrap(), factory.clone()).unwrap(),
    );
    let held = (a.acquire().unwrap(), b.acquire().unwrap());
    let (sa, sb) = (a.statistics(), b.statistics());
    let text = PoolStatistics::prometheus_exposition([("a", &sa), ("b", &sb)]);
    assert_eq!(text.matches("# TYPE rustydb_pool_active_connections gauge").count(), 1);
    assert!(text.contains("rustydb_pool_active_connections{pool=\"a\"} 1\n"));
    assert!(text.contains("rustydb_pool_active_connections{pool=\"b\"} 1\n"));
    // Pool b records nothing, so it has gauges only.
    assert!(text.contains("rustydb_pool_acquires_total{pool=\"a\"} 1\n"));
    assert!(!text.contains("rustydb_pool_acquires_total{pool=\"b\"}"));
    assert_promtool_accepts(&text);
    drop(held);
}

#[test]
fn a_pool_without_statistics_exports_only_gauges() {
    let pool = ConnectionPool::new(config().enable_statistics(false).build().unwrap(), TrackingFactory::new()).unwrap();
    let _held = pool.acquire().unwrap();
    let text = pool.statistics().to_prometheus("quiet");
    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    assert_eq!(
        families,
        [
            "rustydb_pool_connections gauge",
            "rustydb_pool_active_connections gauge",
            "rustydb_pool_idle_connections gauge",
            "rustydb_pool_wait_queue_size gauge",
            "rustydb_pool_max_connections gauge",
        ]
    );
    assert!(text.contains("rustydb_pool_connections{pool=\"quiet\"} 1\n"));
    assert_promtool_accepts(&text);
}

#[test]
fn a_partitioned_pool_exports_each_partition_and_passes_promtool() {
    use rusty_db::pool::{PartitionLimits, PartitionManager, PartitionRequest, PartitionType, RoutingStrategy};

    let config = common::config().max_size(4).enable_partitioning(true).build().unwrap();
    let pool = ConnectionPool::new(config, common::TrackingFactory::new()).unwrap();
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    let quota = PartitionLimits { max_connections: 2, memory_limit: Some(100), ..Default::default() };
    manager.create_partition("acme \"corp\"".into(), PartitionType::Tenant("acme".into()), quota).unwrap();
    let small = PartitionLimits { max_connections: 2, ..Default::default() };
    manager.create_partition("globex".into(), PartitionType::Tenant("globex".into()), small).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let mut held = pool.acquire_for(&PartitionRequest::for_tenant("acme")).unwrap();
    assert!(held.report_memory(101).is_err(), "a memory violation");
    drop(pool.acquire_for(&PartitionRequest::for_tenant("globex")).unwrap());

    let stats = pool.statistics();
    let names: Vec<_> = stats.partitions.iter().map(|p| (p.name.as_str(), p.active, p.acquired)).collect();
    assert_eq!(names, [("acme \"corp\"", 1, 1), ("globex", 0, 1)]);
    let text = stats.to_prometheus("tenants");
    for line in [
        "rustydb_partition_active_connections{pool=\"tenants\",partition=\"acme \\\"corp\\\"\"} 1",
        "rustydb_partition_active_connections{pool=\"tenants\",partition=\"globex\"} 0",
        "rustydb_partition_acquires_total{pool=\"tenants\",partition=\"globex\"} 1",
        "rustydb_partition_quota_violations_total{pool=\"tenants\",partition=\"acme \\\"corp\\\"\",resource=\"memory\"} 1",
        "rustydb_partition_quota_violations_total{pool=\"tenants\",partition=\"globex\",resource=\"cpu\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert_promtool_accepts(&text);
    drop(held);

    let unpartitioned = ConnectionPool::new(common::config().build().unwrap(), common::TrackingFactory::new()).unwrap();
    assert!(!unpartitioned.statistics().to_prometheus("plain").contains("rustydb_partition_"), "no empty families");
}
