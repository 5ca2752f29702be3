//! `CoreRuntime`, the public handle: submit jobs, join their results,
//! shut down.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::builder::CoreRuntimeBuilder;
use super::error::RuntimeError;
use super::job_handle::{self, JobHandle};
use super::lanes::{Job, Lanes};
use super::worker::Startup;
use crate::pool::home_shard::home_shard;
use crate::pool::{ConnectionPool, PoolError, panic_message};
use crate::sync::Mutex;

/// What the runtime's handle and its workers share.
pub(crate) struct Shared<C: Send + 'static> {
    pub(crate) pool: ConnectionPool<C>,
    pub(crate) lanes: Lanes<C>,
    pub(crate) startup: Startup,
}

/// A thread-per-core runtime over a [`ConnectionPool`]: one worker thread
/// per core, pinned to it and bound to its own shard of the pool, running
/// jobs that each borrow a connection.
///
/// A job goes to the worker of the core its submitter runs on, so its
/// connection comes from (and returns to) that core's idle stack; an idle
/// worker steals queued jobs from busy ones. Each worker's queue holds
/// [`queue_capacity`](CoreRuntimeBuilder::queue_capacity) jobs:
/// [`execute`](Self::execute) waits for room, [`try_execute`](Self::try_execute)
/// reports [`QueueFull`](RuntimeError::QueueFull) instead.
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};
/// use rusty_db::runtime::{CoreRuntime, RuntimeError};
/// use std::sync::Arc;
///
/// struct Conn { queries: u64 }
/// struct Factory;
/// impl ConnectionFactory<Conn> for Factory {
///     fn create(&self) -> Result<Conn> { Ok(Conn { queries: 0 }) }
/// }
///
/// let config = PoolConfig::builder().min_size(2).max_size(4).initial_size(2).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(Factory))?;
/// let runtime = CoreRuntime::builder().queue_capacity(64).build(pool.clone())?;
///
/// let handles: Vec<_> = (0..8u64)
///     .map(|n| runtime.execute(move |conn: &mut Conn| { conn.queries += 1; n * n }))
///     .collect();
/// let sum: u64 = handles.into_iter().map(|h| h.join().expect("job ran")).sum();
/// assert_eq!(sum, 140);
///
/// // A panicking job is reported through its handle; its worker lives on.
/// let failed = runtime.execute(|_: &mut Conn| -> u64 { panic!("bad query") }).join();
/// assert!(matches!(failed, Err(RuntimeError::JobPanicked(ref m)) if m == "bad query"));
/// assert_eq!(runtime.execute(|_: &mut Conn| 7).join()?, 7);
///
/// runtime.shutdown(); // drains the queues and joins the workers (so does drop)
/// assert!(matches!(runtime.execute(|_: &mut Conn| ()).join(), Err(RuntimeError::ShutDown)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CoreRuntime<C: Send + 'static> {
    shared: Arc<Shared<C>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pinned: usize,
}

impl CoreRuntime<()> {
    /// A builder with the defaults: one worker per CPU, 1024 jobs per queue.
    /// (Not generic: the connection type comes from the pool given to
    /// [`build`](CoreRuntimeBuilder::build).)
    pub fn builder() -> CoreRuntimeBuilder {
        CoreRuntimeBuilder::default()
    }
}

impl<C: Send + 'static> CoreRuntime<C> {
    /// A runtime over `pool` with the [builder](Self::builder)'s defaults.
    pub fn new(pool: ConnectionPool<C>) -> Result<Self, RuntimeError> {
        CoreRuntimeBuilder::default().build(pool)
    }

    pub(crate) fn from_parts(shared: Arc<Shared<C>>, threads: Vec<JoinHandle<()>>, pinned: usize) -> Self {
        let runtime = CoreRuntime { shared, threads: Mutex::default(), pinned };
        *runtime.threads.lock() = threads;
        runtime
    }

    /// Queues `job` on the worker of the calling thread's core (or the next
    /// worker with room), waiting while every queue is full.
    ///
    /// The job runs with a connection borrowed from the pool, on that
    /// worker's shard; its result, its panic, the pool's error, or
    /// [`ShutDown`](RuntimeError::ShutDown) if the runtime shuts down first,
    /// come back through the handle. Called from inside a job while every
    /// queue is full, this waits for room that only the workers can make:
    /// prefer [`try_execute`](Self::try_execute) there.
    pub fn execute<F, T>(&self, job: F) -> JobHandle<T>
    where
        F: FnOnce(&mut C) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, handle) = wrap(job);
        // On failure the job is dropped unrun and its handle reports why.
        let _ = self.shared.lanes.push(self.home(), job, true);
        handle
    }

    /// Like [`execute`](Self::execute), but fails at once with
    /// [`QueueFull`](RuntimeError::QueueFull) when every worker's queue is
    /// full, or [`ShutDown`](RuntimeError::ShutDown); the job is dropped.
    pub fn try_execute<F, T>(&self, job: F) -> Result<JobHandle<T>, RuntimeError>
    where
        F: FnOnce(&mut C) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, handle) = wrap(job);
        self.shared.lanes.push(self.home(), job, false)?;
        Ok(handle)
    }

    /// The lane of the calling thread's core (a worker's own lane).
    #[inline]
    fn home(&self) -> usize {
        home_shard(self.shared.lanes.len())
    }

    /// Stops taking jobs, lets the workers run every job already queued,
    /// and joins them. Later submissions fail with
    /// [`ShutDown`](RuntimeError::ShutDown). Idempotent; dropping the
    /// runtime does the same. The pool stays open.
    pub fn shutdown(&self) {
        self.shared.lanes.shut_down();
        let threads = std::mem::take(&mut *self.threads.lock());
        let me = std::thread::current().id();
        for thread in threads {
            // A job that shuts its own runtime down cannot join its own
            // worker; that worker exits when the job returns.
            if thread.thread().id() != me {
                // A worker cannot panic (jobs catch their own panics).
                let _ = thread.join();
            }
        }
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shut_down(&self) -> bool {
        self.shared.lanes.is_shut_down()
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.lanes.len()
    }

    /// How many workers are pinned to a core (fewer than
    /// [`workers`](Self::workers) where the OS refuses pinning, as
    /// containers often do, or when pinning was turned off).
    pub fn pinned_workers(&self) -> usize {
        self.pinned
    }

    /// The capacity of each worker's queue.
    pub fn queue_capacity(&self) -> usize {
        self.shared.lanes.capacity()
    }

    /// Jobs queued and not yet started, over every worker (a snapshot).
    pub fn queued(&self) -> usize {
        self.shared.lanes.queued()
    }

    /// The pool the jobs borrow from.
    pub fn pool(&self) -> &ConnectionPool<C> {
        &self.shared.pool
    }
}

impl<C: Send + 'static> Drop for CoreRuntime<C> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl<C: Send + 'static> fmt::Debug for CoreRuntime<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreRuntime")
            .field("workers", &self.workers())
            .field("pinned_workers", &self.pinned)
            .field("queue_capacity", &self.queue_capacity())
            .field("queued", &self.queued())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

/// Turns a user job into a queued one: borrow a connection, run the job,
/// report the outcome. The borrow is inside `catch_unwind`, so a panicking
/// job drops its guard while the thread panics and the pool checks the
/// connection before anyone else gets it.
fn wrap<C, F, T>(job: F) -> (Job<C>, JobHandle<T>)
where
    C: Send + 'static,
    F: FnOnce(&mut C) -> T + Send + 'static,
    T: Send + 'static,
{
    let (completer, handle) = job_handle::pair();
    let job: Job<C> = Box::new(move |pool: &ConnectionPool<C>| {
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<T, PoolError> {
            let mut conn = pool.acquire()?;
            Ok(job(&mut conn))
        }));
        completer.complete(match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(RuntimeError::Pool(error)),
            Err(panic) => Err(RuntimeError::JobPanicked(panic_message(&*panic))),
        });
    });
    (job, handle)
}
