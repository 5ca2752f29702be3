//! With `enable_statistics(false)` the pool records nothing: a snapshot
//! carries the live gauges and says that the rest was not collected.

mod common;

use common::{TrackingFactory, config};
use rusty_db::pool::{ConnectionPool, PoolError, TimeHistogram};

#[test]
fn a_snapshot_without_statistics_has_gauges_only() {
    let pool =
        ConnectionPool::new(config().max_size(2).enable_statistics(false).build().unwrap(), TrackingFactory::new())
            .unwrap();
    assert!(!pool.stats.is_enabled());
    let held = pool.acquire().unwrap();
    let mut broken = pool.acquire().unwrap();
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { .. })));
    broken.mark_broken();
    drop(broken);
    pool.stats.record_cache_hit();

    let s = pool.statistics();
    assert!(!s.statistics_enabled);
    assert_eq!((s.active_connections, s.idle_connections, s.total_connections, s.wait_queue_size), (1, 0, 1, 0));
    assert_eq!((s.max_size, s.pool_utilization, s.efficiency_metrics.pool_utilization), (2, 0.5, 0.5));
    assert_eq!((s.connections_created, s.connections_closed, s.acquires, s.failed_acquires), (0, 0, 0, 0));
    assert_eq!((s.cache_hits, s.closed_by_reason.total(), s.acquire_failures.total()), (0, 0, 0));
    assert_eq!((s.success_rate, s.cache_hit_rate, s.connections_per_second), (0.0, 0.0, 0.0));
    assert_eq!(s.wait_time_histogram, TimeHistogram::default());
    assert_eq!(s.acquire_time_histogram, TimeHistogram::default());
    drop(held);
}
