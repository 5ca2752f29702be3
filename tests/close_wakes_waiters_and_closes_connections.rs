//! Invariant 5: when `close()` returns, every waiter has woken with
//! `PoolClosed` and idle connections are closed; borrowed ones are closed
//! when they come back; every later acquire gets `PoolClosed`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{Held, Rng, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError, QueueMode};

#[test]
fn close_wakes_every_parked_waiter_with_pool_closed_promptly() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held = pool.acquire().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        for i in 0..3 {
            let (pool, tx) = (&pool, tx.clone());
            s.spawn(move || {
                let result = if i == 0 { pool.acquire() } else { pool.acquire_timeout(Duration::from_secs(30)) };
                tx.send((result.map(drop), Instant::now())).unwrap();
            });
            assert!(common::eventually(|| pool.waiting() == i + 1), "waiter {i} never registered");
        }
        let closing = Instant::now();
        pool.close();
        assert_eq!(pool.waiting(), 0, "close() returned with threads still queued");
        for _ in 0..3 {
            let (result, woke) = rx.recv_timeout(Duration::from_secs(10)).expect("every waiter wakes");
            assert!(matches!(result, Err(PoolError::PoolClosed)), "expected PoolClosed, got {result:?}");
            let after = woke.saturating_duration_since(closing);
            assert!(after < Duration::from_secs(2), "a waiter woke {after:?} after close");
        }
    });
    drop(held);
    assert_eq!(factory.live(), 0);
}

#[test]
fn close_closes_idle_connections_at_once_and_borrowed_ones_on_return() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(4).initial_size(3).build().unwrap(), factory.clone()).unwrap();
    let borrowed = pool.acquire().unwrap();
    let borrowed_serial = borrowed.serial;
    assert!(!pool.is_closed());

    pool.close();
    assert!(pool.is_closed());
    assert_eq!(factory.closed(), 2, "both idle connections are closed by close()");
    assert_eq!((pool.idle(), pool.active()), (0, 1));
    assert!(!factory.closed_serials().contains(&borrowed_serial), "the borrowed one is left to its user");
    assert!(!borrowed.closed.load(SeqCst));

    drop(borrowed);
    assert_eq!(factory.closed_serials().last(), Some(&borrowed_serial), "closed when it came back");
    assert_eq!((factory.live(), pool.size(), pool.idle()), (0, 0, 0));
    factory.assert_no_violations();
}

#[test]
fn every_acquire_after_close_fails_with_pool_closed() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(2).initial_size(1).build().unwrap(), factory.clone()).unwrap();
    pool.close();
    pool.close(); // idempotent
    assert!(pool.is_closed());
    let started = Instant::now();
    assert!(matches!(pool.acquire(), Err(PoolError::PoolClosed)));
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolClosed)));
    assert!(matches!(pool.acquire_timeout(Duration::from_secs(5)), Err(PoolError::PoolClosed)));
    assert!(matches!(pool.acquire_with_priority(1), Err(PoolError::PoolClosed)));
    assert!(started.elapsed() < Duration::from_secs(1), "a closed pool does not wait");
    assert_eq!(factory.create_attempts(), 1, "nothing was created after close");
    assert!(pool.clone().is_closed(), "every handle sees the close");
}

/// Closes pools while threads acquire and release as fast as they can, in
/// every queue mode; once the threads are gone nothing may be left open
/// even though the pool handle is still alive.
#[test]
fn close_under_load_leaves_no_connection_open() {
    const ROUNDS: usize = 600;
    const THREADS: usize = 16;
    for round in 0..ROUNDS {
        let mode = [QueueMode::Fair, QueueMode::Fifo, QueueMode::Priority, QueueMode::Unfair][round % 4];
        let factory = TrackingFactory::new();
        let config = common::config().max_size(3).initial_size(2).queue_mode(mode).build().unwrap();
        let pool = ConnectionPool::new(config, factory.clone()).unwrap();
        let ops = AtomicUsize::new(0);
        let start = Barrier::new(THREADS + 1);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (pool, ops, start) = (&pool, &ops, &start);
                s.spawn(move || {
                    let mut rng = Rng::new((round * THREADS + t) as u64);
                    start.wait();
                    loop {
                        let result = match rng.below(4) {
                            0 => pool.try_acquire(),
                            1 => pool.acquire_timeout(Duration::from_millis(1 + rng.below(3))),
                            _ => pool.acquire(),
                        };
                        match result {
                            Ok(guard) => {
                                let held = Held::new(guard);
                                ops.fetch_add(1, SeqCst);
                                if rng.below(2) == 0 {
                                    thread::yield_now();
                                }
                                drop(held);
                            }
                            Err(PoolError::PoolClosed) => return,
                            Err(PoolError::PoolExhausted { .. } | PoolError::ConnectionTimeout(_)) => {}
                            Err(e) => panic!("unexpected error: {e:?}"),
                        }
                    }
                });
            }
            start.wait();
            let target = 20 + (round % 16) * 8;
            assert!(common::eventually(|| ops.load(SeqCst) >= target), "the threads made no progress");
            pool.close();
        });
        factory.assert_no_violations();
        assert!(factory.max_open() <= 3);
        assert_eq!(
            (factory.live(), pool.idle(), pool.active(), pool.size()),
            (0, 0, 0, 0),
            "round {round} ({mode:?}): a connection outlived close() and its guard"
        );
    }
}

#[test]
fn connection_created_while_the_pool_closes_is_closed_not_handed_out() {
    let factory = TrackingFactory::new();
    factory.set_create_delay(Duration::from_millis(200));
    let pool = ConnectionPool::new(common::config().max_size(1).build().unwrap(), factory.clone()).unwrap();
    thread::scope(|s| {
        let creator = s.spawn(|| pool.acquire().map(drop));
        assert!(common::eventually(|| factory.create_attempts() == 1), "creation never started");
        pool.close();
        let result = creator.join().unwrap();
        assert!(matches!(result, Err(PoolError::PoolClosed)), "expected PoolClosed, got {result:?}");
    });
    assert_eq!((factory.created(), factory.closed(), pool.size()), (1, 1, 0));
}
