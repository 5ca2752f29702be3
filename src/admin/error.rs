//! What can go wrong starting an admin server or registering a pool.

use std::net::SocketAddr;

/// An admin server could not start, or a pool could not be registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The builder's settings contradict themselves or are unsafe; the
    /// message says which and what to do.
    #[error("invalid admin server configuration: {0}")]
    InvalidConfig(String),

    /// The address could not be bound (in use, or not ours).
    #[error("cannot listen on {addr}: {source}; pick another address or port (port 0 picks a free one)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The server could not start (TLS set-up, or a thread).
    #[error("the admin server could not start: {0}")]
    Start(String),

    /// Another open pool is registered under this id; give the pools
    /// distinct names.
    #[error("a pool with id {0:?} is registered already: give each pool its own name")]
    DuplicatePool(String),
}
