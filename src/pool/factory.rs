//! How the pool makes, checks, resets and closes connections.
//!
//! The pool is generic over the connection type and knows nothing about
//! databases; a [`ConnectionFactory`] is the only code that does. Its
//! methods block: the pool calls `create` only once it has reserved a
//! vacant slot (on the acquiring thread, or for an acquire that may wait on
//! a thread of its own, bounded by the acquire's timeout), and never while
//! holding a lock.

use std::sync::Arc;

use super::config::PoolConfig;
use super::connections::ConnectionDescription;
use super::error::Result;
use super::partition::Partition;

/// Creates and looks after the pool's connections.
///
/// Only `create` is required. The pool catches panics from every method,
/// counts them under their [`Hook`](super::Hook) in
/// [`PoolStatistics::hook_panics`](super::PoolStatistics::hook_panics) and
/// treats them as failures: a panicking `create` loses no capacity, a
/// panicking `validate`, `validate_query` or `reset` closes that
/// connection, a panicking `close` still frees its slot, even when the
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

    /// [`validate`](Self::validate), for a check that needs the connection
    /// mutably (a client whose every query takes `&mut self`, such as
    /// `postgres::Client` or an r2d2 manager's `is_valid`). The pool
    /// validates through this method, on a connection it owns (on acquire,
    /// through `validate` instead for a connection returned within the
    /// validation bypass window, if
    /// [`validation_round_trips`](Self::validation_round_trips) says this
    /// one costs more); the default calls `validate`. Panics are counted
    /// under [`Hook::Validate`](super::Hook::Validate).
    fn validate_mut(&self, connection: &mut C) -> Result<bool> {
        self.validate(connection)
    }

    /// Whether [`validate_mut`](Self::validate_mut) costs more than
    /// [`validate`](Self::validate), as a round trip to the server does.
    /// Only then does an acquire check a connection returned within the
    /// pool's [`validation_bypass_window`](super::PoolConfig::validation_bypass_window)
    /// with `validate` alone (and only then does the pool look at the
    /// clock for it). Default `false`: with `validate_on_acquire`, every
    /// acquire calls `validate_mut`. The PostgreSQL adapter and the r2d2
    /// bridge say `true`. Asked once, when the pool is built.
    fn validation_round_trips(&self) -> bool {
        false
    }

    /// Puts a returned connection back into a clean state (roll back, reset
    /// session settings). Called on every return the pool trusts (the
    /// borrow ended normally and the guard was not
    /// [marked dirty](super::PooledConnectionGuard::mark_dirty)): a driver
    /// that can tell whether the session needs anything should send nothing
    /// when it does not. An error closes the connection.
    fn reset(&self, connection: &mut C) -> Result<()> {
        let _ = connection;
        Ok(())
    }

    /// Clears everything a borrower may have changed on the session, on a
    /// return the pool cannot trust: the guard was dropped during a panic,
    /// or [marked dirty](super::PooledConnectionGuard::mark_dirty). Called
    /// instead of [`reset`](Self::reset); an error closes the connection.
    /// The default is `reset`.
    fn clean(&self, connection: &mut C) -> Result<()> {
        self.reset(connection)
    }

    /// Runs a [`ConnectionValidator`](super::ConnectionValidator)'s
    /// query on the connection; `Ok(true)` if it answered as expected.
    /// Override it to send the query to the database; the default ignores
    /// the query and calls [`validate_mut`](Self::validate_mut).
    fn validate_query(&self, connection: &mut C, query: &str) -> Result<bool> {
        let _ = query;
        self.validate_mut(connection)
    }

    /// Closes a connection for good. Errors are logged, never returned to a
    /// caller: the slot is freed either way.
    fn close(&self, connection: C) -> Result<()> {
        drop(connection);
        Ok(())
    }

    /// Describes a new connection for the admin API's connection list:
    /// user, database, client address, and a cancel hook that interrupts
    /// its running query when an operator force-kills it. Called once,
    /// right after `create`; the default says nothing (`None`), and costs
    /// nothing more.
    fn describe(&self, connection: &C) -> Option<ConnectionDescription> {
        let _ = connection;
        None
    }

    /// Tells the factory about a pool it was given to: called once by
    /// [`ConnectionPool::new`](super::ConnectionPool::new), before the
    /// first `create`, with the pool's configuration (its
    /// [`name`](super::PoolConfig::name), sizes and timeouts). The
    /// PostgreSQL adapter names its connections after the pool here. A
    /// factory shared by several pools hears from each. It must not block;
    /// a panic is counted under [`Hook::Attach`](super::Hook::Attach) and
    /// the pool goes on. The default does nothing.
    fn attach(&self, pool: &PoolConfig) {
        let _ = pool;
    }

    /// Prepares a connection for the partition it is handed to, when it
    /// last served another (or none): a tenant's schema (`SET
    /// search_path`), a role. Called on the acquiring thread; an error (or
    /// panic, counted under [`Hook::AssignPartition`](super::Hook::AssignPartition))
    /// closes the connection and fails that acquire. The default does nothing.
    fn assign_partition(&self, connection: &mut C, partition: &Partition) -> Result<()> {
        let _ = (connection, partition);
        Ok(())
    }
}

/// The user's `Arc<F>`, as the pool holds it: behind a `Box<dyn>` whose
/// methods reach `F` at a fixed offset. Calling through `Arc<dyn>` instead
/// re-derived the data's offset from the vtable's alignment on every call,
/// about 7 instructions on each acquire's `validate` and each release's
/// `reset`. It forwards every method: one left out would run the trait's
/// default instead of `F`'s own.
pub(crate) struct Shared<F>(pub(crate) Arc<F>);

impl<C, F: ConnectionFactory<C>> ConnectionFactory<C> for Shared<F> {
    fn create(&self) -> Result<C> {
        self.0.create()
    }

    #[inline]
    fn validate(&self, connection: &C) -> Result<bool> {
        self.0.validate(connection)
    }

    #[inline]
    fn validate_mut(&self, connection: &mut C) -> Result<bool> {
        self.0.validate_mut(connection)
    }

    fn validation_round_trips(&self) -> bool {
        self.0.validation_round_trips()
    }

    #[inline]
    fn reset(&self, connection: &mut C) -> Result<()> {
        self.0.reset(connection)
    }

    fn clean(&self, connection: &mut C) -> Result<()> {
        self.0.clean(connection)
    }

    fn validate_query(&self, connection: &mut C, query: &str) -> Result<bool> {
        self.0.validate_query(connection, query)
    }

    fn close(&self, connection: C) -> Result<()> {
        self.0.close(connection)
    }

    fn describe(&self, connection: &C) -> Option<ConnectionDescription> {
        self.0.describe(connection)
    }

    fn attach(&self, pool: &PoolConfig) {
        self.0.attach(pool)
    }

    fn assign_partition(&self, connection: &mut C, partition: &Partition) -> Result<()> {
        self.0.assign_partition(connection, partition)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{ConnectionFactory, Shared};
    use crate::pool::{ConnectionDescription, PoolConfig, Result};

    /// Overrides every method and counts the calls, one counter each.
    #[derive(Default)]
    struct Overrides([AtomicUsize; 8]);

    impl Overrides {
        fn hit(&self, method: usize) {
            self.0[method].fetch_add(1, Ordering::Relaxed);
        }
    }

    impl ConnectionFactory<u8> for Overrides {
        fn create(&self) -> Result<u8> {
            self.hit(0);
            Ok(7)
        }
        fn validate(&self, _: &u8) -> Result<bool> {
            self.hit(1);
            Ok(false)
        }
        fn reset(&self, _: &mut u8) -> Result<()> {
            self.hit(2);
            Ok(())
        }
        fn validate_mut(&self, _: &mut u8) -> Result<bool> {
            self.hit(6);
            Ok(false)
        }
        fn validate_query(&self, _: &mut u8, _: &str) -> Result<bool> {
            self.hit(3);
            Ok(false)
        }
        fn close(&self, _: u8) -> Result<()> {
            self.hit(4);
            Ok(())
        }
        fn describe(&self, _: &u8) -> Option<ConnectionDescription> {
            self.hit(5);
            Some(ConnectionDescription::new().user("u"))
        }
        fn attach(&self, _: &PoolConfig) {
            self.hit(7);
        }
    }

    #[test]
    fn shared_forwards_every_method_to_the_users_factory() {
        let user = Arc::new(Overrides::default());
        let pool_side: Box<dyn ConnectionFactory<u8>> = Box::new(Shared(Arc::clone(&user)));
        let mut conn = pool_side.create().unwrap();
        assert!(!pool_side.validate(&conn).unwrap(), "the default would say true");
        assert!(!pool_side.validate_mut(&mut conn).unwrap(), "the default would call validate");
        pool_side.reset(&mut conn).unwrap();
        assert!(!pool_side.validate_query(&mut conn, "SELECT 1").unwrap(), "the default would call validate_mut");
        assert!(pool_side.describe(&conn).is_some(), "the default would say nothing");
        pool_side.attach(&PoolConfig::default());
        pool_side.close(conn).unwrap();
        let calls: Vec<usize> = user.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(
            calls,
            [1, 1, 1, 1, 1, 1, 1, 1],
            "create, validate, reset, validate_query, close, describe, validate_mut, attach"
        );
    }
}
