//! Queues are bounded: with every worker's queue full, `try_execute` fails
//! at once with `QueueFull` (naming the capacity) instead of blocking, and
//! `execute` waits until a worker makes room.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::ConnectionPool;
use rusty_db::runtime::{CoreRuntime, RuntimeError};

#[test]
fn a_full_runtime_refuses_try_execute_and_makes_execute_wait() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let runtime = CoreRuntime::builder().workers(1).queue_capacity(2).build(pool.clone()).unwrap();

    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let blocker_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&blocker_done);
    let blocker = runtime.execute(move |_: &mut TestConn| {
        started_tx.send(()).unwrap();
        go_rx.recv_timeout(Duration::from_secs(30)).expect("released by the test");
        done.store(true, SeqCst);
    });
    started_rx.recv_timeout(Duration::from_secs(30)).expect("the blocking job started");

    let queued: Vec<_> = (0..2).map(|n| runtime.try_execute(move |_: &mut TestConn| n).expect("room for 2")).collect();
    match runtime.try_execute(|_: &mut TestConn| 99) {
        Err(RuntimeError::QueueFull { capacity }) => assert_eq!(capacity, 2),
        other => panic!("expected QueueFull, got {other:?}"),
    }

    thread::scope(|s| {
        let runtime = &runtime;
        let done = &blocker_done;
        let waiting = s.spawn(move || {
            let handle = runtime.execute(|_: &mut TestConn| 3);
            // Room appears only once the worker takes the next job, which it
            // does only after the blocking job has finished.
            assert!(done.load(SeqCst), "execute returned while every queue was full");
            handle.join().expect("the waiting job ran")
        });
        go_tx.send(()).unwrap();
        assert_eq!(waiting.join().unwrap(), 3);
    });
    blocker.join().expect("the blocking job finished");
    let results: Vec<_> = queued.into_iter().map(|h| h.join().expect("queued jobs ran")).collect();
    assert_eq!(results, [0, 1]);
    factory.assert_no_violations();
}
