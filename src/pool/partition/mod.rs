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
//! Plain [`acquire`](crate::pool::ConnectionPool::acquire) on a pool with
//! a manager attached borrows for the default partition if one is set
//! ([`PartitionManager::set_default_partition`]), and otherwise for no
//! partition: such requests share what the partitions' reservations leave
//! of `max_size`, in a queue of their own bounded by the pool's
//! `max_wait_queue_size`. Partitioned acquires pass through one lock (the
//! ledger) on the way in and out; a pool without partitioning never
//! touches it.

mod manager;
mod types;

pub(crate) use manager::Admission;
pub use manager::{Partition, PartitionManager, PartitionStatistics};
pub use types::{PartitionLimits, PartitionRequest, PartitionRouter, PartitionType, RoutingStrategy};
