//! In `QueueMode::Fair`, once borrows hold their connections for long (as
//! a database round trip does), the starvation threshold in force follows
//! their hold time (20 borrows' worth, at most 2 ms, never below the
//! configured one); short borrows bring back the configured threshold. A
//! waiter past the raised threshold still starves: the next returned
//! connection goes straight to it and no newcomer can take it. Under 32
//! threads on 4 connections nothing exceeds `max_size` or is lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::{TestConn, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolConfig, PoolError, QueueMode};

fn pool(factory: &Arc<TrackingFactory>, mode: QueueMode) -> ConnectionPool<TestConn> {
    let config = PoolConfig::builder()
        .min_size(4)
        .initial_size(4)
        .max_size(4)
        .queue_mode(mode)
        .acquire_timeout(Duration::from_secs(20))
        .maintenance_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    ConnectionPool::new(config, Arc::clone(factory)).unwrap()
}

/// `threads` threads borrowing, each holding for `hold` (sleeping, as a
/// thread blocked on the database does), until `stop`; returns their
/// borrow counts.
fn load(pool: &ConnectionPool<TestConn>, threads: usize, hold: Duration, stop: impl Fn() -> bool + Sync) -> Vec<u64> {
    let counts: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    thread::scope(|s| {
        for count in &counts {
            let (pool, stop) = (pool.clone(), &stop);
            s.spawn(move || {
                while !stop() {
                    let conn = pool.acquire().expect("every acquire is served");
                    if !hold.is_zero() {
                        thread::sleep(hold);
                    }
                    drop(conn);
                    count.fetch_add(1, SeqCst);
                }
            });
        }
    });
    counts.into_iter().map(AtomicU64::into_inner).collect()
}

fn for_a_while(pool: &ConnectionPool<TestConn>, threads: usize, hold: Duration, until: impl Fn() -> bool + Sync) {
    let deadline = Instant::now() + Duration::from_secs(10);
    load(pool, threads, hold, || until() || Instant::now() >= deadline);
}

const CONFIGURED: Duration = Duration::from_micros(500);
const RAISED: Duration = Duration::from_millis(2);

#[test]
fn long_borrows_raise_the_threshold_and_short_ones_bring_it_back() {
    let factory = TrackingFactory::new();
    let pool = pool(&factory, QueueMode::Fair);
    assert_eq!(pool.fairness_threshold_in_force(), CONFIGURED, "nothing known yet");

    // 1 ms borrows: 20 of them are 20 ms, so the 2 ms cap.
    for_a_while(&pool, 8, Duration::from_millis(1), || pool.fairness_threshold_in_force() == RAISED);
    assert_eq!(pool.fairness_threshold_in_force(), RAISED, "1 ms borrows are long");

    // A waiter past the raised threshold starves: every connection out, one
    // waiter queued for well past 2 ms.
    let mut held: Vec<_> = (0..4).map(|_| pool.acquire().unwrap()).collect();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.acquire().map(|c| c.id()))
    };
    assert!(common::eventually(|| pool.waiting() == 1));
    thread::sleep(Duration::from_millis(50));
    let returned = held.pop().unwrap();
    let id = returned.id();
    drop(returned);
    // The returned connection went straight to the starving waiter: no
    // newcomer, not even this thread at once, can take it.
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { .. })));
    assert_eq!(waiter.join().unwrap().unwrap(), id);
    drop(held);

    for_a_while(&pool, 8, Duration::ZERO, || pool.fairness_threshold_in_force() == CONFIGURED);
    assert_eq!(pool.fairness_threshold_in_force(), CONFIGURED, "borrows of no time are short");
}

#[test]
fn other_modes_never_change_it() {
    for mode in [QueueMode::Fifo, QueueMode::Unfair] {
        let factory = TrackingFactory::new();
        let pool = pool(&factory, mode);
        let started = Instant::now();
        for_a_while(&pool, 8, Duration::from_millis(1), || started.elapsed() > Duration::from_millis(200));
        assert_eq!(pool.fairness_threshold_in_force(), CONFIGURED, "{mode:?}");
    }
}

#[test]
fn thirty_two_threads_on_four_connections_under_the_raised_threshold_never_exceed_max_size_and_lose_nothing() {
    let factory = TrackingFactory::new();
    let pool = pool(&factory, QueueMode::Fair);
    for_a_while(&pool, 8, Duration::from_millis(1), || pool.fairness_threshold_in_force() > CONFIGURED);
    assert!(pool.fairness_threshold_in_force() > CONFIGURED);

    let done = AtomicBool::new(false);
    let started = Instant::now();
    let counts = thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(SeqCst) {
                assert!(pool.size() <= 4, "live connections over max_size");
                thread::sleep(Duration::from_micros(200));
            }
        });
        let counts = load(&pool, 32, Duration::from_micros(100), || started.elapsed() > Duration::from_millis(800));
        done.store(true, SeqCst);
        watcher.join().unwrap();
        counts
    });
    let borrows: u64 = counts.iter().sum();
    assert!(counts.iter().all(|&n| n > 0), "every thread was served: {counts:?}");
    factory.assert_no_violations();
    assert!(factory.max_open() <= 4, "the factory saw {} open at once", factory.max_open());
    let stats = pool.statistics();
    assert_eq!(stats.failed_acquires, 0);
    assert!(stats.acquires >= borrows, "{} acquires, {borrows} borrows counted", stats.acquires);
    assert_eq!(stats.connections_created - stats.connections_closed, pool.size() as u64, "nothing lost");
    assert_eq!((pool.size(), pool.idle(), pool.waiting()), (4, 4, 0));
}
