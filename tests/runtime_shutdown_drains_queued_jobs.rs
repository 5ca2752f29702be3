//! `shutdown()` refuses new jobs at once but runs every job already queued
//! before it joins the workers; later submissions fail with `ShutDown`.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::ConnectionPool;
use rusty_db::runtime::{CoreRuntime, RuntimeError};

const QUEUED: u64 = 20;

#[test]
fn queued_jobs_run_before_shutdown_returns_and_later_ones_are_refused() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(2).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let runtime = CoreRuntime::builder().workers(1).build(pool.clone()).unwrap();

    // Keep the only worker busy so that the next jobs stay queued.
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let blocker = runtime.execute(move |_: &mut TestConn| {
        started_tx.send(()).unwrap();
        go_rx.recv_timeout(Duration::from_secs(30)).expect("released by the test");
    });
    started_rx.recv_timeout(Duration::from_secs(30)).expect("the blocking job started");
    let queued: Vec<_> = (0..QUEUED).map(|n| runtime.execute(move |_: &mut TestConn| n)).collect();
    assert_eq!(runtime.queued(), QUEUED as usize);

    thread::scope(|s| {
        let runtime = &runtime;
        let shutting_down = s.spawn(move || runtime.shutdown());
        while !runtime.is_shut_down() {
            thread::yield_now();
        }
        let refused = runtime.execute(|_: &mut TestConn| ()).join();
        assert!(matches!(refused, Err(RuntimeError::ShutDown)), "got {refused:?}");
        assert!(matches!(runtime.try_execute(|_: &mut TestConn| ()), Err(RuntimeError::ShutDown)));
        go_tx.send(()).unwrap();
        shutting_down.join().unwrap();
    });

    assert_eq!(runtime.queued(), 0);
    blocker.join().expect("the blocking job finished");
    for (n, handle) in queued.into_iter().enumerate() {
        assert!(handle.is_finished(), "job {n} ran before shutdown returned");
        assert_eq!(handle.join().expect("queued jobs still run"), n as u64);
    }
    factory.assert_no_violations();
}
