//! `acquire_timeout` bounds an acquire even while the factory is stuck in
//! `create` (a server that stopped answering): the acquire fails with
//! `ConnectionTimeout` at its deadline instead of when the factory returns,
//! and the connection the factory makes afterwards is not lost: it serves
//! the next acquire. `try_acquire` still creates on the caller's thread.

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{EventLog, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool, PoolError, PoolEventListener};

const TIMEOUT: Duration = Duration::from_millis(200);

#[test]
fn a_stuck_create_fails_the_acquire_at_its_deadline_and_the_late_connection_serves_the_next() {
    let factory = TrackingFactory::new();
    factory.hold_creates_after(0);
    let config = common::config().max_size(1).acquire_timeout(TIMEOUT).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();

    let started = Instant::now();
    let err = pool.acquire().expect_err("the factory never returned in time");
    let took = started.elapsed();
    assert!(matches!(err, PoolError::ConnectionTimeout(t) if t == TIMEOUT), "got {err:?}");
    assert!(took >= TIMEOUT, "gave up early: {took:?}");
    // Generous: the point is not waiting for the factory, which is still stuck.
    assert!(took < TIMEOUT * 10, "waited {took:?} for a timeout of {TIMEOUT:?}");
    assert_eq!(factory.creates_held(), 1, "the factory is still stuck");
    assert_eq!(pool.size(), 1, "the slot being created counts against max_size");

    factory.release_creates();
    assert!(common::eventually(|| pool.idle() == 1), "the late connection went idle, not astray");
    let conn = pool.acquire().expect("the late connection");
    assert_eq!(factory.created(), 1, "served by the late connection, not a new one");
    drop(conn);
    drop(pool);
    assert_eq!(factory.live(), 0);
    factory.assert_no_violations();
}

#[test]
fn a_late_connection_goes_to_a_waiting_acquire() {
    let factory = TrackingFactory::new();
    factory.hold_creates_after(0);
    let config = common::config().max_size(1).acquire_timeout(TIMEOUT).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(matches!(pool.acquire(), Err(PoolError::ConnectionTimeout(_))));

    // A second acquire with a long timeout queues (the only slot is being
    // created) and gets the connection as soon as the factory returns.
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.acquire_timeout(Duration::from_secs(30)).map(|c| c.id()))
    };
    assert!(common::eventually(|| pool.waiting() == 1));
    factory.release_creates();
    let id = waiter.join().unwrap().expect("handed the late connection");
    assert_eq!(factory.created(), 1);
    assert_eq!(pool.idle(), 1, "{id} came back");
}

#[test]
fn closing_while_the_create_is_stuck_closes_the_late_connection() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    factory.hold_creates_after(0);
    let config = common::config().max_size(1).acquire_timeout(TIMEOUT).event_listener(events.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(matches!(pool.acquire(), Err(PoolError::ConnectionTimeout(_))));
    // Dropping the last handle closes the pool, which waits for the create.
    let dropper = thread::spawn(move || drop(pool));
    assert!(common::eventually(|| factory.creates_held() == 1));
    factory.release_creates();
    dropper.join().unwrap();
    assert_eq!(factory.closed(), 1, "the late connection was closed");
    assert_eq!(factory.live(), 0);
    assert_eq!(events.closed_for(CloseReason::Shutdown).len(), 1);
    assert_eq!(Arc::strong_count(&factory), 1, "the pool was freed by the drop, not later");
}

/// Records the name of the thread each connection is created on.
#[derive(Default)]
struct CreatorNames(Mutex<Vec<Option<String>>>);

impl PoolEventListener for CreatorNames {
    fn on_create(&self, _connection_id: u64) {
        self.0.lock().unwrap().push(thread::current().name().map(str::to_owned));
    }
}

#[test]
fn acquire_creates_on_a_creation_thread_and_try_acquire_on_the_callers() {
    let factory = TrackingFactory::new();
    let names = Arc::new(CreatorNames::default());
    let config = common::config().max_size(2).event_listener(names.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let a = pool.acquire().expect("created");
    let b = thread::Builder::new()
        .name("caller".into())
        .spawn({
            let pool = pool.clone();
            move || pool.try_acquire().map(|c| c.id())
        })
        .unwrap()
        .join()
        .unwrap()
        .expect("created at once");
    assert_ne!(a.id(), b);
    assert_eq!(*names.0.lock().unwrap(), vec![Some("rusty-db-create".to_owned()), Some("caller".to_owned())]);
}
