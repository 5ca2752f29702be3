//! 32 threads on a pool of 4 PostgreSQL sessions, with the defaults: the
//! pool finds its borrows long (each a round trip) and raises its
//! starvation threshold; the server never sees more than 4 sessions of the
//! pool, every acquire is served, and nothing is lost. Skips, saying why,
//! without `RUSTY_DB_TEST_PG_URL`.
#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::pg::{backends, pg_url, side_client, unique_name};
use rusty_db::adapters::postgres::PostgresConnectionFactory;
use rusty_db::pool::{ConnectionPool, PoolConfig};

#[test]
fn thirty_two_threads_on_four_sessions_stay_within_max_size_and_lose_nothing() {
    let Some(url) = pg_url("thirty_two_threads_on_four_sessions_stay_within_max_size_and_lose_nothing") else {
        return;
    };
    let app = unique_name("thirty-two");
    let config = PoolConfig::builder().name(&app).min_size(4).initial_size(4).max_size(4).build().unwrap();
    let pool = ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(&url).unwrap())).unwrap();
    let mut side = side_client(&url);

    let stop = AtomicBool::new(false);
    let raised_seen = AtomicBool::new(false);
    let borrows = AtomicU64::new(0);
    let most_sessions = thread::scope(|s| {
        for _ in 0..32 {
            let (pool, stop, borrows) = (pool.clone(), &stop, &borrows);
            s.spawn(move || {
                while !stop.load(SeqCst) {
                    let mut conn = pool.acquire().expect("every acquire is served");
                    conn.simple_query("SELECT 1").expect("a live session");
                    drop(conn);
                    borrows.fetch_add(1, SeqCst);
                }
            });
        }
        let started = Instant::now();
        let mut most = 0;
        // At least 2 s, and until the pool has switched (10 s at most).
        while started.elapsed() < Duration::from_secs(2)
            || (!raised_seen.load(SeqCst) && started.elapsed() < Duration::from_secs(10))
        {
            most = most.max(backends(&mut side, &app));
            if pool.fairness_threshold_in_force() > Duration::from_micros(500) {
                raised_seen.store(true, SeqCst);
            }
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, SeqCst);
        most
    });
    assert!(raised_seen.load(SeqCst), "round trips are long borrows: the starvation threshold follows them");
    assert!(most_sessions <= 4, "the server saw {most_sessions} sessions of the pool");
    let stats = pool.statistics();
    assert_eq!(stats.failed_acquires, 0);
    assert!(stats.acquires >= borrows.load(SeqCst));
    assert_eq!(stats.connections_created - stats.connections_closed, pool.size() as u64, "nothing lost");
    assert_eq!((pool.size(), pool.waiting()), (4, 0));
    pool.close();
}
