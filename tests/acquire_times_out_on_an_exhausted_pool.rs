//! Timeouts: `acquire_timeout` and the configured `acquire_timeout` end a
//! wait with `ConnectionTimeout` carrying the timeout, no sooner; a timed
//! out waiter leaves the queue and takes nothing with it; `try_acquire`
//! never waits and reports how full the pool is.

mod common;

use std::time::{Duration, Instant};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolError};

/// Slack for a loaded machine: a wait may end this much after its deadline.
const SLACK: Duration = Duration::from_secs(2);

#[test]
fn acquire_timeout_fails_with_connection_timeout_no_sooner_than_the_timeout() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(common::config().max_size(1).build().unwrap(), factory.clone()).unwrap();
    let _held = pool.acquire().unwrap();
    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    let result = pool.acquire_timeout(timeout);
    let waited = started.elapsed();
    match result {
        Err(PoolError::ConnectionTimeout(d)) => assert_eq!(d, timeout),
        other => panic!("expected ConnectionTimeout, got {other:?}"),
    }
    assert!(waited >= timeout, "gave up after {waited:?}, before the {timeout:?} timeout");
    assert!(waited < timeout + SLACK, "waited {waited:?}");
    assert_eq!(factory.create_attempts(), 1, "no creation was attempted beyond max_size");
}

#[test]
fn configured_acquire_timeout_is_honoured_by_acquire() {
    let timeout = Duration::from_millis(150);
    let config = common::config().max_size(2).initial_size(2).acquire_timeout(timeout).build().unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    let _held = (pool.acquire().unwrap(), pool.acquire().unwrap());
    for acquire in [ConnectionPool::acquire, |p: &ConnectionPool<_>| p.acquire_with_priority(3)] {
        let started = Instant::now();
        let result = acquire(&pool);
        let waited = started.elapsed();
        match result {
            Err(PoolError::ConnectionTimeout(d)) => assert_eq!(d, timeout),
            other => panic!("expected ConnectionTimeout, got {other:?}"),
        }
        assert!(waited >= timeout && waited < timeout + SLACK, "waited {waited:?} for a {timeout:?} timeout");
    }
}

#[test]
fn timed_out_waiter_leaves_the_queue_and_takes_nothing() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(common::config().max_size(1).build().unwrap(), factory.clone()).unwrap();
    let held = pool.acquire().unwrap();
    let serial = held.serial;
    assert!(matches!(pool.acquire_timeout(Duration::from_millis(50)), Err(PoolError::ConnectionTimeout(_))));
    assert_eq!(pool.waiting(), 0);
    drop(held);
    assert_eq!((pool.idle(), pool.active()), (1, 0), "the returned connection is idle, not granted to a ghost");
    assert_eq!(pool.try_acquire().unwrap().serial, serial);
}

#[test]
fn try_acquire_on_an_exhausted_pool_reports_active_and_max_at_once() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(3).initial_size(1).build().unwrap(), factory.clone()).unwrap();
    let held: Vec<_> = (0..3).map(|_| pool.try_acquire().unwrap()).collect();
    let started = Instant::now();
    let result = pool.try_acquire();
    let took = started.elapsed();
    match result {
        Err(PoolError::PoolExhausted { active, max }) => assert_eq!((active, max), (3, 3)),
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    assert!(took < Duration::from_secs(1), "try_acquire took {took:?}");
    drop(held);
    assert_eq!(factory.created(), 3);
}

#[test]
fn timeout_too_large_for_the_clock_waits_instead_of_overflowing() {
    let pool = ConnectionPool::new(common::config().max_size(1).build().unwrap(), TrackingFactory::new()).unwrap();
    drop(pool.acquire_timeout(Duration::MAX).expect("a free slot"));
    let held = pool.acquire().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| pool.acquire_timeout(Duration::MAX).map(drop));
        assert!(common::eventually(|| pool.waiting() == 1), "the waiter never registered");
        drop(held);
        waiter.join().unwrap().expect("served once the connection came back");
    });
}
