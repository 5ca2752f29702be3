//! A listener whose `on_acquire` panics does not cost the caller its
//! connection, nor the pool its capacity: the acquire succeeds (the panic
//! is logged) and the connection comes back when the guard drops.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolEventListener};

#[derive(Default)]
struct PanicsOnAcquire(AtomicUsize);

impl PoolEventListener for PanicsOnAcquire {
    fn on_acquire(&self, _connection_id: u64, _wait_time: std::time::Duration) {
        self.0.fetch_add(1, Ordering::Relaxed);
        panic!("listener bug");
    }
}

#[test]
fn every_acquire_succeeds_and_every_connection_comes_back() {
    let factory = TrackingFactory::new();
    let listener = Arc::new(PanicsOnAcquire::default());
    let config = common::config().max_size(2).event_listener(listener.clone()).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    for _ in 0..10 {
        let a = pool.acquire().expect("the listener's panic is not the caller's");
        let b = pool.acquire().expect("capacity was not lost");
        assert_ne!(a.id(), b.id());
    }
    assert_eq!(listener.0.load(Ordering::Relaxed), 20);
    assert_eq!(pool.statistics().acquires, 20);
    assert_eq!(factory.created(), 2, "the two connections were reused, not replaced");
    drop(pool);
    assert_eq!(factory.live(), 0, "closing the pool closed both");
}
