//! The runtime's error type.
//!
//! One enum for the whole `runtime` surface: what [`JobHandle::join`]
//! reports about a job, what [`CoreRuntime::try_execute`] reports about
//! back-pressure, and what the builder reports about its configuration.
//!
//! [`JobHandle::join`]: super::JobHandle::join
//! [`CoreRuntime::try_execute`]: super::CoreRuntime::try_execute

use crate::pool::PoolError;

/// Everything that can go wrong while building or using a
/// [`CoreRuntime`](super::CoreRuntime).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The job panicked (the value is the panic message). Its worker caught
    /// the panic and goes on with the next job; the connection it held was
    /// validated before going back to the pool, or closed.
    #[error("the job panicked: {0}")]
    JobPanicked(String),

    /// The runtime was shut down before the job could be queued (a job
    /// already queued still runs: shutdown drains the queues).
    #[error("the runtime is shut down")]
    ShutDown,

    /// `try_execute` found every worker's queue full. Retry later, use
    /// `execute` (which waits for room), or raise `queue_capacity`.
    #[error("every worker's queue is full ({capacity} jobs each): retry later, or raise queue_capacity")]
    QueueFull {
        /// The configured capacity of each worker's queue.
        capacity: usize,
    },

    /// The worker could not get a connection for the job; the job did not run.
    #[error("no connection for the job: {0}")]
    Pool(#[from] PoolError),

    /// The builder's settings contradict each other; the message names the field.
    #[error("invalid runtime configuration: {0}")]
    InvalidConfig(String),

    /// The operating system refused to start a worker thread.
    #[error("could not spawn a runtime worker thread: {0}")]
    Spawn(#[source] std::io::Error),
}
