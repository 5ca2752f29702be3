//! No maintenance thread is left running once its pool is closed: `close()`
//! and dropping the last handle stop the pool's own thread and join it
//! before returning (even while a guard is still out), and a shared
//! service's thread stops once the service and every pool using it are gone.
//!
//! The thread is caught from inside: a connection created by the background
//! refill reports the thread it runs on, and plants a thread-local whose
//! destructor runs as that thread exits (before a `join` of it returns).
//! The kernel's task list (`/proc/self/task`) must lose it too.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ThreadWatch, TrackingFactory};
use rusty_db::pool::{ConnectionPool, MaintenanceService, PoolEventListener};

/// Watches the first thread a connection is created on.
#[derive(Default)]
struct FirstCreator(Mutex<Option<ThreadWatch>>);

impl PoolEventListener for FirstCreator {
    fn on_create(&self, _connection_id: u64) {
        let mut first = self.0.lock().unwrap();
        if first.is_none() {
            *first = Some(ThreadWatch::current());
        }
    }
}

impl FirstCreator {
    /// The maintenance thread, once the background refill has run on it.
    fn maintenance_thread(&self, pool_name: &str) -> ThreadWatch {
        assert!(common::eventually(|| self.0.lock().unwrap().is_some()), "the refill never ran");
        let watch = self.0.lock().unwrap().clone().unwrap();
        assert_eq!(watch.name.as_deref(), Some(format!("rdb-{pool_name}").as_str()));
        assert!(!watch.has_exited());
        watch
    }
}

/// A pool whose maintenance thread creates its first connection.
fn pool_with_watched_thread(name: &str) -> (ConnectionPool<common::TestConn>, ThreadWatch) {
    let creators = Arc::new(FirstCreator::default());
    let config = common::config().name(name).min_size(1).event_listener(creators.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).unwrap();
    let watch = creators.maintenance_thread(name);
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
    let creators = Arc::new(FirstCreator::default());
    let pools: Vec<_> = (0..3)
        .map(|i| {
            let config = common::config()
                .name(format!("shared-stops-{i}"))
                .min_size(1)
                .maintenance_service(service.clone())
                .event_listener(creators.clone())
                .build()
                .unwrap();
            ConnectionPool::new(config, TrackingFactory::new()).unwrap()
        })
        .collect();
    let watch = creators.maintenance_thread("shared-stops");

    for pool in &pools {
        pool.close();
    }
    assert_eq!(service.pools(), 0);
    assert!(!watch.has_exited(), "the service outlives its pools while the caller holds it");
    drop(pools);
    drop(service);
    assert_gone(&watch, "dropping the service and its pools");
}
