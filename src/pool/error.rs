//! The pool's error type.
//!
//! One enum for the whole `pool` surface, with the variant names of the API
//! reference. Each variant carries what a caller needs to act on it: the
//! timeout that expired, the counts that made the pool full, the field of a
//! bad configuration, or the factory's own error as `source()`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// `Result` with [`PoolError`] as its default error (another error type can
/// be named, so `use rusty_db::pool::*` does not break `Result<T, E>`).
pub type Result<T, E = PoolError> = std::result::Result<T, E>;

/// Everything that can go wrong while configuring or using a pool.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No connection became available within the acquire timeout (the value
    /// is the timeout that was waited). Raise `acquire_timeout` or
    /// `max_size`, or hold connections for less time.
    ///
    /// When connection creation failed during the wait, or is still failing
    /// (no create has succeeded since the last failure), the pool returns
    /// [`PoolError::Factory`] instead, so the real cause is not hidden.
    #[error(
        "timed out after {0:?} waiting for a connection: raise acquire_timeout or max_size, or return connections sooner"
    )]
    ConnectionTimeout(Duration),

    /// `try_acquire` found no idle connection it may take and no room to
    /// create one: every connection is in use, or a waiter it does not
    /// overtake waits (a starving one; in `Fifo` mode, any).
    #[error("pool exhausted: {active} of {max} connections are in use; use acquire() to wait, or raise max_size")]
    PoolExhausted {
        /// Connections borrowed at the moment of the attempt (a
        /// partition's own, for a partitioned request).
        active: usize,
        /// The pool's `max_size` (a partition's `max_connections`, for a
        /// partitioned request).
        max: usize,
    },

    /// A connection failed validation and the operation could not go on
    /// with another one: on acquire, connections kept failing validation
    /// until `acquire_timeout` ran out.
    #[error("connection validation failed: {0}")]
    ValidationFailed(String),

    /// `max_wait_queue_size` threads are already waiting; the caller was not
    /// queued. Shed load, or raise `max_wait_queue_size`.
    #[error("the wait queue is full: too many threads are already waiting for a connection")]
    WaitQueueFull,

    /// The pool was closed; it hands out no more connections.
    #[error("the pool is closed")]
    PoolClosed,

    /// The configuration contradicts itself; the message names the field.
    #[error("invalid pool configuration: {0}")]
    InvalidConfig(String),

    /// The [`ConnectionFactory`](crate::pool::ConnectionFactory) failed (or
    /// panicked) while creating a connection. The message includes the
    /// factory's error, and `source()` is that error itself, so it can be
    /// downcast to the driver's error type.
    #[error(transparent)]
    Factory(FactoryError),

    /// No open connection has this id (it was closed, or never existed).
    /// List the open ones with `ConnectionPool::connections`.
    #[error("no open connection has id {0}: it was closed, or never existed")]
    ConnectionNotFound(u64),

    /// The connection is borrowed; killing it needs `force` (which closes
    /// it when its borrower returns it, and cancels its running query).
    #[error("connection {0} is in use: kill it with force to close it when it is returned")]
    ConnectionInUse(u64),

    /// No partition takes this request (the routing strategy found none and
    /// no default partition is set); the value says what was asked for.
    /// Create the partition, or set a default one.
    #[error("no partition for {0}: create one, or set a default partition")]
    PartitionNotFound(String),

    /// A partition of this name exists already.
    #[error("a partition named {0:?} exists already")]
    PartitionExists(String),

    /// The partition has used up one of its resource limits (see
    /// `PartitionLimits`); counted as a violation. Retry later, or raise
    /// the limit.
    #[error("partition {partition:?} is over its {resource} limit")]
    QuotaExceeded {
        /// The partition's name.
        partition: Arc<str>,
        /// Which limit.
        resource: QuotaResource,
    },
}

/// The resource a [`PoolError::QuotaExceeded`] ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaResource {
    /// `cpu_limit`: hold time plus reported CPU per rolling minute.
    Cpu,
    /// `memory_limit`: reported bytes in use.
    Memory,
    /// `io_limit`: reported operations per second.
    Io,
}

impl QuotaResource {
    /// `"cpu"`, `"memory"` or `"io"`, as in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaResource::Cpu => "cpu",
            QuotaResource::Memory => "memory",
            QuotaResource::Io => "io",
        }
    }
}

impl fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PoolError {
    /// Wraps a factory's error, keeping it as the `source()`.
    ///
    /// ```
    /// use rusty_db::pool::PoolError;
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "db down");
    /// let err = PoolError::factory(io);
    /// assert_eq!(err.to_string(), "the connection factory failed: db down");
    /// let source = std::error::Error::source(&err).expect("the factory's error");
    /// assert!(source.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn factory(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        PoolError::Factory(FactoryError::new(error))
    }
}

/// The error a [`ConnectionFactory`](crate::pool::ConnectionFactory) returned,
/// shared so that the pool can hand the same failure to every caller it
/// affects.
#[derive(Clone)]
pub struct FactoryError(Arc<dyn StdError + Send + Sync>);

impl FactoryError {
    /// Wraps any error.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        FactoryError(Arc::from(error.into()))
    }

    /// The factory's own error (also this error's `source()`).
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for FactoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for FactoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the connection factory failed: {}", self.0)
    }
}

impl StdError for FactoryError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}
