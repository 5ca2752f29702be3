//! Validation and reset: a connection that fails `validate` (returns
//! `false`, an error, or panics) or `reset` is closed and its capacity
//! freed; on acquire the caller silently gets another connection instead.

mod common;

use common::{Outcome, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError};

/// Acquires a connection, lets `mark` change it, and returns it to the pool.
fn borrow_and_mark(pool: &ConnectionPool<common::TestConn>, mark: impl FnOnce(&mut common::TestConn)) -> u64 {
    let mut conn = pool.acquire().unwrap();
    mark(&mut conn);
    conn.serial
}

#[test]
fn idle_connection_failing_validation_on_acquire_is_closed_and_replaced_silently() {
    for bad in [Outcome::Fail, Outcome::Error, Outcome::Panic] {
        let factory = TrackingFactory::new();
        let pool = ConnectionPool::new(common::config().max_size(1).initial_size(1).build().unwrap(), factory.clone())
            .unwrap();
        assert!(pool.config().validate_on_acquire, "on by default");
        let serial = borrow_and_mark(&pool, |c| c.validate = bad);
        assert_eq!((pool.idle(), factory.closed()), (1, 0), "{bad:?}: not validated on release by default");

        let conn = pool.acquire().expect("the caller gets a good connection");
        assert_ne!(conn.serial, serial, "{bad:?}");
        assert_eq!(factory.closed_serials(), vec![serial], "{bad:?}: the bad one was closed");
        // Once per idle connection handed out (the good borrow, then the bad
        // one); a brand-new connection is not validated.
        assert_eq!(factory.validated(), 2, "{bad:?}");
        drop(conn);
        factory.assert_no_violations();
    }
}

#[test]
fn acquire_skips_an_invalid_idle_connection_for_a_valid_one() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(2).initial_size(2).shards(1).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let (mut a, b) = (pool.acquire().unwrap(), pool.acquire().unwrap());
    let (bad, good) = (a.serial, b.serial);
    a.validate = Outcome::Fail;
    // The idle stack is LIFO: the bad one is on top.
    drop(b);
    drop(a);
    assert_eq!(pool.acquire().unwrap().serial, good);
    assert_eq!(factory.closed_serials(), vec![bad]);
    assert_eq!(factory.created(), 2, "an idle valid connection was used instead of creating one");
}

#[test]
fn without_validate_on_acquire_idle_connections_are_not_validated() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).validate_on_acquire(false).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let serial = borrow_and_mark(&pool, |c| c.validate = Outcome::Fail);
    assert_eq!(pool.acquire().unwrap().serial, serial);
    assert_eq!((factory.validated(), factory.closed()), (0, 0));
}

#[test]
fn validate_on_release_closes_a_returned_connection_that_fails() {
    for bad in [Outcome::Fail, Outcome::Error, Outcome::Panic] {
        let factory = TrackingFactory::new();
        let config = common::config()
            .max_size(2)
            .initial_size(1)
            .validate_on_acquire(false)
            .validate_on_release(true)
            .build()
            .unwrap();
        let pool = ConnectionPool::new(config, factory.clone()).unwrap();

        let good = borrow_and_mark(&pool, |_| {});
        assert_eq!((factory.validated(), pool.idle(), factory.closed()), (1, 1, 0), "a good one is validated and kept");

        let serial = borrow_and_mark(&pool, |c| c.validate = bad);
        assert_eq!(serial, good, "the idle one was reused");
        assert_eq!(factory.validated(), 2);
        assert_eq!(factory.closed_serials(), vec![good], "{bad:?}: closed on release");
        assert_eq!((pool.idle(), pool.size()), (0, 0), "{bad:?}: its slot is free");
        let all = (pool.try_acquire().unwrap(), pool.try_acquire().unwrap());
        assert_eq!((all.0.serial, all.1.serial), (2, 3), "{bad:?}: all capacity is usable");
        drop(all);
        factory.assert_no_violations();
    }
}

#[test]
fn connection_whose_reset_fails_or_panics_is_closed_and_its_slot_freed() {
    for bad in [Outcome::Error, Outcome::Panic] {
        let factory = TrackingFactory::new();
        let pool = ConnectionPool::new(common::config().max_size(1).initial_size(1).build().unwrap(), factory.clone())
            .unwrap();
        factory.set_reset(bad);
        let serial = borrow_and_mark(&pool, |c| c.dirty = true);
        assert_eq!(factory.resets(), 1);
        assert_eq!(factory.closed_serials(), vec![serial], "{bad:?}");
        assert_eq!((pool.idle(), pool.size()), (0, 0));
        factory.set_reset(Outcome::Pass);
        let conn = pool.try_acquire().expect("the slot was freed");
        assert_ne!(conn.serial, serial);
        assert!(!conn.dirty);
    }
}

#[test]
fn returned_connection_is_reset() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(1).initial_size(1).build().unwrap(), factory.clone()).unwrap();
    let serial = borrow_and_mark(&pool, |c| {
        c.dirty = true;
        c.queries = 7;
    });
    assert_eq!(factory.resets(), 1);
    let conn = pool.acquire().unwrap();
    assert_eq!((conn.serial, conn.dirty, conn.queries), (serial, false, 7), "reset ran; the connection is the same");
}

#[test]
fn validation_failures_never_surface_as_errors_while_a_connection_can_be_made() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(3).initial_size(3).build().unwrap(), factory.clone()).unwrap();
    let all: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    for mut conn in all {
        conn.validate = Outcome::Fail;
    }
    let result = pool.try_acquire();
    assert!(!matches!(result, Err(PoolError::ValidationFailed(_))), "{result:?}");
    let conn = result.expect("three invalid idle connections, then a new one");
    assert_eq!((conn.serial, factory.closed()), (4, 3));
}
