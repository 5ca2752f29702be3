//! No maintenance thread is left running once its pool is closed: `close()`
//! and dropping the last handle stop the pool's own thread and join it
//! before returning (even while a guard is still out), and a shared
//! service's thread stops once the service and every pool using it are gone.
//! The short-lived thread a pass runs its factory calls on (here: the
//! refill) is joined by `close()` too.
//!
//! Threads are caught from inside: the leak report (made by the maintenance
//! pass itself) and the refill's `on_create` report the thread they run on,
//! and plant a thread-local whose destructor runs as that thread exits
//! (before a `join` of it returns). The kernel's task list
//! (`/proc/self/task`) must lose them too.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ThreadWatch, TrackingFactory};
use rusty_db::pool::{ConnectionPool, LeakInfo, MaintenanceService, PoolEventListener};

/// Watches the first thread a leak is reported on, and the first thread a
/// connection is created on.
#[derive(Default)]
struct FirstThreads {
    reporter: Mutex<Option<ThreadWatch>>,
    creator: Mutex<Option<ThreadWatch>>,
}

impl PoolEventListener for FirstThreads {
    fn on_leak(&self, _leak: &LeakInfo) {
        self.reporter.lock().unwrap().get_or_insert_with(ThreadWatch::current);
    }
    fn on_create(&self, _connection_id: u64) {
        self.creator.lock().unwrap().get_or_insert_with(ThreadWatch::current);
    }
}

impl FirstThreads {
    /// The maintenance thread, once a pass has reported a leak on it.
    fn maintenance_thread(&self, thread_name: &str) -> ThreadWatch {
        assert!(common::eventually(|| self.reporter.lock().unwrap().is_some()), "no leak was reported");
        let watch = self.reporter.lock().unwrap().clone().unwrap();
        assert_eq!(watch.name.as_deref(), Some(format!("rdb-{thread_name}").as_str()));
        assert!(!watch.has_exited());
        watch
    }

    /// The thread the refill created its first connection on.
    fn refill_thread(&self, pool_name: &str) -> ThreadWatch {
        assert!(common::eventually(|| self.creator.lock().unwrap().is_some()), "the refill never ran");
        let watch = self.creator.lock().unwrap().clone().unwrap();
        assert_eq!(watch.name.as_deref(), Some(format!("rdb-{pool_name}").as_str()));
        watch
    }
}

/// Borrows a connection until a pass reports it leaked, on the thread
/// that runs the pool's passes.
fn leak_one(pool: &ConnectionPool<common::TestConn>, threads: &FirstThreads, thread_name: &str) -> ThreadWatch {
    let guard = pool.acquire().unwrap();
    let watch = threads.maintenance_thread(thread_name);
    drop(guard);
    watch
}

/// A pool with leak detection and a refill, and its maintenance thread.
fn pool_with_watched_thread(name: &str) -> (ConnectionPool<common::TestConn>, ThreadWatch) {
    let threads = Arc::new(FirstThreads::default());
    let config = common::config()
        .name(name)
        .min_size(1)
        .leak_detection_threshold(Duration::from_millis(10))
        .event_listener(threads.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    let watch = leak_one(&pool, &threads, name);
    (pool, watch)
}

/// The thread has exited (joined: its thread-locals are gone) and the
/// kernel no longer runs it.
fn assert_gone(watch: &ThreadWatch, after: &str) {
    assert!(watch.has_exited(), "{after}: the maintenance thread was not joined");
    let limit = Duration::from_secs(5);
    assert!(common::within(limit, || !watch.task_running()), "{after}: task {:?} still runs", watch.tid);
}

#[test]
fn close_stops_and_joins_the_maintenance_thread() {
    let (pool, watch) = pool_with_watched_thread("close-joins");
    pool.close();
    assert_gone(&watch, "close()");
    drop(pool);
}

#[test]
fn close_joins_the_thread_a_pass_ran_its_factory_calls_on() {
    let threads = Arc::new(FirstThreads::default());
    let factory = TrackingFactory::new();
    // The first refill's create waits until the test has seen it.
    factory.hold_creates_after(0);
    let config = common::config().name("refill-joins").min_size(1).event_listener(threads.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(common::eventually(|| factory.creates_held() == 1), "the refill started");
    factory.release_creates();
    let refill = threads.refill_thread("refill-joins");
    pool.close();
    assert!(refill.has_exited(), "close(): the refill's thread was not joined");
    drop(pool);
}

#[test]
fn dropping_the_last_handle_stops_and_joins_the_maintenance_thread() {
    let (pool, watch) = pool_with_watched_thread("drop-joins");
    let clone = pool.clone();
    drop(pool);
    assert!(!watch.has_exited(), "a clone still uses the pool");
    drop(clone);
    assert_gone(&watch, "dropping the last handle");
}

#[test]
fn a_guard_still_out_does_not_keep_the_maintenance_thread_alive() {
    let (pool, watch) = pool_with_watched_thread("guard-out");
    let guard = pool.acquire().unwrap();
    drop(pool);
    assert_gone(&watch, "dropping the handle with a guard out");
    drop(guard);
}

#[test]
fn closing_twice_or_closing_then_dropping_is_fine() {
    let (pool, watch) = pool_with_watched_thread("close-twice");
    pool.close();
    pool.close();
    assert_gone(&watch, "close(), close()");
    drop(pool);
}

#[test]
fn a_shared_service_thread_stops_once_the_service_and_its_pools_are_gone() {
    let service = MaintenanceService::new("shared-stops");
    let threads = Arc::new(FirstThreads::default());
    let pools: Vec<_> = (0..3)
        .map(|i| {
            let config = common::config()
                .name(format!("shared-stops-{i}"))
                .min_size(1)
                .leak_detection_threshold(Duration::from_millis(10))
                .maintenance_service(service.clone())
                .event_listener(threads.clone())
                .build()
                .unwrap();
            ConnectionPool::new(config, TrackingFactory::new()).unwrap()
        })
        .collect();
    let watch = leak_one(&pools[0], &threads, "shared-stops");

    for pool in &pools {
        pool.close();
    }
    assert_eq!(service.pools(), 0);
    assert!(!watch.has_exited(), "the service outlives its pools while the caller holds it");
    drop(pools);
    drop(service);
    assert_gone(&watch, "dropping the service and its pools");
}
