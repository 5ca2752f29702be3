//! Loom model: a release racing a thread that is about to wait never
//! leaves the waiter asleep beside an idle connection (no lost wake-up,
//! DESIGN invariant 3), in every queue mode.
//!
//! Loom has no clock, so a lost wake-up shows up as a deadlock: the
//! waiter parks and nobody is left to notify it.
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use loom::thread;
use rusty_db::pool::QueueMode;

fn release_racing_a_new_waiter(mode: QueueMode) {
    common::model(move || {
        let (pool, _factory) = common::pool(1, 1, mode);
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
    release_racing_a_new_waiter(QueueMode::Fair);
}

#[test]
fn release_racing_new_waiter_unfair() {
    release_racing_a_new_waiter(QueueMode::Unfair);
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
