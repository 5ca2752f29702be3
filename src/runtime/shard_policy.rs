//! How threads outside a runtime choose their home shard.
//!
//! Runtime workers are bound to their shard. Every other thread's home
//! shard follows the CPU it runs on, by default; round-robin is kept as the
//! fallback where the CPU cannot be read and as the baseline the
//! `contention` benchmark measures against.

use crate::pool::home_shard::{self, Policy};

/// How a thread that is not a runtime worker chooses the shard it pops
/// idle connections from and pushes them back to. Process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ShardPolicy {
    /// The shard of the CPU the thread runs on, read again every 64 pool
    /// operations (`sched_getcpu`; round-robin where the platform does not
    /// say). Threads running at the same instant rarely share a shard. The
    /// default.
    #[default]
    Cpu,
    /// A shard handed out round-robin when the thread first uses a pool.
    /// Threads on different CPUs can share a shard by chance.
    RoundRobin,
}

/// Sets the [`ShardPolicy`] of every thread outside a runtime, from each
/// thread's next refresh on (within 64 pool operations; at once for the
/// caller). Default [`ShardPolicy::Cpu`].
pub fn set_shard_policy(policy: ShardPolicy) {
    home_shard::set_policy(match policy {
        ShardPolicy::Cpu => Policy::Cpu,
        ShardPolicy::RoundRobin => Policy::RoundRobin,
    });
}

/// The [`ShardPolicy`] in force.
pub fn shard_policy() -> ShardPolicy {
    match home_shard::policy() {
        Policy::Cpu => ShardPolicy::Cpu,
        Policy::RoundRobin => ShardPolicy::RoundRobin,
    }
}
