//! `CoreRuntimeBuilder`: how many workers, how deep their queues, whether
//! to pin them. Every setter states its default.

use std::sync::Arc;

use crate::sync::Parker;

use super::core_runtime::{CoreRuntime, Shared};
use super::error::RuntimeError;
use super::lanes::Lanes;
use super::worker::{self, Placement, Startup};
use crate::pool::ConnectionPool;
use crate::pool::home_shard::usable_cpus;

/// The default capacity of each worker's queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// The most workers a runtime may have (the pool's shard limit).
pub const MAX_WORKERS: usize = 1024;

/// Builds a [`CoreRuntime`]; every setter states its default.
#[derive(Debug, Clone)]
#[must_use]
pub struct CoreRuntimeBuilder {
    workers: Option<usize>,
    queue_capacity: usize,
    pin_workers: bool,
    thread_name: String,
}

impl Default for CoreRuntimeBuilder {
    fn default() -> Self {
        CoreRuntimeBuilder {
            workers: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            pin_workers: true,
            thread_name: "rusty-db-worker".to_string(),
        }
    }
}

impl CoreRuntimeBuilder {
    /// Worker threads. Default: one per CPU the process may run on (its
    /// affinity mask, else `available_parallelism`); 1 to [`MAX_WORKERS`].
    /// Worker `i` runs on the `i`-th such CPU and uses shard `i` of the pool
    /// (modulo the pool's `shards`, which default to the CPU count too).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Jobs each worker's queue holds before `execute` waits and
    /// `try_execute` fails. Default [`DEFAULT_QUEUE_CAPACITY`] (1024); at least 1.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Pin each worker to its CPU. Default `true`. Where the OS refuses (as
    /// containers often do), workers run unpinned, still each on its own
    /// shard, and the runtime says so once through `log`.
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.pin_workers = pin;
        self
    }

    /// Worker thread names are `"{prefix}-{index}"`. Default `"rusty-db-worker"`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Starts the workers over `pool` (a handle; the runtime keeps the pool
    /// open while it runs, and does not close it when it stops).
    ///
    /// Fails with [`InvalidConfig`](RuntimeError::InvalidConfig) naming the
    /// bad setting, or [`Spawn`](RuntimeError::Spawn) if a thread could not
    /// be started (those already started are shut down).
    pub fn build<C: Send + 'static>(self, pool: ConnectionPool<C>) -> Result<CoreRuntime<C>, RuntimeError> {
        let workers = self.workers.unwrap_or_else(default_workers);
        if workers == 0 || workers > MAX_WORKERS {
            return Err(RuntimeError::InvalidConfig(format!("workers must be 1 to {MAX_WORKERS}, got {workers}")));
        }
        if self.queue_capacity == 0 {
            return Err(RuntimeError::InvalidConfig("queue_capacity must be at least 1".into()));
        }
        let parkers: Vec<Parker> = (0..workers).map(|_| Parker::new()).collect();
        let unparkers = parkers.iter().map(|p| p.unparker().clone()).collect();
        let shared =
            Arc::new(Shared { pool, lanes: Lanes::new(unparkers, self.queue_capacity), startup: Startup::default() });
        let mut threads = Vec::with_capacity(workers);
        for (index, parker) in parkers.into_iter().enumerate() {
            let placement = Placement::for_worker(index, self.pin_workers);
            let worker_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || worker::run(placement, worker_shared, parker));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    // Dropping the runtime shuts the started workers down.
                    drop(CoreRuntime::from_parts(shared, threads, 0));
                    return Err(RuntimeError::Spawn(error));
                }
            }
        }
        let pinned = shared.startup.wait(workers);
        if self.pin_workers && pinned < workers {
            log::warn!(
                "CoreRuntime: the OS refused to pin {} of {workers} workers to their CPU; they run unpinned, each still on its own pool shard",
                workers - pinned
            );
        }
        Ok(CoreRuntime::from_parts(shared, threads, pinned))
    }
}

/// One worker per CPU the process may run on.
fn default_workers() -> usize {
    match usable_cpus().len() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n.min(MAX_WORKERS),
    }
}
