//! `max_wait_queue_size`: once that many threads wait, further callers get
//! `WaitQueueFull` at once instead of queueing; `0` means never wait.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolError};

#[test]
fn caller_beyond_max_wait_queue_size_gets_wait_queue_full_at_once() {
    let config = common::config().max_size(1).initial_size(1).max_wait_queue_size(2).build().unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    let held = pool.acquire().unwrap();
    thread::scope(|s| {
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let pool = &pool;
                let w = s.spawn(move || pool.acquire().map(drop));
                assert!(common::eventually(|| pool.waiting() == i + 1), "waiter {i} never registered");
                w
            })
            .collect();
        for attempt in [ConnectionPool::acquire, |p: &ConnectionPool<_>| p.acquire_timeout(Duration::from_secs(5))] {
            let started = Instant::now();
            let result = attempt(&pool);
            assert!(matches!(result, Err(PoolError::WaitQueueFull)), "expected WaitQueueFull, got {result:?}");
            assert!(started.elapsed() < Duration::from_secs(1), "WaitQueueFull took {:?}", started.elapsed());
        }
        assert_eq!(pool.waiting(), 2, "the refused callers were not queued");
        drop(held);
        for w in waiters {
            w.join().unwrap().expect("queued waiters are still served");
        }
    });
    assert_eq!(pool.waiting(), 0);
    pool.acquire().expect("room in the queue again");
}

#[test]
fn zero_max_wait_queue_size_means_never_wait() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).max_wait_queue_size(0).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let held = pool.acquire().expect("a free slot needs no waiting");
    let started = Instant::now();
    let result = pool.acquire();
    assert!(matches!(result, Err(PoolError::WaitQueueFull)), "expected WaitQueueFull, got {result:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "WaitQueueFull took {:?}", started.elapsed());
    drop(held);
    pool.acquire().expect("an idle connection needs no waiting");
    assert_eq!(factory.created(), 1);
}
