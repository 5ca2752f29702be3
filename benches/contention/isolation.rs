//! Tenant isolation: a noisy tenant A runs ten times the threads of a
//! quiet tenant B on one pool of 8 null connections, every borrow holding
//! its connection (A 2 ms, B 0.2 ms, as a sleep). Measured twice: with
//! partitions (A at most 6, B 2 reserved, `acquire_for`) and without
//! (plain `acquire`). Reported: B's wait p50 and p99, and both tenants'
//! operations per second. Partitioned, B waits only for B; unpartitioned,
//! it queues behind A.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rusty_db::pool::{
    ConnectionFactory, ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest, PartitionType, PoolConfig,
    Result, RoutingStrategy,
};

const MAX: usize = 8;
const B_THREADS: usize = 4;
const A_THREADS: usize = 10 * B_THREADS;
const A_HOLDS: Duration = Duration::from_millis(2);
const B_HOLDS: Duration = Duration::from_micros(200);

struct Null;

impl ConnectionFactory<()> for Null {
    fn create(&self) -> Result<()> {
        Ok(())
    }
}

fn pool(partitioned: bool) -> ConnectionPool<()> {
    let config = PoolConfig::builder()
        .min_size(MAX)
        .initial_size(MAX)
        .max_size(MAX)
        .max_wait_queue_size(10_000)
        .acquire_timeout(Duration::from_secs(60))
        .enable_partitioning(partitioned)
        .build()
        .expect("valid config");
    let pool = ConnectionPool::new(config, std::sync::Arc::new(Null)).expect("pool");
    if partitioned {
        let manager = PartitionManager::new(RoutingStrategy::TenantBased);
        let a = PartitionLimits { max_connections: 6, ..Default::default() };
        let b = PartitionLimits { max_connections: 6, min_connections: 2, ..Default::default() };
        manager.create_partition("a".into(), PartitionType::Tenant("A".into()), a).expect("fits");
        manager.create_partition("b".into(), PartitionType::Tenant("B".into()), b).expect("fits");
        pool.set_partition_manager(manager).expect("a partitioned pool");
    }
    pool
}

/// One run: B's sorted waits, and each tenant's operations.
fn run(partitioned: bool, duration: Duration) -> (Vec<Duration>, u64, u64) {
    let pool = pool(partitioned);
    let (a_ops, b_ops) = (AtomicU64::new(0), AtomicU64::new(0));
    let waits = Mutex::new(Vec::new());
    let deadline = Instant::now() + duration;
    let acquire = |tenant: &str| {
        if partitioned { pool.acquire_for(&PartitionRequest::for_tenant(tenant)) } else { pool.acquire() }
    };
    thread::scope(|s| {
        for _ in 0..A_THREADS {
            s.spawn(|| {
                while Instant::now() < deadline {
                    let conn = acquire("A").expect("A is served");
                    thread::sleep(A_HOLDS);
                    drop(conn);
                    a_ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for _ in 0..B_THREADS {
            s.spawn(|| {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let asked = Instant::now();
                    let conn = acquire("B").expect("B is served");
                    mine.push(asked.elapsed());
                    thread::sleep(B_HOLDS);
                    drop(conn);
                    b_ops.fetch_add(1, Ordering::Relaxed);
                }
                waits.lock().expect("no panics while held").extend(mine);
            });
        }
    });
    let mut waits = waits.into_inner().expect("no panics while held");
    waits.sort();
    (waits, a_ops.into_inner(), b_ops.into_inner())
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Both runs, as a markdown table.
pub fn markdown(duration: Duration) -> String {
    let mut out = format!(
        "## Tenant isolation ({A_THREADS} threads of A holding {A_HOLDS:?}, {B_THREADS} of B holding {B_HOLDS:?}, \
         pool of {MAX}, {duration:?} each)\n\n| pool | B wait p50 | B wait p99 | A ops/s | B ops/s |\n|---|---:|---:|---:|---:|\n"
    );
    for (name, partitioned) in [("partitioned (A max 6, B min 2)", true), ("one shared pool", false)] {
        let (waits, a, b) = run(partitioned, duration);
        let secs = duration.as_secs_f64();
        eprintln!("isolation/{name}: B p99 {:?}", quantile(&waits, 0.99));
        out.push_str(&format!(
            "| {name} | {:.2} ms | {:.2} ms | {:.0} | {:.0} |\n",
            quantile(&waits, 0.5).as_secs_f64() * 1e3,
            quantile(&waits, 0.99).as_secs_f64() * 1e3,
            a as f64 / secs,
            b as f64 / secs
        ));
    }
    out
}

/// A short run of both, for the smoke test.
pub fn smoke() {
    for partitioned in [true, false] {
        let (waits, a, b) = run(partitioned, Duration::from_millis(20));
        assert!(a > 0 && b > 0 && !waits.is_empty(), "isolation (partitioned: {partitioned}) made no progress");
    }
}
