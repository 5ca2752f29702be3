//! Every pool starts one maintenance thread of its own, named
//! `rdb-<pool name>`; its passes (here: the leak scan) run on it, not on
//! the caller's thread, and so do their factory calls (here: refilling
//! `min_size`), on a short-lived thread of the same name that the pass
//! starts so that a slow factory never holds up the next pass.
//!
//! The kernel keeps only the first 15 bytes of a thread's name; the short
//! `rdb-` prefix leaves 11 of them to the pool's name, so `ps`, `top` and
//! `/proc/*/task/*/comm` tell pools apart. The full name is what Rust
//! (panics, `log` records) sees.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ThreadWatch, TrackingFactory};
use rusty_db::pool::{ConnectionPool, LeakInfo, PoolConfigBuilder, PoolEventListener};

/// Records the threads connections are created and leaks reported on.
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

/// A pool named `name` keeping `min_size` open, with leak detection.
fn watched(name: &str, min_size: usize) -> (ConnectionPool<common::TestConn>, Arc<Threads>) {
    let threads = Arc::new(Threads::default());
    let config: PoolConfigBuilder = common::config()
        .name(name)
        .min_size(min_size)
        .leak_detection_threshold(Duration::from_millis(10))
        .event_listener(threads.clone());
    (ConnectionPool::new(config.build().unwrap(), TrackingFactory::new()).unwrap(), threads)
}

/// The thread the pool's first leak report ran on.
fn reporter(pool: &ConnectionPool<common::TestConn>, threads: &Threads) -> ThreadWatch {
    let guard = pool.acquire().unwrap();
    assert!(common::eventually(|| !threads.reporters.lock().unwrap().is_empty()), "no leak was reported");
    drop(guard);
    threads.reporters.lock().unwrap()[0].clone()
}

#[test]
fn passes_and_their_factory_calls_run_on_threads_named_after_the_pool() {
    let (pool, threads) = watched("orders-db", 2);
    assert!(common::eventually(|| pool.size() == 2), "min_size is refilled in the background");
    let creators = threads.creators.lock().unwrap().clone();
    assert_eq!(creators.len(), 2);
    for thread in &creators {
        assert_eq!(thread.name.as_deref(), Some("rdb-orders-db"));
        assert_ne!(thread.tid, common::current_tid(), "not the test's thread");
    }

    let maintenance = reporter(&pool, &threads);
    assert_eq!(maintenance.name.as_deref(), Some("rdb-orders-db"));
    assert_ne!(maintenance.tid, common::current_tid(), "not the test's thread");
    if let Some(tid) = maintenance.tid {
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), "rdb-orders-db", "the kernel's copy (15 bytes at most)");
    }
    let named = || common::thread_names().iter().filter(|n| *n == "rdb-orders-db").count();
    assert!(
        common::eventually(|| named() == 1),
        "one maintenance thread per pool once the refill's is done: {}",
        named()
    );
    drop(pool);
}

#[test]
fn two_pools_get_two_threads_each_with_its_pool_s_name() {
    let (pool_a, a) = watched("alpha", 0);
    let (pool_b, b) = watched("beta", 0);
    let (ta, tb) = (reporter(&pool_a, &a), reporter(&pool_b, &b));
    assert_eq!(ta.name.as_deref(), Some("rdb-alpha"));
    assert_eq!(tb.name.as_deref(), Some("rdb-beta"));
    assert_ne!(ta.tid, tb.tid);
}
