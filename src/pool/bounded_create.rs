//! Creating a connection for an acquire without outliving its timeout.
//!
//! `ConnectionFactory::create` blocks, sometimes for as long as the
//! network's own timeouts (a server that stopped answering). Run on the
//! caller's thread, it would hold `acquire` well past `acquire_timeout`,
//! which is exactly when an application needs the error soon. So an
//! acquire that may wait runs the factory on a short-lived thread of its
//! own and waits for the result until its deadline. If the deadline comes
//! first, the acquire fails as any timed-out acquire does, and the thread,
//! once the factory returns, gives the new connection to the pool (to a
//! waiter, or idle) instead of to the caller that left: nothing is lost,
//! and the capacity comes back.
//!
//! `close()` waits for the creations in progress (as it waits for the
//! maintenance thread's factory call), so none finishes after it returns;
//! each closes its connection at once.
//!
//! `try_acquire` and a zero timeout still create on the caller's thread:
//! they promise not to wait, so there is nothing to bound. Loom models run
//! the factory inline (a thread per creation would only multiply the
//! states explored).

use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use super::error::{PoolError, Result};
use super::events::CloseReason;
use super::inner::{Inner, end_reference};

/// The thread name of a creation (kernel names hold 15 bytes; not `rdb-`,
/// which names maintenance threads).
const THREAD_NAME: &str = "rusty-db-create";

/// Creations running on threads of their own, so `close` can wait for them.
#[derive(Default)]
pub(crate) struct CreateJobs {
    running: parking_lot::Mutex<usize>,
    none_running: parking_lot::Condvar,
}

thread_local! {
    /// Set on a creation's thread (where `close`, called by an event
    /// listener, must not wait for itself).
    static IN_CREATE_JOB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl CreateJobs {
    fn started(&self) {
        *self.running.lock() += 1;
    }

    fn finished(&self) {
        let mut running = self.running.lock();
        *running -= 1;
        if *running == 0 {
            self.none_running.notify_all();
        }
    }

    /// Waits until no creation is in progress (for `close`).
    pub(crate) fn wait_for_all(&self) {
        if IN_CREATE_JOB.with(|flag| flag.get()) {
            return;
        }
        let mut running = self.running.lock();
        while *running > 0 {
            self.none_running.wait(&mut running);
        }
    }
}

/// Where a creation's outcome meets the acquire that asked for it.
struct Delivery<C> {
    state: parking_lot::Mutex<State<C>>,
    done: parking_lot::Condvar,
}

enum State<C> {
    /// The factory is running and the acquire waits.
    Pending,
    /// The factory returned; the acquire has not taken it yet.
    Done(Result<C>),
    /// The acquire stopped waiting; the creator keeps what it makes.
    Abandoned,
}

/// A creation running on its own thread. It holds a reference on the
/// pool (see `GuardRefs::hold`), so the pool outlives it.
struct CreateJob<C: Send + 'static> {
    pool: NonNull<Inner<C>>,
    /// The pool's job count (shared, so the job can count itself out
    /// after letting go of the pool).
    jobs: Arc<CreateJobs>,
    index: u32,
    delivery: Arc<Delivery<C>>,
    /// Whether the job still holds its pool reference.
    holds: bool,
}

// SAFETY: `Inner<C>` is shared between threads by design, and the job's
// reference keeps it allocated until the job is dropped.
unsafe impl<C: Send + 'static> Send for CreateJob<C> {}

impl<C: Send + 'static> CreateJob<C> {
    fn run(mut self) {
        IN_CREATE_JOB.with(|flag| flag.set(true));
        // SAFETY: the job's reference keeps the pool allocated (see `Drop`).
        let pool = unsafe { self.pool.as_ref() };
        let outcome = pool.create_in(self.index);
        let delivery = Arc::clone(&self.delivery);
        let mut state = delivery.state.lock();
        if matches!(*state, State::Abandoned) {
            drop(state);
            // A failed creation already freed its slot and told the gate.
            if let Ok(conn) = outcome {
                pool.adopt(self.index, conn);
            }
            // Reference first, count second: a `close` waiting for this job
            // (in the last handle's drop, say) then frees the pool itself.
            self.release_hold();
            self.jobs.finished();
        } else {
            // Done with the pool (what becomes of the connection is the
            // acquire's business now): `close` may go on.
            self.jobs.finished();
            // The acquire still waits (it would have to take this lock to
            // stop), and its pool handle keeps the pool alive until it
            // returns. So the job lets go of its reference first: once the
            // caller's guard and the last handle drop, the pool is freed at
            // once rather than whenever this thread gets to it.
            self.release_hold();
            *state = State::Done(outcome);
            delivery.done.notify_one();
        }
    }

    /// Releases the job's pool reference, freeing the pool if it was the last.
    fn release_hold(&mut self) {
        if !std::mem::replace(&mut self.holds, false) {
            return;
        }
        // SAFETY: the job's hold is the reference ended (`holds` makes it
        // once), and the job touches the pool no more.
        unsafe { end_reference(self.pool, 0) };
    }
}

impl<C: Send + 'static> Drop for CreateJob<C> {
    fn drop(&mut self) {
        self.release_hold();
    }
}

impl<C: Send + 'static> Inner<C> {
    /// Creates a connection in the reserved slot `index`, waiting for the
    /// factory until `deadline`. `Ok(None)`: the deadline passed first (the
    /// slot, and any connection made in it, now belong to the pool).
    ///
    /// The caller holds a pool handle (it is inside an acquire).
    pub(super) fn create_by(&self, index: u32, deadline: Instant) -> Result<Option<C>> {
        if cfg!(loom) {
            return self.create_in(index).map(Some);
        }
        let delivery =
            Arc::new(Delivery { state: parking_lot::Mutex::new(State::Pending), done: parking_lot::Condvar::new() });
        self.create_jobs.started();
        // After `started`: a `close` that began earlier is seen here (its
        // wait for the jobs took their lock after setting `closed`), and
        // one that begins later waits for this job.
        if self.is_closed() {
            self.create_jobs.finished();
            self.free_slot(index);
            return Err(PoolError::PoolClosed);
        }
        self.refs.hold();
        let job = CreateJob {
            pool: NonNull::from(self),
            jobs: Arc::clone(&self.create_jobs),
            index,
            delivery: Arc::clone(&delivery),
            holds: true,
        };
        if let Err(e) = std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || job.run()) {
            // The job was dropped unrun, releasing its reference.
            self.create_jobs.finished();
            log::warn!("pool {:?}: no thread for a bounded create ({e}); creating inline", self.config.name);
            return self.create_in(index).map(Some);
        }
        let mut state = delivery.state.lock();
        loop {
            if let State::Done(outcome) = mem::replace(&mut *state, State::Pending) {
                return outcome.map(Some);
            }
            if delivery.done.wait_until(&mut state, deadline).timed_out() {
                return match mem::replace(&mut *state, State::Abandoned) {
                    State::Done(outcome) => outcome.map(Some),
                    _ => Ok(None),
                };
            }
        }
    }

    /// Takes in a connection created for an acquire that stopped waiting.
    fn adopt(&self, index: u32, conn: C) {
        if self.is_closed() {
            self.discard(index, conn, CloseReason::Shutdown);
        } else {
            self.give_back(index, conn);
        }
    }
}
