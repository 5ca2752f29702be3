//! A thread-per-core runtime over a connection pool.
//!
//! [`CoreRuntime`] runs one worker thread per core, pinned to it
//! (`core_affinity`) and bound to its own shard of the pool, so a job's
//! connection comes from the idle stack of the core it runs on and the
//! workers never share a hot cache line. Jobs go to the submitting core's
//! worker through a bounded queue; idle workers steal from busy ones
//! (crossbeam-deque). Files: `core_runtime` (the handle), `builder`,
//! `lanes` (the queues and their handshakes), `worker` (the thread body),
//! `job_handle` (a job's result), `error`, and `shard_policy` (how threads
//! outside the runtime pick their shard).
//!
//! ```text
//!  submitter on CPU k ──execute(job)──► lane k (bounded) ──► worker k: pinned to CPU k, bound to shard k
//!        ▲                                  │ idle workers steal        │ pool.acquire() on shard k
//!        └───────── JobHandle::join ◄───────┴───────────── result, panic or pool error
//! ```

mod builder;
mod core_runtime;
mod error;
mod job_handle;
pub(crate) mod lanes;
mod shard_policy;
mod worker;

pub use builder::{CoreRuntimeBuilder, DEFAULT_QUEUE_CAPACITY, MAX_WORKERS};
pub use core_runtime::CoreRuntime;
pub use error::RuntimeError;
pub use job_handle::JobHandle;
pub use shard_policy::{ShardPolicy, set_shard_policy, shard_policy};
