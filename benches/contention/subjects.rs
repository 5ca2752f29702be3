//! The pools under test, behind one small interface: rusty-db (in each
//! queue mode, and through `CoreRuntime`), r2d2, and the textbook
//! mutex-and-condvar pool on `std::sync` and on `parking_lot`, each over a
//! null connection or SQLite. Every constructor takes the number of
//! connections, so each point of the benchmark builds its pools alike.

use std::hint::black_box;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use rusty_db::adapters::sqlite::{SqliteConnectionFactory, rusqlite};
use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, QueueMode, Result};
use rusty_db::runtime::CoreRuntime;

use crate::workload::Workload;

/// What a benchmark thread does with a connection it holds.
pub trait Touch {
    /// The work done on the connection (nothing for the null one).
    fn touch(&mut self);
}

/// A connection that costs nothing, so the pool's own work is measured.
pub struct NullConn(u64);

impl Touch for NullConn {
    #[inline]
    fn touch(&mut self) {
        self.0 = black_box(self.0.wrapping_add(1));
    }
}

impl Touch for rusqlite::Connection {
    fn touch(&mut self) {
        let one: i64 = self
            .prepare_cached("SELECT 1")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .expect("SELECT 1");
        black_box(one);
    }
}

/// Something a benchmark thread can run one operation against.
pub trait Driver: Sync {
    /// Acquires, works while holding per `workload`, releases. Returns the
    /// acquire latency in nanoseconds when `timed`.
    fn op(&self, workload: Workload, timed: bool) -> Option<u64>;
}

/// A pool whose guard derefs to its connection.
pub trait GuardPool: Sync {
    type Conn: Touch;
    type Guard<'a>: DerefMut<Target = Self::Conn>
    where
        Self: 'a;
    fn get(&self) -> Self::Guard<'_>;
}

/// Drives a [`GuardPool`] directly on the benchmark thread.
pub struct Direct<P>(pub P);

impl<P: GuardPool> Driver for Direct<P> {
    #[inline]
    fn op(&self, workload: Workload, timed: bool) -> Option<u64> {
        if timed {
            let start = Instant::now();
            let mut conn = self.0.get();
            let nanos = start.elapsed().as_nanos() as u64;
            conn.touch();
            workload.while_holding();
            Some(nanos)
        } else {
            let mut conn = self.0.get();
            conn.touch();
            workload.while_holding();
            None
        }
    }
}

// === rusty-db ===

struct NullFactory;

impl ConnectionFactory<NullConn> for NullFactory {
    fn create(&self) -> Result<NullConn> {
        Ok(NullConn(0))
    }
}

/// A fixed-size pool: every connection open from the start, none opened later.
fn rusty_config(mode: QueueMode, connections: usize) -> PoolConfig {
    PoolConfig::builder()
        .min_size(connections)
        .max_size(connections)
        .initial_size(connections)
        .queue_mode(mode)
        .build()
        .expect("valid config")
}

/// A rusty-db pool of `connections` null connections.
pub fn rusty_null(mode: QueueMode, connections: usize) -> ConnectionPool<NullConn> {
    ConnectionPool::new(rusty_config(mode, connections), Arc::new(NullFactory)).expect("pool")
}

/// A rusty-db pool (default queue mode) of `connections` private in-memory
/// SQLite databases.
pub fn rusty_sqlite(connections: usize) -> ConnectionPool<rusqlite::Connection> {
    let factory = Arc::new(SqliteConnectionFactory::new(":memory:"));
    ConnectionPool::new(rusty_config(QueueMode::Fair, connections), factory).expect("pool")
}

impl<C: Touch + Send + 'static> GuardPool for ConnectionPool<C> {
    type Conn = C;
    type Guard<'a> = rusty_db::pool::PooledConnectionGuard<C>;
    #[inline]
    fn get(&self) -> Self::Guard<'_> {
        self.acquire().expect("a connection within the timeout")
    }
}

/// Runs each operation as a `CoreRuntime` job; the latency is submit to result.
pub struct Runtime<C: Send + 'static>(pub CoreRuntime<C>);

impl<C: Touch + Send + 'static> Driver for Runtime<C> {
    fn op(&self, workload: Workload, timed: bool) -> Option<u64> {
        let start = timed.then(Instant::now);
        self.0
            .execute(move |conn: &mut C| {
                conn.touch();
                workload.while_holding();
            })
            .join()
            .expect("the job ran");
        start.map(|s| s.elapsed().as_nanos() as u64)
    }
}

// === r2d2 ===

/// r2d2's manager for null connections, with trivial checks.
pub struct NullManager;

impl r2d2::ManageConnection for NullManager {
    type Connection = NullConn;
    type Error = std::io::Error;

    fn connect(&self) -> std::result::Result<NullConn, Self::Error> {
        Ok(NullConn(0))
    }

    fn is_valid(&self, _conn: &mut NullConn) -> std::result::Result<(), Self::Error> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut NullConn) -> bool {
        false
    }
}

/// A fixed-size r2d2 pool: `connections` open and kept open.
fn r2d2_pool<M: r2d2::ManageConnection>(manager: M, connections: usize) -> r2d2::Pool<M> {
    let size = u32::try_from(connections).expect("connections fit in u32");
    r2d2::Pool::builder().max_size(size).min_idle(Some(size)).build(manager).expect("r2d2 pool")
}

/// An r2d2 pool of `connections` null connections (r2d2's defaults:
/// checked on checkout).
pub fn r2d2_null(connections: usize) -> r2d2::Pool<NullManager> {
    r2d2_pool(NullManager, connections)
}

/// An r2d2_sqlite pool of `connections` private in-memory databases.
pub fn r2d2_sqlite(connections: usize) -> r2d2::Pool<r2d2_sqlite::SqliteConnectionManager> {
    r2d2_pool(r2d2_sqlite::SqliteConnectionManager::file(":memory:"), connections)
}

impl<M> GuardPool for r2d2::Pool<M>
where
    M: r2d2::ManageConnection,
    M::Connection: Touch,
{
    type Conn = M::Connection;
    type Guard<'a> = r2d2::PooledConnection<M>;
    #[inline]
    fn get(&self) -> Self::Guard<'_> {
        r2d2::Pool::get(self).expect("a connection within the timeout")
    }
}

// === mutex baselines ===

/// A lock over the idle connections, with a condition variable for
/// waiters: the one part of [`MutexPool`] that differs between `std::sync`
/// and `parking_lot`, so both run the same algorithm.
pub trait Monitor: Sync {
    fn new(idle: Vec<NullConn>) -> Self;
    /// Pops an idle connection, waiting while there is none.
    fn take(&self) -> NullConn;
    /// Pushes a connection back and wakes one waiter.
    fn put(&self, conn: NullConn);
}

/// [`Monitor`] on `std::sync::{Mutex, Condvar}`. Benchmark threads do not
/// panic while holding the lock, and if one did the `Vec` would still be
/// whole, so a poisoned lock is simply taken over.
pub struct StdMonitor {
    idle: std::sync::Mutex<Vec<NullConn>>,
    returned: std::sync::Condvar,
}

impl Monitor for StdMonitor {
    fn new(idle: Vec<NullConn>) -> Self {
        StdMonitor { idle: std::sync::Mutex::new(idle), returned: std::sync::Condvar::new() }
    }

    #[inline]
    fn take(&self) -> NullConn {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let mut idle = self.returned.wait_while(idle, |idle| idle.is_empty()).unwrap_or_else(PoisonError::into_inner);
        idle.pop().expect("not empty after the wait")
    }

    #[inline]
    fn put(&self, conn: NullConn) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        self.returned.notify_one();
    }
}

/// [`Monitor`] on `parking_lot::{Mutex, Condvar}`.
pub struct ParkingLotMonitor {
    idle: parking_lot::Mutex<Vec<NullConn>>,
    returned: parking_lot::Condvar,
}

impl Monitor for ParkingLotMonitor {
    fn new(idle: Vec<NullConn>) -> Self {
        ParkingLotMonitor { idle: parking_lot::Mutex::new(idle), returned: parking_lot::Condvar::new() }
    }

    #[inline]
    fn take(&self) -> NullConn {
        let mut idle = self.idle.lock();
        self.returned.wait_while(&mut idle, |idle| idle.is_empty());
        idle.pop().expect("not empty after the wait")
    }

    #[inline]
    fn put(&self, conn: NullConn) {
        self.idle.lock().push(conn);
        self.returned.notify_one();
    }
}

/// The textbook pool: a `Vec` of idle connections behind one lock, and a
/// condition variable for waiters.
pub struct MutexPool<M>(M);

impl<M: Monitor> MutexPool<M> {
    pub fn new(connections: usize) -> Self {
        MutexPool(M::new((0..connections).map(|_| NullConn(0)).collect()))
    }
}

/// A connection borrowed from a [`MutexPool`].
pub struct MutexGuard<'a, M: Monitor> {
    pool: &'a MutexPool<M>,
    conn: Option<NullConn>,
}

impl<M: Monitor> Deref for MutexGuard<'_, M> {
    type Target = NullConn;
    fn deref(&self) -> &NullConn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl<M: Monitor> DerefMut for MutexGuard<'_, M> {
    fn deref_mut(&mut self) -> &mut NullConn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl<M: Monitor> Drop for MutexGuard<'_, M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.0.put(conn);
        }
    }
}

impl<M: Monitor> GuardPool for MutexPool<M> {
    type Conn = NullConn;
    type Guard<'a>
        = MutexGuard<'a, M>
    where
        M: 'a;
    #[inline]
    fn get(&self) -> MutexGuard<'_, M> {
        MutexGuard { pool: self, conn: Some(self.0.take()) }
    }
}
