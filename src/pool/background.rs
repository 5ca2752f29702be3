//! Threads a pool starts for work that blocks in user code: a creation
//! bounded by an acquire's deadline (`create`), the factory calls
//! of a maintenance pass (`upkeep`), and closing idle connections at
//! `close()`. Such work runs off the thread that asked for it, so that a
//! factory that hangs delays neither an acquire past its timeout, nor the
//! leak scan, nor `close()` past its shutdown timeout.
//!
//! Each job holds a reference on the pool (its memory outlives the thread)
//! and is counted, so `close()` can wait for the jobs in progress, for as
//! long as `shutdown_timeout` allows, and then join their threads. From
//! the moment the pool closes no new job starts, except `close()`'s own
//! closers: the count and the references are taken under one lock, which
//! orders every job's reference before the teardown that follows the
//! last handle's `close()` (see `GuardRefs::hold`).

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::inner::{Inner, end_reference};

thread_local! {
    /// Set on a job's thread: `close()`, called there by an event
    /// listener, must not wait for the jobs (one of them is its caller).
    static ON_JOB_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs on one of a pool's job threads.
pub(crate) fn on_job_thread() -> bool {
    ON_JOB_THREAD.with(Cell::get)
}

/// The jobs of one pool.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    state: parking_lot::Mutex<State>,
    none_running: parking_lot::Condvar,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    /// The pool closed: only `close()`'s own jobs may start.
    refused: bool,
    /// Threads of jobs started, to join at `close()`.
    threads: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Counts a job and runs `hold` (taking its pool reference) under the
    /// lock, unless the pool refuses new jobs and `privileged` is false.
    fn start(&self, privileged: bool, hold: impl FnOnce()) -> bool {
        let mut state = self.state.lock();
        if state.refused && !privileged {
            return false;
        }
        state.running += 1;
        hold();
        true
    }

    fn finished(&self) {
        let mut state = self.state.lock();
        state.running -= 1;
        if state.running == 0 {
            self.none_running.notify_all();
        }
    }

    fn keep_thread(&self, thread: JoinHandle<()>) {
        let mut state = self.state.lock();
        state.threads.retain(|t| !t.is_finished());
        state.threads.push(thread);
    }

    /// Refuses new jobs from now on (but `close()`'s own).
    pub(crate) fn refuse(&self) {
        self.state.lock().refused = true;
    }

    /// Waits until no job runs or `deadline` passes, then joins the threads
    /// of the finished jobs. `Err` holds how many still run. On a job's own
    /// thread it waits for nothing (it would wait for itself).
    pub(crate) fn wait_until(&self, deadline: Instant) -> Result<(), usize> {
        if on_job_thread() {
            return Ok(());
        }
        let mut state = self.state.lock();
        while state.running > 0 {
            if self.none_running.wait_until(&mut state, deadline).timed_out() && state.running > 0 {
                return Err(state.running);
            }
        }
        let threads = std::mem::take(&mut state.threads);
        drop(state);
        // Every job has returned, so each thread is only exiting.
        for thread in threads {
            let _ = thread.join();
        }
        Ok(())
    }
}

/// A job's count and pool reference, given back when it is dropped.
struct Ticket<C: Send + 'static> {
    pool: NonNull<Inner<C>>,
    jobs: Arc<Jobs>,
}

// SAFETY: `Inner<C>` is shared between threads by design, and the ticket's
// reference keeps it allocated until the ticket is dropped.
unsafe impl<C: Send + 'static> Send for Ticket<C> {}

impl<C: Send + 'static> Ticket<C> {
    /// The pool the job works for.
    fn pool(&self) -> &Inner<C> {
        // SAFETY: the ticket's reference keeps the pool allocated.
        unsafe { self.pool.as_ref() }
    }
}

impl<C: Send + 'static> Drop for Ticket<C> {
    fn drop(&mut self) {
        // Reference first, count second (`jobs` is the ticket's own, not the
        // pool's): a `close()` that waits for this job, in the last handle's
        // drop say, then frees the pool itself.
        // SAFETY: the ticket's reference is the one ended, and the ticket
        // touches the pool no more.
        unsafe { end_reference(self.pool, 0) };
        self.jobs.finished();
    }
}

/// Who may start a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Starter {
    /// Anyone, while the pool is open.
    Open,
    /// `close()` itself, for its closers.
    Close,
}

impl<C: Send + 'static> Inner<C> {
    /// Runs `work(pool, payload)` on a new thread named `name`, counted and
    /// holding a reference on the pool. `Err(payload)` (and `work` dropped
    /// unrun) if the pool is closed and `starter` is not `close()`: the
    /// payload, say a slot the job was to work in, is the caller's again.
    /// If no thread can be started, `work` runs on the caller's thread.
    /// Loom models run it inline (a thread per job would only multiply the
    /// states explored).
    pub(crate) fn spawn_job<P, W>(&self, name: &str, starter: Starter, payload: P, work: W) -> Result<(), P>
    where
        P: Send + 'static,
        W: FnOnce(&Inner<C>, P) + Send + 'static,
    {
        if cfg!(loom) {
            work(self, payload);
            return Ok(());
        }
        if !self.jobs.start(starter == Starter::Close, || self.refs.hold()) {
            return Err(payload);
        }
        let ticket = Ticket { pool: NonNull::from(self), jobs: Arc::clone(&self.jobs) };
        // Shared with the thread, so the work is still here if it cannot start.
        let job = Arc::new(parking_lot::Mutex::new(Some((ticket, payload, work))));
        let theirs = Arc::clone(&job);
        let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            ON_JOB_THREAD.with(|flag| flag.set(true));
            run_once(&theirs);
        });
        match spawned {
            Ok(thread) => self.jobs.keep_thread(thread),
            Err(e) => {
                log::warn!(
                    "pool {:?}: no thread for {name} ({e}); running it on the caller's thread",
                    self.config.name
                );
                run_once(&job);
            }
        }
        Ok(())
    }
}

/// Runs a job unless it ran already (the thread and the caller share it,
/// so that it runs on the caller if no thread could be started).
fn run_once<C, P, W>(job: &parking_lot::Mutex<Option<(Ticket<C>, P, W)>>)
where
    C: Send + 'static,
    W: FnOnce(&Inner<C>, P),
{
    let job = job.lock().take();
    if let Some((ticket, payload, work)) = job {
        work(ticket.pool(), payload);
    }
}
