//! The pools under test, behind one small interface: rusty-db (fair,
//! unfair, and through `CoreRuntime`), r2d2, and a mutex-and-condvar
//! baseline, each over a null connection or SQLite.

use std::hint::black_box;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use rusty_db::adapters::sqlite::{SqliteConnectionFactory, rusqlite};
use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, QueueMode, Result};
use rusty_db::runtime::CoreRuntime;

use crate::workload::Workload;

/// Connections in every pool.
pub const CONNECTIONS: usize = 8;

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

fn rusty_config(mode: QueueMode) -> PoolConfig {
    PoolConfig::builder()
        .min_size(CONNECTIONS)
        .max_size(CONNECTIONS)
        .initial_size(CONNECTIONS)
        .queue_mode(mode)
        .build()
        .expect("valid config")
}

/// A rusty-db pool of null connections.
pub fn rusty_null(mode: QueueMode) -> ConnectionPool<NullConn> {
    ConnectionPool::new(rusty_config(mode), Arc::new(NullFactory)).expect("pool")
}

/// A rusty-db pool of private in-memory SQLite databases.
pub fn rusty_sqlite() -> ConnectionPool<rusqlite::Connection> {
    ConnectionPool::new(rusty_config(QueueMode::Fair), Arc::new(SqliteConnectionFactory::new(":memory:")))
        .expect("pool")
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

fn r2d2_pool<M: r2d2::ManageConnection>(manager: M) -> r2d2::Pool<M> {
    let size = CONNECTIONS as u32;
    r2d2::Pool::builder().max_size(size).min_idle(Some(size)).build(manager).expect("r2d2 pool")
}

/// An r2d2 pool of null connections (r2d2's defaults: checked on checkout).
pub fn r2d2_null() -> r2d2::Pool<NullManager> {
    r2d2_pool(NullManager)
}

/// An r2d2_sqlite pool of private in-memory databases.
pub fn r2d2_sqlite() -> r2d2::Pool<r2d2_sqlite::SqliteConnectionManager> {
    r2d2_pool(r2d2_sqlite::SqliteConnectionManager::file(":memory:"))
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

// === mutex baseline ===

/// The textbook pool: a `Vec` of idle connections behind one lock, and a
/// condition variable for waiters.
pub struct MutexPool {
    idle: Mutex<Vec<NullConn>>,
    returned: Condvar,
}

impl MutexPool {
    pub fn new() -> Self {
        MutexPool { idle: Mutex::new((0..CONNECTIONS).map(|_| NullConn(0)).collect()), returned: Condvar::new() }
    }
}

/// A connection borrowed from a [`MutexPool`].
pub struct MutexGuard<'a> {
    pool: &'a MutexPool,
    conn: Option<NullConn>,
}

impl Deref for MutexGuard<'_> {
    type Target = NullConn;
    fn deref(&self) -> &NullConn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl DerefMut for MutexGuard<'_> {
    fn deref_mut(&mut self) -> &mut NullConn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().push(conn);
            self.pool.returned.notify_one();
        }
    }
}

impl GuardPool for MutexPool {
    type Conn = NullConn;
    type Guard<'a> = MutexGuard<'a>;
    #[inline]
    fn get(&self) -> MutexGuard<'_> {
        let mut idle = self.idle.lock();
        loop {
            if let Some(conn) = idle.pop() {
                return MutexGuard { pool: self, conn: Some(conn) };
            }
            self.returned.wait(&mut idle);
        }
    }
}
