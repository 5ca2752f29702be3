//! Loom model: `close()` racing acquire and release (invariant 5 of
//! `rusty_db::pool::invariants`):
//! waiters wake with `PoolClosed`, and every connection ends up closed,
//! whichever side wins.
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use loom::sync::atomic::Ordering::SeqCst;
use loom::thread;
use rusty_db::pool::{PoolError, QueueMode};

#[test]
fn close_wakes_a_racing_waiter() {
    common::model(|| {
        let (pool, _factory) = common::pool(1, 1, QueueMode::Fair);
        let held = pool.acquire().expect("the only connection");
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || match pool.acquire() {
                Err(PoolError::PoolClosed) => {}
                Ok(_) => panic!("the only connection is held until after close"),
                Err(e) => panic!("unexpected {e}"),
            })
        };
        pool.close();
        waiter.join().expect("waiter");
        drop(held);
        assert_eq!(pool.size(), 0);
    });
}

#[test]
fn close_racing_acquire_and_release_closes_every_connection() {
    common::model(|| {
        let (pool, factory) = common::pool(1, 1, QueueMode::Fair);
        let user = {
            let pool = pool.clone();
            thread::spawn(move || match pool.acquire() {
                Ok(guard) => drop(guard),
                Err(PoolError::PoolClosed) => {}
                Err(e) => panic!("unexpected {e}"),
            })
        };
        pool.close();
        user.join().expect("user");
        assert_eq!(factory.live.load(SeqCst), 0, "a connection outlived close()");
        assert_eq!(pool.idle(), 0);
    });
}

#[test]
fn last_handle_dropped_racing_last_guard_closes_once() {
    common::model(|| {
        let (pool, factory) = common::pool(1, 1, QueueMode::Fair);
        let guard = pool.acquire().expect("the only connection");
        let user = thread::spawn(move || drop(guard));
        drop(pool);
        user.join().expect("user");
        assert_eq!(factory.closed.load(SeqCst), 1);
        assert_eq!(factory.live.load(SeqCst), 0);
    });
}
