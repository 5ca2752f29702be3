//! Invariant 4: a guard dropped while its thread panics never returns a
//! connection in an unknown state to others: it is reset and validated
//! (even with validation off), and closed if it fails. The pool stays
//! usable and loses no capacity.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

use common::{Outcome, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError};

const MAX: usize = 3;

fn pool_without_validation(factory: &std::sync::Arc<TrackingFactory>) -> ConnectionPool<common::TestConn> {
    let config = common::config()
        .max_size(MAX)
        .initial_size(1)
        .validate_on_acquire(false)
        .validate_on_release(false)
        .build()
        .unwrap();
    ConnectionPool::new(config, factory.clone()).unwrap()
}

/// Every connection can still be taken at once, and no more.
fn assert_full_capacity(pool: &ConnectionPool<common::TestConn>) {
    let all: Vec<_> =
        (0..MAX).map(|i| pool.try_acquire().unwrap_or_else(|e| panic!("connection {i}: {e:?}"))).collect();
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { active: MAX, max: MAX })));
    drop(all);
}

#[test]
fn healthy_connection_dropped_in_a_panic_is_reset_validated_and_kept() {
    let factory = TrackingFactory::new();
    let pool = pool_without_validation(&factory);
    let mut serial = 0;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut conn = pool.acquire().unwrap();
        serial = conn.serial;
        conn.dirty = true;
        panic!("the user's code failed mid-transaction");
    }));
    assert!(result.is_err());
    assert_eq!((factory.resets(), factory.validated(), factory.closed()), (1, 1, 0));
    assert_eq!(pool.idle(), 1);
    let conn = pool.acquire().unwrap();
    assert_eq!(conn.serial, serial, "the checked connection was kept");
    assert!(!conn.dirty, "and reset");
    drop(conn);
    assert_full_capacity(&pool);
    factory.assert_no_violations();
}

#[test]
fn connection_failing_validation_after_a_panic_is_closed() {
    let factory = TrackingFactory::new();
    let pool = pool_without_validation(&factory);
    let mut serial = 0;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut conn = pool.acquire().unwrap();
        serial = conn.serial;
        conn.validate = Outcome::Fail;
        panic!("the user's code broke the connection");
    }));
    assert!(result.is_err());
    assert_eq!(factory.closed_serials(), vec![serial]);
    assert_eq!((pool.idle(), pool.active(), pool.size()), (0, 0, 0));
    assert_ne!(pool.acquire().unwrap().serial, serial);
    assert_full_capacity(&pool);
    factory.assert_no_violations();
}

#[test]
fn connection_whose_reset_fails_after_a_panic_is_closed() {
    let factory = TrackingFactory::new();
    let pool = pool_without_validation(&factory);
    factory.set_reset(Outcome::Error);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _conn = pool.acquire().unwrap();
        panic!("boom");
    }));
    assert!(result.is_err());
    assert_eq!((factory.closed(), pool.size()), (1, 0));
    factory.set_reset(Outcome::Pass);
    assert_full_capacity(&pool);
}

#[test]
fn spawned_thread_panicking_with_guards_leaves_the_pool_usable() {
    let factory = TrackingFactory::new();
    let pool = pool_without_validation(&factory);
    let worker = {
        let pool = pool.clone();
        thread::spawn(move || {
            let healthy = pool.acquire().unwrap();
            let mut broken = pool.acquire().unwrap();
            broken.validate = Outcome::Fail;
            let serials = (healthy.serial, broken.serial);
            // Let the test learn the serials through the panic payload.
            std::panic::panic_any(serials);
        })
    };
    let payload = worker.join().expect_err("the worker panicked");
    let (healthy, broken) = *payload.downcast::<(u64, u64)>().unwrap();
    assert_eq!(factory.closed_serials(), vec![broken], "only the invalid one was closed");
    assert_eq!(factory.validated(), 2, "both were validated while unwinding");
    assert_eq!((pool.idle(), pool.active()), (1, 0));
    assert_eq!(pool.acquire().unwrap().serial, healthy);
    assert_full_capacity(&pool);
    factory.assert_no_violations();
}

#[test]
fn validate_panicking_while_unwinding_closes_the_connection() {
    let factory = TrackingFactory::new();
    let pool = pool_without_validation(&factory);
    let mut serial = 0;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut conn = pool.acquire().unwrap();
        serial = conn.serial;
        conn.validate = Outcome::Panic;
        panic!("the user's code failed");
    }));
    assert!(result.is_err(), "the pool caught the nested panic, the process did not abort");
    assert_eq!(factory.closed_serials(), vec![serial]);
    assert_full_capacity(&pool);
}
