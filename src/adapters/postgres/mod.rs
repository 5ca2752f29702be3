//! PostgreSQL through the `postgres` crate (feature `postgres`), without TLS.
//!
//! A network database can go away under the pool in ways SQLite cannot: a
//! restart resets every session, a failover refuses connections for a
//! while, a dead network or a hung server accepts a socket and never
//! answers. This factory is built for those: every connection attempt is
//! bounded as a whole (TCP, startup and the first query, not just the TCP
//! connect the driver bounds; see `attempts`), `validate` makes a real
//! round trip, `reset` rolls back what a borrower left open, and each
//! session carries the pool's name as its `application_name`, so an
//! operator finds it in `pg_stat_activity`.

mod attempts;
mod connection;

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use postgres::config::Host;
use postgres::error::SqlState;
use postgres::{NoTls, SimpleQueryMessage};

use self::attempts::{AttemptError, Attempts};
pub use self::connection::PgConnection;
use crate::pool::{ConnectionDescription, ConnectionFactory, PoolConfig, PoolError, Result};

/// The `postgres` crate this adapter is built against, so that callers name
/// the same `Client`, `Config` and `Error` types without depending on a
/// matching version themselves.
pub use postgres;

/// How long one connection attempt may take as a whole (TCP connect,
/// startup, authentication and the session query), unless the connection
/// string's `connect_timeout` or
/// [`with_connect_timeout`](PostgresConnectionFactory::with_connect_timeout)
/// says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`reset`](ConnectionFactory::reset) sends on every return, in one
/// round trip: roll back an open (or failed) transaction, then drop the
/// session state a borrower may have changed: settings, a `SET SESSION
/// AUTHORIZATION`, open cursors, `LISTEN`s, advisory locks, temporary
/// tables and sequence caches. Prepared statements are kept (so a
/// statement cache survives the return), which is why this is not
/// `DISCARD ALL` (it also cannot run in the multi-statement string).
pub const DEFAULT_RESET_QUERY: &str = "ROLLBACK; RESET ALL; SET SESSION AUTHORIZATION DEFAULT; CLOSE ALL; \
     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Opens [`PgConnection`]s to one PostgreSQL server for a
/// [`ConnectionPool`](crate::pool::ConnectionPool).
///
/// - `create` connects (no TLS) within the connect timeout (default
///   [`DEFAULT_CONNECT_TIMEOUT`]), then reads the session's backend pid,
///   user, database and client address in one query. An attempt that runs
///   past the timeout fails that `create`, but is not abandoned: the next
///   `create` adopts it rather than opening another, so the server never
///   sees more sessions than the pool's `max_size` (see the module docs).
/// - `validate` is `!is_closed()` (free); `validate_mut`, which the pool
///   calls on acquire and release when configured, then sends an empty
///   query: one round trip (68 µs on loopback here, as r2d2_postgres's
///   `is_valid`; `benches/cycle.rs`).
/// - `validate_query` runs a
///   [`ConnectionValidator`](crate::pool::ConnectionValidator)'s query as a
///   simple query; valid if it returns a row.
/// - `reset` sends [`DEFAULT_RESET_QUERY`] (one round trip, 80 µs on
///   loopback here), or
///   [`with_reset_query`](Self::with_reset_query)'s, so a transaction a
///   panicking borrower left open is rolled back before anyone else gets
///   the connection. An error (the session died) closes the connection.
/// - `describe` gives the admin API the session's user, database and
///   client address, and a cancel hook that sends the server a real cancel
///   request for the query running on it.
/// - `attach` names the sessions: unless the connection string sets an
///   `application_name`, it is the name of the first pool the factory is
///   given to.
///
/// ```no_run
/// use rusty_db::adapters::postgres::PostgresConnectionFactory;
/// use rusty_db::pool::{ConnectionPool, PoolConfig};
/// use std::sync::Arc;
///
/// let factory = PostgresConnectionFactory::new("postgres://postgres@127.0.0.1:5432/test")?;
/// let config = PoolConfig::builder().name("orders").min_size(2).max_size(10).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(factory))?;
///
/// let mut conn = pool.acquire()?;
/// let row = conn.query_one("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()", &[])?;
/// assert_eq!(row.get::<_, String>(0), "orders");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PostgresConnectionFactory {
    config: postgres::Config,
    target: Arc<str>,
    connect_timeout: Duration,
    reset_query: Option<Arc<str>>,
    pool_name: Arc<OnceLock<String>>,
    attempts: Arc<Attempts<PgConnection, postgres::Error>>,
}

impl PostgresConnectionFactory {
    /// A factory for the server a connection string names, as a URL
    /// (`postgres://user:password@host:port/dbname?application_name=..`) or
    /// as `key=value` pairs (`host=.. user=.. dbname=..`). Fails with
    /// [`PoolError::InvalidConfig`] if the string does not parse (the
    /// message never repeats the string: it may hold a password).
    pub fn new(connection_string: &str) -> Result<Self> {
        let config = postgres::Config::from_str(connection_string).map_err(|e| {
            let cause = e.source().map(|cause| format!(": {cause}")).unwrap_or_default();
            PoolError::InvalidConfig(format!("invalid PostgreSQL connection string: {e}{cause}"))
        })?;
        Ok(Self::from_config(config))
    }

    /// A factory for a [`postgres::Config`] built in code. Its notice
    /// callback is replaced by one that logs notices at `info` (as the
    /// default does), except the warning `reset` causes when there was no
    /// transaction to roll back.
    pub fn from_config(mut config: postgres::Config) -> Self {
        let connect_timeout = match config.get_connect_timeout() {
            Some(t) if !t.is_zero() => *t,
            _ => DEFAULT_CONNECT_TIMEOUT,
        };
        config.connect_timeout(connect_timeout);
        config.notice_callback(|notice| {
            if notice.code() != &SqlState::NO_ACTIVE_SQL_TRANSACTION {
                log::info!("postgres {}: {}", notice.severity(), notice.message());
            }
        });
        PostgresConnectionFactory {
            target: describe_target(&config).into(),
            config,
            connect_timeout,
            reset_query: Some(DEFAULT_RESET_QUERY.into()),
            pool_name: Arc::default(),
            attempts: Attempts::new(),
        }
    }

    /// How long one connection attempt may take as a whole. Default: the
    /// connection string's `connect_timeout`, else
    /// [`DEFAULT_CONNECT_TIMEOUT`]; zero means the default (an attempt is
    /// always bounded). Keep it below the pool's `acquire_timeout`, so that
    /// a timed-out acquire carries this error rather than none.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = if timeout.is_zero() { DEFAULT_CONNECT_TIMEOUT } else { timeout };
        self.config.connect_timeout(self.connect_timeout);
        self
    }

    /// The sessions' `application_name`, instead of the pool's name.
    #[must_use]
    pub fn with_application_name(mut self, name: &str) -> Self {
        self.config.application_name(name);
        self
    }

    /// What `reset` sends on every return (a simple query, so several
    /// statements may be given), or `None` to send nothing: returns then
    /// cost no round trip, and a transaction left open stays open for the
    /// next borrower. Default [`DEFAULT_RESET_QUERY`].
    #[must_use]
    pub fn with_reset_query(mut self, query: Option<&str>) -> Self {
        self.reset_query = query.map(Arc::from);
        self
    }

    /// The configuration connections are opened with (before the pool's
    /// name is filled in as `application_name`).
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    /// The bound on one connection attempt.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}

impl fmt::Debug for PostgresConnectionFactory {
    /// Leaves out the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnectionFactory")
            .field("target", &self.target)
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("application_name", &self.config.get_application_name().or(self.pool_name.get().map(String::as_str)))
            .field("connect_timeout", &self.connect_timeout)
            .field("reset_query", &self.reset_query)
            .finish()
    }
}

impl ConnectionFactory<PgConnection> for PostgresConnectionFactory {
    /// Connects within the connect timeout (or adopts an earlier attempt
    /// still running); the error names the server and says what failed.
    fn create(&self) -> Result<PgConnection> {
        let mut config = self.config.clone();
        if config.get_application_name().is_none() {
            if let Some(name) = self.pool_name.get() {
                config.application_name(name);
            }
        }
        let open = move || config.connect(NoTls).and_then(PgConnection::open);
        self.attempts
            .connect(self.connect_timeout, open)
            .map_err(|error| PoolError::factory(ConnectError { target: Arc::clone(&self.target), error }))
    }

    /// `false` once the driver has seen the session end; makes no round
    /// trip (the pool calls [`validate_mut`](Self::validate_mut)).
    fn validate(&self, conn: &PgConnection) -> Result<bool> {
        Ok(!conn.is_closed())
    }

    /// Not closed, and an empty query answers.
    fn validate_mut(&self, conn: &mut PgConnection) -> Result<bool> {
        if conn.is_closed() {
            return Ok(false);
        }
        conn.simple_query("").map(|_| true).map_err(PoolError::factory)
    }

    /// Runs `query` as a simple query: `Ok(true)` if it returns a row.
    fn validate_query(&self, conn: &mut PgConnection, query: &str) -> Result<bool> {
        let messages = conn.simple_query(query).map_err(PoolError::factory)?;
        Ok(messages.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))))
    }

    /// Sends the reset query; an error (or a session already closed)
    /// closes the connection.
    fn reset(&self, conn: &mut PgConnection) -> Result<()> {
        if conn.is_closed() {
            return Err(PoolError::factory("the PostgreSQL session has ended"));
        }
        match &self.reset_query {
            Some(query) => conn.batch_execute(query).map_err(PoolError::factory),
            None => Ok(()),
        }
    }

    /// Ends the session (a Terminate message), reporting the driver's error.
    fn close(&self, conn: PgConnection) -> Result<()> {
        conn.into_client().close().map_err(PoolError::factory)
    }

    /// User, database and client address, and a cancel hook that sends a
    /// cancel request for the session's running query.
    fn describe(&self, conn: &PgConnection) -> Option<ConnectionDescription> {
        let mut description = ConnectionDescription::new().user(conn.user()).database(conn.database());
        if let Some(addr) = conn.client_addr() {
            description = description.client_addr(addr);
        }
        let token = conn.cancel_token();
        Some(description.on_cancel(move || token.cancel_query(NoTls).map_err(PoolError::factory)))
    }

    /// Remembers the first pool's name, for `application_name`.
    fn attach(&self, pool: &PoolConfig) {
        let _ = self.pool_name.set(pool.name.clone());
    }
}

/// `host:port[,host:port..]`, for error messages.
fn describe_target(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() { "the default host".to_string() } else { hosts.join(",") }
}

/// A failed connection attempt, naming the server.
#[derive(Debug)]
struct ConnectError {
    target: Arc<str>,
    error: AttemptError<postgres::Error>,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connecting to PostgreSQL at {}: {}", self.target, self.error)?;
        // The driver's Display stops at "error connecting to server"; the
        // cause (refused, reset, authentication) is in its source.
        if let AttemptError::Failed(e) = &self.error {
            if let Some(cause) = e.source() {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}
