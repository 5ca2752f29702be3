//! The pools under test, each configured as its docs give by default
//! unless its name says otherwise, and each opened with all `P` of its
//! sessions before a case:
//!
//! - `rusty-db defaults`: `min_size = initial_size = max_size = P`, the
//!   rest default: on acquire the free check (the driver's view and a peek
//!   at the socket) within the 500 ms validation bypass window and a round
//!   trip past it; on release a `ROLLBACK` only for a session left in a
//!   transaction (`ResetPolicy::RollbackIfNeeded`).
//! - `rusty-db lean`: the same without the check, and no reset query: its
//!   cheapest settings.
//! - `r2d2`: r2d2_postgres, `max_size = min_idle = P`, checked on checkout
//!   (`test_on_check_out`, r2d2's default: an empty query).
//! - `r2d2 no check`: the same without the check.
//! - `deadpool-postgres (async)`: see `async_pool.rs`.
//!
//! Opening primes every session for the workload: the pool's `P` sessions
//! are borrowed at once and the workload's statements prepared on each
//! through the pool's cache, so no case pays a first prepare (and the
//! calibration, which opens the pool the same way, counts what priming
//! costs the server).

use std::sync::Arc;
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use rusty_db::adapters::postgres::postgres::{Client, NoTls, Statement};
use rusty_db::adapters::postgres::{PgConnection, PostgresConnectionFactory};
use rusty_db::pool::{ConnectionPool, PoolConfig, PooledConnectionGuard};

use crate::async_pool::AsyncPool;
use crate::run::{self, Borrow, Outcome};
use crate::server::Server;
use crate::workload::{Session, Workload};

/// A pool under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    RustyDefaults,
    RustyLean,
    R2d2,
    R2d2NoCheck,
    Deadpool,
}

impl Subject {
    pub const ALL: [Subject; 5] =
        [Subject::RustyDefaults, Subject::RustyLean, Subject::R2d2, Subject::R2d2NoCheck, Subject::Deadpool];

    pub fn name(self) -> &'static str {
        match self {
            Subject::RustyDefaults => "rusty-db defaults",
            Subject::RustyLean => "rusty-db lean",
            Subject::R2d2 => "r2d2",
            Subject::R2d2NoCheck => "r2d2 no check",
            Subject::Deadpool => "deadpool-postgres (async)",
        }
    }

    /// Opens the pool with `connections` sessions, primed for `workload`.
    pub fn open(self, server: &Server, connections: usize, workload: Workload) -> Box<dyn Open> {
        match self {
            Subject::RustyDefaults => Blocking::primed(rusty(server, connections, false), connections, workload),
            Subject::RustyLean => Blocking::primed(rusty(server, connections, true), connections, workload),
            Subject::R2d2 => Blocking::primed(r2d2(server, connections, true), connections, workload),
            Subject::R2d2NoCheck => Blocking::primed(r2d2(server, connections, false), connections, workload),
            Subject::Deadpool => Box::new(AsyncPool::open(server, connections, workload)),
        }
    }
}

/// A pool opened for one case.
pub trait Open {
    /// Runs `workload` on `threads` workers for `warm_up`, then `duration`.
    fn run(&self, workload: Workload, threads: usize, warm_up: Duration, duration: Duration) -> Outcome;

    /// Closes the pool, so that its sessions end (and flush their statistics).
    fn close(self: Box<Self>);
}

/// A blocking pool that can be closed.
trait Close: Borrow {
    fn close(self);
}

/// A blocking pool run by threads.
struct Blocking<P>(P);

impl<P: Close + 'static> Blocking<P> {
    /// Borrows all `connections` sessions at once and prepares the
    /// workload's statements on each.
    fn primed(pool: P, connections: usize, workload: Workload) -> Box<dyn Open> {
        let mut held: Vec<_> = (0..connections).map(|_| pool.borrow()).collect();
        for session in &mut held {
            for sql in workload.statements() {
                let _ = session.cached(sql);
            }
        }
        drop(held);
        Box::new(Blocking(pool))
    }
}

impl<P: Close> Open for Blocking<P> {
    fn run(&self, workload: Workload, threads: usize, warm_up: Duration, duration: Duration) -> Outcome {
        run::run(&self.0, workload, threads, warm_up, duration)
    }

    fn close(self: Box<Self>) {
        self.0.close();
    }
}

// === rusty-db ===

/// rusty-db with all `connections` open; `lean` leaves out the check on
/// acquire and the reset on release.
fn rusty(server: &Server, connections: usize, lean: bool) -> ConnectionPool<PgConnection> {
    let factory = PostgresConnectionFactory::new(server.url()).expect("a valid connection string");
    let factory = if lean { factory.with_reset_query(None) } else { factory };
    let config = PoolConfig::builder()
        .min_size(connections)
        .initial_size(connections)
        .max_size(connections)
        .validate_on_acquire(!lean)
        .build()
        .expect("a valid pool config");
    ConnectionPool::new(config, Arc::new(factory)).expect("rusty-db opens its sessions")
}

impl Session for PooledConnectionGuard<PgConnection> {
    fn client(&mut self) -> &mut Client {
        let conn: &mut PgConnection = self;
        conn.client()
    }

    fn cached(&mut self, sql: &'static str) -> Option<Statement> {
        Some(self.prepare_cached(sql).expect("a statement prepared through rusty-db's cache"))
    }
}

impl Borrow for ConnectionPool<PgConnection> {
    type Session<'a> = PooledConnectionGuard<PgConnection>;

    fn borrow(&self) -> PooledConnectionGuard<PgConnection> {
        self.acquire().expect("a rusty-db session within the acquire timeout")
    }
}

impl Close for ConnectionPool<PgConnection> {
    fn close(self) {
        ConnectionPool::close(&self);
    }
}

// === r2d2 ===

type R2d2Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// r2d2_postgres with all `connections` open, checked on checkout or not.
fn r2d2(server: &Server, connections: usize, check: bool) -> R2d2Pool {
    let size = u32::try_from(connections).expect("connections fit in u32");
    let manager = PostgresConnectionManager::new(server.config(), NoTls);
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .test_on_check_out(check)
        .build(manager)
        .expect("r2d2 opens its sessions")
}

impl Session for r2d2::PooledConnection<PostgresConnectionManager<NoTls>> {
    fn client(&mut self) -> &mut Client {
        self
    }

    fn cached(&mut self, _sql: &'static str) -> Option<Statement> {
        None
    }
}

impl Borrow for R2d2Pool {
    type Session<'a> = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

    fn borrow(&self) -> Self::Session<'_> {
        self.get().expect("an r2d2 session within the connection timeout")
    }
}

impl Close for R2d2Pool {
    /// r2d2 has no close: dropping the last handle drops its sessions,
    /// each sending the server a Terminate.
    fn close(self) {
        drop(self);
    }
}
