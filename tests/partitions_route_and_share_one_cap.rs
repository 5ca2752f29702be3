//! Partitions under one pool's cap: each routing strategy finds the
//! partition it should; a partition holds exactly its `max_connections`
//! and not one more; its `min_connections` are reserved (another
//! partition, or plain `acquire`, cannot take them); its own wait queue is
//! bounded; an unroutable request fails unless a default is set; limits
//! that cannot fit are refused; the factory prepares a connection for the
//! partition it moves to, and a failure there costs nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::{
    ConnectionFactory, ConnectionPool, Partition, PartitionLimits, PartitionManager, PartitionRequest, PartitionType,
    PoolConfig, PoolError, Result, RoutingStrategy,
};

const SHORT: Duration = Duration::from_millis(100);

fn pool_of(max_size: usize) -> ConnectionPool<TestConn> {
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(0)
        .max_size(max_size)
        .acquire_timeout(SHORT)
        .enable_partitioning(true)
        .build()
        .unwrap();
    ConnectionPool::new(config, TrackingFactory::new()).unwrap()
}

fn limits(max: usize, min: usize) -> PartitionLimits {
    PartitionLimits { max_connections: max, min_connections: min, ..Default::default() }
}

fn tenant(t: &str) -> PartitionRequest {
    PartitionRequest::for_tenant(t)
}

#[test]
fn each_strategy_routes_to_its_partition() {
    let tenants = PartitionManager::new(RoutingStrategy::TenantBased);
    tenants.create_partition("tenant_acme".into(), PartitionType::Tenant("ACME Corp".into()), limits(2, 0)).unwrap();
    tenants.create_partition("globex".into(), PartitionType::ResourceGroup("Standard".into()), limits(2, 0)).unwrap();
    assert_eq!(tenants.route(&tenant("ACME Corp")).unwrap().name(), "tenant_acme", "by the tenant in the type");
    assert_eq!(tenants.route(&tenant("globex")).unwrap().name(), "globex", "else by the partition's name");
    assert!(matches!(tenants.route(&tenant("initech")), Err(PoolError::PartitionNotFound(m)) if m.contains("initech")));
    assert!(matches!(tenants.route(&PartitionRequest::for_user("ACME Corp")), Err(PoolError::PartitionNotFound(_))));

    let users = PartitionManager::new(RoutingStrategy::UserBased);
    users.create_partition("reporting".into(), PartitionType::User("analyst".into()), limits(2, 0)).unwrap();
    assert_eq!(users.route(&PartitionRequest::for_user("analyst")).unwrap().name(), "reporting");
    assert!(users.route(&tenant("analyst")).is_err(), "a user router looks at the user only");

    let apps = PartitionManager::new(RoutingStrategy::ApplicationBased);
    apps.create_partition("web".into(), PartitionType::Application("frontend".into()), limits(2, 0)).unwrap();
    assert_eq!(apps.route(&PartitionRequest::for_application("frontend")).unwrap().name(), "web");

    let custom = PartitionManager::new(RoutingStrategy::Custom(Arc::new(|request: &PartitionRequest| {
        Some(format!("partition_{}", request.user.as_ref()?))
    })));
    custom.create_partition("partition_alice".into(), PartitionType::User("alice".into()), limits(2, 0)).unwrap();
    assert_eq!(custom.route(&PartitionRequest::for_user("alice")).unwrap().name(), "partition_alice");
    assert!(custom.route(&PartitionRequest::default()).is_err(), "the router said None");

    let panicking =
        PartitionManager::new(RoutingStrategy::Custom(Arc::new(|_: &PartitionRequest| panic!("router bug"))));
    panicking.create_partition("any".into(), PartitionType::Tenant("t".into()), limits(1, 0)).unwrap();
    assert!(matches!(panicking.route(&tenant("t")), Err(PoolError::PartitionNotFound(_))), "a panic is unroutable");
    panicking.set_default_partition("any").unwrap();
    assert_eq!(panicking.route(&tenant("t")).unwrap().name(), "any", "then the default");
}

#[test]
fn load_balanced_picks_the_least_loaded_partition_with_room() {
    let pool = pool_of(8);
    let manager = PartitionManager::new(RoutingStrategy::LoadBalanced);
    manager.create_partition("small".into(), PartitionType::ResourceGroup("s".into()), limits(2, 0)).unwrap();
    manager.create_partition("large".into(), PartitionType::ResourceGroup("l".into()), limits(4, 0)).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let any = PartitionRequest::default();
    let mut held = Vec::new();
    let mut names = Vec::new();
    for _ in 0..6 {
        let before = actives(&pool);
        let conn = pool.acquire_for(&any).unwrap();
        names.push(current(&pool, &before));
        held.push(conn);
    }
    // Loads relative to the maximum: small 0/2, large 0/4 → small; then
    // 1/2 vs 0/4 → large; 1/2 vs 1/4 → large; 1/2 vs 2/4 → small (tie goes
    // to the first); 2/2 is full → large, large.
    assert_eq!(names, ["small", "large", "large", "small", "large", "large"]);
    // A saturated pool is not a pool without partitions: the request waits
    // (here until its 100 ms timeout), as any acquire does.
    assert!(matches!(pool.acquire_for(&any), Err(PoolError::ConnectionTimeout(_))), "no partition has room");
}

/// The partition whose `active` count an acquire just raised.
fn current(pool: &ConnectionPool<TestConn>, before: &[usize]) -> String {
    let partitions = pool.partitions().unwrap().partitions();
    let grown = partitions.iter().zip(before).find(|(p, was)| p.statistics().active > **was);
    grown.map(|(p, _)| p.name().to_string()).expect("one partition grew")
}

fn actives(pool: &ConnectionPool<TestConn>) -> Vec<usize> {
    pool.partitions().unwrap().partitions().iter().map(|p| p.statistics().active).collect()
}

#[test]
fn a_partition_holds_exactly_its_maximum() {
    let pool = pool_of(8);
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("a".into(), PartitionType::Tenant("a".into()), limits(3, 0)).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let held: Vec<_> = (0..3).map(|_| pool.acquire_for(&tenant("a")).expect("up to the maximum")).collect();
    assert!(
        matches!(pool.acquire_for(&tenant("a")), Err(PoolError::ConnectionTimeout(_))),
        "one over waits, and times out"
    );
    assert_eq!(pool.active(), 3, "the pool had room: the partition's limit stopped it");
    drop(held);
    let stats = pool.partitions().unwrap().partition("a").unwrap().statistics();
    assert_eq!((stats.active, stats.acquired, stats.timeouts), (0, 3, 1));
}

#[test]
fn reserved_minimums_are_kept_from_other_partitions_and_plain_acquires() {
    // max_size 4: "gold" reserves 2, so the others share 2.
    let pool = pool_of(4);
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("gold".into(), PartitionType::Tenant("gold".into()), limits(4, 2)).unwrap();
    manager.create_partition("bronze".into(), PartitionType::Tenant("bronze".into()), limits(4, 0)).unwrap();
    pool.set_partition_manager(manager).unwrap();

    let bronze: Vec<_> = (0..2).map(|_| pool.acquire_for(&tenant("bronze")).unwrap()).collect();
    assert!(
        matches!(pool.acquire_for(&tenant("bronze")), Err(PoolError::ConnectionTimeout(_))),
        "gold's two stay free although the pool has room for them"
    );
    assert!(matches!(pool.acquire(), Err(PoolError::ConnectionTimeout(_))), "so does plain acquire");
    let gold: Vec<_> = (0..2).map(|_| pool.acquire_for(&tenant("gold")).expect("its reservation")).collect();
    assert_eq!(pool.active(), 4);
    drop(bronze);
    // Gold may grow past its minimum into what is free.
    let more_gold: Vec<_> = (0..2).map(|_| pool.acquire_for(&tenant("gold")).unwrap()).collect();
    drop((gold, more_gold));
}

#[test]
fn plain_acquire_uses_the_default_partition_when_one_is_set() {
    let pool = pool_of(4);
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("shared".into(), PartitionType::ResourceGroup("shared".into()), limits(1, 0)).unwrap();
    manager.set_default_partition("shared").unwrap();
    pool.set_partition_manager(manager).unwrap();
    let first = pool.acquire().unwrap();
    assert!(matches!(pool.acquire(), Err(PoolError::ConnectionTimeout(_))), "the default's maximum of 1 applies");
    assert!(
        matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { active: 1, max: 1 })),
        "try_acquire does not wait: the partition is full at its own maximum"
    );
    let unknown = pool.acquire_for(&tenant("nobody"));
    assert!(matches!(unknown, Err(PoolError::ConnectionTimeout(_))), "an unroutable request goes to the default too");
    drop(first);
    assert_eq!(pool.partitions().unwrap().partition("shared").unwrap().statistics().acquired, 1);
}

#[test]
fn a_partition_s_wait_queue_is_bounded() {
    // Waiters wait long enough for the test to see them on a loaded machine.
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(0)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(30))
        .enable_partitioning(true)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    let bounded = PartitionLimits { max_connections: 1, max_wait_queue: 2, ..Default::default() };
    manager.create_partition("q".into(), PartitionType::Tenant("q".into()), bounded).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let held = pool.acquire_for(&tenant("q")).unwrap();
    thread::scope(|s| {
        let waiters: Vec<_> = (0..2).map(|_| s.spawn(|| pool.acquire_for(&tenant("q")).map(drop))).collect();
        let partition = pool.partitions().unwrap().partition("q").unwrap();
        assert!(common::eventually(|| partition.statistics().waiting == 2), "two wait");
        assert!(matches!(pool.acquire_for(&tenant("q")), Err(PoolError::WaitQueueFull)), "a third is turned away");
        assert_eq!(partition.statistics().rejected, 1);
        drop(held);
        for w in waiters {
            w.join().unwrap().expect("both waiters are served once the holder returns");
        }
    });
}

#[test]
fn limits_that_cannot_fit_are_refused() {
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    let bad = |max, min| {
        manager.create_partition(format!("p{max}-{min}"), PartitionType::Tenant("t".into()), limits(max, min))
    };
    assert!(matches!(bad(0, 0), Err(PoolError::InvalidConfig(_))));
    assert!(matches!(bad(2, 3), Err(PoolError::InvalidConfig(_))));
    let zero_quota = PartitionLimits { io_limit: Some(0), ..Default::default() };
    assert!(manager.create_partition("z".into(), PartitionType::Tenant("z".into()), zero_quota).is_err());
    manager.create_partition("a".into(), PartitionType::Tenant("a".into()), limits(4, 3)).unwrap();
    assert!(matches!(
        manager.create_partition("a".into(), PartitionType::Tenant("b".into()), limits(1, 0)),
        Err(PoolError::PartitionExists(name)) if name == "a"
    ));
    manager.create_partition("b".into(), PartitionType::Tenant("b".into()), limits(4, 2)).unwrap();

    let pool = pool_of(4);
    let err = pool.set_partition_manager(manager).unwrap_err();
    assert!(matches!(&err, PoolError::InvalidConfig(m) if m.contains("min_connections")), "3 + 2 > 4: {err}");

    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("a".into(), PartitionType::Tenant("a".into()), limits(4, 3)).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let manager = pool.partitions().unwrap();
    assert!(
        manager.create_partition("c".into(), PartitionType::Tenant("c".into()), limits(2, 2)).is_err(),
        "3 + 2 > 4"
    );
    assert!(manager.create_partition("d".into(), PartitionType::Tenant("d".into()), limits(5, 0)).is_err(), "5 > 4");
    manager.create_partition("e".into(), PartitionType::Tenant("e".into()), limits(4, 1)).expect("3 + 1 = 4 fits");

    let plain =
        ConnectionPool::new(PoolConfig::builder().min_size(0).initial_size(0).build().unwrap(), TrackingFactory::new())
            .unwrap();
    assert!(matches!(
        plain.set_partition_manager(PartitionManager::new(RoutingStrategy::TenantBased)),
        Err(PoolError::InvalidConfig(_))
    ));
    assert!(matches!(plain.acquire_for(&tenant("a")), Err(PoolError::InvalidConfig(_))));
}

#[test]
fn maintenance_keeps_the_reserved_minimums_open() {
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(0)
        .max_size(6)
        .maintenance_interval(Duration::from_millis(20))
        .enable_partitioning(true)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("a".into(), PartitionType::Tenant("a".into()), limits(3, 2)).unwrap();
    pool.set_partition_manager(manager).unwrap();
    assert!(common::eventually(|| pool.size() == 2), "open: {}", pool.size());
    pool.partitions().unwrap().create_partition("b".into(), PartitionType::Tenant("b".into()), limits(3, 1)).unwrap();
    assert!(common::eventually(|| pool.size() == 3), "open: {}", pool.size());
}

/// Tags each connection with the partition it was prepared for; fails
/// or panics for the partition named so.
struct Preparing {
    inner: Arc<TrackingFactory>,
    prepared: AtomicUsize,
    /// Each connection's partition, by serial.
    labels: std::sync::Mutex<std::collections::HashMap<u64, String>>,
}

impl Preparing {
    fn label(&self, conn: &TestConn) -> String {
        self.labels.lock().unwrap().get(&conn.serial).cloned().unwrap_or_default()
    }
}

impl ConnectionFactory<TestConn> for Preparing {
    fn create(&self) -> Result<TestConn> {
        self.inner.create()
    }
    fn close(&self, conn: TestConn) -> Result<()> {
        self.inner.close(conn)
    }
    fn assign_partition(&self, conn: &mut TestConn, partition: &Partition) -> Result<()> {
        match partition.name() {
            "fails" => Err(PoolError::factory("no such schema")),
            "panics" => panic!("assign_partition bug"),
            name => {
                self.prepared.fetch_add(1, SeqCst);
                self.labels.lock().unwrap().insert(conn.serial, name.to_string());
                Ok(())
            }
        }
    }
}

#[test]
fn a_connection_is_prepared_for_the_partition_it_moves_to() {
    let inner = TrackingFactory::new();
    let factory =
        Arc::new(Preparing { inner: Arc::clone(&inner), prepared: AtomicUsize::new(0), labels: Default::default() });
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(1)
        .max_size(1)
        .acquire_timeout(SHORT)
        .enable_partitioning(true)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::clone(&factory)).unwrap();
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    for name in ["a", "b", "fails", "panics"] {
        manager.create_partition(name.into(), PartitionType::Tenant(name.into()), limits(1, 0)).unwrap();
    }
    pool.set_partition_manager(manager).unwrap();

    assert_eq!(factory.label(&pool.acquire_for(&tenant("a")).unwrap()), "a");
    assert_eq!(factory.label(&pool.acquire_for(&tenant("a")).unwrap()), "a");
    assert_eq!(factory.prepared.load(SeqCst), 1, "the same partition again: no preparing");
    assert_eq!(factory.label(&pool.acquire_for(&tenant("b")).unwrap()), "b");
    assert_eq!(factory.prepared.load(SeqCst), 2);

    let closed = pool.statistics().connections_closed;
    assert!(
        matches!(pool.acquire_for(&tenant("fails")), Err(PoolError::Factory(e)) if e.to_string().contains("schema"))
    );
    assert!(
        matches!(pool.acquire_for(&tenant("panics")), Err(PoolError::Factory(e)) if e.to_string().contains("panicked"))
    );
    assert_eq!(pool.statistics().connections_closed - closed, 2, "each failed connection closed");
    assert_eq!(pool.statistics().hook_panics.get(rusty_db::pool::Hook::AssignPartition), 1);
    for name in ["fails", "panics"] {
        assert_eq!(pool.partitions().unwrap().partition(name).unwrap().statistics().active, 0, "its claim released");
    }
    assert_eq!(factory.label(&pool.acquire_for(&tenant("a")).unwrap()), "a", "capacity intact");
    inner.assert_no_violations();
}

fn quota_pool(limits: PartitionLimits) -> ConnectionPool<TestConn> {
    let pool = pool_of(4);
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("q".into(), PartitionType::Tenant("q".into()), limits).unwrap();
    pool.set_partition_manager(manager).unwrap();
    pool
}

fn over(result: Result<impl Sized>, resource: &str) -> bool {
    matches!(result, Err(PoolError::QuotaExceeded { partition, resource: r }) if &*partition == "q" && r.as_str() == resource)
}

#[test]
fn cpu_quota_counts_hold_time_and_reported_cpu_per_rolling_minute() {
    let pool = quota_pool(PartitionLimits { cpu_limit: Some(Duration::from_secs(5)), ..limits(4, 0) });
    let conn = pool.acquire_for(&tenant("q")).unwrap();
    conn.report_cpu(Duration::from_secs(3)).expect("under the limit");
    assert!(over(conn.report_cpu(Duration::from_secs(3)), "cpu"), "this one takes it over: 6 s of 5");
    drop(conn);
    assert!(over(pool.acquire_for(&tenant("q")), "cpu"), "over the limit: no more borrows this minute");
    let stats = pool.partitions().unwrap().partition("q").unwrap().statistics();
    assert_eq!((stats.cpu_violations, stats.violations), (2, 2));
    assert!(stats.cpu_in_window >= Duration::from_secs(6), "{:?}", stats.cpu_in_window);
}

#[test]
fn memory_quota_bounds_what_borrowers_report_until_they_return() {
    let pool = quota_pool(PartitionLimits { memory_limit: Some(1000), ..limits(4, 0) });
    let mut first = pool.acquire_for(&tenant("q")).unwrap();
    first.report_memory(600).unwrap();
    let mut second = pool.acquire_for(&tenant("q")).unwrap();
    second.report_memory(400).expect("exactly the limit fits");
    assert!(over(pool.acquire_for(&tenant("q")), "memory"), "at the limit, a new borrow is refused");
    drop(second);
    let mut third = pool.acquire_for(&tenant("q")).expect("400 freed");
    assert!(over(third.report_memory(401), "memory"), "one byte over");
    third.report_memory(400).unwrap();
    let stats = pool.partitions().unwrap().partition("q").unwrap().statistics();
    assert_eq!((stats.memory_in_use, stats.memory_violations), (1000, 2));
    drop((first, third));
    assert_eq!(pool.partitions().unwrap().partition("q").unwrap().statistics().memory_in_use, 0);
}

#[test]
fn io_quota_is_a_token_bucket_of_one_second() {
    // One operation a second: the checks below have a second of slack.
    let pool = quota_pool(PartitionLimits { io_limit: Some(1), ..limits(4, 0) });
    let conn = pool.acquire_for(&tenant("q")).unwrap();
    conn.report_io(1).expect("a full bucket");
    assert!(over(conn.report_io(1), "io"), "empty now");
    drop(conn);
    assert!(over(pool.acquire_for(&tenant("q")), "io"), "no token left for a new borrow");
    // It refills at one a second.
    assert!(common::eventually(|| pool.acquire_for(&tenant("q")).is_ok()));
    let stats = pool.partitions().unwrap().partition("q").unwrap().statistics();
    assert!(stats.io_violations >= 2, "{stats:?}");
}

#[test]
fn quotas_do_nothing_outside_partitions() {
    let pool =
        ConnectionPool::new(PoolConfig::builder().min_size(0).initial_size(0).build().unwrap(), TrackingFactory::new())
            .unwrap();
    let mut conn = pool.acquire().unwrap();
    conn.report_cpu(Duration::from_secs(3600)).unwrap();
    conn.report_memory(u64::MAX).unwrap();
    conn.report_io(u64::MAX).unwrap();
}
