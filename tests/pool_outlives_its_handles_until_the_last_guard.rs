//! Dropping the last `ConnectionPool` handle closes the pool; guards still
//! out keep its memory alive, work as before, and close their connection
//! when they drop, on any thread. Nothing leaks: every connection is closed
//! and the pool's memory (which owns the factory) is freed.

mod common;

use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PooledConnectionGuard};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn pool_handles_and_guards_can_cross_threads() {
    assert_send_sync::<ConnectionPool<common::TestConn>>();
    assert_send_sync::<PooledConnectionGuard<common::TestConn>>();
}

#[test]
fn dropping_a_clone_keeps_the_pool_open_and_the_last_handle_closes_it() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(3).initial_size(3).build().unwrap(), factory.clone()).unwrap();
    let clone = pool.clone();
    drop(pool);
    assert!(!clone.is_closed());
    assert_eq!(factory.closed(), 0);
    drop(clone.acquire().expect("a clone is a full handle"));
    drop(clone);
    assert_eq!(factory.closed(), 3, "the last handle closed every idle connection");
    assert_eq!(Arc::strong_count(&factory), 1, "the pool's memory was freed");
}

#[test]
fn guard_outliving_the_pool_still_works_and_closes_its_connection_on_drop() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(2).initial_size(2).build().unwrap(), factory.clone()).unwrap();
    let mut guard = pool.acquire().unwrap();
    drop(pool);
    assert_eq!(factory.closed(), 1, "the idle connection closed with the last handle");
    assert_eq!(Arc::strong_count(&factory), 2, "the guard keeps the pool's memory alive");
    guard.queries += 1;
    assert_eq!((guard.borrow_count(), guard.queries), (1, 1));
    assert!(guard.age() < Duration::from_secs(60));
    drop(guard);
    assert_eq!((factory.closed(), factory.live()), (2, 0));
    assert_eq!(Arc::strong_count(&factory), 1, "the last guard freed the pool's memory");
    factory.assert_no_violations();
}

#[test]
fn guard_dropped_on_another_thread_after_the_last_handle_closes_its_connection() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(2).initial_size(1).build().unwrap(), factory.clone()).unwrap();
    let guard = pool.acquire().unwrap();
    let (go, wait) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        wait.recv().unwrap();
        drop(guard);
    });
    drop(pool);
    go.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(factory.live(), 0);
    assert_eq!(Arc::strong_count(&factory), 1);
}

#[test]
fn last_handle_dropped_on_another_thread_while_a_guard_is_out() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(common::config().max_size(2).initial_size(2).build().unwrap(), factory.clone()).unwrap();
    let guard = pool.acquire().unwrap();
    thread::spawn(move || drop(pool)).join().unwrap();
    assert_eq!(factory.closed(), 1);
    drop(guard);
    assert_eq!(factory.live(), 0);
    assert_eq!(Arc::strong_count(&factory), 1);
}

/// The last handle and many guards (acquired on different threads, so on
/// different shards) dropped at the same moment: whoever is last frees the
/// pool, exactly once.
#[test]
fn last_handle_and_guards_dropped_concurrently_leak_nothing() {
    const GUARDS: usize = 6;
    for _ in 0..200 {
        let factory = TrackingFactory::new();
        let config = common::config().max_size(GUARDS).initial_size(2).shards(3).build().unwrap();
        let pool = ConnectionPool::new(config, factory.clone()).unwrap();
        let (acquired, start) = (Barrier::new(GUARDS + 1), Barrier::new(GUARDS + 1));
        thread::scope(|s| {
            for _ in 0..GUARDS {
                let (acquired, start, pool) = (&acquired, &start, pool.clone());
                s.spawn(move || {
                    let guard = pool.acquire().unwrap();
                    drop(pool);
                    acquired.wait();
                    start.wait();
                    drop(guard);
                });
            }
            let pool = pool; // moved in: this thread drops the last handle
            acquired.wait();
            start.wait();
            drop(pool);
        });
        assert_eq!(factory.live(), 0);
        assert_eq!(Arc::strong_count(&factory), 1, "the pool's memory was freed");
        factory.assert_no_violations();
    }
}
