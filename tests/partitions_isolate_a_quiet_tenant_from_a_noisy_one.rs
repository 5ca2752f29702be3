//! Isolation: tenant A runs ten times tenant B's threads, each holding its
//! connection for 20 ms, against a pool of 8. Partitioned (A at most 6, B
//! 2 reserved), B's p99 wait stays under 60 ms: B's threads only ever wait
//! for each other (B holds 2 ms). In the same pool without partitions,
//! B queues behind A's threads (a wait of about 40 x 20 ms / 8 = 100 ms):
//! the control shows the bound means something.

mod common;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{TestConn, TrackingFactory};
use rusty_db::pool::{
    ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest, PartitionType, PoolConfig, RoutingStrategy,
};

const MAX: usize = 8;
const B_THREADS: usize = 4;
const A_THREADS: usize = 10 * B_THREADS;
const A_HOLDS: Duration = Duration::from_millis(20);
const B_HOLDS: Duration = Duration::from_millis(2);
const RUN: Duration = Duration::from_millis(1500);
/// B's p99 wait while partitioned, on a loaded 2-core machine.
const BOUND: Duration = Duration::from_millis(60);

fn pool(partitioned: bool) -> ConnectionPool<TestConn> {
    let config = PoolConfig::builder()
        .min_size(MAX)
        .initial_size(MAX)
        .max_size(MAX)
        .max_wait_queue_size(1000)
        .acquire_timeout(Duration::from_secs(30))
        .enable_partitioning(partitioned)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    if partitioned {
        let manager = PartitionManager::new(RoutingStrategy::TenantBased);
        let a = PartitionLimits { max_connections: 6, min_connections: 0, ..Default::default() };
        let b = PartitionLimits { max_connections: 6, min_connections: 2, ..Default::default() };
        manager.create_partition("a".into(), PartitionType::Tenant("A".into()), a).unwrap();
        manager.create_partition("b".into(), PartitionType::Tenant("B".into()), b).unwrap();
        pool.set_partition_manager(manager).unwrap();
    }
    pool
}

/// Runs both tenants for `RUN`; B's waits, sorted.
fn b_waits(pool: &ConnectionPool<TestConn>, partitioned: bool) -> Vec<Duration> {
    let waits = Mutex::new(Vec::new());
    let deadline = Instant::now() + RUN;
    let acquire = |tenant: &str| {
        if partitioned { pool.acquire_for(&PartitionRequest::for_tenant(tenant)) } else { pool.acquire() }
    };
    thread::scope(|s| {
        for _ in 0..A_THREADS {
            s.spawn(|| {
                while Instant::now() < deadline {
                    let conn = acquire("A").expect("A is served, slowly");
                    thread::sleep(A_HOLDS);
                    drop(conn);
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
                }
                waits.lock().unwrap().extend(mine);
            });
        }
    });
    let mut waits = waits.into_inner().unwrap();
    waits.sort();
    waits
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn a_quiet_tenant_s_p99_wait_stays_bounded_beside_a_noisy_one() {
    let partitioned = b_waits(&pool(true), true);
    let control = b_waits(&pool(false), false);
    let (p99, control_p50) = (quantile(&partitioned, 0.99), quantile(&control, 0.5));
    eprintln!(
        "B's waits: partitioned p50 {:?} p99 {:?} over {} acquires; unpartitioned p50 {:?} p99 {:?} over {}",
        quantile(&partitioned, 0.5),
        p99,
        partitioned.len(),
        control_p50,
        quantile(&control, 0.99),
        control.len()
    );
    assert!(partitioned.len() > 100, "B kept working: {} acquires", partitioned.len());
    assert!(p99 <= BOUND, "B's p99 wait {p99:?} passed {BOUND:?} while A ran {A_THREADS} threads");
    assert!(
        control_p50 > BOUND,
        "without partitions B waits behind A (p50 {control_p50:?}): the bound means something"
    );
}
