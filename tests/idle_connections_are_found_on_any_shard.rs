//! A thread prefers its home shard's idle stack but steals from the others
//! before it creates a connection or waits: an idle connection anywhere is
//! used, whatever thread returned it.

mod common;

use std::thread;

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolError};

#[test]
fn one_thread_takes_every_idle_connection_across_shards_without_creating() {
    let factory = TrackingFactory::new();
    // `new` spreads the initial connections over the four shards.
    let config = common::config().max_size(4).initial_size(4).shards(4).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let all: Vec<_> = (0..4).map(|_| pool.try_acquire().expect("an idle connection on some shard")).collect();
    assert_eq!(factory.created(), 4, "stolen, not created");
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { active: 4, max: 4 })));
    drop(all);
}

#[test]
fn connections_returned_by_other_threads_are_reused() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(8).shards(8).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    // Eight threads (eight home shards, round-robin) each return one connection.
    thread::scope(|s| {
        let held: Vec<_> = (0..8).map(|_| s.spawn(|| pool.acquire().unwrap())).map(|h| h.join().unwrap()).collect();
        let returners: Vec<_> = held.into_iter().map(|conn| s.spawn(move || drop(conn))).collect();
        returners.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!((pool.idle(), factory.created()), (8, 8));
    let again: Vec<_> = (0..8).map(|_| pool.try_acquire().expect("an idle connection on some shard")).collect();
    assert_eq!(factory.created(), 8, "every one was found again");
    drop(again);
}
