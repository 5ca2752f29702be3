//! A `MaintenanceService` shared by many pools runs all their passes on
//! its one thread (`rdb-<service name>`): 20 pools add one thread to the
//! process, not 20, each pool still gets its refill and idle eviction, and
//! each pool unregisters when it closes or is dropped. A pass's factory
//! calls (the refill here) run on a short-lived thread named after its
//! pool, so that one pool's slow factory holds up no other pool's pass;
//! once they are done, the one service thread is all that is left.
//!
//! One test in this file, so that no other test's pool adds maintenance
//! threads while it counts them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ThreadWatch, TrackingFactory};
use rusty_db::pool::{ConnectionPool, LeakInfo, MaintenanceService, PoolEventListener};

const POOLS: usize = 20;

/// Records the thread every connection is created on, and every leak
/// reported on.
#[derive(Default)]
struct Threads {
    creators: Mutex<Vec<ThreadWatch>>,
    reporters: Mutex<Vec<ThreadWatch>>,
}

impl PoolEventListener for Threads {
    fn on_create(&self, _connection_id: u64) {
        self.creators.lock().unwrap().push(ThreadWatch::current());
    }
    fn on_leak(&self, _leak: &LeakInfo) {
        self.reporters.lock().unwrap().push(ThreadWatch::current());
    }
}

/// Threads of this process whose (kernel, 15-byte) name is a maintenance thread's.
fn maintenance_threads() -> usize {
    common::thread_names().iter().filter(|n| n.starts_with("rdb-")).count()
}

#[test]
fn twenty_pools_share_one_thread_and_unregister_as_they_close() {
    let threads_before = maintenance_threads();
    let service = MaintenanceService::new("tenants");
    let threads = Arc::new(Threads::default());
    let factory = TrackingFactory::new();
    let mut pools: Vec<_> = (0..POOLS)
        .map(|i| {
            let config = common::config()
                .name(format!("tenant-{i}"))
                .min_size(1)
                .max_size(2)
                .idle_timeout(Duration::from_millis(30))
                .leak_detection_threshold(Duration::from_millis(10))
                .maintenance_service(service.clone())
                .event_listener(threads.clone())
                .build()
                .unwrap();
            ConnectionPool::new(config, factory.clone()).unwrap()
        })
        .collect();
    assert_eq!(service.pools(), POOLS);

    // Every pool is refilled to min_size, each on a thread named after it.
    assert!(common::eventually(|| pools.iter().all(|p| p.idle() == 1)), "every pool refilled");
    let mut names: Vec<String> =
        threads.creators.lock().unwrap().iter().map(|w| w.name.clone().unwrap_or_default()).collect();
    names.sort();
    let mut expected: Vec<String> = (0..POOLS).map(|i| format!("rdb-tenant-{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "one refill per pool, on a thread named after it");

    // Every pool's passes run on the service's one thread: a leak in each is
    // reported there.
    let guards: Vec<_> = pools.iter().map(|p| p.acquire().unwrap()).collect();
    assert!(common::eventually(|| threads.reporters.lock().unwrap().len() == POOLS), "a leak in every pool");
    drop(guards);
    let reporters = threads.reporters.lock().unwrap().clone();
    for watch in &reporters {
        assert_eq!(watch.name.as_deref(), Some("rdb-tenants"));
        assert_eq!(watch.tid, reporters[0].tid, "one thread for all");
    }
    if cfg!(target_os = "linux") {
        assert!(
            common::eventually(|| maintenance_threads() == threads_before + 1),
            "one thread for {POOLS} pools once their refills are done: {}",
            maintenance_threads() - threads_before
        );
    }

    // Idle eviction works in every pool: a second connection each, returned,
    // times out back to min_size.
    for pool in &pools {
        let (a, b) = (pool.acquire().unwrap(), pool.acquire().unwrap());
        drop((a, b));
    }
    assert!(common::eventually(|| pools.iter().all(|p| p.size() == 1)), "idle connections evicted in every pool");

    // Half close, half are dropped: each unregisters.
    for pool in pools.drain(..POOLS / 2) {
        pool.close();
        assert!(pool.is_closed());
    }
    assert_eq!(service.pools(), POOLS / 2);
    drop(pools);
    assert_eq!(service.pools(), 0);
    assert_eq!(factory.created(), factory.closed(), "every connection closed");

    let thread = reporters[0].clone();
    assert!(!thread.has_exited(), "the service outlives its pools while held");
    drop(service);
    assert!(thread.has_exited(), "dropping the last handle joins the thread");
    if cfg!(target_os = "linux") {
        assert!(common::eventually(|| maintenance_threads() == threads_before));
    }
    factory.assert_no_violations();
}
