//! `max_lifetime`: an idle connection past its lifetime is closed by the
//! maintenance thread (reason `Lifetime`), a borrowed one when it comes
//! back, never while a guard holds it, and never before it is 95 % of
//! `max_lifetime` old (the jitter's floor). `min_size` is refilled after.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::{Duration, Instant};

use common::{EventLog, Held, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool};

const LIFETIME: Duration = Duration::from_millis(100);

fn pool(min_size: usize, events: &Arc<EventLog>) -> (ConnectionPool<common::TestConn>, Arc<TrackingFactory>) {
    let factory = TrackingFactory::new();
    let config = common::config()
        .min_size(min_size)
        .initial_size(min_size)
        .max_lifetime(LIFETIME)
        .event_listener(events.clone())
        .build()
        .unwrap();
    (ConnectionPool::new(config, factory.clone()).unwrap(), factory)
}

#[test]
fn idle_connections_are_retired_at_their_lifetime_and_min_size_refilled() {
    let events = EventLog::new();
    let (pool, factory) = pool(2, &events);
    let first: Vec<u64> = events.created();
    assert_eq!(first.len(), 2);

    assert!(common::eventually(|| events.closed_for(CloseReason::Lifetime).len() >= 2), "both retired");
    for id in &first {
        assert_eq!(events.close_reason(*id), Some(CloseReason::Lifetime));
        let lived = events.closed_at(*id).unwrap() - events.created_at(*id).unwrap();
        assert!(lived >= LIFETIME * 95 / 100, "connection {id} retired after {lived:?}");
    }
    assert!(common::eventually(|| pool.idle() == 2 && events.created().len() >= 4), "min_size refilled");
    factory.assert_no_violations();
}

#[test]
fn a_borrowed_connection_outlives_its_lifetime_and_is_retired_on_return() {
    let events = EventLog::new();
    let (pool, factory) = pool(0, &events);
    let mut held = Held::new(pool.acquire().unwrap());
    let id = events.created()[0];
    let closed_flag = Arc::clone(&held.guard().closed);

    // Three lifetimes, dozens of maintenance passes.
    let until = Instant::now() + LIFETIME * 3;
    while Instant::now() < until {
        assert!(!closed_flag.load(SeqCst), "closed while borrowed");
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(events.close_reason(id), None);
    let returned = Instant::now();
    drop(held);

    assert!(common::eventually(|| events.close_reason(id).is_some()), "retired once returned");
    assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
    assert!(events.closed_at(id).unwrap() >= returned);
    assert_eq!(pool.size(), 0);
    let fresh = pool.acquire().unwrap();
    assert_ne!(fresh.id(), id, "the next borrower gets a new connection");
    factory.assert_no_violations();
}
