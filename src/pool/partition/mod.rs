//! Multi-tenant partitions under the pool's one cap.
//!
//! One pool per tenant multiplies connections until the database gives
//! out; one pool for all lets a noisy tenant take every connection. A
//! partitioned pool keeps one cap, `max_size`, and splits it: each
//! partition holds at most its `max_connections`, has its
//! `min_connections` reserved out of `max_size` (no other partition can
//! take them, even while it is idle), and queues its own requests, at most
//! `max_wait_queue` of them, with the pool's bounded-wait fairness (a
//! request may overtake its partition's oldest waiter only until that one
//! has waited `fairness_threshold`). A tenant with ten times the threads of
//! another fills its own maximum and queue, not the other's reservation.
//!
//! ```
//! use rusty_db::pool::{
//!     ConnectionFactory, ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest,
//!     PartitionType, PoolConfig, Result, RoutingStrategy,
//! };
//! use std::sync::Arc;
//!
//! struct Factory;
//! impl ConnectionFactory<u32> for Factory {
//!     fn create(&self) -> Result<u32> { Ok(0) }
//! }
//!
//! let config = PoolConfig::builder().min_size(0).initial_size(0).max_size(8).enable_partitioning(true).build()?;
//! let pool = ConnectionPool::new(config, Arc::new(Factory))?;
//! let manager = PartitionManager::new(RoutingStrategy::TenantBased);
//! let limits = PartitionLimits { max_connections: 6, min_connections: 2, ..Default::default() };
//! manager.create_partition("tenant_acme".into(), PartitionType::Tenant("ACME Corp".into()), limits)?;
//! pool.set_partition_manager(manager)?;
//!
//! let conn = pool.acquire_for(&PartitionRequest::for_tenant("ACME Corp"))?;
//! assert_eq!(pool.partitions().unwrap().partition("tenant_acme").unwrap().statistics().active, 1);
//! # drop(conn);
//! # Ok::<(), rusty_db::pool::PoolError>(())
//! ```
//!
//! # Quotas
//!
//! The pool cannot see the database's CPU, memory or disks, so each of a
//! partition's resource limits bounds something the pool does see:
//!
//! - `cpu_limit`: the partition's connection hold time (every borrow, from
//!   acquire to release) plus the CPU its borrowers report
//!   ([`report_cpu`](crate::pool::PooledConnectionGuard::report_cpu)),
//!   summed over a rolling minute (60 one-second buckets). Once the sum
//!   reaches the limit, `acquire_for` fails until enough of it ages out.
//! - `memory_limit`: bytes its borrowers report in use
//!   ([`report_memory`](crate::pool::PooledConnectionGuard::report_memory)),
//!   held until each borrow ends. A report that would pass the limit fails;
//!   at the limit, `acquire_for` fails.
//! - `io_limit`: I/O operations per second its borrowers report
//!   ([`report_io`](crate::pool::PooledConnectionGuard::report_io)), as a
//!   token bucket refilling at the limit per second with a burst of one
//!   second's worth. A report larger than what is left fails; with less
//!   than one token left, `acquire_for` fails.
//!
//! Each failure is [`QuotaExceeded`](crate::pool::PoolError::QuotaExceeded)
//! `{ partition, resource }` (`"cpu"`, `"memory"`, `"io"`) and counts a
//! violation in the partition's [`PartitionStatistics`].
//!
//! Plain [`acquire`](crate::pool::ConnectionPool::acquire) on a pool with
//! a manager attached borrows for the default partition if one is set
//! ([`PartitionManager::set_default_partition`]), and otherwise for no
//! partition: such requests share what the partitions' reservations leave
//! of `max_size`, in a queue of their own bounded by the pool's
//! `max_wait_queue_size`. Partitioned acquires pass through one lock (the
//! ledger) on the way in and out; a pool without partitioning never
//! touches it. A request the ledger admitted is not refused by the pool's
//! `max_wait_queue_size` afterwards, and a request that waited is checked
//! against its quotas again when it is let through. `close()` wakes every
//! request waiting in the ledger with `PoolClosed`.

mod manager;
mod quota;
mod types;

pub(crate) use manager::Admission;
pub use manager::{Partition, PartitionManager, PartitionStatistics};
pub use types::{PartitionLimits, PartitionRequest, PartitionRouter, PartitionType, RoutingStrategy};
