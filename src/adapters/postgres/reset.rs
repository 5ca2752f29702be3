//! What a PostgreSQL session gets on its way back to the pool.
//!
//! A blind `ROLLBACK` on every return costs a round trip, a warning in the
//! server's log (`there is no transaction in progress`) and a rollback in
//! its statistics for every clean borrow. The tap (see `tap`) says whether
//! the session is in a transaction, so by default a return sends nothing
//! unless it is; a return the pool cannot trust (a panic, `mark_dirty`)
//! gets the full clean-up.

use super::PgConnection;
use super::tap::TransactionStatus;
use crate::pool::{PoolError, Result};

/// What a returned PostgreSQL session gets (see
/// [`PostgresConnectionFactory::with_reset_policy`](super::PostgresConnectionFactory::with_reset_policy)).
///
/// Measured on loopback here: a `ROLLBACK` or the full clean-up is one
/// round trip (about 80 µs); the default sends nothing on a clean borrow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResetPolicy {
    /// Send nothing on any return, even after a panic: a transaction left
    /// open stays open for the next borrower. For code that never leaves
    /// session state behind and wants no round trip of the pool's ever.
    None,
    /// The default. A clean return sends nothing for a session that is
    /// not in a transaction, and `ROLLBACK` for one in a transaction or a
    /// failed one (the adapter reads which off the socket; a raw `BEGIN`
    /// sent as text is seen too). A return after a panic or
    /// [`mark_dirty`](crate::pool::PooledConnectionGuard::mark_dirty) gets
    /// the full clean-up. Session settings a clean borrow changed with
    /// `SET` stay: mark such a borrow dirty, or use `Full`.
    #[default]
    RollbackIfNeeded,
    /// The full clean-up ([`DEFAULT_RESET_QUERY`](super::DEFAULT_RESET_QUERY),
    /// after a `ROLLBACK` if the session is in a transaction) on every
    /// return: one round trip each.
    Full,
}

/// A return of `conn` under `policy`: `dirty` for one the pool cannot
/// trust. `clean_query` is the full clean-up.
pub(super) fn on_return(conn: &mut PgConnection, policy: ResetPolicy, clean_query: &str, dirty: bool) -> Result<()> {
    if conn.is_closed() {
        return Err(PoolError::factory("the PostgreSQL session has ended"));
    }
    let full = match policy {
        ResetPolicy::None => return Ok(()),
        ResetPolicy::RollbackIfNeeded => dirty,
        ResetPolicy::Full => true,
    };
    let in_transaction = match settled_status(conn)? {
        Some(TransactionStatus::Idle) => false,
        Some(TransactionStatus::InTransaction | TransactionStatus::Failed) => true,
        // Untapped: it cannot be told, so roll back (the server may warn).
        None => true,
    };
    let sent = match (full, in_transaction) {
        (false, false) => return Ok(()),
        (false, true) => conn.batch_execute("ROLLBACK"),
        (true, false) => conn.batch_execute(clean_query),
        (true, true) => conn.batch_execute(&format!("ROLLBACK; {clean_query}")),
    };
    sent.map_err(PoolError::factory)
}

/// The session's status once every answer it awaits has come: a tapped
/// session with answers still on their way (a result its borrower did not
/// read to the end) gets an empty query, which makes the server finish
/// them and starts no transaction. `None` for an untapped session.
fn settled_status(conn: &mut PgConnection) -> Result<Option<TransactionStatus>> {
    if !conn.is_tapped() {
        return Ok(None);
    }
    if let Some(status) = conn.transaction_status() {
        return Ok(Some(status));
    }
    conn.simple_query("").map_err(PoolError::factory)?;
    Ok(conn.transaction_status())
}
