//! The maintenance thread: aging, eviction, refill, keep-alive and leak
//! scans, off the acquire path.
//!
//! A [`MaintenanceService`] is one thread that runs the maintenance pass of
//! every pool registered with it, each at its own interval and on demand
//! (after an eviction or a failed creation). By default every pool makes a
//! private service, so a pool has one thread named `rdb-<name>`;
//! give many pools one shared service
//! ([`PoolConfigBuilder::maintenance_service`](super::PoolConfigBuilder::maintenance_service))
//! so that 300 pools do not mean 300 threads. A pool's own thread stops
//! when the pool closes; a shared one when the last clone of the service
//! (the caller's, and those its pools keep) is dropped.
//!
//! A pass makes no factory call itself (it hands them to a short-lived
//! thread of its pool, see `upkeep`), so one pool's slow factory holds up
//! no other pool's pass; while such calls run, a pool has that one thread
//! more. A pass holds its pool's task lock; `close()` takes that lock to
//! unregister, so it waits for the pass in progress, up to its shutdown
//! timeout (a pass runs user code only in the listener's `on_leak`).

use std::fmt;
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::deadline::far_future;
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering};

/// One pool's maintenance, as the service sees it.
pub(crate) trait Maintain: Send {
    /// Runs one pass; returns when the next one is due.
    fn run(&mut self, now: Instant) -> Instant;
}

/// A registered pool.
pub(crate) struct Task {
    job: Mutex<Option<Box<dyn Maintain>>>,
    /// When the next pass is due; guarded by the service's lock.
    due: Mutex<Instant>,
    wake: AtomicBool,
    /// Set by a pool that closes from inside its own pass: the service
    /// drops the job once the pass returns.
    cancelled: AtomicBool,
}

impl Task {
    /// Asks the service to drop this job after the pass in progress.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct State {
    tasks: Vec<Arc<Task>>,
    stop: bool,
}

struct Service {
    name: String,
    state: Mutex<State>,
    cv: Condvar,
    /// Set (under `state`'s lock, with `exited_cv` notified) as the thread leaves its loop.
    exited: AtomicBool,
    exited_cv: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: Mutex<Option<ThreadId>>,
}

/// A thread that maintains any number of pools.
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, MaintenanceService, PoolConfig, Result};
/// use std::sync::Arc;
///
/// struct Factory;
/// impl ConnectionFactory<u32> for Factory {
///     fn create(&self) -> Result<u32> { Ok(0) }
/// }
///
/// let service = MaintenanceService::new("tenants");
/// let pools: Vec<_> = (0..3)
///     .map(|i| {
///         let config = PoolConfig::builder()
///             .name(format!("tenant-{i}"))
///             .min_size(1).max_size(2).initial_size(1)
///             .maintenance_service(service.clone())
///             .build()?;
///         ConnectionPool::new(config, Arc::new(Factory))
///     })
///     .collect::<Result<_>>()?;
/// assert_eq!(service.pools(), 3);
/// drop(pools); // each pool unregisters as it closes
/// assert_eq!(service.pools(), 0);
/// # Ok::<(), rusty_db::pool::PoolError>(())
/// ```
#[derive(Clone)]
pub struct MaintenanceService {
    service: Arc<Service>,
    /// Shared by the handles but not by the thread (which holds `service`):
    /// dropping the last handle stops and joins the thread.
    _owner: Arc<Owner>,
}

/// Stops its service's thread when the last handle lets go of it.
struct Owner(Arc<Service>);

impl Drop for Owner {
    fn drop(&mut self) {
        // A pool's own service was stopped by its `close()`, which may have
        // given up on a stuck pass; dropping the handle then waits no more.
        if !self.0.state.lock().stop {
            self.0.shutdown_until(None);
        }
    }
}

impl fmt::Debug for MaintenanceService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaintenanceService").field("name", &self.service.name).finish()
    }
}

impl PartialEq for MaintenanceService {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.service, &other.service)
    }
}

impl MaintenanceService {
    /// Starts a service thread named `rdb-<name>`. It runs until
    /// the last clone of the service is dropped (pools hold one until they
    /// close and are dropped).
    pub fn new(name: &str) -> Self {
        let service = Arc::new(Service {
            name: name.to_string(),
            state: Mutex::default(),
            cv: Condvar::new(),
            exited: AtomicBool::new(false),
            exited_cv: Condvar::new(),
            thread: Mutex::default(),
            thread_id: Mutex::default(),
        });
        let runner = Arc::clone(&service);
        let spawned = thread::Builder::new().name(format!("rdb-{name}")).spawn(move || runner.run());
        match spawned {
            Ok(handle) => {
                *service.thread_id.lock() = Some(handle.thread().id());
                *service.thread.lock() = Some(handle);
            }
            // Without a thread, pools still work; only background upkeep stops.
            Err(e) => log::error!("maintenance service {name:?}: cannot start its thread: {e}"),
        }
        MaintenanceService { _owner: Arc::new(Owner(Arc::clone(&service))), service }
    }

    /// How many pools are registered.
    pub fn pools(&self) -> usize {
        self.service.state.lock().tasks.len()
    }

    /// Whether the caller is this service's thread.
    pub(crate) fn is_current_thread(&self) -> bool {
        self.service.is_current_thread()
    }

    /// Registers a pool's job; its first pass runs at once.
    pub(crate) fn register(&self, job: Box<dyn Maintain>) -> Arc<Task> {
        let task = Arc::new(Task {
            job: Mutex::new(Some(job)),
            due: Mutex::new(Instant::now()),
            wake: AtomicBool::new(true),
            cancelled: AtomicBool::new(false),
        });
        self.service.state.lock().tasks.push(Arc::clone(&task));
        self.service.cv.notify_one();
        task
    }

    /// Asks for a pass of `task` as soon as possible.
    pub(crate) fn wake(&self, task: &Task) {
        // Relaxed: the lock below orders it with the service's check.
        task.wake.store(true, Ordering::Relaxed);
        let _state = self.service.state.lock();
        self.service.cv.notify_one();
    }

    /// Removes `task`, waiting until `deadline` for a pass in progress to
    /// finish. `false` if it was still running then: the service drops the
    /// job once that pass returns.
    pub(crate) fn unregister_until(&self, task: &Arc<Task>, deadline: Instant) -> bool {
        self.service.state.lock().tasks.retain(|t| !Arc::ptr_eq(t, task));
        match task.job.try_lock_until(deadline) {
            Some(mut job) => {
                drop(job.take());
                true
            }
            None => {
                task.cancel();
                false
            }
        }
    }

    /// Stops the thread and joins it (unless called from it), waiting
    /// until `deadline` for a pass in progress. `false` if the thread was
    /// still running then: it exits once that pass returns.
    pub(crate) fn shutdown_until(&self, deadline: Instant) -> bool {
        self.service.shutdown_until(Some(deadline))
    }
}

impl Service {
    fn is_current_thread(&self) -> bool {
        *self.thread_id.lock() == Some(thread::current().id())
    }

    /// Stops the thread and joins it, once it has left its loop by
    /// `deadline` (if any); from the thread itself, only stops it (it exits
    /// once the pass in progress returns). `false` if it was still running.
    fn shutdown_until(&self, deadline: Option<Instant>) -> bool {
        let mut state = self.state.lock();
        state.stop = true;
        self.cv.notify_one();
        if self.is_current_thread() {
            return true;
        }
        // Relaxed: written under the lock we hold.
        while !self.exited.load(Ordering::Relaxed) && self.thread.lock().is_some() {
            match deadline {
                Some(deadline) => {
                    if self.exited_cv.wait_until(&mut state, deadline) && !self.exited.load(Ordering::Relaxed) {
                        log::warn!(
                            "maintenance service {:?}: its thread is still in a pass; it exits once the pass returns",
                            self.name
                        );
                        return false;
                    }
                }
                None => {
                    self.exited_cv.wait_until(&mut state, far_future(Instant::now()));
                }
            }
        }
        drop(state);
        if let Some(handle) = self.thread.lock().take() {
            if handle.join().is_err() {
                log::error!("maintenance service {:?}: its thread panicked", self.name);
            }
        }
        true
    }

    fn run(&self) {
        /// Tells `shutdown_until` the thread has left its loop, however it left.
        struct Exit<'a>(&'a Service);
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                let _state = self.0.state.lock();
                // Relaxed: read under the same lock.
                self.0.exited.store(true, Ordering::Relaxed);
                self.0.exited_cv.notify_one();
            }
        }
        let _exit = Exit(self);
        let mut state = self.state.lock();
        loop {
            if state.stop {
                return;
            }
            let now = Instant::now();
            let mut next = now + Duration::from_secs(3600);
            let mut due = Vec::new();
            for task in &state.tasks {
                let at = *task.due.lock();
                // Relaxed: set before `wake` takes the lock we hold.
                if at <= now || task.wake.swap(false, Ordering::Relaxed) {
                    due.push(Arc::clone(task));
                } else {
                    next = next.min(at);
                }
            }
            if due.is_empty() {
                self.cv.wait_until(&mut state, next);
                continue;
            }
            drop(state);
            let mut finished = Vec::new();
            for task in due {
                let mut job = task.job.lock();
                if let Some(run) = job.as_mut() {
                    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run(Instant::now())));
                    *task.due.lock() = next.unwrap_or_else(|_| {
                        log::error!("maintenance service {:?}: a pass panicked; retrying in 1 s", self.name);
                        Instant::now() + Duration::from_secs(1)
                    });
                }
                // Relaxed: set by this same thread during the pass.
                if task.cancelled.load(Ordering::Relaxed) {
                    drop(job.take());
                }
                let done = job.is_none();
                drop(job);
                if done {
                    finished.push(task);
                }
            }
            state = self.state.lock();
            state.tasks.retain(|t| !finished.iter().any(|f| Arc::ptr_eq(t, f)));
        }
    }
}
