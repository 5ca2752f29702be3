//! The statement cache: a connection's prepared statements outlive the
//! borrow that prepared them, up to `statement_cache_size` of them, the
//! least recently used closed through `close_statement` when a new one
//! needs room. Hits and misses feed `cache_hit_rate`; size 0 turns it off;
//! a new connection starts empty; a failed prepare caches nothing. Then
//! the same on SQLite.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use rusty_db::adapters::sqlite::SqliteConnectionFactory;
use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError, PrepareStatement, Result};

/// What happened to statements, across all connections.
#[derive(Default)]
struct Log {
    prepared: Mutex<Vec<String>>,
    closed: Mutex<Vec<String>>,
}

/// A connection whose statements are `"<connection>:<sql>"`.
struct Conn {
    serial: u64,
    log: Arc<Log>,
}

impl PrepareStatement for Conn {
    type Statement = Arc<str>;

    fn prepare_statement(&mut self, sql: &str) -> Result<Arc<str>> {
        if sql.contains("syntax error") {
            return Err(PoolError::factory("near \"syntax\": syntax error"));
        }
        self.log.prepared.lock().unwrap().push(sql.to_string());
        Ok(Arc::from(format!("{}:{sql}", self.serial)))
    }

    fn close_statement(&mut self, statement: Arc<str>) -> Result<()> {
        self.log.closed.lock().unwrap().push(statement.to_string());
        Ok(())
    }
}

struct Factory {
    serials: AtomicU64,
    log: Arc<Log>,
}

impl ConnectionFactory<Conn> for Factory {
    fn create(&self) -> Result<Conn> {
        Ok(Conn { serial: self.serials.fetch_add(1, SeqCst), log: Arc::clone(&self.log) })
    }
}

fn pool(cache: usize, size: usize) -> (ConnectionPool<Conn>, Arc<Log>) {
    let log = Arc::new(Log::default());
    let factory = Factory { serials: AtomicU64::new(0), log: Arc::clone(&log) };
    let config = PoolConfig::builder()
        .min_size(size)
        .initial_size(size)
        .max_size(size)
        .statement_cache_size(cache)
        .build()
        .unwrap();
    (ConnectionPool::new(config, Arc::new(factory)).unwrap(), log)
}

fn hits_and_misses(pool: &ConnectionPool<Conn>) -> (u64, u64) {
    let stats = pool.statistics();
    (stats.cache_hits, stats.cache_misses)
}

#[test]
fn statements_outlive_the_borrow_that_prepared_them() {
    let (pool, log) = pool(4, 1);
    for _ in 0..5 {
        let mut conn = pool.acquire().unwrap();
        assert_eq!(&*conn.prepare_cached("SELECT 1").unwrap(), "0:SELECT 1");
    }
    assert_eq!(*log.prepared.lock().unwrap(), ["SELECT 1"], "prepared once");
    assert_eq!(hits_and_misses(&pool), (4, 1));
    assert!((pool.statistics().cache_hit_rate - 0.8).abs() < 1e-9);
}

#[test]
fn the_least_recently_used_statement_is_closed_at_capacity_and_a_hit_refreshes() {
    let (pool, log) = pool(3, 1);
    let mut conn = pool.acquire().unwrap();
    for sql in ["a", "b", "c"] {
        conn.prepare_cached(sql).unwrap();
    }
    assert!(log.closed.lock().unwrap().is_empty(), "exactly at capacity: nothing evicted");
    conn.prepare_cached("a").unwrap(); // a is now the most recent
    drop(conn);

    let mut conn = pool.acquire().unwrap();
    conn.prepare_cached("d").unwrap(); // one over: b, least recently used, goes
    assert_eq!(*log.closed.lock().unwrap(), ["0:b"]);
    conn.prepare_cached("e").unwrap();
    assert_eq!(*log.closed.lock().unwrap(), ["0:b", "0:c"]);
    assert_eq!(hits_and_misses(&pool), (1, 5));
    conn.prepare_cached("a").unwrap();
    assert_eq!(hits_and_misses(&pool), (2, 5), "a survived both evictions");
    conn.prepare_cached("b").unwrap();
    assert_eq!(*log.closed.lock().unwrap(), ["0:b", "0:c", "0:d"], "b came back as a miss, d went");
    assert_eq!(*log.prepared.lock().unwrap(), ["a", "b", "c", "d", "e", "b"]);
}

#[test]
fn each_connection_has_its_own_cache() {
    let (pool, log) = pool(8, 2);
    let mut first = pool.acquire().unwrap();
    let mut second = pool.acquire().unwrap();
    let (a, b) = (first.prepare_cached("SELECT 1").unwrap(), second.prepare_cached("SELECT 1").unwrap());
    assert_ne!(a, b, "a statement belongs to the connection that prepared it");
    assert_eq!(log.prepared.lock().unwrap().len(), 2);
    assert_eq!(hits_and_misses(&pool), (0, 2));
}

#[test]
fn a_new_connection_in_the_slot_starts_empty() {
    let (pool, log) = pool(8, 1);
    let mut conn = pool.acquire().unwrap();
    conn.prepare_cached("SELECT 1").unwrap();
    conn.discard(); // closed: its statements with it
    let mut conn = pool.acquire().unwrap();
    assert_eq!(&*conn.prepare_cached("SELECT 1").unwrap(), "1:SELECT 1", "prepared on the new connection");
    assert_eq!(hits_and_misses(&pool), (0, 2));
    assert_eq!(log.prepared.lock().unwrap().len(), 2);
}

#[test]
fn size_zero_prepares_every_time_and_counts_nothing() {
    let (pool, log) = pool(0, 1);
    for _ in 0..3 {
        pool.acquire().unwrap().prepare_cached("SELECT 1").unwrap();
    }
    assert_eq!(log.prepared.lock().unwrap().len(), 3);
    assert_eq!(hits_and_misses(&pool), (0, 0));
}

#[test]
fn a_failed_prepare_is_returned_and_caches_nothing() {
    let (pool, log) = pool(2, 1);
    let mut conn = pool.acquire().unwrap();
    conn.prepare_cached("SELECT 1").unwrap();
    let err = conn.prepare_cached("a syntax error").unwrap_err();
    assert!(matches!(err, PoolError::Factory(_)), "{err:?}");
    assert!(conn.prepare_cached("a syntax error").is_err(), "not cached: tried again");
    conn.prepare_cached("SELECT 1").unwrap();
    assert!(log.closed.lock().unwrap().is_empty(), "a failure takes no room");
    assert_eq!(hits_and_misses(&pool), (1, 3));
}

#[test]
fn sqlite_statements_stay_prepared_across_borrows() {
    let config = PoolConfig::builder().min_size(1).initial_size(1).max_size(1).statement_cache_size(2).build().unwrap();
    let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(":memory:"))).unwrap();
    for n in 0..3i64 {
        let mut conn = pool.acquire().unwrap();
        let add = conn.prepare_cached("SELECT ?1 + 1").unwrap();
        let got: i64 = add.on(&conn).unwrap().query_row([n], |row| row.get(0)).unwrap();
        assert_eq!(got, n + 1);
    }
    let stats = pool.statistics();
    assert_eq!((stats.cache_hits, stats.cache_misses), (2, 1));
    let mut conn = pool.acquire().unwrap();
    assert!(matches!(conn.prepare_cached("SELEC nothing"), Err(PoolError::Factory(_))), "SQLite's parse error");
}
