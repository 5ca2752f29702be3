//! `idle_timeout`: the maintenance thread closes connections left idle for
//! longer (reason `Idle`), never taking the pool below `min_size`, never
//! one idle for less, and never one in use. Keep-alive validation is not
//! use: it does not keep an idle connection from timing out.

mod common;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use common::{EventLog, Held, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool, ConnectionValidator};

const IDLE: Duration = Duration::from_millis(50);

#[test]
fn surplus_idle_connections_are_closed_down_to_min_size_and_no_further() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let config =
        common::config().min_size(2).max_size(6).idle_timeout(IDLE).event_listener(events.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let guards: Vec<_> = (0..6).map(|_| pool.acquire().unwrap()).collect();
    let ids: Vec<u64> = guards.iter().map(|g| g.id()).collect();
    let returned = Instant::now();
    drop(guards);

    assert!(common::eventually(|| events.closed_for(CloseReason::Idle).len() >= 4), "idle connections were closed");
    // Many more passes (the interval is about 6 ms) change nothing.
    thread::sleep(IDLE * 6);
    assert_eq!(events.closed_for(CloseReason::Idle).len(), 4, "never below min_size");
    assert_eq!((pool.size(), pool.idle()), (2, 2));
    assert_eq!(factory.closed(), 4);
    for id in events.closed_for(CloseReason::Idle) {
        assert!(ids.contains(&id));
        let idle_for = events.closed_at(id).unwrap() - returned;
        assert!(idle_for >= IDLE, "connection {id} closed after only {idle_for:?} idle");
    }
    factory.assert_no_violations();
}

#[test]
fn a_connection_in_regular_use_is_never_closed_as_idle() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let config =
        common::config().max_size(2).shards(1).idle_timeout(IDLE).event_listener(events.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let (busy, spare) = (pool.acquire().unwrap(), pool.acquire().unwrap());
    let spare_id = spare.id();
    // Stamped before each return: the pool sees the return after the stamp.
    let mut last_returned = HashMap::from([(spare_id, Instant::now())]);
    drop(spare);

    // Use a connection every IDLE / 5 for 6 × IDLE: the idle stack is LIFO,
    // so it is the same one (unless an acquire races a maintenance pass
    // that has the idle connections out, and creates a new one instead).
    drop(busy);
    let until = Instant::now() + IDLE * 6;
    let mut in_use = spare_id;
    while Instant::now() < until {
        let conn = pool.acquire().unwrap();
        in_use = conn.id();
        last_returned.insert(in_use, Instant::now());
        drop(Held::new(conn));
        thread::sleep(IDLE / 5);
    }
    assert!(common::eventually(|| events.close_reason(spare_id).is_some()), "the unused one times out");
    assert_eq!(events.close_reason(spare_id), Some(CloseReason::Idle));
    for id in events.closed_for(CloseReason::Idle) {
        let idle_for = events.closed_at(id).unwrap() - last_returned[&id];
        assert!(idle_for >= IDLE, "connection {id} closed as idle {idle_for:?} after its last use");
    }
    // Not `pool.size() == 1`: an acquire that races a pass (see above)
    // legitimately opens a second connection, which is then still open.
    assert_eq!(events.close_reason(in_use), None, "the one in use is still open");
    factory.assert_no_violations();
}

#[test]
fn a_borrowed_connection_is_never_closed_as_idle() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).idle_timeout(Duration::from_millis(10)).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held = Held::new(pool.acquire().unwrap());
    thread::sleep(Duration::from_millis(150));
    assert_eq!(factory.closed(), 0);
    drop(held);
    assert!(common::eventually(|| factory.closed() == 1), "closed once it idles");
    factory.assert_no_violations();
}

#[test]
fn keep_alive_validation_does_not_count_as_use() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let validator = ConnectionValidator::new(Duration::from_secs(5)).with_keepalive_interval(Duration::from_millis(10));
    let config = common::config()
        .idle_timeout(Duration::from_millis(100))
        .validator(validator)
        .event_listener(events.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    drop(pool.acquire().unwrap());

    assert!(common::eventually(|| factory.validated() >= 2), "keep-alive validates the idle connection");
    assert!(common::eventually(|| factory.closed() == 1), "and it still times out");
    assert_eq!(events.closed_for(CloseReason::Idle).len(), 1);
}

#[test]
fn a_stalled_maintenance_thread_closes_nothing_early() {
    // The pass stalls in a keep-alive validation of one idle connection
    // while another is returned; when it resumes, the returned one has been
    // idle for much less than IDLE and must be kept until it has not.
    const IDLE: Duration = Duration::from_millis(200);
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let validator =
        ConnectionValidator::new(Duration::from_secs(30)).with_keepalive_interval(Duration::from_millis(20));
    let config = common::config()
        .max_size(2)
        .idle_timeout(IDLE)
        .validator(validator)
        .validate_on_acquire(false)
        .event_listener(events.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let (held, idle) = (pool.acquire().unwrap(), pool.acquire().unwrap());
    let held_id = held.id();
    factory.hold_validations_after(0);
    drop(idle);
    assert!(common::eventually(|| factory.validations_held() == 1), "the pass is stuck validating");
    thread::sleep(Duration::from_millis(300));

    let returned = Instant::now();
    drop(held);
    factory.release_validations();

    assert!(common::eventually(|| events.close_reason(held_id).is_some()), "it times out eventually");
    let idle_for = events.closed_at(held_id).unwrap() - returned;
    assert!(idle_for >= IDLE, "closed as idle after only {idle_for:?}");
    assert_eq!(events.close_reason(held_id), Some(CloseReason::Idle));
}
