//! Loom model: a release racing a thread that is about to wait never
//! leaves the waiter asleep beside an idle connection (no lost wake-up,
//! invariant 3 of `rusty_db::pool::invariants`), in every queue mode,
//! including the one-woken-waiter-at-a-time rule of barging releases.
//!
//! Loom has no clock, so a lost wake-up shows up as a deadlock: the
//! waiter parks and nobody is left to notify it.
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use std::time::Duration;

use loom::thread;
use rusty_db::pool::QueueMode;

fn release_racing_a_new_waiter(mode: QueueMode, threshold: Duration) {
    common::model(move || {
        let (pool, _factory) = common::pool_starving_after(1, 1, mode, threshold);
        let held = pool.acquire().expect("the only connection");
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let guard = pool.acquire().expect("handed the released connection");
                assert_eq!(guard.connection().serial, 0, "the one connection, not a new one");
            })
        };
        drop(held);
        waiter.join().expect("waiter");
        assert_eq!(pool.idle(), 1);
    });
}

#[test]
fn release_racing_new_waiter_fair() {
    release_racing_a_new_waiter(QueueMode::Fair, common::NEVER);
}

/// The diversion path: a starving waiter, which the release must hand the
/// connection to rather than push it.
#[test]
fn release_racing_new_starving_waiter_fair() {
    release_racing_a_new_waiter(QueueMode::Fair, Duration::ZERO);
}

#[test]
fn release_racing_new_waiter_fifo() {
    release_racing_a_new_waiter(QueueMode::Fifo, common::NEVER);
}

#[test]
fn release_racing_new_waiter_unfair() {
    release_racing_a_new_waiter(QueueMode::Unfair, common::NEVER);
}

#[test]
fn discard_racing_new_waiter_hands_over_the_vacant_slot() {
    common::model(|| {
        let (pool, factory) = common::pool(1, 1, QueueMode::Fair);
        let held = pool.acquire().expect("the only connection");
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || {
                let guard = pool.acquire().expect("a new connection in the freed slot");
                assert_eq!(guard.connection().serial, 1);
            })
        };
        held.discard();
        waiter.join().expect("waiter");
        assert_eq!(factory.created.load(loom::sync::atomic::Ordering::SeqCst), 2);
    });
}

/// Unfair mode wakes one waiter at a time: a release while a woken waiter
/// has not looked yet wakes nobody. The model barges back in before the
/// woken waiter looks, then releases again: the waiter must still get the
/// connection (and fails, as a deadlock, if a woken waiter never clears
/// its flag).
#[test]
fn unfair_release_while_a_woken_waiter_has_not_looked_yet() {
    common::model(|| {
        let (pool, _factory) = common::pool(1, 1, QueueMode::Unfair);
        let held = pool.acquire().expect("the only connection");
        let waiter = {
            let pool = pool.clone();
            thread::spawn(move || drop(pool.acquire().expect("the connection, eventually")))
        };
        drop(held);
        if let Ok(again) = pool.try_acquire() {
            drop(again);
        }
        waiter.join().expect("waiter");
        assert_eq!(pool.idle(), 1);
    });
}
