//! `PoolEventListener`: creates, acquires (with the time waited), releases
//! (with the time held), timeouts, and closes with the right reason:
//! `Idle`, `Lifetime`, `Broken` (`mark_broken` or a failed reset),
//! `Validation`, `Killed` (`discard`) and `Shutdown`. Leaks have their own
//! test (`leaks_are_reported_once_...`).

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{Event, EventLog, Outcome, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool, PoolConfigBuilder, PoolError};

fn pool_with(config: PoolConfigBuilder) -> (ConnectionPool<common::TestConn>, Arc<TrackingFactory>, Arc<EventLog>) {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let pool = ConnectionPool::new(config.event_listener(events.clone()).build().unwrap(), factory.clone()).unwrap();
    (pool, factory, events)
}

fn kinds(events: &EventLog) -> Vec<Event> {
    events
        .all()
        .into_iter()
        .map(|l| match l.event {
            // Durations vary; compare them separately.
            Event::Acquire(id, _) => Event::Acquire(id, Duration::ZERO),
            Event::Release(id, _) => Event::Release(id, Duration::ZERO),
            other => other,
        })
        .collect()
}

#[test]
fn create_acquire_and_release_carry_the_wait_and_hold_times() {
    const HOLD: Duration = Duration::from_millis(100);
    let (pool, _, events) = pool_with(common::config().max_size(1));
    let conn = pool.acquire().unwrap();
    let id = conn.id();

    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.acquire().unwrap().id())
    };
    assert!(common::eventually(|| pool.waiting() == 1));
    thread::sleep(HOLD);
    drop(conn);
    assert_eq!(waiter.join().unwrap(), id);

    assert_eq!(
        kinds(&events),
        vec![
            Event::Create(id),
            Event::Acquire(id, Duration::ZERO),
            Event::Release(id, Duration::ZERO),
            Event::Acquire(id, Duration::ZERO),
            Event::Release(id, Duration::ZERO),
        ]
    );
    let timed: Vec<Duration> = events
        .all()
        .into_iter()
        .filter_map(|l| match l.event {
            Event::Acquire(_, d) | Event::Release(_, d) => Some(d),
            _ => None,
        })
        .collect();
    let [_, first_hold, second_wait, _] = timed[..] else { panic!("{timed:?}") };
    assert!(first_hold >= HOLD, "held for {first_hold:?}");
    assert!(second_wait >= HOLD, "waited for {second_wait:?}");
}

#[test]
fn a_timed_out_acquire_is_reported() {
    let (pool, _, events) = pool_with(common::config().max_size(1));
    let _held = pool.acquire().unwrap();
    let timeout = Duration::from_millis(30);
    assert!(matches!(pool.acquire_timeout(timeout), Err(PoolError::ConnectionTimeout(_))));
    let timeouts: Vec<Duration> = events
        .all()
        .into_iter()
        .filter_map(|l| match l.event {
            Event::Timeout(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(timeouts.len(), 1);
    assert!(timeouts[0] >= timeout, "{timeouts:?}");
}

#[test]
fn user_evictions_close_as_broken_killed_or_validation() {
    let (pool, factory, events) = pool_with(common::config().max_size(4));
    let mut broken = pool.acquire().unwrap();
    let killed = pool.acquire().unwrap();
    let mut invalid = pool.acquire().unwrap();
    let reset_fails = pool.acquire().unwrap();
    let ids = [broken.id(), killed.id(), invalid.id(), reset_fails.id()];

    broken.mark_broken();
    drop(broken);
    killed.discard();
    invalid.validate = Outcome::Fail;
    drop(invalid);
    // The invalid one is found by the next acquire (validate_on_acquire).
    let next = pool.acquire().unwrap();
    assert_ne!(next.id(), ids[2]);
    drop(next);
    factory.set_reset(Outcome::Fail);
    drop(reset_fails);

    assert_eq!(events.close_reason(ids[0]), Some(CloseReason::Broken));
    assert_eq!(events.close_reason(ids[1]), Some(CloseReason::Killed));
    assert_eq!(events.close_reason(ids[2]), Some(CloseReason::Validation));
    assert_eq!(events.close_reason(ids[3]), Some(CloseReason::Broken), "a failed reset");
}

#[test]
fn maintenance_closes_as_idle_or_lifetime() {
    let (pool, _, events) = pool_with(common::config().idle_timeout(Duration::from_millis(20)));
    let id = pool.acquire().unwrap().id();
    assert!(common::eventually(|| events.close_reason(id).is_some()));
    assert_eq!(events.close_reason(id), Some(CloseReason::Idle));

    let (pool, _, events) = pool_with(common::config().max_lifetime(Duration::from_millis(20)));
    let id = pool.acquire().unwrap().id();
    assert!(common::eventually(|| events.close_reason(id).is_some()));
    assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
}

#[test]
fn close_closes_idle_connections_and_borrowed_ones_on_return_as_shutdown() {
    let (pool, _, events) = pool_with(common::config().max_size(2));
    let (idle, borrowed) = (pool.acquire().unwrap(), pool.acquire().unwrap());
    let (idle_id, borrowed_id) = (idle.id(), borrowed.id());
    drop(idle);
    pool.close();
    assert_eq!(events.close_reason(idle_id), Some(CloseReason::Shutdown));
    assert_eq!(events.close_reason(borrowed_id), None, "not while borrowed");
    drop(borrowed);
    assert_eq!(events.close_reason(borrowed_id), Some(CloseReason::Shutdown));
}

#[test]
fn every_reason_has_a_stable_name() {
    let names: Vec<&str> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["idle", "lifetime", "broken", "validation", "killed", "shutdown"]);
    for (i, reason) in CloseReason::ALL.iter().enumerate() {
        assert_eq!(reason.index(), i);
        assert_eq!(reason.to_string(), names[i]);
    }
}
