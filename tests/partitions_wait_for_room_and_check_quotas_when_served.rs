//! A partitioned request waits for room rather than failing: a
//! load-balanced one, when every partition is full, waits and takes the
//! first connection any partition gets back; one admitted by its
//! partition is never refused by the pool-wide `max_wait_queue_size`
//! (which bounds only requests that reach no partition). And a request
//! that waited is checked against its partition's quotas when it is let
//! through, not only when it arrived.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{TestConn, TrackingFactory};
use rusty_db::pool::{
    ConnectionFactory, ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest, PartitionType, PoolConfig,
    PoolError, QuotaResource, Result, RoutingStrategy,
};

fn pool_with(
    max_size: usize,
    timeout: Duration,
    factory: Arc<impl ConnectionFactory<TestConn>>,
) -> ConnectionPool<TestConn> {
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(0)
        .max_size(max_size)
        .acquire_timeout(timeout)
        .enable_partitioning(true)
        .build()
        .unwrap();
    ConnectionPool::new(config, factory).unwrap()
}

fn limits(max: usize, min: usize) -> PartitionLimits {
    PartitionLimits { max_connections: max, min_connections: min, ..Default::default() }
}

fn active(pool: &ConnectionPool<TestConn>) -> Vec<usize> {
    pool.statistics().partitions.iter().map(|p| p.active).collect()
}

/// Every partition of a load-balanced pool full; one connection of the
/// partition `from` comes back 150 ms later: the waiting request gets it.
fn a_load_balanced_request_waits_for(from: usize) {
    let pool = pool_with(4, Duration::from_secs(5), TrackingFactory::new());
    let manager = PartitionManager::new(RoutingStrategy::LoadBalanced);
    for name in ["one", "two"] {
        manager.create_partition(name.into(), PartitionType::ResourceGroup(name.into()), limits(2, 0)).unwrap();
    }
    pool.set_partition_manager(manager).unwrap();
    let any = PartitionRequest::default();
    let mut held: Vec<_> = (0..4).map(|_| pool.acquire_for(&any).unwrap()).collect();
    assert_eq!(active(&pool), [2, 2]);
    let routed = pool.partitions().unwrap().route(&any).unwrap();
    assert_eq!(routed.name(), "one", "a full pool routes to the least loaded partition, not to none");

    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || {
            let started = Instant::now();
            let conn = pool.acquire_for(&PartitionRequest::default());
            (conn, started.elapsed())
        })
    };
    thread::sleep(Duration::from_millis(150));
    // The borrows alternate between the partitions: 0 and 2 are one's.
    let returned = held.remove(if from == 0 { 0 } else { 1 });
    let id = returned.id();
    drop(returned);
    let (got, waited) = waiter.join().unwrap();
    let got = got.unwrap();
    assert_eq!(got.id(), id, "the waiting request took the connection that came back");
    assert!(waited >= Duration::from_millis(100), "it waited for it: {waited:?}");
    assert_eq!(active(&pool), [2, 2], "and counts in the partition that had room");
    assert_eq!(pool.statistics().failed_acquires, 0);
}

#[test]
fn a_load_balanced_request_waits_when_every_partition_is_full() {
    a_load_balanced_request_waits_for(0);
}

#[test]
fn a_waiting_load_balanced_request_moves_to_the_partition_that_gets_room() {
    a_load_balanced_request_waits_for(1);
}

#[test]
fn a_request_that_waited_is_refused_once_its_cpu_quota_is_spent() {
    let pool = pool_with(4, Duration::from_secs(5), TrackingFactory::new());
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    let limits = PartitionLimits { cpu_limit: Some(Duration::from_millis(50)), ..limits(1, 0) };
    manager.create_partition("metered".into(), PartitionType::Tenant("metered".into()), limits).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let request = PartitionRequest::for_tenant("metered");

    let held = pool.acquire_for(&request).unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (pool, request) = (pool.clone(), request.clone());
            thread::spawn(move || pool.acquire_for(&request).map(|c| c.id()))
        })
        .collect();
    let partition = pool.partitions().unwrap().partition("metered").unwrap();
    assert!(common::eventually(|| partition.statistics().waiting == 3));
    thread::sleep(Duration::from_millis(200));
    drop(held); // 200 ms of hold time against a limit of 50 ms

    for waiter in waiters {
        let outcome = waiter.join().unwrap();
        assert!(
            matches!(&outcome, Err(PoolError::QuotaExceeded { partition, resource: QuotaResource::Cpu }) if &**partition == "metered"),
            "{outcome:?}"
        );
    }
    let stats = partition.statistics();
    assert_eq!((stats.acquired, stats.active, stats.waiting), (1, 0, 0), "only the first borrow was served");
    assert!(stats.cpu_in_window < Duration::from_millis(400), "one borrow charged: {:?}", stats.cpu_in_window);
    assert_eq!(stats.cpu_violations, 1 + 3, "the charge that went over the limit, and each refusal");
}

/// A factory whose reset takes 20 ms, so a released connection is not
/// back yet when the partition's next request is admitted.
struct SlowReset(Arc<TrackingFactory>);

impl ConnectionFactory<TestConn> for SlowReset {
    fn create(&self) -> Result<TestConn> {
        self.0.create()
    }
    fn reset(&self, conn: &mut TestConn) -> Result<()> {
        thread::sleep(Duration::from_millis(20));
        self.0.reset(conn)
    }
    fn close(&self, conn: TestConn) -> Result<()> {
        self.0.close(conn)
    }
}

#[test]
fn the_pool_wide_wait_queue_bound_does_not_refuse_a_partitions_waiter() {
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(0)
        .max_size(1)
        .max_wait_queue_size(0)
        .acquire_timeout(Duration::from_secs(5))
        .enable_partitioning(true)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::new(SlowReset(TrackingFactory::new()))).unwrap();
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    let limits = PartitionLimits { max_wait_queue: 10, ..limits(1, 0) };
    manager.create_partition("p".into(), PartitionType::Tenant("p".into()), limits).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let request = PartitionRequest::for_tenant("p");
    let partition = pool.partitions().unwrap().partition("p").unwrap();

    for round in 0..10 {
        let held = pool.acquire_for(&request).unwrap();
        let waiter = {
            let (pool, request) = (pool.clone(), request.clone());
            thread::spawn(move || pool.acquire_for(&request).map(|c| c.id()))
        };
        assert!(common::eventually(|| partition.statistics().waiting == 1));
        drop(held);
        let outcome = waiter.join().unwrap();
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
    }
    let stats = pool.statistics();
    assert_eq!((stats.acquires, stats.failed_acquires), (20, 0));
}
