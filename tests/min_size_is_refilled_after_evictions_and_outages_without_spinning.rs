//! The pool keeps `min_size` open: the maintenance thread replaces
//! connections that are evicted (broken, killed, failed validation) without
//! waiting for its next scheduled pass, and after a factory outage it
//! retries with exponential backoff (10 ms doubling up to 1 s) rather than
//! spinning, then refills once the factory works again.

mod common;

use std::thread;
use std::time::Duration;

use common::{Outcome, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError};

const MIN: usize = 3;

/// A pool of `MIN` whose maintenance runs once a minute unless woken. Its
/// first pass creates the connections; once they are there that pass is
/// over, and the next is not due for a minute. One shard: the idle stack
/// is one LIFO, so the last connection returned is the next one taken.
fn pool() -> (ConnectionPool<common::TestConn>, std::sync::Arc<TrackingFactory>) {
    let factory = TrackingFactory::new();
    let config = common::config()
        .min_size(MIN)
        .max_size(MIN + 1)
        .shards(1)
        .maintenance_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(common::eventually(|| pool.idle() == MIN), "the first pass fills the pool");
    thread::sleep(Duration::from_millis(20));
    (pool, factory)
}

#[test]
fn broken_and_killed_connections_are_replaced_in_the_background() {
    let (pool, factory) = pool();
    let mut guards: Vec<_> = (0..MIN).map(|_| pool.acquire().unwrap()).collect();
    guards[0].mark_broken();
    let killed = guards.pop().unwrap();
    killed.discard();
    drop(guards);
    assert_eq!(factory.closed(), 2, "both closed as they came back");

    assert!(common::eventually(|| pool.idle() == MIN), "refilled to min_size long before the next scheduled pass");
    assert_eq!(factory.created(), MIN + 2);
    factory.assert_no_violations();
}

#[test]
fn a_connection_failing_validation_is_replaced_in_the_background() {
    let (pool, factory) = pool();
    let guards: Vec<_> = (0..MIN).map(|_| pool.acquire().unwrap()).collect();
    let mut guards = guards.into_iter();
    let mut bad = guards.next().unwrap();
    bad.validate = Outcome::Fail;
    drop(guards);
    drop(bad);
    // The next acquire finds the bad one on top, closes it and takes
    // another; the pool is then one short until refilled.
    let taken: Vec<_> = (0..MIN - 1).map(|_| pool.acquire().unwrap()).collect();
    drop(taken);
    assert!(common::eventually(|| factory.closed() == 1));
    assert!(common::eventually(|| pool.idle() == MIN), "refilled to min_size");
    factory.assert_no_violations();
}

#[test]
fn creation_failures_back_off_instead_of_spinning_and_the_pool_recovers() {
    let (pool, factory) = pool();
    factory.fail_creates(Outcome::Error);
    let guards: Vec<_> = (0..MIN).map(|_| pool.acquire().unwrap()).collect();
    for guard in guards {
        guard.discard();
    }
    let before = factory.create_attempts();
    thread::sleep(Duration::from_millis(500));
    let attempts = factory.create_attempts() - before;
    // Backoff from 10 ms, doubling: tries at about 0, 10, 30, 70, 150 and
    // 310 ms. A spinning refill would make thousands.
    assert!(attempts <= 12, "{attempts} create attempts during a 500 ms outage");
    assert!(common::eventually(|| factory.create_attempts() >= before + 2), "it keeps retrying");
    let times = factory.create_attempt_times();
    let gaps: Vec<Duration> = times[before..].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(9)), "retries closer than the first backoff: {gaps:?}");
    assert_eq!(pool.size(), 0);

    factory.heal_creates();
    assert!(common::eventually(|| pool.idle() == MIN), "refilled once the factory works again");
    factory.assert_no_violations();
}

#[test]
fn during_an_outage_acquire_reports_the_factory_s_last_error() {
    let (pool, factory) = pool();
    factory.fail_creates(Outcome::Error);
    for guard in (0..MIN).map(|_| pool.acquire().unwrap()).collect::<Vec<_>>() {
        guard.discard();
    }
    assert!(common::eventually(|| factory.create_attempts() > MIN), "the refill tried and failed");
    match pool.try_acquire() {
        Err(PoolError::Factory(e)) => assert!(e.to_string().contains(common::FACTORY_ERROR), "{e}"),
        other => panic!("expected the factory's error, got {:?}", other.map(|g| g.id())),
    }
    factory.heal_creates();
    assert!(common::eventually(|| pool.idle() == MIN));
}
