//! A blocking factory call on the maintenance thread holds no lock that
//! `acquire` needs, and `close()` waits for at most the one call in
//! progress: the pass checks for close between factory calls, and the
//! connection that call opens is closed at once.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{EventLog, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool};

#[test]
fn acquire_and_release_proceed_while_maintenance_is_stuck_in_create() {
    let factory = TrackingFactory::new();
    // The initial connection is made by `new`; the refill's create then blocks.
    factory.hold_creates_after(1);
    let config = common::config().min_size(2).initial_size(1).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(common::eventually(|| factory.creates_held() == 1), "the refill is stuck in create");

    let (done, finished) = mpsc::channel();
    let user = pool.clone();
    thread::spawn(move || {
        for _ in 0..100 {
            let conn = user.try_acquire().expect("the idle connection, without waiting");
            drop(conn);
            let conn = user.acquire().expect("the idle connection");
            drop(conn);
        }
        let observers = (user.size(), user.idle(), user.active(), user.waiting(), user.leaks().len());
        done.send(observers).unwrap();
    });
    let observed = finished.recv_timeout(Duration::from_secs(10)).expect("acquire blocked behind the factory call");
    assert_eq!(observed, (2, 1, 0, 0, 0), "size counts the connection being created");
    assert_eq!(factory.creates_held(), 1, "the refill was still stuck all along");

    factory.release_creates();
    assert!(common::eventually(|| pool.idle() == 2), "the refill completes");
    factory.assert_no_violations();
}

#[test]
fn close_returns_once_the_create_in_progress_returns_and_starts_no_other() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    factory.hold_creates_after(0);
    let config = common::config().min_size(3).event_listener(events.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(common::eventually(|| factory.creates_held() == 1), "the refill is stuck in its first create");

    let (done, closed) = mpsc::channel();
    let closer = pool.clone();
    thread::spawn(move || {
        closer.close();
        done.send(Instant::now()).unwrap();
    });
    assert!(common::eventually(|| pool.is_closed()));
    thread::sleep(Duration::from_millis(20));
    let released = Instant::now();
    factory.release_creates();
    let returned = closed.recv_timeout(Duration::from_secs(10)).expect("close() hung");

    assert!(
        returned - released < Duration::from_secs(2),
        "close took {:?} after the call returned",
        returned - released
    );
    assert_eq!(factory.create_attempts(), 1, "no create started after close() (min_size is 3)");
    assert_eq!((factory.created(), factory.closed()), (1, 1), "the late connection is closed");
    assert_eq!(events.closed_for(CloseReason::Shutdown).len(), 1);
    assert_eq!(pool.size(), 0);
    factory.assert_no_violations();
}

#[test]
fn close_during_a_slow_create_takes_about_one_factory_call() {
    const CREATE: Duration = Duration::from_millis(300);
    let factory = TrackingFactory::new();
    factory.set_create_delay(CREATE);
    let config = common::config().min_size(4).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(common::eventually(|| factory.create_attempts() == 1), "the refill started creating");

    let started = Instant::now();
    pool.close();
    let took = started.elapsed();
    // Refilling all four would take 1.2 s; one call is at most 0.3 s.
    assert!(took < CREATE + Duration::from_secs(2), "close() took {took:?}");
    assert_eq!(factory.create_attempts(), 1, "the other three creates never started");
    assert_eq!(factory.created(), factory.closed());
}
