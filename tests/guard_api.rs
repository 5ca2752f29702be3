//! The `PooledConnectionGuard` API: ids unique over the pool's life and
//! never reused, `age`, `borrow_count`, `mark_broken`, `discard`,
//! `Deref`/`DerefMut`, and moving a guard to another thread.

mod common;

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::Duration;

use common::{Rng, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError, PooledConnectionGuard};

fn pool(max: usize, initial: usize) -> (ConnectionPool<common::TestConn>, std::sync::Arc<TrackingFactory>) {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(max).initial_size(initial).build().unwrap();
    (ConnectionPool::new(config, factory.clone()).unwrap(), factory)
}

#[test]
fn ids_are_unique_per_connection_and_never_reused() {
    let (pool, factory) = pool(2, 1);
    let mut id_of_serial: HashMap<u64, u64> = HashMap::new();
    let mut rng = Rng::new(7);
    for _ in 0..300 {
        let mut held: Vec<PooledConnectionGuard<_>> = Vec::new();
        for _ in 0..1 + rng.below(2) {
            held.push(pool.acquire().unwrap());
        }
        for mut conn in held {
            let id = *id_of_serial.entry(conn.serial).or_insert(conn.id());
            assert_eq!(conn.id(), id, "a connection keeps its id for life");
            match rng.below(3) {
                0 => conn.discard(),
                1 => conn.mark_broken(),
                _ => {}
            }
        }
    }
    let ids: HashSet<u64> = id_of_serial.values().copied().collect();
    assert_eq!(ids.len(), id_of_serial.len(), "two connections shared an id");
    assert_eq!(id_of_serial.len(), factory.created());
    assert!(factory.created() > 50, "slots were reused many times");
}

#[test]
fn age_counts_from_creation_and_grows() {
    let step = Duration::from_millis(60);
    let (pool, _) = pool(1, 1);
    let conn = pool.acquire().unwrap();
    let first = conn.age();
    thread::sleep(step);
    let second = conn.age();
    assert!(second >= first + step, "{first:?} then {second:?}");
    drop(conn);
    thread::sleep(step);
    let again = pool.acquire().unwrap();
    let spanning = again.age();
    assert!(spanning >= second + step, "the age spans borrows: {second:?} then {spanning:?}");

    again.discard();
    let fresh = pool.acquire().unwrap();
    assert!(fresh.age() < spanning, "a new connection starts young");
}

#[test]
fn borrow_count_counts_every_hand_out_of_this_connection() {
    let (pool, _) = pool(1, 1);
    for n in 1..=5 {
        let conn = pool.acquire().unwrap();
        assert_eq!(conn.borrow_count(), n);
    }
    pool.acquire().unwrap().discard();
    let fresh = pool.acquire().unwrap();
    assert_eq!(fresh.borrow_count(), 1, "the count belongs to the connection, not the slot");
    drop(fresh);
    let via_try = pool.try_acquire().unwrap();
    assert_eq!(via_try.borrow_count(), 2);
}

#[test]
fn mark_broken_closes_the_connection_instead_of_returning_it() {
    let (pool, factory) = pool(1, 1);
    let mut conn = pool.acquire().unwrap();
    let serial = conn.serial;
    assert!(!conn.is_broken());
    conn.mark_broken();
    assert!(conn.is_broken());
    assert_eq!(factory.closed(), 0, "closed on drop, not before");
    drop(conn);
    assert_eq!(factory.closed_serials(), vec![serial]);
    assert_eq!((pool.idle(), pool.size()), (0, 0));
    assert_eq!(factory.resets(), 0, "a broken connection is not reset");
    assert_ne!(pool.try_acquire().unwrap().serial, serial, "its capacity is free for a new one");
}

#[test]
fn discard_closes_at_once_and_frees_capacity() {
    let (pool, factory) = pool(1, 1);
    let conn = pool.acquire().unwrap();
    let serial = conn.serial;
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { active: 1, max: 1 })));
    conn.discard();
    assert_eq!(factory.closed_serials(), vec![serial]);
    assert_eq!((pool.size(), pool.active(), factory.live()), (0, 0, 0));
    let next = pool.try_acquire().expect("the discarded connection's capacity is back");
    assert_ne!(next.serial, serial);
}

#[test]
fn guard_derefs_to_the_connection() {
    let (pool, _) = pool(1, 1);
    let mut conn = pool.acquire().unwrap();
    let serial = conn.serial; // Deref
    assert_eq!(conn.connection().serial, serial);
    conn.queries += 2; // DerefMut
    conn.connection_mut().queries += 3;
    assert_eq!((conn.queries, conn.connection().queries), (5, 5));
    let raw: &common::TestConn = &conn;
    assert!(std::ptr::eq(raw, conn.connection()));
    drop(conn);
    let again = pool.acquire().unwrap();
    assert_eq!((again.serial, again.queries), (serial, 5), "changes live on with the connection");
    assert!(format!("{again:?}").contains(&again.id().to_string()), "Debug shows the id");
}

#[test]
fn guard_can_be_moved_to_another_thread_and_dropped_there() {
    let (pool, factory) = pool(2, 0);
    let conn = pool.acquire().unwrap();
    let serial = conn.serial;
    let seen = thread::spawn(move || {
        let serial = conn.serial;
        drop(conn);
        serial
    })
    .join()
    .unwrap();
    assert_eq!(seen, serial);
    assert_eq!((pool.idle(), pool.active()), (1, 0), "returned from the other thread");
    assert_eq!(pool.acquire().unwrap().serial, serial);
    factory.assert_no_violations();
}
