//! Loom models of the wait path's fairness and its races (invariants 1, 3
//! and 7 of `rusty_db::pool::invariants`): a starving waiter is not overtaken by a
//! newcomer that saw it wait; a grant is never dropped or given twice when
//! a waiter's timeout, a hand-off and `close()` race.
//!
//! Loom has no clock: waiters starve at once (threshold zero) or never,
//! and a zero acquire timeout makes a waiter give up at its first look,
//! racing whoever hands it a connection.
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::thread;
use rusty_db::pool::{PoolError, QueueMode};

/// A waiter that starves at once holds the only connection's next turn: a
/// newcomer that saw it waiting and then tries for the connection gets it
/// only after the waiter was served (invariant 7, `QueueMode::Fair`).
#[test]
fn a_starving_waiter_is_not_overtaken_by_a_newcomer_that_saw_it_wait() {
    common::model(|| {
        let (pool, _factory) = common::pool_starving_after(1, 1, QueueMode::Fair, Duration::ZERO);
        let held = pool.acquire().expect("the only connection");
        let served = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (pool, served) = (pool.clone(), Arc::clone(&served));
            thread::spawn(move || {
                let conn = pool.acquire().expect("handed the connection");
                served.store(true, SeqCst);
                drop(conn);
            })
        };
        let newcomer = {
            let (pool, served) = (pool.clone(), Arc::clone(&served));
            thread::spawn(move || {
                if pool.waiting() == 1 {
                    if let Ok(conn) = pool.try_acquire() {
                        assert!(served.load(SeqCst), "a newcomer overtook a starving waiter");
                        drop(conn);
                    }
                }
            })
        };
        drop(held);
        waiter.join().expect("waiter");
        newcomer.join().expect("newcomer");
        assert_eq!(pool.idle(), 1);
    });
}

/// A waiter whose timeout ends as the connection is handed to it either
/// gets it or gives up, and the connection is in the pool either way,
/// once (invariants 1 and 3), in every mode that hands off or wakes.
fn timeout_racing_a_release(mode: QueueMode, threshold: Duration) {
    common::model(move || {
        let (pool, factory) = common::pool_starving_after(1, 1, mode, threshold);
        let held = pool.acquire().expect("the only connection");
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || match pool.acquire_timeout(Duration::ZERO) {
                Ok(conn) => drop(conn),
                Err(PoolError::ConnectionTimeout(_)) => {}
                Err(e) => panic!("unexpected {e}"),
            })
        };
        drop(held);
        waiter.join().expect("waiter");
        assert_eq!((pool.idle(), pool.size()), (1, 1), "the connection is back, once");
        assert_eq!(factory.created.load(SeqCst), 1);
    });
}

#[test]
fn timeout_racing_a_hand_off_to_a_starving_waiter() {
    timeout_racing_a_release(QueueMode::Fair, Duration::ZERO);
}

#[test]
fn timeout_racing_a_wake_up_of_a_young_waiter() {
    timeout_racing_a_release(QueueMode::Fair, common::NEVER);
}

#[test]
fn timeout_racing_a_fifo_hand_off() {
    timeout_racing_a_release(QueueMode::Fifo, common::NEVER);
}

/// `close()` racing a release and a starving waiter: the waiter gets the
/// connection or `PoolClosed`, and once everything is back every
/// connection is closed, each once (invariants 1 and 5).
#[test]
fn close_racing_a_hand_off_to_a_starving_waiter() {
    common::model(|| {
        let (pool, factory) = common::pool_starving_after(1, 1, QueueMode::Fair, Duration::ZERO);
        let held = pool.acquire().expect("the only connection");
        let outcomes = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (pool, outcomes) = (pool.clone(), Arc::clone(&outcomes));
            thread::spawn(move || match pool.acquire() {
                Ok(conn) => drop(conn),
                Err(PoolError::PoolClosed) => {
                    outcomes.fetch_add(1, SeqCst);
                }
                Err(e) => panic!("unexpected {e}"),
            })
        };
        let closer = {
            let pool = pool.clone();
            thread::spawn(move || pool.close())
        };
        drop(held);
        waiter.join().expect("waiter");
        closer.join().expect("closer");
        // A slot freed after the close may still reach the waiter, which
        // creates in it and closes what it made: closes match creates.
        assert_eq!(factory.closed.load(SeqCst), factory.created.load(SeqCst), "each connection closed once");
        assert_eq!(factory.live.load(SeqCst), 0, "a connection outlived close()");
        assert!(outcomes.load(SeqCst) <= 1);
    });
}
