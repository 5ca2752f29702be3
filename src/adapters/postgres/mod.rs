//! PostgreSQL through the `postgres` crate (feature `postgres`), without TLS.
//!
//! A network database can go away under the pool in ways SQLite cannot: a
//! restart resets every session, a failover refuses connections for a
//! while, a dead network or a hung server accepts a socket and never
//! answers. This factory is built for those: every connection attempt is
//! bounded as a whole (TCP, startup and the first query, not just the TCP
//! connect the driver bounds; see `attempts`), `validate_mut` makes a real
//! round trip, `reset` rolls back what a borrower left open, and each
//! session carries the pool's name as its `application_name`, so an
//! operator finds it in `pg_stat_activity`.
//!
//! And a healthy borrow costs the server nothing of the pool's own: the
//! cheap check on acquire asks the driver (no round trip), and the reset
//! sends nothing for a session that is not in a transaction, which the
//! adapter reads off the socket (see `tap`).

mod attempts;
mod connection;
mod probe;
mod reset;
mod tap;

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use postgres::config::{Host, SslMode, SslNegotiation};
use postgres::error::SqlState;
use postgres::{NoTls, SimpleQueryMessage};

use self::attempts::{AttemptError, Attempts};
pub use self::connection::PgConnection;
pub use self::reset::ResetPolicy;
use self::tap::Tap;
pub use self::tap::TransactionStatus;
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

/// The full clean-up ([`ResetPolicy`]): drops the session state a borrower
/// may have changed (settings, a `SET SESSION AUTHORIZATION`, open cursors,
/// `LISTEN`s, advisory locks, temporary tables and sequence caches) in one
/// round trip, preceded by a `ROLLBACK` when the session is in a
/// transaction (and only then: a `ROLLBACK` outside one makes the server
/// log a warning and count a rollback). Prepared statements are kept (so a
/// statement cache survives the return), which is why this is not
/// `DISCARD ALL` (it also cannot run in the multi-statement string).
pub const DEFAULT_RESET_QUERY: &str = "RESET ALL; SET SESSION AUTHORIZATION DEFAULT; CLOSE ALL; UNLISTEN *; \
     SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Opens [`PgConnection`]s to one PostgreSQL server for a
/// [`ConnectionPool`](crate::pool::ConnectionPool).
///
/// - `create` connects (no TLS) within the connect timeout (default
///   [`DEFAULT_CONNECT_TIMEOUT`]), then reads the session's backend pid,
///   user, database and client address in one query. An attempt that runs
///   past the timeout fails that `create`, but is not abandoned: the next
///   `create` adopts it rather than opening another, so the server never
///   sees more sessions than the pool's `max_size` (see the module docs).
/// - `validate` is `!is_closed()` (free: the driver marks the client closed
///   once it sees the session end); the pool calls it on acquire for a
///   connection returned within its
///   [`validation_bypass_window`](crate::pool::PoolConfig::validation_bypass_window)
///   (500 ms by default). `validate_mut`, for a connection idle longer (and
///   on release when configured), then sends an empty query: one round
///   trip (68 µs on loopback here, as r2d2_postgres's `is_valid`;
///   `benches/cycle.rs`). So a backend terminated while its connection
///   sat idle past the window is never handed out; one terminated within
///   it is found by the borrower's first statement, which fails, and the
///   driver's closed client is closed on return (no `mark_broken` needed)
///   and replaced.
/// - `validate_query` runs a
///   [`ConnectionValidator`](crate::pool::ConnectionValidator)'s query as a
///   simple query; valid if it returns a row.
/// - `reset`, on a clean return, follows the [`ResetPolicy`] (default
///   [`RollbackIfNeeded`](ResetPolicy::RollbackIfNeeded)): it sends
///   nothing for a session not in a transaction, and `ROLLBACK` for one in
///   a transaction or a failed one, which the adapter reads off the socket
///   (a raw `BEGIN` sent as text included). `clean`, on a return after a
///   panic or [`mark_dirty`](crate::pool::PooledConnectionGuard::mark_dirty),
///   sends the full clean-up ([`DEFAULT_RESET_QUERY`], or
///   [`with_reset_query`](Self::with_reset_query)'s). An error, or a
///   session the driver saw end, closes the connection.
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
///
/// The adapter reads each session's transaction status off its socket
/// through a connector in the driver's TLS slot, with
/// `sslnegotiation=direct`, encrypting nothing (see
/// [`PgConnection::transaction_status`]). That needs a TCP host name: over
/// a Unix socket, a bare `hostaddr`, or with `sslmode=require` (which this
/// adapter, without TLS, refuses at connect as before) the status is
/// unknown and `reset` rolls back on every return, as it did before.
#[derive(Clone)]
pub struct PostgresConnectionFactory {
    config: postgres::Config,
    target: Arc<str>,
    connect_timeout: Duration,
    reset_policy: ResetPolicy,
    /// The full clean-up query (see [`DEFAULT_RESET_QUERY`]).
    clean_query: Arc<str>,
    /// Whether connections are tapped (see the type's docs).
    tapped: bool,
    /// Whether idle sessions' sockets are peeked at (see `probe`).
    probe_sockets: bool,
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
            tapped: tappable(&config),
            probe_sockets: true,
            config,
            connect_timeout,
            reset_policy: ResetPolicy::default(),
            clean_query: DEFAULT_RESET_QUERY.into(),
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

    /// The full clean-up to send on every return (a simple query, so
    /// several statements may be given; a `ROLLBACK` goes before it when
    /// the session is in a transaction), as [`ResetPolicy::Full`]; or
    /// `None` for [`ResetPolicy::None`]: returns then send nothing, and a
    /// transaction left open stays open for the next borrower.
    #[must_use]
    pub fn with_reset_query(mut self, query: Option<&str>) -> Self {
        match query {
            Some(query) => {
                self.clean_query = Arc::from(query);
                self.reset_policy = ResetPolicy::Full;
            }
            None => self.reset_policy = ResetPolicy::None,
        }
        self
    }

    /// Whether the cheap check on acquire also peeks at the session's
    /// socket for the server's goodbye (a `FATAL` error, the end of the
    /// stream): default `true`, so a backend terminated while its
    /// connection sat idle is not handed out even within the pool's
    /// validation bypass window. Without it (or where the socket cannot be
    /// found: behind a proxy or a NAT, over a Unix socket, off Unix), such a
    /// backend is found by the borrower's first statement, which fails, and
    /// the connection is closed on return and replaced.
    #[must_use]
    pub fn with_socket_probe(mut self, probe: bool) -> Self {
        self.probe_sockets = probe;
        self
    }

    /// What a return sends (see [`ResetPolicy`]). Default
    /// [`ResetPolicy::RollbackIfNeeded`].
    #[must_use]
    pub fn with_reset_policy(mut self, policy: ResetPolicy) -> Self {
        self.reset_policy = policy;
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
            .field("reset_policy", &self.reset_policy)
            .field("clean_query", &self.clean_query)
            .field("tapped", &self.tapped)
            .field("probe_sockets", &self.probe_sockets)
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
        let (tapped, probe) = (self.tapped, self.probe_sockets);
        let open = move || {
            if tapped {
                config.ssl_mode(SslMode::Require).ssl_negotiation(SslNegotiation::Direct);
                let (tap, session) = Tap::new();
                config.connect(tap).and_then(|client| PgConnection::open(client, Some(session), probe))
            } else {
                config.connect(NoTls).and_then(|client| PgConnection::open(client, None, probe))
            }
        };
        self.attempts
            .connect(self.connect_timeout, open)
            .map_err(|error| PoolError::factory(ConnectError { target: Arc::clone(&self.target), error }))
    }

    /// `false` once the driver has seen the session end, or the session's
    /// socket holds the server's goodbye (a `FATAL` error, the end of the
    /// stream, a reset; a non-blocking peek); makes no round trip (the
    /// pool calls [`validate_mut`](Self::validate_mut) past its bypass window).
    fn validate(&self, conn: &PgConnection) -> Result<bool> {
        Ok(!conn.is_closed() && conn.looks_alive())
    }

    /// `validate_mut` makes a round trip: the pool's bypass window applies.
    fn validation_round_trips(&self) -> bool {
        true
    }

    /// Not closed, and an empty query answers.
    fn validate_mut(&self, conn: &mut PgConnection) -> Result<bool> {
        if conn.is_closed() || !conn.looks_alive() {
            return Ok(false);
        }
        conn.simple_query("").map(|_| true).map_err(PoolError::factory)
    }

    /// Runs `query` as a simple query: `Ok(true)` if it returns a row.
    fn validate_query(&self, conn: &mut PgConnection, query: &str) -> Result<bool> {
        let messages = conn.simple_query(query).map_err(PoolError::factory)?;
        Ok(messages.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))))
    }

    /// On a clean return, what the [`ResetPolicy`] says: by default
    /// nothing for a session not in a transaction. A session the driver saw
    /// end is an error, which closes the connection.
    fn reset(&self, conn: &mut PgConnection) -> Result<()> {
        reset::on_return(conn, self.reset_policy, &self.clean_query, false)
    }

    /// On a return after a panic or `mark_dirty`: the full clean-up
    /// (unless the policy is [`ResetPolicy::None`]).
    fn clean(&self, conn: &mut PgConnection) -> Result<()> {
        reset::on_return(conn, self.reset_policy, &self.clean_query, true)
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
        // The token repeats the session's TLS settings: a tapped session's
        // cancel connection goes through a tap too (it sends in the clear).
        let tapped = conn.is_tapped();
        Some(description.on_cancel(move || {
            let sent = if tapped { token.cancel_query(Tap::new().0) } else { token.cancel_query(NoTls) };
            sent.map_err(PoolError::factory)
        }))
    }

    /// Remembers the first pool's name, for `application_name`.
    fn attach(&self, pool: &PoolConfig) {
        let _ = self.pool_name.set(pool.name.clone());
    }
}

/// Whether connections to `config`'s hosts can be tapped: every host a TCP
/// name (the tap needs one, see `tap`), and no `sslmode=require` (which
/// asks for TLS this adapter does not have: it fails at connect, as with
/// `NoTls`).
fn tappable(config: &postgres::Config) -> bool {
    let hosts = config.get_hosts();
    config.get_ssl_mode() != SslMode::Require
        && !hosts.is_empty()
        && hosts.iter().all(|host| matches!(host, Host::Tcp(_)))
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
