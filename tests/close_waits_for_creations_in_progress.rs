//! `close()` waits for connections being created for acquires (on their
//! own threads) and closes them as they arrive: once it returns, no
//! connection is open, even one whose acquire had timed out.

mod common;

use std::thread;
use std::time::Duration;

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolError};

#[test]
fn close_returns_after_a_late_creation_and_leaves_nothing_open() {
    let factory = TrackingFactory::new();
    factory.hold_creates_after(0);
    let config = common::config().max_size(2).acquire_timeout(Duration::from_millis(50)).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    assert!(matches!(pool.acquire(), Err(PoolError::ConnectionTimeout(_))), "the create is stuck");
    assert_eq!(factory.creates_held(), 1);

    let closer = {
        let pool = pool.clone();
        thread::spawn(move || pool.close())
    };
    thread::sleep(Duration::from_millis(100));
    assert!(!closer.is_finished(), "close() waits for the create in progress");
    factory.release_creates();
    closer.join().unwrap();
    assert_eq!(factory.created(), 1);
    assert_eq!(factory.live(), 0, "the late connection was closed before close() returned");
    assert_eq!(pool.size(), 0);
    assert!(matches!(pool.acquire(), Err(PoolError::PoolClosed)));
}
