//! Every pool starts one maintenance thread of its own, named
//! `rdb-<pool name>`, and its background work (here: refilling
//! `min_size`) runs on it, not on the caller's thread.
//!
//! The kernel keeps only the first 15 bytes of a thread's name; the short
//! `rdb-` prefix leaves 11 of them to the pool's name, so `ps`, `top` and
//! `/proc/*/task/*/comm` tell pools apart. The full name is what Rust
//! (panics, `log` records) sees.

mod common;

use std::sync::{Arc, Mutex};

use common::{ThreadWatch, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolEventListener};

/// Records the thread each connection is created on.
#[derive(Default)]
struct CreatorThreads(Mutex<Vec<ThreadWatch>>);

impl PoolEventListener for CreatorThreads {
    fn on_create(&self, _connection_id: u64) {
        self.0.lock().unwrap().push(ThreadWatch::current());
    }
}

#[test]
fn background_refill_runs_on_a_thread_named_after_the_pool() {
    let creators = Arc::new(CreatorThreads::default());
    let factory = TrackingFactory::new();
    let config = common::config().name("orders-db").min_size(2).event_listener(creators.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();

    assert!(common::eventually(|| pool.size() == 2), "min_size is refilled in the background");
    let threads = creators.0.lock().unwrap().clone();
    assert_eq!(threads.len(), 2);
    for thread in &threads {
        assert_eq!(thread.name.as_deref(), Some("rdb-orders-db"));
        assert_eq!(thread.tid, threads[0].tid, "one maintenance thread per pool");
    }
    if let Some(tid) = threads[0].tid {
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), "rdb-orders-db", "the kernel's copy (15 bytes at most)");
    }
    assert_ne!(threads[0].tid, common::current_tid(), "not the test's thread");
    drop(pool);
}

#[test]
fn two_pools_get_two_threads_each_with_its_pool_s_name() {
    let (a, b) = (Arc::new(CreatorThreads::default()), Arc::new(CreatorThreads::default()));
    let factory = TrackingFactory::new();
    let pool_a = ConnectionPool::new(
        common::config().name("alpha").min_size(1).event_listener(a.clone()).build().unwrap(),
        factory.clone(),
    )
    .unwrap();
    let pool_b = ConnectionPool::new(
        common::config().name("beta").min_size(1).event_listener(b.clone()).build().unwrap(),
        factory.clone(),
    )
    .unwrap();
    assert!(common::eventually(|| pool_a.size() == 1 && pool_b.size() == 1));
    let (ta, tb) = (a.0.lock().unwrap()[0].clone(), b.0.lock().unwrap()[0].clone());
    assert_eq!(ta.name.as_deref(), Some("rdb-alpha"));
    assert_eq!(tb.name.as_deref(), Some("rdb-beta"));
    assert_ne!(ta.tid, tb.tid);
}
