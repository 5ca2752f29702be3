//! # rusty-db
//!
//! A synchronous database connection pool whose acquire and release take no
//! lock: per-core sharded idle stacks with work stealing, a fixed slab of
//! slots so `max_size` holds without a counter race, and a wait queue that
//! hands a returned connection straight to the oldest waiter. The lock-free
//! parts are model-checked with [loom](https://docs.rs/loom) (`loom-tests/`).
//!
//! ```text
//!  application threads ──acquire()──► home shard idle stack ──(empty)──► steal from other shards
//!         ▲                                    │                               │(all empty)
//!         │ guard (RAII)                       ▼                               ▼
//!         └──────────────drop()──────── release: hand off to the      reserve a vacant slot and
//!                                       oldest waiter, else push      create via ConnectionFactory
//!                                       onto the home shard            (else wait, FIFO, with timeout)
//! ```
//!
//! [`runtime::CoreRuntime`] runs one worker thread per core, each pinned to
//! its core and bound to its own shard, for applications that want jobs run
//! next to the connections they use.
//!
//! ## Quick start
//!
//! ```
//! use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};
//! use std::sync::Arc;
//!
//! struct MyConnection { queries: u64 }
//! struct MyConnectionFactory;
//!
//! impl ConnectionFactory<MyConnection> for MyConnectionFactory {
//!     fn create(&self) -> Result<MyConnection> {
//!         Ok(MyConnection { queries: 0 })
//!     }
//! }
//!
//! let config = PoolConfig::builder().min_size(2).max_size(8).initial_size(2).build()?;
//! let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory))?;
//!
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| {
//!             let mut conn = pool.acquire().expect("a connection within 30 s");
//!             conn.queries += 1; // the guard derefs to the connection
//!         }); // dropped: back to the pool
//!     }
//! });
//! assert_eq!(pool.active(), 0);
//! # Ok::<(), rusty_db::pool::PoolError>(())
//! ```
//!
//! ## Where we differ from the API reference
//!
//! The reference is asynchronous; this crate is its synchronous twin: no
//! `.await`, `ConnectionFactory` methods block. When creating connections
//! keeps failing until the acquire deadline, `acquire` returns
//! [`PoolError::Factory`](pool::PoolError::Factory) with the factory's last
//! error rather than a bare `ConnectionTimeout`, so the cause is not hidden.
//!
//! The reference's Prometheus example exports the current number of
//! connections as a gauge named `rustydb_pool_connections_total`; only
//! counters may end in `_total` (`promtool check metrics` rejects it), so
//! ours is `rustydb_pool_connections`. Maintenance threads are named
//! `rdb-<pool name>`, short enough for the kernel's 15-byte thread names.
//!
//! An `acquire` that may wait runs `ConnectionFactory::create` on a
//! short-lived thread named `rusty-db-create`, so its timeout holds while
//! the factory hangs; `try_acquire` creates on the caller's thread. A
//! maintenance pass runs its factory calls on a short-lived thread named
//! like the pool's maintenance thread, and `close()` closes idle
//! connections on up to four `rusty-db-close` threads. A factory that needs
//! the caller's thread-local state should not rely on running there.
//!
//! The admin API ([`admin`], feature `admin`) names a pool `pool_<name>`
//! (`pool_default` for the default name, as in the reference) and a
//! connection `conn_<id>`; connection ids are unique in the process, so a
//! kill by id needs no pool. Times are RFC 3339 in UTC to the second. The
//! partition routes create and list the partitions of a pool with a
//! [`PartitionManager`](pool::PartitionManager) attached, and answer 404
//! `partitioning_not_enabled` for any other, after checking the body.
//!
//! Factory methods and listener hooks are user code the pool treats as
//! hostile: a panic in one is caught, logged and counted per
//! [`Hook`](pool::Hook) in
//! [`PoolStatistics::hook_panics`](pool::PoolStatistics::hook_panics),
//! and costs no connection and no capacity; `close()` returns within
//! [`shutdown_timeout`](pool::PoolConfigBuilder::shutdown_timeout) even
//! while one hangs.

#![deny(missing_docs)]

pub mod adapters;
#[cfg(all(feature = "admin", not(loom)))]
pub mod admin;
pub mod pool;
pub mod runtime;
mod sync;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Internals exposed to the loom models in `loom-tests/` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals {
    pub use crate::pool::guard_refs::GuardRefs;
    pub use crate::pool::index_stack::{IndexStack, NIL};
    pub use crate::pool::waiters::{Grant, WaitQueue};
    pub use crate::runtime::lanes::{Job, Lanes};
    pub use crate::sync::Parker;
}
