//! The r2d2 bridge (feature `r2d2`): any [`r2d2::ManageConnection`] as a
//! [`ConnectionFactory`].
//!
//! Most Rust database drivers already have an r2d2 adapter: a
//! `ManageConnection` that knows how to connect, how to check a connection
//! (`is_valid`) and how to spot a dead one cheaply (`has_broken`), such as
//! `r2d2_postgres::PostgresConnectionManager`,
//! `r2d2_sqlite::SqliteConnectionManager`, `r2d2_mysql::MySqlConnectionManager`,
//! `redis::Client` (with redis' `r2d2` feature) and diesel's
//! `r2d2::ConnectionManager`. [`R2d2ConnectionFactory`] wraps such a manager
//! unchanged, so a project moves from `r2d2::Pool` to a
//! [`ConnectionPool`](crate::pool::ConnectionPool) without writing an
//! adapter, and keeps the connection type it already uses: a guard derefs
//! to `M::Connection` as r2d2's `PooledConnection<M>` does.
//!
//! # What each call maps to
//!
//! | r2d2 | here |
//! |------|------|
//! | `ManageConnection::connect`, then the customizer's `on_acquire` | [`create`](ConnectionFactory::create) |
//! | `is_valid` on check-out (`test_on_check_out`) | [`validate_mut`](ConnectionFactory::validate_mut) on acquire (`validate_on_acquire`), for a connection idle longer than the pool's `validation_bypass_window` (zero: every acquire) |
//! | `has_broken` on every check-in | [`reset`](ConnectionFactory::reset), which runs on every return |
//! | the customizer's `on_release`, as a connection leaves the pool | [`close`](ConnectionFactory::close) |
//!
//! The pool's settings cover r2d2's `Builder`: `max_size` is `max_size`;
//! `min_idle` is roughly `min_size` (r2d2 keeps that many *idle*
//! connections, this pool that many *open*); r2d2 opens `min_idle`
//! connections (by default `max_size`) before `build` returns, this pool
//! `initial_size` before `new` returns; `test_on_check_out` is `validate_on_acquire` (both on by
//! default); `connection_timeout` is `acquire_timeout` (both 30 s by
//! default); `max_lifetime` and `idle_timeout` have the same names but no
//! default here (r2d2's are 30 and 10 minutes); `event_handler` is the
//! pool's `event_listener`; `thread_pool` and `reaper_rate` are the
//! maintenance thread (`maintenance_interval`, `maintenance_service`).
//! r2d2's `error_handler` has no counterpart: a failed `connect` reaches
//! the acquiring caller and the pool's log, a failed `is_valid` this
//! module's log (at `warn`, as r2d2's default `LoggingErrorHandler` logs
//! it at `error`). A pooled connection's `extensions` are not carried over.
//!
//! # Moving over
//!
//! With r2d2:
//!
//! ```text
//! let manager = SqliteConnectionManager::memory();
//! let pool = r2d2::Pool::builder()
//!     .max_size(4)
//!     .min_idle(Some(1))
//!     .connection_timeout(Duration::from_secs(5))
//!     .build(manager)?;
//! let conn = pool.get()?;
//! let two: i64 = conn.query_row("SELECT 1 + 1", [], |row| row.get(0))?;
//! ```
//!
//! The same manager in a [`ConnectionPool`](crate::pool::ConnectionPool):
//!
//! ```
//! use r2d2_sqlite::SqliteConnectionManager;
//! use rusty_db::adapters::r2d2::R2d2ConnectionFactory;
//! use rusty_db::pool::{ConnectionPool, PoolConfig};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let manager = SqliteConnectionManager::memory();
//! let config = PoolConfig::builder()
//!     .max_size(4)
//!     .min_size(1)
//!     .initial_size(1)
//!     .acquire_timeout(Duration::from_secs(5))
//!     .build()?;
//! let pool = ConnectionPool::new(config, Arc::new(R2d2ConnectionFactory::new(manager)))?;
//! let conn = pool.acquire()?;
//! let two: i64 = conn.query_row("SELECT 1 + 1", [], |row| row.get(0))?;
//! assert_eq!(two, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::type_name;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use r2d2::{CustomizeConnection, ManageConnection};

use crate::pool::{ConnectionFactory, PoolError, Result};

/// The `r2d2` this bridge is built against, so that callers name the same
/// `ManageConnection` and `CustomizeConnection` traits without depending on
/// a matching version themselves.
pub use r2d2;

/// A manager's customizer, shared by the factory's clones.
type Customizer<M> = Arc<dyn CustomizeConnection<<M as ManageConnection>::Connection, <M as ManageConnection>::Error>>;

/// An r2d2 [`ManageConnection`] as the [`ConnectionFactory`] of a
/// [`ConnectionPool`](crate::pool::ConnectionPool) of `M::Connection`s.
///
/// - `create` calls [`connect`](ManageConnection::connect), then the
///   customizer's `on_acquire` if one is set
///   ([`with_customizer`](Self::with_customizer)). A failed `on_acquire`
///   drops the connection, as r2d2 does, and fails the `create`.
/// - `validate_mut`, which the pool calls on acquire (`validate_on_acquire`,
///   on by default, r2d2's `test_on_check_out`) for a connection idle
///   longer than its `validation_bypass_window` (500 ms; zero for every
///   acquire, as r2d2), on release when
///   `validate_on_release` is set, and for a guard dropped in a panic,
///   calls [`is_valid`](ManageConnection::is_valid): `Ok(())` is
///   `Ok(true)`; an error is returned (and logged at `warn`, since the pool
///   keeps only the verdict) and the pool closes the connection, as r2d2
///   discards it. On acquire, the pool then tries another connection or
///   creates one, within the acquire's timeout.
/// - `validate`, the `&C` form, cannot ask the manager (both its checks
///   take the connection mutably) and says `Ok(true)`: the pool calls it
///   on acquire for a connection returned within its bypass window, which
///   then goes out unchecked (as HikariCP's does within its
///   `aliveBypassWindowMs`).
/// - `validate_query`, for a [`ConnectionValidator`](crate::pool::ConnectionValidator)
///   with a query, is `is_valid` too: a manager has no way to run a query
///   it does not know. The validator's timeout, fast validation and
///   keep-alive apply as usual.
/// - `reset`, run on every return, calls
///   [`has_broken`](ManageConnection::has_broken): `true` fails the reset,
///   and the pool closes the connection (counted under
///   [`ClosedByReason::broken`](crate::pool::ClosedByReason::broken)), as
///   r2d2 discards it on check-in.
/// - `close` hands the connection to the customizer's `on_release`, or
///   drops it: r2d2 has no close of its own.
///
/// A manager's errors (`M::Error`) reach the caller as
/// [`PoolError::Factory`]. r2d2 does not require them to be `Send + Sync`,
/// which a [`PoolError`] is, so there are two constructors:
/// [`new`](Self::new), for the usual error that is (such as
/// `postgres::Error` from `r2d2_postgres`, `rusqlite::Error` from
/// `r2d2_sqlite`, `redis::RedisError`), keeps it as the `source()`, to
/// downcast to the driver's type;
/// [`new_with_text_errors`](Self::new_with_text_errors), for any other,
/// carries it as a [`ManagerError`]: its message, its `Debug` form, its
/// type's name and the messages of its `source()` chain.
///
/// Panics in the manager or the customizer are caught by the pool like any
/// factory's (see [`ConnectionFactory`]).
pub struct R2d2ConnectionFactory<M: ManageConnection> {
    manager: M,
    customizer: Option<Customizer<M>>,
    /// `PoolError::factory` of the error itself, or of its [`ManagerError`].
    wrap_error: fn(M::Error) -> PoolError,
    /// For `Debug`: whether `wrap_error` keeps the error.
    keeps_errors: bool,
}

impl<M: ManageConnection> R2d2ConnectionFactory<M> {
    /// A factory that opens connections through `manager`. The manager's
    /// errors are the `source()` of the [`PoolError::Factory`] they become,
    /// so `factory_error.get_ref().downcast_ref::<M::Error>()` finds them.
    /// For a manager whose error is not `Send + Sync`, see
    /// [`new_with_text_errors`](Self::new_with_text_errors).
    pub fn new(manager: M) -> Self
    where
        M::Error: Send + Sync,
    {
        R2d2ConnectionFactory { manager, customizer: None, wrap_error: keep_error::<M::Error>, keeps_errors: true }
    }

    /// A factory for any manager, whatever its error type: each error is
    /// carried as a [`ManagerError`] (the error's message, `Debug` form,
    /// type name and `source()` messages), taken when it happens; the error
    /// itself is dropped.
    pub fn new_with_text_errors(manager: M) -> Self {
        R2d2ConnectionFactory { manager, customizer: None, wrap_error: error_as_text::<M::Error>, keeps_errors: false }
    }

    /// Runs r2d2's [`CustomizeConnection`] hooks: `on_acquire` on every new
    /// connection, right after `connect` (an error drops the connection and
    /// fails the `create`), and `on_release` on every connection the pool
    /// closes, whatever the reason, in place of dropping it. Takes the
    /// `Box` r2d2's `Builder::connection_customizer` takes.
    ///
    /// ```
    /// use r2d2_sqlite::{SqliteConnectionManager, rusqlite};
    /// use rusty_db::adapters::r2d2::{R2d2ConnectionFactory, r2d2::CustomizeConnection};
    /// use rusty_db::pool::{ConnectionPool, PoolConfig};
    /// use std::sync::Arc;
    ///
    /// #[derive(Debug)]
    /// struct ForeignKeys;
    ///
    /// impl CustomizeConnection<rusqlite::Connection, rusqlite::Error> for ForeignKeys {
    ///     fn on_acquire(&self, conn: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
    ///         conn.execute_batch("PRAGMA foreign_keys = ON")
    ///     }
    /// }
    ///
    /// let factory = R2d2ConnectionFactory::new(SqliteConnectionManager::memory())
    ///     .with_customizer(Box::new(ForeignKeys));
    /// let config = PoolConfig::builder().max_size(2).min_size(0).initial_size(1).build()?;
    /// let pool = ConnectionPool::new(config, Arc::new(factory))?;
    /// let on: i64 = pool.acquire()?.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    /// assert_eq!(on, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_customizer(mut self, customizer: Box<dyn CustomizeConnection<M::Connection, M::Error>>) -> Self {
        self.customizer = Some(Arc::from(customizer));
        self
    }

    /// The manager connections are opened through.
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// The manager back (the customizer, if any, is dropped).
    pub fn into_inner(self) -> M {
        self.manager
    }
}

impl<M: ManageConnection + Clone> Clone for R2d2ConnectionFactory<M> {
    fn clone(&self) -> Self {
        R2d2ConnectionFactory {
            manager: self.manager.clone(),
            customizer: self.customizer.clone(),
            wrap_error: self.wrap_error,
            keeps_errors: self.keeps_errors,
        }
    }
}

impl<M: ManageConnection + fmt::Debug> fmt::Debug for R2d2ConnectionFactory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("R2d2ConnectionFactory")
            .field("manager", &self.manager)
            .field("customizer", &self.customizer)
            .field("errors", &if self.keeps_errors { "kept" } else { "as text" })
            .finish()
    }
}

impl<M: ManageConnection> ConnectionFactory<M::Connection> for R2d2ConnectionFactory<M> {
    /// `connect`, then the customizer's `on_acquire`; either's error is the
    /// [`PoolError::Factory`].
    fn create(&self) -> Result<M::Connection> {
        let mut conn = self.manager.connect().map_err(self.wrap_error)?;
        if let Some(customizer) = &self.customizer {
            // On an error the connection is dropped here, without
            // `on_release`, as r2d2 does.
            customizer.on_acquire(&mut conn).map_err(self.wrap_error)?;
        }
        Ok(conn)
    }

    /// Always `Ok(true)`: the manager's checks need the connection mutably,
    /// and the pool validates through [`validate_mut`](Self::validate_mut).
    fn validate(&self, conn: &M::Connection) -> Result<bool> {
        let _ = conn;
        Ok(true)
    }

    /// `is_valid`: `Ok(true)`, or its error (logged at `warn`), which
    /// closes the connection.
    fn validate_mut(&self, conn: &mut M::Connection) -> Result<bool> {
        match self.manager.is_valid(conn) {
            Ok(()) => Ok(true),
            Err(e) => {
                log::warn!("r2d2 manager {}: is_valid failed, the connection is closed: {e}", type_name::<M>());
                Err((self.wrap_error)(e))
            }
        }
    }

    /// `is_valid` is a manager's real check (a round trip for a network
    /// database): the pool's bypass window applies.
    fn validation_round_trips(&self) -> bool {
        true
    }

    /// `has_broken`: if it says `true`, an error, which closes the
    /// connection instead of returning it to the pool.
    fn reset(&self, conn: &mut M::Connection) -> Result<()> {
        if self.manager.has_broken(conn) {
            log::debug!("r2d2 manager {}: has_broken on return, the connection is closed", type_name::<M>());
            return Err(PoolError::factory(BROKEN));
        }
        Ok(())
    }

    /// The customizer's `on_release`, or a plain drop.
    fn close(&self, conn: M::Connection) -> Result<()> {
        match &self.customizer {
            Some(customizer) => customizer.on_release(conn),
            None => drop(conn),
        }
        Ok(())
    }
}

/// The error `reset` fails with when `has_broken` says `true`.
const BROKEN: &str = "the r2d2 manager reports the connection broken (has_broken)";

/// `wrap_error` for an error that can travel in a [`PoolError`] itself.
fn keep_error<E: StdError + Send + Sync + 'static>(error: E) -> PoolError {
    PoolError::factory(error)
}

/// `wrap_error` for any other: its text.
fn error_as_text<E: StdError + 'static>(error: E) -> PoolError {
    PoolError::factory(ManagerError::capture(&error, Some(type_name::<E>())))
}

/// A manager's error that is not `Send + Sync`, as text: what
/// [`R2d2ConnectionFactory::new_with_text_errors`] carries in a
/// [`PoolError::Factory`] (reach it with
/// [`FactoryError::get_ref`](crate::pool::FactoryError::get_ref) and
/// `downcast_ref::<ManagerError>()`).
///
/// Its `Display` is the error's own message; its `source()` is the next
/// error of the original's `source()` chain, captured the same way (up to
/// 32 deep).
///
/// ```
/// use rusty_db::adapters::r2d2::ManagerError;
/// use std::error::Error;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let text = ManagerError::capture(&io, Some("std::io::Error"));
/// assert_eq!(text.to_string(), "refused");
/// assert_eq!(text.error_type(), Some("std::io::Error"));
/// assert!(text.debug().contains("ConnectionRefused"));
/// assert!(text.source().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerError {
    message: String,
    debug: String,
    error_type: Option<&'static str>,
    source: Option<Box<ManagerError>>,
}

/// How deep [`ManagerError::capture`] follows a `source()` chain.
const MAX_SOURCE_DEPTH: usize = 32;

impl ManagerError {
    /// Captures `error`'s message and `Debug` form, and its `source()`
    /// chain's; `error_type` names its type when the caller knows it.
    pub fn capture<E: StdError + ?Sized>(error: &E, error_type: Option<&'static str>) -> Self {
        let mut chain = Vec::new();
        let mut next = error.source();
        while let Some(source) = next {
            if chain.len() == MAX_SOURCE_DEPTH {
                break;
            }
            chain.push(ManagerError::one(source, None));
            next = source.source();
        }
        let mut top = ManagerError::one(error, error_type);
        // Link the chain back to front: each source owns the next.
        let mut below = None;
        for mut link in chain.into_iter().rev() {
            link.source = below.map(Box::new);
            below = Some(link);
        }
        top.source = below.map(Box::new);
        top
    }

    /// One error, without its sources.
    fn one<E: StdError + ?Sized>(error: &E, error_type: Option<&'static str>) -> Self {
        ManagerError { message: error.to_string(), debug: format!("{error:?}"), error_type, source: None }
    }

    /// The name of the original error's type (as `std::any::type_name`
    /// gives it); `None` for an error further down its `source()` chain,
    /// known only as a `dyn Error`.
    pub fn error_type(&self) -> Option<&'static str> {
        self.error_type
    }

    /// The original error's `Debug` form.
    pub fn debug(&self) -> &str {
        &self.debug
    }
}

impl fmt::Display for ManagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ManagerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::pool::{ConnectionPool, ConnectionValidator, Hook, PoolConfig, PoolStatistics};
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// What the fake manager is told to do, and what it saw.
    #[derive(Debug, Default)]
    struct Script {
        connects: AtomicUsize,
        is_valid_calls: AtomicUsize,
        has_broken_calls: AtomicUsize,
        fail_connect: AtomicBool,
        invalid: AtomicBool,
        broken: AtomicBool,
        panic_connect: AtomicBool,
        panic_is_valid: AtomicBool,
        panic_has_broken: AtomicBool,
    }

    impl Script {
        fn count(counter: &AtomicUsize) -> usize {
            counter.load(Ordering::SeqCst)
        }
        fn set(flag: &AtomicBool, on: bool) {
            flag.store(on, Ordering::SeqCst);
        }
        fn is(flag: &AtomicBool) -> bool {
            flag.load(Ordering::SeqCst)
        }
    }

    #[derive(Debug, Clone)]
    struct FakeManager(Arc<Script>);

    #[derive(Debug)]
    struct FakeConn {
        id: usize,
        customized: bool,
    }

    #[derive(Debug, PartialEq)]
    struct FakeError(String);

    impl fmt::Display for FakeError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl StdError for FakeError {}

    impl ManageConnection for FakeManager {
        type Connection = FakeConn;
        type Error = FakeError;

        fn connect(&self) -> std::result::Result<FakeConn, FakeError> {
            let id = self.0.connects.fetch_add(1, Ordering::SeqCst) + 1;
            if Script::is(&self.0.panic_connect) {
                panic!("connect panics");
            }
            if Script::is(&self.0.fail_connect) {
                return Err(FakeError(format!("connect {id} refused")));
            }
            Ok(FakeConn { id, customized: false })
        }

        fn is_valid(&self, conn: &mut FakeConn) -> std::result::Result<(), FakeError> {
            self.0.is_valid_calls.fetch_add(1, Ordering::SeqCst);
            if Script::is(&self.0.panic_is_valid) {
                panic!("is_valid panics");
            }
            if Script::is(&self.0.invalid) {
                return Err(FakeError(format!("connection {} went away", conn.id)));
            }
            Ok(())
        }

        fn has_broken(&self, _: &mut FakeConn) -> bool {
            self.0.has_broken_calls.fetch_add(1, Ordering::SeqCst);
            if Script::is(&self.0.panic_has_broken) {
                panic!("has_broken panics");
            }
            Script::is(&self.0.broken)
        }
    }

    /// A fake manager, and a pool of `initial` connections on it (at most
    /// `max`, none kept open for `min_size`, so nothing is refilled behind
    /// the test's back).
    fn pool_of(
        initial: usize,
        max: usize,
        tweak: impl FnOnce(crate::pool::PoolConfigBuilder) -> crate::pool::PoolConfigBuilder,
    ) -> (Arc<Script>, ConnectionPool<FakeConn>) {
        let script = Arc::new(Script::default());
        let factory = R2d2ConnectionFactory::new(FakeManager(Arc::clone(&script)));
        // `is_valid` on every check-out, as r2d2's `test_on_check_out` does:
        // these tests count its calls.
        let config = PoolConfig::builder()
            .min_size(0)
            .max_size(max)
            .initial_size(initial)
            .validation_bypass_window(Duration::ZERO)
            .acquire_timeout(Duration::from_secs(5));
        let pool = ConnectionPool::new(tweak(config).build().unwrap(), Arc::new(factory)).unwrap();
        (script, pool)
    }

    fn created_closed(stats: &PoolStatistics) -> (u64, u64) {
        (stats.connections_created, stats.connections_closed)
    }

    #[test]
    fn a_failed_connect_reaches_the_caller_as_the_managers_own_error() {
        let (script, pool) = pool_of(0, 1, |c| c.acquire_timeout(Duration::from_millis(200)));
        Script::set(&script.fail_connect, true);
        let err = pool.acquire().expect_err("connect fails");
        let PoolError::Factory(ref factory_error) = err else { panic!("expected Factory, got {err:?}") };
        let fake = factory_error.get_ref().downcast_ref::<FakeError>().expect("the manager's error itself");
        assert!(fake.0.starts_with("connect ") && fake.0.ends_with(" refused"), "{fake:?}");
        assert!(err.to_string().contains("refused"), "{err}");
        let stats = pool.statistics();
        assert!(stats.connection_create_failures >= 1, "{stats:?}");
        assert_eq!(created_closed(&stats), (0, 0));

        Script::set(&script.fail_connect, false);
        // Past the backoff the failures started.
        let conn = pool.acquire_timeout(Duration::from_secs(5)).expect("connect works again");
        assert_eq!(conn.id, Script::count(&script.connects));
        assert_eq!(pool.statistics().connections_created, 1);
    }

    #[test]
    fn is_valid_runs_on_acquire_and_an_error_replaces_the_connection() {
        let (script, pool) = pool_of(1, 1, |c| c);
        assert_eq!(Script::count(&script.connects), 1);
        let first = pool.acquire().unwrap();
        assert_eq!((first.id, Script::count(&script.is_valid_calls)), (1, 1), "is_valid on check-out");
        drop(first);

        Script::set(&script.invalid, true);
        let second = pool.acquire().expect("the invalid connection is replaced by a new one");
        // A new connection is not validated: one more is_valid, for the old one.
        assert_eq!((second.id, Script::count(&script.is_valid_calls)), (2, 2));
        drop(second);
        let stats = pool.statistics();
        assert_eq!(created_closed(&stats), (2, 1));
        assert_eq!((stats.closed_by_reason.validation, stats.validation_failures), (1, 1));

        Script::set(&script.invalid, false);
        let third = pool.acquire().unwrap();
        assert_eq!((third.id, Script::count(&script.is_valid_calls)), (2, 3), "the replacement is kept");
        assert_eq!(created_closed(&pool.statistics()), (2, 1));
    }

    #[test]
    fn without_validate_on_acquire_is_valid_is_not_called() {
        let (script, pool) = pool_of(1, 1, |c| c.validate_on_acquire(false));
        Script::set(&script.invalid, true);
        for _ in 0..3 {
            assert_eq!(pool.acquire().unwrap().id, 1);
        }
        assert_eq!(Script::count(&script.is_valid_calls), 0, "r2d2's test_on_check_out(false)");
        assert_eq!(Script::count(&script.has_broken_calls), 3, "has_broken still runs on every return");
    }

    #[test]
    fn validate_on_release_calls_is_valid_on_return() {
        let (script, pool) = pool_of(1, 1, |c| c.validate_on_acquire(false).validate_on_release(true));
        drop(pool.acquire().unwrap());
        assert_eq!(Script::count(&script.is_valid_calls), 1);
        Script::set(&script.invalid, true);
        drop(pool.acquire().unwrap());
        let stats = pool.statistics();
        assert_eq!((created_closed(&stats), stats.closed_by_reason.validation), ((1, 1), 1));
        assert_eq!(pool.size(), 0);
    }

    #[test]
    fn has_broken_runs_on_every_return_and_true_closes_the_connection() {
        let (script, pool) = pool_of(1, 1, |c| c);
        for _ in 0..3 {
            assert_eq!(pool.acquire().unwrap().id, 1);
        }
        assert_eq!(Script::count(&script.has_broken_calls), 3);
        assert_eq!(created_closed(&pool.statistics()), (1, 0));

        let conn = pool.acquire().unwrap();
        Script::set(&script.broken, true);
        drop(conn);
        assert_eq!(Script::count(&script.has_broken_calls), 4);
        let stats = pool.statistics();
        assert_eq!((created_closed(&stats), stats.closed_by_reason.broken), ((1, 1), 1));
        assert_eq!((pool.size(), pool.idle()), (0, 0), "not returned to the pool");

        Script::set(&script.broken, false);
        let conn = pool.acquire().expect("a new connection");
        assert_eq!(conn.id, 2);
        drop(conn);
        assert_eq!(created_closed(&pool.statistics()), (2, 1));
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn validate_by_reference_says_true_without_asking_the_manager() {
        let script = Arc::new(Script::default());
        let factory = R2d2ConnectionFactory::new(FakeManager(Arc::clone(&script)));
        let mut conn = factory.create().unwrap();
        Script::set(&script.invalid, true);
        assert!(factory.validate(&conn).unwrap());
        assert_eq!(Script::count(&script.is_valid_calls), 0);

        let err = factory.validate_mut(&mut conn).expect_err("is_valid fails");
        let PoolError::Factory(ref e) = err else { panic!("expected Factory, got {err:?}") };
        assert_eq!(e.get_ref().downcast_ref::<FakeError>(), Some(&FakeError("connection 1 went away".into())));
        let err = factory.validate_query(&mut conn, "SELECT 1").expect_err("a validator's query is is_valid");
        assert!(err.to_string().contains("connection 1 went away"), "{err}");
        assert_eq!(Script::count(&script.is_valid_calls), 2);

        Script::set(&script.invalid, false);
        assert!(factory.validate_query(&mut conn, "SELECT 1").unwrap());
        factory.close(conn).unwrap();
        assert_eq!(Script::count(&script.connects), 1);
        assert!(Arc::ptr_eq(&factory.manager().0, &script));
        assert!(Arc::ptr_eq(&factory.into_inner().0, &script));
    }

    #[test]
    fn a_validators_query_reaches_is_valid() {
        let validator = ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 1".into());
        let (script, pool) = pool_of(1, 1, |c| c.validator(validator));
        drop(pool.acquire().unwrap());
        assert_eq!(Script::count(&script.is_valid_calls), 1);
        Script::set(&script.invalid, true);
        assert_eq!(pool.acquire().unwrap().id, 2);
        let stats = pool.validator_statistics().unwrap();
        assert_eq!((stats.successful_validations, stats.failed_validations), (1, 1));
    }

    /// Records the customizer's calls: connection ids acquired and released.
    #[derive(Debug, Default)]
    struct Recorder {
        acquired: parking_lot::Mutex<Vec<usize>>,
        released: parking_lot::Mutex<Vec<usize>>,
        fail: AtomicBool,
    }

    #[derive(Debug)]
    struct Customize(Arc<Recorder>);

    impl CustomizeConnection<FakeConn, FakeError> for Customize {
        fn on_acquire(&self, conn: &mut FakeConn) -> std::result::Result<(), FakeError> {
            self.0.acquired.lock().push(conn.id);
            if Script::is(&self.0.fail) {
                return Err(FakeError(format!("on_acquire rejects connection {}", conn.id)));
            }
            conn.customized = true;
            Ok(())
        }

        fn on_release(&self, conn: FakeConn) {
            self.0.released.lock().push(conn.id);
        }
    }

    #[test]
    fn the_customizer_runs_after_connect_and_as_the_pool_closes_a_connection() {
        let script = Arc::new(Script::default());
        let recorder = Arc::new(Recorder::default());
        let factory = R2d2ConnectionFactory::new(FakeManager(Arc::clone(&script)))
            .with_customizer(Box::new(Customize(Arc::clone(&recorder))));
        assert!(format!("{factory:?}").contains("Customize"), "{factory:?}");
        let config = PoolConfig::builder().min_size(0).max_size(1).initial_size(1).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(factory)).unwrap();
        assert_eq!(*recorder.acquired.lock(), [1]);

        let conn = pool.acquire().unwrap();
        assert!(conn.customized, "on_acquire ran on the connection handed out");
        Script::set(&script.broken, true);
        drop(conn);
        assert_eq!(*recorder.released.lock(), [1], "on_release as has_broken closes it");
        Script::set(&script.broken, false);

        recorder.fail.store(true, Ordering::SeqCst);
        let err = pool.acquire_timeout(Duration::from_millis(200)).expect_err("on_acquire fails the create");
        let PoolError::Factory(ref e) = err else { panic!("expected Factory, got {err:?}") };
        let fake = e.get_ref().downcast_ref::<FakeError>().expect("the customizer's error");
        assert!(fake.0.starts_with("on_acquire rejects connection"), "{fake:?}");
        assert_eq!(*recorder.released.lock(), [1], "a rejected connection is dropped, not released (as in r2d2)");
        assert_eq!(pool.statistics().connections_created, 1);

        recorder.fail.store(false, Ordering::SeqCst);
        let conn = pool.acquire().expect("on_acquire accepts again");
        assert!(conn.customized);
        let id = conn.id;
        drop(conn);
        pool.close();
        assert_eq!(recorder.released.lock().last(), Some(&id), "on_release as the pool closes");
        assert_eq!(pool.statistics().connections_closed, 2);
    }

    #[test]
    fn panics_in_the_manager_cost_the_pool_nothing() {
        let (script, pool) = pool_of(1, 1, |c| c.acquire_timeout(Duration::from_millis(500)));

        Script::set(&script.panic_is_valid, true);
        assert_eq!(pool.acquire().expect("a panicking is_valid fails the check").id, 2);
        Script::set(&script.panic_is_valid, false);

        let conn = pool.acquire().unwrap();
        Script::set(&script.panic_has_broken, true);
        drop(conn);
        Script::set(&script.panic_has_broken, false);
        assert_eq!(pool.size(), 0, "a panicking has_broken closes the connection");

        Script::set(&script.panic_connect, true);
        assert!(matches!(pool.acquire(), Err(PoolError::Factory(_))));
        Script::set(&script.panic_connect, false);
        let conn = pool.acquire_timeout(Duration::from_secs(5)).expect("the slot was not lost");
        drop(conn);

        let stats = pool.statistics();
        let panics = &stats.hook_panics;
        assert_eq!((panics.get(Hook::Validate), panics.get(Hook::Reset)), (1, 1));
        assert!(panics.get(Hook::Create) >= 1);
        assert_eq!((stats.closed_by_reason.validation, stats.closed_by_reason.broken), (1, 1));
        assert_eq!(pool.size(), 1);
    }

    /// An error that is neither `Send` nor `Sync`, with a source.
    #[derive(Debug)]
    struct LocalError {
        message: Rc<str>,
        cause: std::io::Error,
    }

    impl fmt::Display for LocalError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl StdError for LocalError {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.cause)
        }
    }

    #[derive(Debug)]
    struct LocalManager {
        valid: AtomicBool,
    }

    impl ManageConnection for LocalManager {
        type Connection = u32;
        type Error = LocalError;

        fn connect(&self) -> std::result::Result<u32, LocalError> {
            if self.valid.load(Ordering::SeqCst) {
                return Ok(7);
            }
            Err(LocalError {
                message: "no route to the database".into(),
                cause: std::io::Error::new(std::io::ErrorKind::HostUnreachable, "host unreachable"),
            })
        }

        fn is_valid(&self, _: &mut u32) -> std::result::Result<(), LocalError> {
            Ok(())
        }

        fn has_broken(&self, _: &mut u32) -> bool {
            false
        }
    }

    #[test]
    fn an_error_that_is_not_send_travels_as_its_text() {
        let factory = Arc::new(R2d2ConnectionFactory::new_with_text_errors(LocalManager { valid: false.into() }));
        assert!(format!("{factory:?}").contains("as text"), "{factory:?}");
        let config = PoolConfig::builder()
            .min_size(0)
            .max_size(1)
            .initial_size(0)
            .acquire_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let pool = ConnectionPool::new(config, Arc::clone(&factory)).unwrap();
        let err = pool.acquire().expect_err("connect fails");
        assert_eq!(err.to_string(), "the connection factory failed: no route to the database");
        let PoolError::Factory(ref e) = err else { panic!("expected Factory, got {err:?}") };
        let text = e.get_ref().downcast_ref::<ManagerError>().expect("a ManagerError");
        assert_eq!(text.error_type(), Some(type_name::<LocalError>()));
        assert!(text.debug().starts_with("LocalError {") && text.debug().contains("HostUnreachable"), "{text:?}");
        let cause = text.source().expect("the io::Error's text").downcast_ref::<ManagerError>().unwrap();
        assert_eq!((cause.to_string().as_str(), cause.error_type()), ("host unreachable", None));
        assert!(cause.source().is_none());

        factory.manager().valid.store(true, Ordering::SeqCst);
        assert_eq!(*pool.acquire_timeout(Duration::from_secs(5)).unwrap(), 7);
    }

    #[test]
    fn a_long_source_chain_is_captured_up_to_its_bound() {
        #[derive(Debug)]
        struct Link(usize, Option<Box<Link>>);
        impl fmt::Display for Link {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "link {}", self.0)
            }
        }
        impl StdError for Link {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.1.as_deref().map(|l| l as &(dyn StdError + 'static))
            }
        }
        let chain = (0..100).rev().fold(None, |below, i| Some(Box::new(Link(i, below)))).unwrap();
        let text = ManagerError::capture(&*chain, None);
        let mut messages = vec![text.to_string()];
        let mut next = text.source();
        while let Some(e) = next {
            messages.push(e.to_string());
            next = e.source();
        }
        assert_eq!(messages.len(), 1 + MAX_SOURCE_DEPTH);
        assert_eq!(messages[..3], ["link 0", "link 1", "link 2"]);
        assert_eq!(messages.last().unwrap(), &format!("link {MAX_SOURCE_DEPTH}"));
    }
}
