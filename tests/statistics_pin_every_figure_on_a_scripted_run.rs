//! Every statistic, pinned on scripted runs whose acquires, waits,
//! timeouts, failures and closes are known in advance.

mod common;

use std::time::Duration;

use common::{Outcome, TrackingFactory, config, eventually};
use rusty_db::pool::{ConnectionPool, PoolError, TimeHistogram};

const MS: Duration = Duration::from_millis(1);

#[test]
fn every_figure_matches_a_scripted_run() {
    let factory = TrackingFactory::new();
    // One shard, so the fast-path sample clock is the first acquire's.
    let pool = ConnectionPool::new(config().max_size(2).shards(1).build().unwrap(), factory.clone()).unwrap();

    let start = pool.statistics();
    assert!(start.statistics_enabled);
    assert_eq!((start.acquires, start.failed_acquires, start.connections_created), (0, 0, 0));
    assert_eq!((start.success_rate, start.cache_hit_rate, start.connections_per_second), (1.0, 0.0, 0.0));
    assert_eq!(start.efficiency_metrics.connection_reuse_rate, 0.0);
    assert_eq!(start.efficiency_metrics.immediate_acquire_rate, 1.0);
    assert_eq!(start.wait_time_histogram, TimeHistogram::default());

    // Two acquires on an empty pool create their connections.
    let a = pool.acquire().unwrap();
    let b = pool.acquire().unwrap();
    let full = pool.statistics();
    assert_eq!((full.active_connections, full.idle_connections, full.total_connections), (2, 0, 2));
    assert_eq!((full.pool_utilization, full.efficiency_metrics.pool_utilization), (1.0, 1.0));
    assert_eq!((full.waited_acquires, full.new_connection_acquires), (2, 2));

    // Two failures: try_acquire finds nothing, a short acquire times out.
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { .. })));
    assert!(matches!(pool.acquire_timeout(20 * MS), Err(PoolError::ConnectionTimeout(_))));

    // The first connection comes back and is taken at once (the fast path).
    drop(a);
    let mut c = pool.acquire().unwrap();
    assert_eq!(pool.statistics().pool_utilization, 1.0);

    // A waiter is handed the second connection after at least 50 ms.
    let mut d = std::thread::scope(|s| {
        let waiter = s.spawn(|| pool.acquire());
        assert!(eventually(|| pool.waiting() == 1));
        assert_eq!(pool.statistics().wait_queue_size, 1);
        std::thread::sleep(50 * MS);
        drop(b);
        waiter.join().unwrap().unwrap()
    });

    // c is closed as broken; d's connection will fail validation when next
    // taken, so that acquire closes it and creates a third connection.
    c.mark_broken();
    drop(c);
    d.validate = Outcome::Fail;
    drop(d);
    let e = pool.acquire().unwrap();
    drop(e);
    for _ in 0..3 {
        pool.stats.record_cache_hit();
    }
    pool.stats.record_cache_miss();

    let s = pool.statistics();
    // Gauges, right now.
    assert_eq!((s.active_connections, s.idle_connections, s.total_connections, s.wait_queue_size), (0, 1, 1, 0));
    assert_eq!((s.max_size, s.pool_utilization), (2, 0.0));
    // Counters.
    assert_eq!((s.connections_created, s.connections_closed), (3, 2));
    assert_eq!((s.closed_by_reason.broken, s.closed_by_reason.validation, s.closed_by_reason.total()), (1, 1, 2));
    assert_eq!(s.validation_failures, 1);
    assert_eq!((s.acquires, s.immediate_acquires, s.waited_acquires, s.new_connection_acquires), (5, 1, 4, 3));
    assert_eq!((s.failed_acquires, s.timeouts), (2, 1));
    assert_eq!((s.acquire_failures.exhausted, s.acquire_failures.timeout, s.acquire_failures.total()), (1, 1, 2));
    assert_eq!((s.connection_create_failures, s.leaks_detected), (0, 0));
    assert_eq!((s.cache_hits, s.cache_misses), (3, 1));
    assert_eq!(factory.created() as u64, s.connections_created);
    assert_eq!(factory.closed() as u64, s.connections_closed);
    // Derived figures.
    assert_eq!(s.success_rate, 5.0 / 7.0);
    assert_eq!(s.cache_hit_rate, 0.75);
    assert_eq!(s.efficiency_metrics.cache_hit_rate, 0.75);
    assert_eq!(s.efficiency_metrics.connection_reuse_rate, 2.0 / 5.0);
    assert_eq!(s.efficiency_metrics.immediate_acquire_rate, 1.0 / 7.0);
    assert!((s.connections_per_second * s.uptime.as_secs_f64() - 5.0).abs() < 1e-9);
    assert!(s.uptime >= 70 * MS, "{:?}", s.uptime);

    // Waits: four waited acquires (d for at least 50 ms), c's counts as zero.
    let wait = s.wait_time_histogram;
    assert_eq!(wait.count, 5);
    assert_eq!(wait.mean, wait.sum / 5);
    assert_eq!(s.average_wait_time, wait.mean);
    assert!(wait.sum >= 50 * MS && wait.mean >= 10 * MS, "{wait:?}");
    let p = wait.percentiles;
    assert!(p.max >= 50 * MS && p.max < Duration::from_secs(10), "{p:?}");
    assert!(p.p50 < 50 * MS, "{p:?}");
    assert!(p.p50 <= p.p95 && p.p95 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max, "{p:?}");
    assert_eq!(p.p999, p.max);

    // Acquire times: the same four, plus c's, timed as its shard's sample.
    let acquire = s.acquire_time_histogram;
    assert_eq!(acquire.count, 5);
    assert_eq!(s.average_acquire_time, acquire.mean);
    assert!(acquire.sum >= wait.sum && acquire.sum - wait.sum < 10 * MS, "{acquire:?} {wait:?}");
    assert_eq!(acquire.percentiles.max, p.max);

    // Closing closes the idle connection; later acquires fail.
    pool.close();
    assert!(matches!(pool.acquire(), Err(PoolError::PoolClosed)));
    let s = pool.statistics();
    assert_eq!((s.closed_by_reason.shutdown, s.connections_closed), (1, 3));
    assert_eq!((s.acquire_failures.closed, s.failed_acquires), (1, 3));
    assert_eq!(s.success_rate, 5.0 / 8.0);
    assert_eq!(s.connections_created - s.connections_closed, (s.idle_connections + s.active_connections) as u64);
    factory.assert_no_violations();
}

#[test]
fn failed_acquires_are_counted_by_error() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(config().max_size(1).max_wait_queue_size(0).build().unwrap(), factory.clone()).unwrap();
    let held = pool.acquire().unwrap();
    assert!(matches!(pool.acquire(), Err(PoolError::WaitQueueFull)));
    drop(held);

    // Once the factory fails, the first try_acquire sees it fail; the next
    // ones are turned away by the backoff without calling it.
    let pool = ConnectionPool::new(config().max_size(1).build().unwrap(), factory.clone()).unwrap();
    factory.fail_creates(Outcome::Error);
    assert!(matches!(pool.try_acquire(), Err(PoolError::Factory(_))));
    assert!(matches!(pool.try_acquire(), Err(PoolError::Factory(_))));
    let s = pool.statistics();
    assert_eq!((s.connection_create_failures, s.acquire_failures.factory, s.failed_acquires), (1, 2, 2));
    assert_eq!((s.connections_created, s.acquires, s.success_rate), (0, 0, 0.0));
    assert_eq!(factory.create_attempts(), 2, "one by the first pool, one by this one");
}

#[test]
fn closes_are_counted_by_reason() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(config().build().unwrap(), factory.clone()).unwrap();
    let (killed, mut broken) = (pool.acquire().unwrap(), pool.acquire().unwrap());
    killed.discard();
    broken.mark_broken();
    drop(broken);
    let s = pool.statistics();
    assert_eq!((s.closed_by_reason.killed, s.closed_by_reason.broken, s.connections_closed), (1, 1, 2));

    let idle = ConnectionPool::new(
        config().idle_timeout(30 * MS).maintenance_interval(10 * MS).build().unwrap(),
        factory.clone(),
    )
    .unwrap();
    drop(idle.acquire().unwrap());
    assert!(eventually(|| idle.statistics().closed_by_reason.idle == 1));
    assert_eq!(idle.statistics().connections_closed, 1);

    let aged = ConnectionPool::new(config().max_lifetime(30 * MS).build().unwrap(), factory.clone()).unwrap();
    let old = aged.acquire().unwrap();
    std::thread::sleep(40 * MS);
    drop(old);
    assert!(eventually(|| aged.statistics().closed_by_reason.lifetime == 1));
    assert_eq!(aged.statistics().connections_closed, 1);
    factory.assert_no_violations();
}

#[test]
fn a_leak_is_counted_once_per_borrow() {
    let factory = TrackingFactory::new();
    let config = config().leak_detection_threshold(30 * MS).maintenance_interval(10 * MS).build().unwrap();
    let pool = ConnectionPool::new(config, factory).unwrap();
    let leaked = pool.acquire().unwrap();
    assert!(eventually(|| pool.statistics().leaks_detected == 1));
    std::thread::sleep(50 * MS);
    assert_eq!(pool.statistics().leaks_detected, 1);
    drop(leaked);
}
