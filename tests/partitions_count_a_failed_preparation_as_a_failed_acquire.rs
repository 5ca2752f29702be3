//! A partitioned acquire whose connection could not be prepared for its
//! partition (`assign_partition` erred or panicked) is a failed acquire:
//! `acquires + failed_acquires` is the number of calls, `success_rate`
//! says so, and no partition counts it as `acquired`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{TestConn, TrackingFactory};
use rusty_db::pool::{
    ConnectionFactory, ConnectionPool, Hook, Partition, PartitionLimits, PartitionManager, PartitionRequest,
    PartitionType, PoolConfig, PoolError, Result, RoutingStrategy,
};

/// Prepares one connection in three; of the others, half err and half panic.
struct Flaky {
    inner: Arc<TrackingFactory>,
    calls: AtomicUsize,
}

impl ConnectionFactory<TestConn> for Flaky {
    fn create(&self) -> Result<TestConn> {
        self.inner.create()
    }
    fn close(&self, conn: TestConn) -> Result<()> {
        self.inner.close(conn)
    }
    fn assign_partition(&self, _: &mut TestConn, _: &Partition) -> Result<()> {
        match self.calls.fetch_add(1, SeqCst) % 6 {
            0 | 3 => Ok(()),
            1 | 4 => Err(PoolError::factory("no such schema")),
            _ => panic!("assign_partition bug"),
        }
    }
}

#[test]
fn a_failed_assign_partition_counts_as_a_failed_acquire() {
    let factory = Arc::new(Flaky { inner: TrackingFactory::new(), calls: AtomicUsize::new(0) });
    let config =
        PoolConfig::builder().min_size(0).initial_size(0).max_size(1).enable_partitioning(true).build().unwrap();
    let pool = ConnectionPool::new(config, Arc::clone(&factory)).unwrap();
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    let limits = PartitionLimits { max_connections: 1, ..Default::default() };
    for name in ["a", "b"] {
        manager.create_partition(name.into(), PartitionType::Tenant(name.into()), limits.clone()).unwrap();
    }
    pool.set_partition_manager(manager).unwrap();

    // The one connection moves partition on every call (or is new after a
    // failure closed the last): each call prepares it.
    let mut served = 0;
    for n in 0..30 {
        let tenant = if n % 2 == 0 { "a" } else { "b" };
        match pool.acquire_for(&PartitionRequest::for_tenant(tenant)) {
            Ok(conn) => {
                served += 1;
                drop(conn);
            }
            Err(PoolError::Factory(_)) => {}
            Err(e) => panic!("call {n}: {e}"),
        }
    }
    assert_eq!(factory.calls.load(SeqCst), 30, "every call prepared its connection");
    assert_eq!(served, 10);

    let stats = pool.statistics();
    assert_eq!((stats.acquires, stats.failed_acquires), (10, 20));
    assert_eq!(stats.acquire_failures.factory, 20);
    assert!((stats.success_rate - 10.0 / 30.0).abs() < 1e-9, "{}", stats.success_rate);
    assert_eq!(stats.immediate_acquires + stats.waited_acquires, stats.acquires);
    let acquired: u64 = stats.partitions.iter().map(|p| p.acquired).sum();
    assert_eq!(acquired, 10, "no partition counts a failed preparation as acquired");
    assert_eq!(stats.partitions.iter().map(|p| p.active).sum::<usize>(), 0, "and none holds its claim");
    assert_eq!(stats.hook_panics.get(Hook::AssignPartition), 10);
}
