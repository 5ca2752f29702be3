//! Queue order: in strict FIFO mode a returned connection goes to the
//! thread that has waited longest; in priority mode to the highest
//! priority, arrival order among equals; unfair mode serves everyone
//! eventually. (Fair mode serves in arrival order once its waiters starve;
//! see `fair_mode_bounds_how_long_a_waiter_can_be_overtaken`.)
//!
//! Each waiter is started only once the previous one is registered
//! (`waiting()` went up), so arrival order is known. Every waiter reports
//! while it holds the only connection, so the report order is the order in
//! which the pool served them.

mod common;

use std::sync::mpsc;
use std::thread;

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, QueueMode};

/// Holds the only connection of a `mode` pool, queues one waiter per entry
/// of `priorities` (in that order), releases, and returns the indices of
/// the waiters in the order they got the connection.
fn service_order(mode: QueueMode, priorities: &[i32]) -> Vec<usize> {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).queue_mode(mode).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held = pool.acquire().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        for (i, &priority) in priorities.iter().enumerate() {
            let (pool, tx) = (&pool, tx.clone());
            s.spawn(move || {
                let conn = pool.acquire_with_priority(priority).expect("every waiter is served");
                tx.send(i).unwrap();
                drop(conn);
            });
            assert!(common::eventually(|| pool.waiting() == i + 1), "waiter {i} never registered");
        }
        drop(held);
    });
    drop(tx);
    assert_eq!(factory.created(), 1, "one connection served everybody");
    factory.assert_no_violations();
    rx.iter().collect()
}

#[test]
fn fifo_waiters_are_served_in_arrival_order() {
    assert_eq!(service_order(QueueMode::Fifo, &[0; 6]), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn priority_waiters_are_served_highest_first_then_in_arrival_order() {
    let priorities = [1, 5, 1, 9, 5, 0, -3, 9];
    // 9 (#3, #7), 5 (#1, #4), 1 (#0, #2), 0 (#5), -3 (#6).
    assert_eq!(service_order(QueueMode::Priority, &priorities), vec![3, 7, 1, 4, 0, 2, 5, 6]);
}

#[test]
fn fifo_mode_ignores_priorities() {
    // `acquire_with_priority` documents that modes other than Priority ignore it.
    assert_eq!(service_order(QueueMode::Fifo, &[0, 5, 1, 9]), vec![0, 1, 2, 3]);
}

#[test]
fn unfair_mode_serves_every_waiter() {
    let mut order = service_order(QueueMode::Unfair, &[0; 6]);
    order.sort_unstable();
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
}

/// A waiter handed a connection that then fails validation is still the
/// longest waiter: the capacity freed by closing that connection is its,
/// not the next waiter's.
#[test]
fn waiter_whose_granted_connection_fails_validation_keeps_its_place() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).queue_mode(QueueMode::Fifo).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let mut held = pool.acquire().unwrap();
    held.validate = common::Outcome::Fail;
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        for i in 0..2 {
            let (pool, tx) = (&pool, tx.clone());
            s.spawn(move || {
                let conn = pool.acquire().expect("every waiter is served");
                tx.send(i).unwrap();
                drop(conn);
            });
            assert!(common::eventually(|| pool.waiting() == i + 1), "waiter {i} never registered");
        }
        drop(held);
    });
    drop(tx);
    assert_eq!(factory.closed(), 1, "the invalid connection was closed");
    assert_eq!(rx.iter().collect::<Vec<_>>(), vec![0, 1], "served in arrival order");
}
