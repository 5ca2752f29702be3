//! SQLite through `rusqlite` (feature `sqlite`, on by default).
//!
//! SQLite is embedded, so a connection cannot go stale the way a socket does:
//! this factory's job is to open every pooled connection with the same
//! settings (busy timeout, WAL, the caller's PRAGMAs) and to make sure a
//! connection returned mid-transaction never hands that transaction to the
//! next borrower. A [`ConnectionValidator`](crate::pool::ConnectionValidator)'s
//! query runs on the pooled connection itself (see
//! [`SqliteConnectionFactory`]'s `validate_query`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::pool::{
    ConnectionDescription, ConnectionFactory, PoolConfig, PoolError, PrepareStatement, Result, ValidationQuery,
};

/// The `rusqlite` this adapter is built against, so that callers name the
/// same `Connection` type without depending on a matching version themselves.
pub use rusqlite;

/// How long a statement waits for a lock held by another connection before
/// failing with `SQLITE_BUSY`, unless [`SqliteConnectionFactory::with_busy_timeout`]
/// says otherwise.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest busy timeout SQLite accepts: `i32::MAX` milliseconds (about 24.8 days).
const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

type InitHook = dyn Fn(&Connection) -> rusqlite::Result<()> + Send + Sync;

/// Opens [`rusqlite::Connection`]s to one SQLite database for a
/// [`ConnectionPool`](crate::pool::ConnectionPool).
///
/// Every new connection gets, in this order: the busy timeout (default
/// [`DEFAULT_BUSY_TIMEOUT`]); on a file database, `PRAGMA journal_mode=WAL`
/// and `PRAGMA synchronous=NORMAL` (readers and the writer stop blocking
/// each other; see [`with_wal`](Self::with_wal)); then the
/// [`with_init`](Self::with_init) hook.
///
/// - `validate` is as cheap as r2d2_sqlite's `is_valid` (about 2 ns each,
///   measured side by side in `benches/cycle.rs`): it checks that the
///   connection is not inside a transaction (`sqlite3_get_autocommit`), the
///   one way an embedded connection goes bad between borrowers. It makes
///   no query: an embedded connection has no socket to lose, and reading
///   the database file could fail with `SQLITE_BUSY` under write contention
///   and close a healthy connection. (It used to step a cached `SELECT 1`,
///   about 130 ns, which checked nothing more.) To check the file or a
///   table, give the pool a validator query (below).
/// - `reset` rolls back a transaction the borrower left open, so the next
///   borrower starts in autocommit mode.
/// - `validate_query` is how a pool's
///   [`ConnectionValidator`](crate::pool::ConnectionValidator) query
///   reaches the database: the pool calls it (on acquire or release when
///   configured, and for keep-alive) with the validator's query, which is
///   prepared once per connection through the statement cache
///   (`prepare_cached`) and stepped once per validation; the connection is
///   valid if the first step yields a row without error. So
///   `with_query("SELECT 1 FROM accounts LIMIT 1".into())` fails while that
///   table is missing, empty or unreadable. A validator without a query
///   uses `validate` instead. `rusqlite::Connection` also implements
///   [`ValidationQuery`], so [`ConnectionValidator::validate`](crate::pool::ConnectionValidator::validate)
///   can check a connection held outside a pool the same way.
///
/// A `":memory:"` path gives every pooled connection its own private, empty
/// database. To share one in-memory database between the pool's
/// connections, use a URI such as `"file:shared?mode=memory&cache=shared"`.
///
/// ```
/// use rusty_db::adapters::sqlite::SqliteConnectionFactory;
/// use rusty_db::pool::{ConnectionPool, PoolConfig};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let path = std::env::temp_dir().join(format!("rusty-db-doc-{}.db", std::process::id()));
/// let factory = SqliteConnectionFactory::new(&path)
///     .with_busy_timeout(Duration::from_secs(2))
///     .with_init(|conn| conn.execute_batch("PRAGMA foreign_keys = ON"));
/// let config = PoolConfig::builder().min_size(1).max_size(4).initial_size(1).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(factory))?;
///
/// let conn = pool.acquire()?;
/// conn.execute_batch("CREATE TABLE IF NOT EXISTS notes (body TEXT); DELETE FROM notes;")?;
/// conn.execute("INSERT INTO notes (body) VALUES (?1)", ["hello"])?;
/// let count: i64 = conn.query_row("SELECT count(*) FROM notes", [], |row| row.get(0))?;
/// assert_eq!(count, 1);
/// drop(conn); // back to the pool
///
/// drop(pool); // closes the connections
/// for suffix in ["", "-wal", "-shm"] {
///     let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SqliteConnectionFactory {
    path: PathBuf,
    flags: OpenFlags,
    busy_timeout: Duration,
    wal: bool,
    statement_cache_capacity: Option<usize>,
    /// The first pool's `statement_cache_size`, from `attach`.
    pool_cache_size: Arc<OnceLock<usize>>,
    init: Option<Arc<InitHook>>,
}

impl SqliteConnectionFactory {
    /// A factory for the database at `path`, created if it does not exist
    /// (with the default open flags). `":memory:"` and `file:` URIs work too.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConnectionFactory {
            path: path.into(),
            flags: OpenFlags::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            wal: true,
            statement_cache_capacity: None,
            pool_cache_size: Arc::default(),
            init: None,
        }
    }

    /// The database path the factory opens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a statement waits for another connection's lock before
    /// failing with `SQLITE_BUSY`. Default [`DEFAULT_BUSY_TIMEOUT`] (5 s);
    /// zero fails at once; values above `i32::MAX` ms (about 24.8 days) are
    /// capped there.
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
        self
    }

    /// Whether to set `PRAGMA journal_mode=WAL` and `PRAGMA synchronous=NORMAL`
    /// on file databases. Default `true`; in-memory databases are never
    /// switched, and neither are read-only connections (WAL must then already
    /// be on, or off, in the file).
    #[must_use]
    pub fn with_wal(mut self, enabled: bool) -> Self {
        self.wal = enabled;
        self
    }

    /// The flags passed to `sqlite3_open_v2`. Default [`OpenFlags::default()`]
    /// (read-write, create, URI filenames, no mutex). Use
    /// `SQLITE_OPEN_READ_ONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NO_MUTEX` for a
    /// pool of readers.
    #[must_use]
    pub fn with_open_flags(mut self, flags: OpenFlags) -> Self {
        self.flags = flags;
        self
    }

    /// How many prepared statements each connection keeps for
    /// `prepare_cached`. Default: the pool's `statement_cache_size` (told
    /// through `attach`), or rusqlite's 16 outside a pool.
    #[must_use]
    pub fn with_statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache_capacity = Some(capacity);
        self
    }

    /// Runs `init` on every new connection, after the built-in settings:
    /// PRAGMAs, functions, attached databases. An error fails that creation
    /// (the pool reports it as [`PoolError::Factory`] and backs off). Default:
    /// none; calling this again replaces the previous hook.
    #[must_use]
    pub fn with_init(mut self, init: impl Fn(&Connection) -> rusqlite::Result<()> + Send + Sync + 'static) -> Self {
        self.init = Some(Arc::new(init));
        self
    }

    /// Opens and configures one connection.
    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(&self.path, self.flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        if let Some(capacity) = self.statement_cache_capacity.or(self.pool_cache_size.get().copied()) {
            conn.set_prepared_statement_cache_capacity(capacity);
        }
        // `path()` is `Some("")` for in-memory and temporary databases.
        let file_backed = conn.path().is_some_and(|p| !p.is_empty());
        let read_only = self.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY);
        if self.wal && file_backed && !read_only {
            // journal_mode answers with the mode now in force: a VFS without
            // shared memory keeps its old mode, which is not an error.
            let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                log::warn!("sqlite {:?}: journal_mode stays {mode:?}, not WAL", self.path);
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        if let Some(init) = &self.init {
            init(&conn)?;
        }
        Ok(conn)
    }
}

impl fmt::Debug for SqliteConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConnectionFactory")
            .field("path", &self.path)
            .field("flags", &self.flags)
            .field("busy_timeout", &self.busy_timeout)
            .field("wal", &self.wal)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("init", &self.init.is_some())
            .finish()
    }
}

impl ConnectionFactory<Connection> for SqliteConnectionFactory {
    /// Opens a connection and applies the settings; any `rusqlite` error is
    /// the [`PoolError::Factory`] source.
    fn create(&self) -> Result<Connection> {
        self.open().map_err(PoolError::factory)
    }

    /// `false` if the connection is inside a transaction (about 2 ns).
    fn validate(&self, conn: &Connection) -> Result<bool> {
        cheap_check(conn)
    }

    /// Runs a validator's `query` on the connection (cached statement, one
    /// step): `Ok(true)` if it yields a row, `Ok(false)` if it yields none,
    /// SQLite's error otherwise.
    fn validate_query(&self, conn: &mut Connection, query: &str) -> Result<bool> {
        run_query(conn, query)
    }

    /// Rolls back a transaction the borrower left open; free otherwise.
    fn reset(&self, conn: &mut Connection) -> Result<()> {
        if conn.is_autocommit() {
            return Ok(());
        }
        conn.execute_batch("ROLLBACK").map_err(PoolError::factory)
    }

    /// Closes the connection, reporting SQLite's error if it refuses.
    fn close(&self, conn: Connection) -> Result<()> {
        conn.close().map_err(|(_, e)| PoolError::factory(e))
    }

    /// The database file, and a cancel hook that interrupts the statement
    /// the connection is running (`sqlite3_interrupt`).
    fn describe(&self, conn: &Connection) -> Option<ConnectionDescription> {
        let interrupt = conn.get_interrupt_handle();
        Some(ConnectionDescription::new().database(self.path.display().to_string()).on_cancel(move || {
            interrupt.interrupt();
            Ok(())
        }))
    }

    /// Sizes each connection's rusqlite statement cache to the first
    /// pool's `statement_cache_size`, unless
    /// [`with_statement_cache_capacity`](Self::with_statement_cache_capacity)
    /// said otherwise.
    fn attach(&self, pool: &PoolConfig) {
        let _ = self.pool_cache_size.set(pool.statement_cache_size);
    }
}

/// A statement in a pooled SQLite connection's cache, as
/// [`prepare_cached`](crate::pool::PooledConnectionGuard::prepare_cached)
/// hands it out. rusqlite's statements borrow their connection, so they
/// stay in the connection's own statement cache (sized to the pool's
/// `statement_cache_size` by the factory's `attach`); this
/// handle names one, and [`on`](Self::on) takes it from there without
/// parsing the SQL again.
///
/// ```
/// use rusty_db::adapters::sqlite::SqliteConnectionFactory;
/// use rusty_db::pool::{ConnectionPool, PoolConfig};
/// use std::sync::Arc;
///
/// let config = PoolConfig::builder().min_size(1).initial_size(1).max_size(1).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(":memory:")))?;
/// let mut conn = pool.acquire()?;
/// let add = conn.prepare_cached("SELECT ?1 + 1")?;
/// let three: i64 = add.on(&conn)?.query_row([2], |row| row.get(0))?;
/// assert_eq!(three, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteStatement {
    sql: Arc<str>,
}

impl SqliteStatement {
    /// The statement's SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The prepared statement on `conn` (the connection it was prepared
    /// on, or it is prepared there now), from its statement cache.
    pub fn on<'c>(&self, conn: &'c Connection) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        conn.prepare_cached(&self.sql)
    }
}

/// Prepares into the connection's own statement cache (so a bad statement
/// fails here), and hands out the handle that finds it there.
impl PrepareStatement for Connection {
    type Statement = SqliteStatement;

    fn prepare_statement(&mut self, sql: &str) -> Result<SqliteStatement> {
        self.prepare_cached(sql).map_err(PoolError::factory)?;
        Ok(SqliteStatement { sql: Arc::from(sql) })
    }
}

/// The adapter's own check, as cheap as r2d2_sqlite's: no open transaction.
fn cheap_check(conn: &Connection) -> Result<bool> {
    Ok(conn.is_autocommit())
}

/// Prepares `query` through the connection's statement cache and steps it
/// once: whether it yields a row.
fn run_query(conn: &Connection, query: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached(query).map_err(PoolError::factory)?;
    let mut rows = stmt.query([]).map_err(PoolError::factory)?;
    Ok(rows.next().map_err(PoolError::factory)?.is_some())
}

/// Lets [`ConnectionValidator::validate`](crate::pool::ConnectionValidator::validate)
/// check a `rusqlite::Connection` directly: the query as in
/// `SqliteConnectionFactory::validate_query`, or without one the factory's
/// own `validate` check.
impl ValidationQuery for Connection {
    fn run_validation_query(&self, query: Option<&str>) -> Result<bool> {
        match query {
            Some(query) => run_query(self, query),
            None => cheap_check(self),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::pool::{ConnectionPool, ConnectionValidator, PoolConfig};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tempfile::TempDir;

    fn temp_db() -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("test.db");
        (dir, path)
    }

    fn count_rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).expect("count")
    }

    #[test]
    fn new_file_connection_is_valid_and_configured() {
        let (_dir, path) = temp_db();
        let factory = SqliteConnectionFactory::new(&path).with_busy_timeout(Duration::from_millis(250));
        let conn = factory.create().expect("create");
        assert!(factory.validate(&conn).expect("validate"));

        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        let busy_ms: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), synchronous, busy_ms), ("wal", 1, 250));
        factory.close(conn).expect("close");
    }

    #[test]
    fn memory_database_is_not_switched_to_wal() {
        let factory = SqliteConnectionFactory::new(":memory:");
        let conn = factory.create().expect("create");
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "memory");
        assert!(factory.validate(&conn).expect("validate"));
    }

    #[test]
    fn without_wal_the_default_journal_mode_stays() {
        let (_dir, path) = temp_db();
        let conn = SqliteConnectionFactory::new(&path).with_wal(false).create().expect("create");
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
    }

    #[test]
    fn connection_inside_a_transaction_is_invalid() {
        let factory = SqliteConnectionFactory::new(":memory:");
        let conn = factory.create().expect("create");
        conn.execute_batch("BEGIN").unwrap();
        assert!(!factory.validate(&conn).expect("validate"));
    }

    #[test]
    fn reset_rolls_back_an_open_transaction() {
        let (_dir, path) = temp_db();
        let factory = SqliteConnectionFactory::new(&path);
        let mut conn = factory.create().expect("create");
        let other = factory.create().expect("create");
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();

        conn.execute_batch("BEGIN; INSERT INTO t VALUES (1);").unwrap();
        assert_eq!(count_rows(&conn), 1);
        factory.reset(&mut conn).expect("reset");

        assert!(conn.is_autocommit());
        assert_eq!(count_rows(&conn), 0);
        assert_eq!(count_rows(&other), 0);
        // The write lock is gone too: another connection can write at once.
        other.execute("INSERT INTO t VALUES (2)", []).expect("no lock left behind");
    }

    #[test]
    fn guard_dropped_mid_transaction_leaks_nothing_to_the_next_borrower() {
        let (_dir, path) = temp_db();
        let config = PoolConfig::builder().min_size(1).max_size(1).initial_size(1).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(&path))).unwrap();

        let conn = pool.acquire().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1);").unwrap();
        drop(conn);

        let conn = pool.acquire().unwrap();
        assert!(conn.is_autocommit());
        assert_eq!(count_rows(&conn), 0);
    }

    #[test]
    fn init_hook_runs_on_every_new_connection() {
        let runs = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&runs);
        let factory = SqliteConnectionFactory::new(":memory:").with_init(move |conn| {
            seen.fetch_add(1, Ordering::Relaxed);
            conn.execute_batch("PRAGMA user_version = 42")
        });
        let first = factory.create().expect("create");
        let second = factory.create().expect("create");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        for conn in [&first, &second] {
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(version, 42);
        }
    }

    #[test]
    fn failing_init_hook_fails_creation() {
        let factory = SqliteConnectionFactory::new(":memory:").with_init(|conn| conn.execute_batch("THIS IS NOT SQL"));
        assert!(matches!(factory.create(), Err(PoolError::Factory(_))));
    }

    #[test]
    fn missing_directory_is_a_factory_error_with_the_rusqlite_source() {
        let (dir, _) = temp_db();
        let path = dir.path().join("no-such-dir").join("test.db");
        let err = SqliteConnectionFactory::new(&path).create().expect_err("the directory is missing");

        let PoolError::Factory(ref factory_error) = err else { panic!("expected Factory, got {err:?}") };
        let sqlite = factory_error.get_ref().downcast_ref::<rusqlite::Error>().expect("a rusqlite error");
        assert_eq!(sqlite.sqlite_error_code(), Some(rusqlite::ErrorCode::CannotOpen));
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        // The same error is reachable through the standard `source()` chain.
        let mut source = std::error::Error::source(&err);
        let mut found = false;
        while let Some(e) = source {
            found |= e.downcast_ref::<rusqlite::Error>().is_some();
            source = e.source();
        }
        assert!(found, "rusqlite::Error not in the source chain of {err:?}");

        let config = PoolConfig::builder().min_size(1).max_size(1).initial_size(1).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(&path)));
        assert!(matches!(pool, Err(PoolError::Factory(_))));
    }

    #[test]
    fn pool_of_two_serves_four_writing_threads() {
        const THREADS: i64 = 4;
        const ROWS_EACH: i64 = 50;
        let (_dir, path) = temp_db();
        let config = PoolConfig::builder().min_size(2).max_size(2).initial_size(2).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(&path))).unwrap();
        pool.acquire().unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();

        std::thread::scope(|s| {
            for thread in 0..THREADS {
                let pool = &pool;
                s.spawn(move || {
                    for row in 0..ROWS_EACH {
                        let conn = pool.acquire().expect("a connection");
                        conn.execute("INSERT INTO t VALUES (?1)", [thread * ROWS_EACH + row]).expect("insert");
                    }
                });
            }
        });

        assert_eq!((pool.active(), pool.size()), (0, 2));
        assert_eq!(count_rows(&pool.acquire().unwrap()), THREADS * ROWS_EACH);
    }

    #[test]
    fn validate_query_runs_the_query_on_the_database() {
        let factory = SqliteConnectionFactory::new(":memory:");
        let mut conn = factory.create().expect("create");
        assert!(factory.validate_query(&mut conn, "SELECT 1").expect("a row"));
        assert!(!factory.validate_query(&mut conn, "SELECT 1 WHERE 0").expect("no row"));

        let err = factory.validate_query(&mut conn, "SELECT 1 FROM health").expect_err("no such table");
        let PoolError::Factory(ref e) = err else { panic!("expected Factory, got {err:?}") };
        assert!(e.get_ref().downcast_ref::<rusqlite::Error>().is_some(), "{err:?}");

        conn.execute_batch("CREATE TABLE health (ok INTEGER)").unwrap();
        assert!(!factory.validate_query(&mut conn, "SELECT 1 FROM health").expect("an empty table"));
        conn.execute_batch("INSERT INTO health VALUES (1)").unwrap();
        assert!(factory.validate_query(&mut conn, "SELECT 1 FROM health").expect("a row"));
    }

    #[test]
    fn a_bare_connection_validates_through_validation_query() {
        let conn = SqliteConnectionFactory::new(":memory:").create().expect("create");
        let plain = ConnectionValidator::new(Duration::from_secs(5));
        assert!(plain.validate(&conn).unwrap(), "no query: the adapter's cheap check");
        let query = ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 1".into());
        assert!(query.validate(&conn).unwrap());
        let empty = ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 1 WHERE 0".into());
        assert!(!empty.validate(&conn).unwrap());
        assert_eq!(empty.statistics().failed_validations, 1);

        conn.execute_batch("BEGIN").unwrap();
        assert!(!plain.validate(&conn).unwrap(), "the cheap check rejects an open transaction");
        assert_eq!(plain.statistics().total_validations, 2);
    }

    #[test]
    fn a_pool_s_validator_query_reaches_sqlite() {
        let (_dir, path) = temp_db();
        let validator = ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 1 FROM health".into());
        let config =
            PoolConfig::builder().min_size(0).max_size(1).initial_size(0).validator(validator).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(&path))).unwrap();

        // A new connection is not validated; the idle one is, on acquire.
        pool.acquire().unwrap().execute_batch("CREATE TABLE health (ok INTEGER)").unwrap();
        let conn = pool.acquire().expect("the empty table fails the check: a new connection instead");
        let stats = pool.validator_statistics().unwrap();
        assert_eq!((stats.total_validations, stats.failed_validations), (1, 1));

        conn.execute("INSERT INTO health VALUES (1)", []).unwrap();
        drop(conn);
        drop(pool.acquire().unwrap());
        let stats = pool.validator_statistics().unwrap();
        assert_eq!((stats.total_validations, stats.successful_validations), (2, 1));
    }

    #[test]
    fn keep_alive_runs_the_query_on_idle_connections() {
        let (_dir, path) = temp_db();
        let validator = ConnectionValidator::new(Duration::from_secs(5))
            .with_query("SELECT count(*) FROM sqlite_master".into())
            .with_keepalive_interval(Duration::from_millis(10));
        let config =
            PoolConfig::builder().min_size(1).max_size(1).initial_size(1).validator(validator).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(SqliteConnectionFactory::new(&path))).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.validator_statistics().unwrap().successful_validations < 2 {
            assert!(std::time::Instant::now() < deadline, "keep-alive never validated the idle connection");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pool.validator_statistics().unwrap().failed_validations, 0);
    }
}
