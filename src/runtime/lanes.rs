//! The workers' job queues: one bounded lane per worker, stealable by all.
//!
//! A job goes to the lane of the worker on the submitter's core, or to the
//! next lane with room when that one is full. A lane is a crossbeam-deque
//! [`Injector`] (a lock-free multi-producer FIFO that any thread may steal
//! from) plus a count of the jobs queued in it, which enforces the bound:
//! a submitter reserves a place with a CAS before it pushes. A worker takes
//! from its own lane first and then steals from the others, oldest job
//! first, so an idle worker never sits beside a busy one's backlog.
//!
//! ```text
//!   submitter on CPU 1 ──reserve──► lane 1: [queued: 2 | job, job] ──► worker 1 (pinned to CPU 1)
//!                                   lane 0: [queued: 0 |         ] ◄── worker 0 steals when idle
//! ```
//!
//! Three handshakes, each Dekker's (a `SeqCst` write or fence on both sides,
//! then a read of the other side's word):
//!
//! - *sleep*: a worker sets its `idle` flag, fences, looks at every lane
//!   once more, then parks; a submitter pushes, fences, then reads the
//!   flags and unparks. Either the worker sees the job or the submitter
//!   sees the worker.
//! - *room*: a submitter that found every lane full counts itself in
//!   `blocked`, looks for room again, then waits; a worker frees a place,
//!   then reads `blocked` and notifies.
//! - *shutdown*: `shut_down` sets `shut`; a submitter reserves its place,
//!   then reads `shut` (and gives the place back if set); a worker exits
//!   only when it has read `shut` and then found every count at zero. So a
//!   job is either refused or run, never stranded.
//!
//! The room and shutdown handshakes rest on the total order of `SeqCst`
//! operations (a read-modify-write, then a load of the other side's word);
//! `releaser_fence` after each is free on hardware and lets loom, which
//! models `SeqCst` accesses as `AcqRel`, check them (`loom-tests/lanes.rs`,
//! over lock-free stand-ins for crossbeam's queue and parker; see `sync`).

use std::time::{Duration, Instant};

use super::error::RuntimeError;
use crate::pool::ConnectionPool;
use crate::sync::{
    AtomicBool, AtomicUsize, CachePadded, Condvar, Injector, Mutex, Ordering, Parker, Steal, Unparker, fence,
    releaser_fence, yield_now,
};

/// A queued job: runs once on some worker, with the runtime's pool.
pub type Job<C> = Box<dyn FnOnce(&ConnectionPool<C>) + Send>;

/// A job and the lane whose count it holds a place in.
pub struct Task<C: Send + 'static> {
    lane: usize,
    pub(crate) job: Job<C>,
}

/// One worker's queue.
struct Lane<C: Send + 'static> {
    jobs: Injector<Task<C>>,
    /// Places reserved in `jobs`: jobs queued plus pushes under way.
    queued: AtomicUsize,
    /// Set by the worker just before it parks.
    idle: AtomicBool,
    unparker: Unparker,
}

/// Every worker's lane, and the state they share.
pub struct Lanes<C: Send + 'static> {
    lanes: Box<[CachePadded<Lane<C>>]>,
    capacity: usize,
    shut: AtomicBool,
    /// Submitters waiting in [`Lanes::wait_for_room`].
    blocked: AtomicUsize,
    room_lock: Mutex<()>,
    room: Condvar,
}

/// How long a submitter waiting for room sleeps before it looks again. A
/// backstop only: workers notify as they take jobs.
const ROOM_RECHECK: Duration = Duration::from_millis(100);

impl<C: Send + 'static> Lanes<C> {
    /// One lane per unparker, each holding up to `capacity` jobs.
    pub fn new(unparkers: Vec<Unparker>, capacity: usize) -> Self {
        let lanes = unparkers
            .into_iter()
            .map(|unparker| {
                CachePadded::new(Lane {
                    jobs: Injector::new(),
                    queued: AtomicUsize::new(0),
                    idle: AtomicBool::new(false),
                    unparker,
                })
            })
            .collect();
        Lanes {
            lanes,
            capacity,
            shut: AtomicBool::new(false),
            blocked: AtomicUsize::new(0),
            room_lock: Mutex::default(),
            room: Condvar::new(),
        }
    }

    /// The number of lanes (and workers).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.lanes.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Jobs queued in every lane right now (a snapshot).
    pub(crate) fn queued(&self) -> usize {
        // Relaxed: a snapshot for observers.
        self.lanes.iter().map(|lane| lane.queued.load(Ordering::Relaxed)).sum()
    }

    /// Queues `job` on lane `home`, or the next lane with room. When every
    /// lane is full, waits for room if `wait`, else fails with `QueueFull`.
    /// Fails with `ShutDown` once [`shut_down`](Self::shut_down) has begun.
    pub fn push(&self, home: usize, job: Job<C>, wait: bool) -> Result<(), RuntimeError> {
        loop {
            if let Some(lane) = self.reserve(home)? {
                self.lanes[lane].jobs.push(Task { lane, job });
                self.wake_for(lane);
                return Ok(());
            }
            if !wait {
                return Err(RuntimeError::QueueFull { capacity: self.capacity });
            }
            self.wait_for_room();
        }
    }

    /// Reserves a place in lane `home` or, if it is full, in the next lane
    /// with room. `None` if every lane is full.
    fn reserve(&self, home: usize) -> Result<Option<usize>, RuntimeError> {
        let n = self.len();
        for step in 0..n {
            let lane = if home + step < n { home + step } else { home + step - n };
            if self.try_reserve(lane) {
                // SeqCst: the submitter half of the shutdown handshake; our
                // reservation (a SeqCst RMW) comes first, so either this load
                // sees `shut` or the exiting workers see our place taken.
                releaser_fence();
                if self.shut.load(Ordering::SeqCst) {
                    self.give_back_place(lane);
                    return Err(RuntimeError::ShutDown);
                }
                return Ok(Some(lane));
            }
        }
        // SeqCst: as above, so a full runtime that is shutting down says so.
        if self.shut.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShutDown);
        }
        Ok(None)
    }

    /// Takes one place in `lane` if it has room.
    fn try_reserve(&self, lane: usize) -> bool {
        let queued = &self.lanes[lane].queued;
        // Relaxed: the CAS below re-validates the count.
        let mut count = queued.load(Ordering::Relaxed);
        loop {
            if count >= self.capacity {
                return false;
            }
            // SeqCst: ordered before our read of `shut` (see `reserve`).
            match queued.compare_exchange_weak(count, count + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => count = actual,
            }
        }
    }

    /// Frees a place in `lane` and tells a submitter waiting for room.
    fn give_back_place(&self, lane: usize) {
        // SeqCst: the worker half of the room handshake, ordered before the
        // read of `blocked`; pairs with the SeqCst increment in `wait_for_room`.
        self.lanes[lane].queued.fetch_sub(1, Ordering::SeqCst);
        releaser_fence();
        if self.blocked.load(Ordering::SeqCst) != 0 {
            let _room = self.room_lock.lock();
            self.room.notify_one();
        }
    }

    /// After a push to `lane`: unparks its worker if it sleeps, else (it is
    /// busy) one idle worker that will steal the job.
    fn wake_for(&self, lane: usize) {
        // SeqCst: the submitter half of the sleep handshake: our push before
        // our reads of the `idle` flags; pairs with the fence in `next`.
        fence(Ordering::SeqCst);
        if self.wake(lane) {
            return;
        }
        let n = self.len();
        for step in 1..n {
            let other = if lane + step < n { lane + step } else { lane + step - n };
            if self.wake(other) {
                return;
            }
        }
    }

    /// Unparks worker `lane` if its `idle` flag is set (claiming the flag, so
    /// that one job wakes one worker). Returns whether it did.
    #[inline]
    fn wake(&self, lane: usize) -> bool {
        let lane = &self.lanes[lane];
        // Relaxed (both): ordered by the fences of the sleep handshake; the
        // unpark itself synchronizes with the park.
        if lane.idle.load(Ordering::Relaxed) && lane.idle.swap(false, Ordering::Relaxed) {
            lane.unparker.unpark();
            return true;
        }
        false
    }

    /// Waits until some lane may have room, or the runtime shuts down.
    fn wait_for_room(&self) {
        let mut room = self.room_lock.lock();
        // SeqCst: the submitter half of the room handshake: counted before
        // we look at the counts; pairs with `give_back_place`.
        self.blocked.fetch_add(1, Ordering::SeqCst);
        releaser_fence();
        if !self.has_room() && !self.shut.load(Ordering::SeqCst) {
            self.room.wait_until(&mut room, Instant::now() + ROOM_RECHECK);
        }
        // SeqCst: as above (a notifier may skip the lock once this is zero).
        self.blocked.fetch_sub(1, Ordering::SeqCst);
    }

    fn has_room(&self) -> bool {
        // SeqCst: after our `blocked` increment (see `wait_for_room`).
        self.lanes.iter().any(|lane| lane.queued.load(Ordering::SeqCst) < self.capacity)
    }

    /// The next job for worker `me`: its own lane first, then the others';
    /// parks while there is none. `None` once the runtime shuts down and
    /// every lane is empty: the worker should exit.
    pub fn next(&self, me: usize, parker: &Parker) -> Option<Task<C>> {
        let lane = &self.lanes[me];
        loop {
            if let Some(task) = self.find(me) {
                return Some(task);
            }
            // SeqCst: the worker half of the shutdown handshake: `shut` is
            // read before the counts (see `reserve`).
            if self.shut.load(Ordering::SeqCst) {
                releaser_fence();
                if self.lanes.iter().all(|lane| lane.queued.load(Ordering::SeqCst) == 0) {
                    return None;
                }
                // A submitter reserved a place before the shutdown and is
                // still pushing: its job is ours to run.
                yield_now();
                continue;
            }
            // Relaxed: ordered by the fence below.
            lane.idle.store(true, Ordering::Relaxed);
            // SeqCst: the worker half of the sleep handshake: `idle` before
            // we look at the lanes again; pairs with the fence in `wake_for`.
            fence(Ordering::SeqCst);
            if let Some(task) = self.find(me) {
                // Relaxed: only our own later parks read it.
                lane.idle.store(false, Ordering::Relaxed);
                return Some(task);
            }
            // SeqCst: `shut_down` sets `shut` before it unparks us.
            if !self.shut.load(Ordering::SeqCst) {
                parker.park();
            }
            // Relaxed: as above.
            lane.idle.store(false, Ordering::Relaxed);
        }
    }

    /// Takes the oldest job of lane `me`, else of the next lane that has one.
    fn find(&self, me: usize) -> Option<Task<C>> {
        let n = self.len();
        for step in 0..n {
            let lane = if me + step < n { me + step } else { me + step - n };
            loop {
                match self.lanes[lane].jobs.steal() {
                    Steal::Success(task) => {
                        self.give_back_place(task.lane);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    /// Refuses new jobs and wakes every worker (to drain the lanes and exit)
    /// and every submitter waiting for room. Idempotent.
    pub fn shut_down(&self) {
        // SeqCst: the closer half of the shutdown handshake (see `reserve`).
        self.shut.store(true, Ordering::SeqCst);
        for lane in self.lanes.iter() {
            lane.unparker.unpark();
        }
        let _room = self.room_lock.lock();
        // SeqCst: as in `give_back_place`.
        for _ in 0..self.blocked.load(Ordering::SeqCst) {
            self.room.notify_one();
        }
    }

    /// Whether [`shut_down`](Self::shut_down) has begun.
    pub(crate) fn is_shut_down(&self) -> bool {
        // Relaxed: a snapshot for observers.
        self.shut.load(Ordering::Relaxed)
    }
}
