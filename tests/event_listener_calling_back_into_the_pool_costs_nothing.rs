//! A `PoolEventListener` may call back into its own pool from any hook:
//! take and return a connection, read the statistics and leaks, or close
//! the pool. None of it deadlocks, loses a connection or hangs `close()`,
//! whichever thread the hook runs on (the caller's, a creation thread, the
//! maintenance thread, a closer).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use common::TrackingFactory;
use common::hostile::{HostileConn, HostileFactory, MAX, drive};
use rusty_db::pool::{CloseReason, ConnectionPool, Hook, LeakInfo, PoolError, PoolEventListener};

/// Calls back into the pool from every hook. Holds the pool weakly (a
/// strong handle in the listener would keep the pool alive forever).
#[derive(Default)]
struct CallsBack {
    pool: OnceLock<Weak<ConnectionPool<HostileConn>>>,
    calls: AtomicUsize,
}

impl CallsBack {
    fn call_back(&self) {
        let Some(pool) = self.pool.get().and_then(Weak::upgrade) else { return };
        self.calls.fetch_add(1, SeqCst);
        // Taken and given back inside the hook; a full pool is fine.
        drop(pool.try_acquire());
        let _ = (pool.statistics(), pool.leaks(), pool.size(), pool.waiting());
    }
}

impl PoolEventListener for CallsBack {
    fn on_create(&self, _: u64) {
        self.call_back();
    }
    fn on_acquire(&self, _: u64, _: Duration) {
        self.call_back();
    }
    fn on_release(&self, _: u64, _: Duration) {
        self.call_back();
    }
    fn on_timeout(&self, _: Duration) {
        self.call_back();
    }
    fn on_close(&self, _: u64, _: CloseReason) {
        self.call_back();
    }
    fn on_leak(&self, _: &LeakInfo) {
        self.call_back();
    }
}

#[test]
fn every_hook_may_take_a_connection_and_read_the_statistics() {
    let factory = HostileFactory::well_behaved();
    let listener = Arc::new(CallsBack::default());
    let config = common::config()
        .max_size(MAX)
        .min_size(1)
        .max_lifetime(Duration::from_millis(60))
        .leak_detection_threshold(Duration::from_millis(25))
        .shutdown_timeout(Duration::from_secs(1))
        .event_listener(listener.clone())
        .build()
        .unwrap();
    let pool = Arc::new(ConnectionPool::new(config, factory.clone()).unwrap());
    listener.pool.set(Arc::downgrade(&pool)).unwrap();

    let errors = drive(&pool, Hook::OnAcquire);
    assert_eq!(errors, Vec::<String>::new());
    assert!(listener.calls.load(SeqCst) > 100, "the hooks called back {} times", listener.calls.load(SeqCst));

    let all: Vec<_> =
        (0..MAX).map(|_| pool.acquire_timeout(Duration::from_secs(5)).expect("capacity intact")).collect();
    drop(all);
    let started = Instant::now();
    pool.close();
    assert!(started.elapsed() < Duration::from_secs(3), "close() took {:?}", started.elapsed());
    assert!(common::eventually(|| factory.existing() == 0), "{} connections left open", factory.existing());
    assert!(factory.max_existing() <= MAX);
    assert_eq!(factory.violations(), Vec::<String>::new());
}

/// Closes its pool from one hook.
struct ClosesFrom {
    hook: Hook,
    pool: OnceLock<ConnectionPool<common::TestConn>>,
    closed: AtomicUsize,
}

impl ClosesFrom {
    fn hit(&self, hook: Hook) {
        if hook == self.hook {
            if let Some(pool) = self.pool.get() {
                pool.close();
                self.closed.fetch_add(1, SeqCst);
            }
        }
    }
}

impl PoolEventListener for ClosesFrom {
    fn on_create(&self, _: u64) {
        self.hit(Hook::OnCreate);
    }
    fn on_release(&self, _: u64, _: Duration) {
        self.hit(Hook::OnRelease);
    }
    fn on_close(&self, _: u64, _: CloseReason) {
        self.hit(Hook::OnClose);
    }
    fn on_leak(&self, _: &LeakInfo) {
        self.hit(Hook::OnLeak);
    }
}

/// Runs until `hook` closes the pool from inside; then everything is closed
/// and every later acquire fails with `PoolClosed`.
fn closes_from(hook: Hook) {
    let factory = TrackingFactory::new();
    let listener = Arc::new(ClosesFrom { hook, pool: OnceLock::new(), closed: AtomicUsize::new(0) });
    let config = common::config()
        .max_size(2)
        .min_size(1)
        .leak_detection_threshold(Duration::from_millis(20))
        .shutdown_timeout(Duration::from_secs(1))
        .event_listener(listener.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    // The listener's handle makes a cycle: `close()` is what ends it.
    assert!(listener.pool.set(pool.clone()).is_ok());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pool.is_closed() && Instant::now() < deadline {
        match pool.acquire_timeout(Duration::from_millis(50)) {
            Ok(mut conn) => {
                // Held past the leak threshold, then broken (closed on return).
                std::thread::sleep(Duration::from_millis(30));
                conn.mark_broken();
            }
            Err(PoolError::PoolClosed | PoolError::ConnectionTimeout(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(pool.is_closed(), "{hook} never closed the pool");
    assert!(listener.closed.load(SeqCst) >= 1);
    assert!(matches!(pool.acquire(), Err(PoolError::PoolClosed)));
    assert!(common::eventually(|| factory.live() == 0 && pool.size() == 0), "open: {}", factory.live());
    factory.assert_no_violations();
}

#[test]
fn on_create_may_close_the_pool() {
    closes_from(Hook::OnCreate);
}

#[test]
fn on_release_may_close_the_pool() {
    closes_from(Hook::OnRelease);
}

#[test]
fn on_close_may_close_the_pool() {
    closes_from(Hook::OnClose);
}

#[test]
fn on_leak_may_close_the_pool() {
    closes_from(Hook::OnLeak);
}
