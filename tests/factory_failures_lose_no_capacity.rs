//! A failing or panicking `ConnectionFactory::create` costs no capacity,
//! surfaces as `PoolError::Factory` carrying the factory's error, and the
//! pool recovers by itself once the factory works again (it backs off 10 ms,
//! doubling up to 1 s, meanwhile). `ConnectionPool::new` closes what it
//! created when a later initial connection fails.

mod common;

use std::error::Error as _;
use std::thread;
use std::time::{Duration, Instant};

use common::{FACTORY_ERROR, FACTORY_PANIC, Outcome, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError};

const MAX: usize = 3;

/// Takes `MAX` connections at once (waiting out any backoff), then checks
/// that the pool is full.
fn assert_full_capacity(pool: &ConnectionPool<common::TestConn>) {
    let all: Vec<_> = (0..MAX)
        .map(|i| pool.acquire_timeout(Duration::from_secs(5)).unwrap_or_else(|e| panic!("#{i}: {e:?}")))
        .collect();
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { active: MAX, max: MAX })));
    drop(all);
}

/// The factory's `io::Error` at the end of `err`'s source chain.
fn factory_io_error(err: &PoolError) -> &std::io::Error {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io;
        }
        source = e.source();
    }
    panic!("{err:?} does not carry the factory's io::Error")
}

#[test]
fn create_error_is_reported_and_loses_no_slot() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(common::config().max_size(MAX).build().unwrap(), factory.clone()).unwrap();
    factory.fail_creates(Outcome::Error);
    for _ in 0..MAX + 2 {
        match pool.try_acquire() {
            Err(err @ PoolError::Factory(_)) => {
                assert!(err.to_string().contains(FACTORY_ERROR), "{err}");
                assert_eq!(factory_io_error(&err).kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected PoolError::Factory, got {other:?}"),
        }
    }
    assert_eq!((pool.size(), pool.active(), pool.idle()), (0, 0, 0), "failed creates hold no slot");
    factory.heal_creates();
    assert_full_capacity(&pool);
    assert_eq!(factory.created(), MAX);
    factory.assert_no_violations();
}

#[test]
fn create_panic_is_reported_as_a_factory_error_and_loses_no_slot() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(common::config().max_size(MAX).build().unwrap(), factory.clone()).unwrap();
    factory.fail_creates(Outcome::Panic);
    match pool.try_acquire() {
        Err(err @ PoolError::Factory(_)) => {
            let message = err.to_string();
            assert!(message.contains("panic") && message.contains(FACTORY_PANIC), "{message}");
        }
        other => panic!("expected PoolError::Factory, got {other:?}"),
    }
    match pool.acquire_timeout(Duration::from_millis(500)) {
        Err(err @ PoolError::Factory(_)) => assert!(err.to_string().contains(FACTORY_PANIC), "{err}"),
        other => panic!("expected PoolError::Factory, got {other:?}"),
    }
    assert_eq!(pool.size(), 0);
    factory.heal_creates();
    assert_full_capacity(&pool);
    factory.assert_no_violations();
}

#[test]
fn during_an_outage_acquire_fails_at_its_deadline_with_the_factory_error_then_recovers_by_itself() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(2).initial_size(2).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    // Every idle connection goes away.
    pool.acquire().unwrap().discard();
    pool.acquire().unwrap().discard();
    assert_eq!(pool.size(), 0);
    factory.fail_creates(Outcome::Error);

    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let result = pool.acquire_timeout(timeout);
    let waited = started.elapsed();
    match &result {
        Err(err @ PoolError::Factory(_)) => {
            let source = err.source().expect("the factory's error is the source");
            assert!(source.to_string().contains(FACTORY_ERROR), "{source}");
            assert_eq!(factory_io_error(err).kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected PoolError::Factory, got {other:?}"),
    }
    assert!(waited >= timeout && waited < timeout + Duration::from_secs(2), "failed after {waited:?}");
    let attempts = factory.create_attempts();
    assert!(attempts >= 2, "the pool retried during the wait ({attempts} attempts)");
    assert!(attempts < 2 + 50, "the pool backs off instead of hammering the factory ({attempts} attempts)");
    assert!(matches!(pool.try_acquire(), Err(PoolError::Factory(_))), "try_acquire reports the outage too");

    // A waiter parked during the outage is served once the factory heals,
    // with nobody else touching the pool.
    thread::scope(|s| {
        let waiter = s.spawn(|| pool.acquire_timeout(Duration::from_secs(20)).map(|c| c.serial));
        thread::sleep(Duration::from_millis(300));
        let healed = Instant::now();
        factory.heal_creates();
        let serial = waiter.join().unwrap().expect("the waiter recovers by itself");
        let took = healed.elapsed();
        assert!(took < Duration::from_millis(2500), "served {took:?} after the factory healed");
        assert!(serial > 2, "a newly created connection");
    });
    assert_eq!(factory.live(), pool.idle());
    factory.assert_no_violations();
}

/// Once the backoff between creation attempts outgrows the acquire
/// timeout, most acquires make no attempt of their own. They must still
/// report the outage, not a bare timeout that says "raise max_size".
#[test]
fn every_acquire_during_an_outage_reports_the_factory_error_even_without_an_attempt_of_its_own() {
    let factory = TrackingFactory::new();
    factory.fail_creates(Outcome::Error);
    let config = common::config().max_size(4).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let timeout = Duration::from_millis(200);
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        outcomes.push(match pool.acquire_timeout(timeout) {
            Err(err @ PoolError::Factory(_)) => {
                assert!(err.to_string().contains(FACTORY_ERROR), "{err}");
                "factory"
            }
            Err(PoolError::ConnectionTimeout(_)) => "timeout",
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("every create fails"),
        });
    }
    assert_eq!((pool.size(), pool.active()), (0, 0));
    let attempts = factory.create_attempts();
    assert!(attempts < 20, "the backoff kept most acquires from trying ({attempts} attempts)");
    assert!(outcomes.iter().all(|o| *o == "factory"), "{outcomes:?}");

    // A pool that is merely full is not blamed on an old failure.
    factory.heal_creates();
    let all: Vec<_> = (0..4).map(|_| pool.acquire_timeout(Duration::from_secs(5)).unwrap()).collect();
    factory.fail_creates(Outcome::Error);
    match pool.acquire_timeout(Duration::from_millis(50)) {
        Err(PoolError::ConnectionTimeout(_)) => {}
        other => panic!("expected a timeout on a full pool, got {:?}", other.map(|g| g.serial)),
    }
    drop(all);
    factory.assert_no_violations();
}

#[test]
fn new_closes_the_connections_it_created_when_a_later_one_fails() {
    let factory = TrackingFactory::new();
    factory.fail_creates_after(2, Outcome::Error);
    let config = common::config().max_size(5).initial_size(3).build().unwrap();
    match ConnectionPool::new(config, factory.clone()) {
        Err(err @ PoolError::Factory(_)) => assert!(err.to_string().contains(FACTORY_ERROR), "{err}"),
        Err(other) => panic!("expected PoolError::Factory, got {other:?}"),
        Ok(_) => panic!("expected PoolError::Factory, got a pool"),
    }
    assert_eq!((factory.create_attempts(), factory.created(), factory.closed()), (3, 2, 2));
    assert_eq!(factory.closed_serials(), vec![1, 2]);
    assert_eq!(std::sync::Arc::strong_count(&factory), 1, "nothing of the pool is left");
    factory.assert_no_violations();
}

#[test]
fn new_reports_a_panicking_factory_as_a_factory_error() {
    let factory = TrackingFactory::new();
    factory.fail_creates_after(1, Outcome::Panic);
    let config = common::config().max_size(5).initial_size(3).build().unwrap();
    match ConnectionPool::new(config, factory.clone()) {
        Err(err @ PoolError::Factory(_)) => assert!(err.to_string().contains(FACTORY_PANIC), "{err}"),
        Err(other) => panic!("expected PoolError::Factory, got {other:?}"),
        Ok(_) => panic!("expected PoolError::Factory, got a pool"),
    }
    assert_eq!((factory.created(), factory.closed()), (1, 1));
}
