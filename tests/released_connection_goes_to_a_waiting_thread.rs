//! Invariant 3: while a thread waits, no connection stays idle and no
//! vacant slot stays unused for longer than the handoff takes. A returned
//! connection goes to the parked waiter (in strict FIFO mode directly, so a
//! newcomer cannot take it first); a freed slot lets it create one.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolError, PooledConnectionGuard, QueueMode};

const WAITER_TIMEOUT: Duration = Duration::from_secs(20);

/// Holds the only connection of a `mode` pool while one thread waits for
/// it, lets `release` give it up, and returns the serial the waiter got and
/// how long it waited after the release. The waiter holds its connection
/// until the function has checked the pool's counts.
fn waiter_after(
    mode: QueueMode,
    release: impl FnOnce(PooledConnectionGuard<common::TestConn>),
) -> (u64, u64, Duration) {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).queue_mode(mode).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held = pool.acquire().unwrap();
    let first = held.serial;
    let (got_tx, got_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            let result = pool.acquire_timeout(WAITER_TIMEOUT);
            let got_at = Instant::now();
            let conn = result.expect("the waiter is served");
            got_tx.send((conn.serial, got_at)).unwrap();
            done_rx.recv().unwrap();
            drop(conn);
        });
        assert!(common::eventually(|| pool.waiting() == 1), "the waiter never registered");
        let released = Instant::now();
        release(held);
        let (serial, got_at) = got_rx.recv_timeout(Duration::from_secs(10)).expect("the waiter was served");
        assert_eq!(
            (pool.idle(), pool.active(), pool.waiting()),
            (0, 1, 0),
            "{mode:?}: the connection is with the waiter, not idle"
        );
        done_tx.send(()).unwrap();
        (first, serial, got_at.saturating_duration_since(released))
    })
}

#[test]
fn returned_connection_goes_to_the_parked_waiter_in_every_mode() {
    for mode in [QueueMode::Fair, QueueMode::Fifo, QueueMode::Priority, QueueMode::Unfair] {
        let (first, got, waited) = waiter_after(mode, drop);
        assert_eq!(got, first, "{mode:?}: the waiter got the returned connection");
        assert!(waited < Duration::from_secs(2), "{mode:?}: served {waited:?} after the release");
    }
}

#[test]
fn discarded_connection_lets_the_parked_waiter_create_a_new_one() {
    for mode in [QueueMode::Fair, QueueMode::Fifo, QueueMode::Priority, QueueMode::Unfair] {
        let (first, got, waited) = waiter_after(mode, PooledConnectionGuard::discard);
        assert_ne!(got, first, "{mode:?}: the waiter created a new connection in the freed slot");
        assert!(waited < Duration::from_secs(2), "{mode:?}: served {waited:?} after the discard");
    }
}

#[test]
fn broken_connection_lets_the_parked_waiter_create_a_new_one() {
    let (first, got, waited) = waiter_after(QueueMode::Fair, |mut conn| conn.mark_broken());
    assert_ne!(got, first);
    assert!(waited < Duration::from_secs(2), "served {waited:?} after the release");
}

#[test]
fn in_fifo_mode_a_newcomer_cannot_take_a_connection_returned_while_someone_waits() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).queue_mode(QueueMode::Fifo).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held = pool.acquire().unwrap();
    let serial = held.serial;
    thread::scope(|s| {
        // The waiter keeps its guard until after the check below: a guard
        // dropped on the waiter's thread would make a later try_acquire
        // succeed legitimately.
        let waiter = s.spawn(|| pool.acquire_timeout(WAITER_TIMEOUT));
        assert!(common::eventually(|| pool.waiting() == 1), "the waiter never registered");
        drop(held);
        // The connection was handed to the waiter inside `drop`; it was never up for grabs.
        let barged = pool.try_acquire();
        assert!(matches!(barged, Err(PoolError::PoolExhausted { .. })), "a newcomer barged: {barged:?}");
        let got = waiter.join().unwrap().expect("the waiter got the connection");
        assert_eq!(got.serial, serial);
    });
}

/// A waiter whose timeout ends just as a connection is handed to it either
/// gets the connection or times out; the connection is never lost.
#[test]
fn handoff_racing_with_a_timeout_loses_nothing() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    for i in 0..200u64 {
        let held = pool.acquire().unwrap();
        thread::scope(|s| {
            let waiter = s.spawn(|| pool.acquire_timeout(Duration::from_millis(2)).map(drop));
            thread::sleep(Duration::from_micros(500 + (i % 20) * 100));
            drop(held);
            match waiter.join().unwrap() {
                Ok(()) | Err(PoolError::ConnectionTimeout(_)) => {}
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        });
        assert_eq!((pool.idle(), pool.active(), pool.waiting()), (1, 0, 0), "iteration {i}");
    }
    assert_eq!(factory.created(), 1);
}

/// A release that races with a thread about to park: either the releaser
/// sees the waiter or the waiter sees the connection, so the waiter never
/// sleeps beside an idle connection (a lost wake-up would show as a wait of
/// seconds, or a timeout).
#[test]
fn release_racing_with_a_new_waiter_never_loses_the_wake_up() {
    for mode in [QueueMode::Fair, QueueMode::Fifo, QueueMode::Unfair] {
        let factory = TrackingFactory::new();
        let config = common::config().max_size(1).initial_size(1).queue_mode(mode).build().unwrap();
        let pool = ConnectionPool::new(config, factory.clone()).unwrap();
        let start = std::sync::Barrier::new(2);
        for i in 0..2_000u32 {
            let held = pool.acquire().unwrap();
            thread::scope(|s| {
                let waiter = s.spawn(|| {
                    start.wait();
                    let started = Instant::now();
                    let result = pool.acquire_timeout(Duration::from_secs(5)).map(drop);
                    (result, started.elapsed())
                });
                start.wait();
                // Sweep the release across the waiter's path to its parking spot.
                for _ in 0..(i % 64) * 8 {
                    std::hint::spin_loop();
                }
                drop(held);
                let (result, waited) = waiter.join().unwrap();
                assert!(result.is_ok(), "{mode:?} round {i}: {result:?}");
                assert!(waited < Duration::from_secs(2), "{mode:?} round {i}: waited {waited:?} for a free connection");
            });
        }
        assert_eq!(factory.created(), 1);
    }
}
