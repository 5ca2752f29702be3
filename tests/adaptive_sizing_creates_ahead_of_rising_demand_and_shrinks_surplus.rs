//! Adaptive sizing: while connections are borrowed, the maintenance thread
//! keeps a spare idle connection per four borrowed (at least one, up to
//! `max_size`), so a thread arriving under rising load finds one ready
//! instead of waiting for a slow factory on its own thread. A surplus that
//! idles for several passes is closed back toward `min_size`, an unused
//! pool is left alone, and steady load causes no churn.
//!
//! The effect is counted as arrivals that had to wait for a new connection
//! (the statistics' `new_connection_acquires`), not as timeouts: the
//! factory here is slow but well within `acquire_timeout`, so it shows up
//! as slow acquires rather than failed ones.

mod common;

use std::thread;
use std::time::Duration;

use common::{EventLog, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool};

const CREATE: Duration = Duration::from_millis(20);
const ARRIVALS: usize = 8;
/// Time between arrivals: several maintenance passes plus a create.
const GAP: Duration = Duration::from_millis(200);

/// Borrowers arrive one by one and keep their connection (load rises);
/// returns how many of them had to wait for a connection to be created.
fn borrowers_that_waited_for_a_create(adaptive: bool) -> usize {
    let factory = TrackingFactory::new();
    let name = if adaptive { "adaptive-on" } else { "adaptive-off" };
    let config = common::config()
        .name(name)
        .min_size(1)
        .initial_size(1)
        .max_size(ARRIVALS + 4)
        .maintenance_interval(Duration::from_millis(5))
        .adaptive_sizing(adaptive)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    factory.set_create_delay(CREATE);
    let prefix = format!("{name}-borrower-");
    let mut guards = Vec::new();
    for i in 0..ARRIVALS {
        thread::sleep(GAP);
        let pool = pool.clone();
        let arrival = thread::Builder::new().name(format!("{prefix}{i}")).spawn(move || pool.acquire().unwrap());
        guards.push(arrival.unwrap().join().unwrap());
    }
    assert!(pool.size() <= ARRIVALS + 4);
    pool.statistics().new_connection_acquires as usize
}

#[test]
fn under_rising_load_arrivals_find_a_connection_ready_instead_of_creating_one() {
    let off = thread::spawn(|| borrowers_that_waited_for_a_create(false));
    let on = borrowers_that_waited_for_a_create(true);
    let off = off.join().unwrap();
    // Off: every arrival after the first waits for its own create (7 of 8).
    assert_eq!(off, ARRIVALS - 1, "without adaptive sizing");
    // On: the maintenance thread created each one ahead; allow three misses
    // for a maintenance thread starved on a loaded machine.
    assert!(on <= 3, "{on} of {ARRIVALS} arrivals waited for a create with adaptive sizing (off: {off})");
}

#[test]
fn an_unused_pool_is_left_alone() {
    let factory = TrackingFactory::new();
    let config = common::config()
        .min_size(0)
        .adaptive_sizing(true)
        .maintenance_interval(Duration::from_millis(2))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    thread::sleep(Duration::from_millis(200));
    assert_eq!((factory.created(), pool.size()), (0, 0), "nothing borrowed, nothing created");
}

#[test]
fn steady_load_gets_its_spare_once_and_no_churn() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let config = common::config()
        .max_size(8)
        .adaptive_sizing(true)
        .maintenance_interval(Duration::from_millis(2))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
    assert!(common::eventually(|| pool.idle() == 1), "one spare for four borrowed");
    // A hundred passes later: still one spare, nothing closed or recreated.
    thread::sleep(Duration::from_millis(200));
    assert_eq!((pool.idle(), pool.size()), (1, 5));
    assert_eq!((factory.created(), factory.closed()), (5, 0), "churn: {:?}", events.closed_for(CloseReason::Idle));
    drop(held);
}

#[test]
fn surplus_idle_connections_shrink_back_to_min_size() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let config = common::config()
        .min_size(1)
        .max_size(8)
        .adaptive_sizing(true)
        .maintenance_interval(Duration::from_millis(5))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let burst: Vec<_> = (0..6).map(|_| pool.acquire().unwrap()).collect();
    drop(burst);
    assert!(common::eventually(|| pool.size() == 1), "shrunk to min_size");
    assert!(events.closed_for(CloseReason::Idle).len() >= 5);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.size(), 1, "and no further");
    factory.assert_no_violations();
}
