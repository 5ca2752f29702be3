//! The connection pool.
//!
//! [`ConnectionPool`] hands out [`PooledConnectionGuard`]s; a
//! [`ConnectionFactory`] makes the connections; [`PoolConfig`] says how
//! many and how long to wait. The lock-free protocol is `engine`'s alone,
//! built from `slot` (a connection's place in the slab), `index_stack`
//! (the Treiber stacks of idle and vacant slots), `waiters` (the wait
//! queue, the only slow path) and `create_gate` (backoff while the factory
//! fails). `inner` is the pool's shared state, which `acquire`, `release`,
//! `create`, `retirement`, `borrows`, `close` and `upkeep` (the maintenance
//! pass) extend, one concern each. Around them: `guard_refs` (keeping the
//! pool alive for outstanding guards without a shared counter),
//! `background` (threads for work that blocks in user code) and `hooks`
//! (calling user code with its panics caught).

mod acquire;
mod aging;
mod background;
mod borrows;
mod close;
mod config;
mod connection_pool;
mod connections;
mod create;
mod create_gate;
mod deadline;
mod engine;
mod error;
mod events;
mod factory;
mod guard;
pub(crate) mod guard_refs;
mod hold_estimate;
pub(crate) mod home_shard;
mod hooks;
pub(crate) mod index_stack;
mod inner;
pub mod invariants;
mod leak;
mod maintenance;
pub mod partition;
mod release;
mod retirement;
mod slot;
mod slot_extras;
mod statements;
mod stats;
mod upkeep;
mod validator;
pub(crate) mod waiters;

pub use aging::AgingPolicy;
pub use config::{DEFAULT_VALIDATION_BYPASS_WINDOW, MAX_POOL_SIZE, PoolConfig, PoolConfigBuilder, QueueMode};
pub use connection_pool::{ConnectionPool, WeakConnectionPool};
pub use connections::{Canceller, ConnectionDescription, ConnectionInfo, ConnectionState, Killed};
pub use error::{FactoryError, PoolError, QuotaResource, Result};
pub use events::{CloseReason, EventListenerRef, PoolEventListener};
pub use factory::ConnectionFactory;
pub use guard::PooledConnectionGuard;
pub use hooks::Hook;
pub(crate) use hooks::panic_message;
pub use leak::{LeakDetector, LeakInfo};
pub use maintenance::MaintenanceService;
pub use partition::{
    Partition, PartitionLimits, PartitionManager, PartitionRequest, PartitionRouter, PartitionStatistics,
    PartitionType, RoutingStrategy,
};
pub use statements::PrepareStatement;
pub use stats::{
    AcquireFailures, Buckets, ClosedByReason, DashboardData, DashboardProvider, EfficiencyMetrics, HookPanics,
    Percentiles, PoolStatistics, PoolStats, TimeHistogram,
};
pub use validator::{ConnectionValidator, DEFAULT_BYPASS_WINDOW, ValidationQuery, ValidatorStatistics};
