//! A pooled PostgreSQL session: the `postgres::Client`, and what the
//! server told us about it when it opened (for the admin API's list and
//! for a cancel request).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use postgres::{CancelToken, Client, SimpleQueryMessage, Statement};

use super::probe::{Liveness, Probe};
use super::tap::{Session, TransactionStatus};
use crate::pool::{PoolError, PrepareStatement, Result};

/// One pooled connection: a [`postgres::Client`] (which it dereferences
/// to, so `conn.query(..)` works on the guard) and the session's identity,
/// read once when it opened.
///
/// ```no_run
/// # use rusty_db::adapters::postgres::PgConnection;
/// fn count(conn: &mut PgConnection) -> Result<i64, postgres::Error> {
///     let row = conn.query_one("SELECT count(*) FROM pg_stat_activity", &[])?;
///     Ok(row.get(0))
/// }
/// ```
pub struct PgConnection {
    client: Client,
    /// What the tap sees of the session (`None`: untapped, see `tap`).
    session: Option<Arc<Session>>,
    /// The session's socket, to peek at (see `probe`).
    probe: Option<Probe>,
    backend_pid: i32,
    user: String,
    database: String,
    client_addr: Option<String>,
}

impl PgConnection {
    /// Reads the session's identity (one round trip) and wraps `client`,
    /// tapped by `session` if given, its socket found to probe if `probe`.
    pub(super) fn open(
        mut client: Client,
        session: Option<Arc<Session>>,
        probe: bool,
    ) -> Result<PgConnection, postgres::Error> {
        let messages = client.simple_query(
            "SELECT pg_backend_pid(), current_user, current_database(), \
             host(inet_client_addr()) || ':' || inet_client_port(), \
             host(inet_server_addr()) || ':' || inet_server_port()",
        )?;
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let text = |i: usize| row.and_then(|r| r.get(i)).map(str::to_owned);
        let address = |i: usize| text(i).and_then(|a| socket_addr(&a));
        let found = address(3).zip(address(4)).filter(|_| probe);
        let probe = found.and_then(|(ours, theirs)| Probe::find(ours, theirs));
        Ok(PgConnection {
            backend_pid: text(0).and_then(|pid| pid.parse().ok()).unwrap_or(0),
            user: text(1).unwrap_or_default(),
            database: text(2).unwrap_or_default(),
            // NULL over a Unix socket.
            client_addr: text(3),
            client,
            session,
            probe,
        })
    }

    /// Whether the session's socket shows it alive: nothing the server
    /// sent while it sat idle says it ended (see `probe`); no round trip.
    /// `true` for a session whose socket was not found (behind a proxy or
    /// a NAT, or over a Unix socket).
    pub(super) fn looks_alive(&self) -> bool {
        self.probe.and_then(|p| p.look()) != Some(Liveness::Gone)
    }

    /// The session's transaction status as the server last reported it,
    /// read off the socket at no cost: `None` while an answer is still on
    /// its way (a result not read to its end, say), or if the connection
    /// is untapped (a Unix socket, or a bare `hostaddr`; see
    /// [`PostgresConnectionFactory`](super::PostgresConnectionFactory)).
    pub fn transaction_status(&self) -> Option<TransactionStatus> {
        self.session.as_ref().and_then(|s| s.status())
    }

    /// Whether the tap reads this session's status.
    pub(super) fn is_tapped(&self) -> bool {
        self.session.is_some()
    }

    /// The server process serving this session (`pg_backend_pid()`, the
    /// `pid` column of `pg_stat_activity`).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// The session's user (`current_user` when it opened).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database the session is connected to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Our address as the server sees it (`ip:port`), `None` over a Unix
    /// socket.
    pub fn client_addr(&self) -> Option<&str> {
        self.client_addr.as_deref()
    }

    /// A token that asks the server to cancel the query this session is
    /// running, from any thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.client.cancel_token()
    }

    /// The client, for code that wants a `&mut postgres::Client` by name.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The client, leaving the pool's wrapper behind.
    pub fn into_client(self) -> Client {
        self.client
    }
}

/// Server-side prepared statements for the pool's statement cache:
/// [`prepare_cached`](crate::pool::PooledConnectionGuard::prepare_cached)
/// prepares once per connection (one round trip) and every later borrower
/// of that connection runs the same named statement. An evicted statement
/// is closed on the server when its last handle is dropped. The reset on
/// return keeps prepared statements (see
/// [`DEFAULT_RESET_QUERY`](super::DEFAULT_RESET_QUERY)).
///
/// ```no_run
/// # use rusty_db::adapters::postgres::PgConnection;
/// # fn run(pool: &rusty_db::pool::ConnectionPool<PgConnection>) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.acquire()?;
/// let by_id = conn.prepare_cached("SELECT name FROM accounts WHERE id = $1")?;
/// let rows = conn.query(&by_id, &[&42i64])?;
/// # Ok(()) }
/// ```
impl PrepareStatement for PgConnection {
    type Statement = Statement;

    fn prepare_statement(&mut self, sql: &str) -> Result<Statement> {
        self.client.prepare(sql).map_err(PoolError::factory)
    }
}

impl Deref for PgConnection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("backend_pid", &self.backend_pid)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("client_addr", &self.client_addr)
            .field("transaction_status", &self.transaction_status())
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

/// `ip:port` as PostgreSQL's `host(inet) || ':' || port` writes it (IPv6
/// without brackets).
fn socket_addr(text: &str) -> Option<std::net::SocketAddr> {
    let (ip, port) = text.rsplit_once(':')?;
    Some(std::net::SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}
