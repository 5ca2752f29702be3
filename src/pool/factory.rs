//! How the pool makes, checks, resets and closes connections.
//!
//! The pool is generic over the connection type and knows nothing about
//! databases; a [`ConnectionFactory`] is the only code that does. Its
//! methods block: the pool calls `create` on the acquiring thread only when
//! it has reserved a vacant slot, and never while holding a lock.

use super::error::Result;

/// Creates and looks after the pool's connections.
///
/// Only `create` is required. The pool catches panics from every method and
/// treats them as failures: a panicking `create` loses no capacity, a
/// panicking `validate` or `reset` closes that connection, even when the
/// guard is being dropped by a thread that is already unwinding.
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, PoolError, Result};
///
/// struct Counter { open: bool, uses: u32 }
/// struct CounterFactory;
///
/// impl ConnectionFactory<Counter> for CounterFactory {
///     fn create(&self) -> Result<Counter> {
///         Ok(Counter { open: true, uses: 0 })
///     }
///     fn validate(&self, c: &Counter) -> Result<bool> {
///         Ok(c.open)
///     }
///     fn reset(&self, c: &mut Counter) -> Result<()> {
///         c.uses = 0;
///         Ok(())
///     }
///     fn close(&self, mut c: Counter) -> Result<()> {
///         if !c.open { return Err(PoolError::factory("already closed")); }
///         c.open = false;
///         Ok(())
///     }
/// }
/// ```
pub trait ConnectionFactory<C>: Send + Sync + 'static {
    /// Opens a new connection. Errors are reported to the acquiring caller
    /// (as [`PoolError::Factory`](super::PoolError::Factory)) and make the
    /// pool back off before the next attempt.
    fn create(&self) -> Result<C>;

    /// Checks that a connection is still usable (`validate_on_acquire`,
    /// `validate_on_release`, and after a panic). `Ok(false)` or an error
    /// closes the connection.
    fn validate(&self, connection: &C) -> Result<bool> {
        let _ = connection;
        Ok(true)
    }

    /// Puts a returned connection back into a clean state (roll back, reset
    /// session settings). Called on every return; an error closes it.
    fn reset(&self, connection: &mut C) -> Result<()> {
        let _ = connection;
        Ok(())
    }

    /// Runs a [`ConnectionValidator`](super::ConnectionValidator)'s
    /// query on the connection; `Ok(true)` if it answered as expected.
    /// Override it to send the query to the database; the default ignores
    /// the query and calls [`validate`](Self::validate).
    fn validate_query(&self, connection: &C, query: &str) -> Result<bool> {
        let _ = query;
        self.validate(connection)
    }

    /// Closes a connection for good. Errors are logged, never returned to a
    /// caller: the slot is freed either way.
    fn close(&self, connection: C) -> Result<()> {
        drop(connection);
        Ok(())
    }
}
