//! `close()` closes idle connections on several threads at once, and
//! returns within `shutdown_timeout` even while user code hangs (a
//! factory's `close` or `create`, a listener's hook on the maintenance
//! thread): what is still running then finishes in the background and
//! closes what it holds, so nothing stays open once it returns.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, LeakInfo, PoolError, PoolEventListener};

/// A pool holding `n` idle connections.
fn pool_with_idle(factory: &Arc<TrackingFactory>, n: usize, shutdown: Duration) -> ConnectionPool<common::TestConn> {
    let config = common::config().max_size(n).initial_size(n).shutdown_timeout(shutdown).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert_eq!(pool.idle(), n);
    pool
}

#[test]
fn idle_connections_are_closed_several_at_a_time() {
    const CLOSE: Duration = Duration::from_millis(500);
    let factory = TrackingFactory::new();
    let pool = pool_with_idle(&factory, 8, Duration::from_secs(30));
    factory.set_close_delay(CLOSE);
    let started = Instant::now();
    pool.close();
    let took = started.elapsed();
    // One at a time: 8 x 500 ms = 4 s. Four at a time: about 1 s.
    assert!(took < CLOSE * 5, "close() took {took:?}");
    assert_eq!(factory.closed(), 8, "every idle connection was closed before close() returned");
    assert_eq!(pool.size(), 0);
    factory.assert_no_violations();
}

#[test]
fn a_factory_close_that_hangs_delays_close_only_until_the_shutdown_timeout() {
    const SHUTDOWN: Duration = Duration::from_millis(300);
    let factory = TrackingFactory::new();
    let pool = pool_with_idle(&factory, 8, SHUTDOWN);
    factory.hold_closes_after(0);
    let started = Instant::now();
    pool.close();
    let took = started.elapsed();
    assert!(took >= SHUTDOWN && took < SHUTDOWN + Duration::from_secs(2), "close() took {took:?}");
    assert!(factory.closes_held() >= 1, "the closes are still stuck in the factory");
    assert!(matches!(pool.acquire(), Err(PoolError::PoolClosed)));

    factory.release_closes();
    assert!(common::eventually(|| factory.closed() == 8), "closed in the background: {}", factory.closed());
    assert!(common::eventually(|| pool.size() == 0));
    factory.assert_no_violations();
}

#[test]
fn a_create_that_hangs_delays_close_only_until_the_shutdown_timeout() {
    const SHUTDOWN: Duration = Duration::from_millis(200);
    let factory = TrackingFactory::new();
    factory.hold_creates_after(0);
    let config = common::config()
        .max_size(2)
        .acquire_timeout(Duration::from_millis(50))
        .shutdown_timeout(SHUTDOWN)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(matches!(pool.acquire(), Err(PoolError::ConnectionTimeout(_))), "the create is stuck");
    assert_eq!(factory.creates_held(), 1);

    let started = Instant::now();
    pool.close();
    let took = started.elapsed();
    assert!(took >= SHUTDOWN && took < SHUTDOWN + Duration::from_secs(2), "close() took {took:?}");

    factory.release_creates();
    assert!(common::eventually(|| factory.created() == 1 && factory.live() == 0), "the late connection is closed");
    assert!(common::eventually(|| pool.size() == 0));
}

/// A listener whose `on_leak` blocks until it is let go.
#[derive(Default)]
struct StuckOnLeak {
    entered: Mutex<bool>,
    released: Mutex<bool>,
    cv: Condvar,
}

impl PoolEventListener for StuckOnLeak {
    fn on_leak(&self, _leak: &LeakInfo) {
        *self.entered.lock().unwrap() = true;
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.cv.wait(released).unwrap();
        }
    }
}

#[test]
fn a_listener_hanging_on_the_maintenance_thread_delays_close_only_until_the_shutdown_timeout() {
    const SHUTDOWN: Duration = Duration::from_millis(300);
    let factory = TrackingFactory::new();
    let listener = Arc::new(StuckOnLeak::default());
    let config = common::config()
        .name("stuck-leak")
        .max_size(2)
        .initial_size(2)
        .leak_detection_threshold(Duration::from_millis(20))
        .event_listener(listener.clone())
        .shutdown_timeout(SHUTDOWN)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let leaked = pool.acquire().unwrap();
    assert!(common::eventually(|| *listener.entered.lock().unwrap()), "the leak was reported");

    let started = Instant::now();
    pool.close();
    let took = started.elapsed();
    assert!(took >= SHUTDOWN && took < SHUTDOWN + Duration::from_secs(2), "close() took {took:?}");
    assert!(common::eventually(|| factory.closed() == 1), "the idle connection is closed, the stuck pass aside");

    *listener.released.lock().unwrap() = true;
    listener.cv.notify_all();
    drop(leaked);
    assert!(common::eventually(|| factory.live() == 0));
    // The maintenance thread exits once its pass returns.
    assert!(
        common::eventually(|| !common::thread_names().iter().any(|n| n == "rdb-stuck-leak")),
        "the maintenance thread outlived its stuck pass: {:?}",
        common::thread_names()
    );
}
