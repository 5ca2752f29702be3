//! The wait queue: the pool's only slow path.
//!
//! A thread that finds no idle connection and no vacant slot registers here
//! and parks (`std::thread::park`). Whoever serves it writes its grant under
//! the queue lock and unparks it after unlocking, and the woken thread reads
//! the grant without the lock, so a hand-off costs the waiter no second
//! trip through the lock (with a condition variable it had to re-acquire
//! it to return). Releasers read the lock-free
//! state word first and touch the lock only when somebody waits, so release
//! stays lock-free in the common case. When they do, they either hand the
//! slot straight to the waiter at the front ([`Grant::Idle`] or
//! [`Grant::Vacant`]; while a waiter starves, or always in `Fifo` mode, so
//! that a newcomer cannot take it first), or push it and wake the front
//! waiter to compete for it ([`Grant::Retry`], see [`WaitQueue::wake_one`]):
//! either way a released connection never sits idle while a thread sleeps.
//!
//! The protocol against lost wake-ups is Dekker's, as in crossbeam-channel's
//! waker: a waiter publishes itself (the state word: queued, or starving),
//! issues a `SeqCst` fence and then looks at the stacks again; a releaser
//! publishes the connection (a `SeqCst` push) and then reads the state
//! word with a `SeqCst` load (see
//! `sync::releaser_fence` for why no fence is needed on that side). At
//! least one of the two sees the other, and whoever does moves the
//! connection to the waiter.
//!
//! Queue order: higher priority first (other modes than `Priority`
//! register everyone at priority 0), then arrival order. Arrival is a
//! ticket taken at the first registration of an acquire; a waiter that has
//! to look again (its granted connection failed validation, a creation
//! retry is due, or it was woken to compete) re-registers with the same
//! ticket and so keeps its place.
//!
//! A waiter can be *starving* (it has waited past the pool's fairness
//! threshold; see `QueueMode::Fair`). The state word carries the number of
//! waiters and, in its low bit, whether any of them starves, so that the
//! fast path learns both from one load:
//!
//! | bits            | meaning                                  |
//! |-----------------|------------------------------------------|
//! | `0`             | [`STARVING`]: some queued waiter starves  |
//! | `1..`           | the number of queued waiters             |

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::sync::{
    AtomicBool, AtomicU64, AtomicUsize, CachePadded, Mutex, Ordering, Thread, current_thread, park_until,
};

/// What a waiter is woken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// An idle connection's slot, now owned by the waiter.
    Idle(u32),
    /// A vacant slot reserved for the waiter: it may create a connection.
    Vacant(u32),
    /// Something changed (a connection came back while nobody starves, or
    /// creation may be retried): look again.
    Retry,
    /// The pool closed.
    Closed,
}

/// The state word's bit set while some queued waiter starves.
pub const STARVING: usize = 1;
/// One waiter in the state word.
const ONE: usize = 2;

const NONE: u64 = 0;
const CLOSED: u64 = 1;
const RETRY: u64 = 2;
const IDLE_TAG: u64 = 3 << 32;
const VACANT_TAG: u64 = 4 << 32;

impl Grant {
    fn encode(self) -> u64 {
        match self {
            Grant::Closed => CLOSED,
            Grant::Retry => RETRY,
            Grant::Idle(i) => IDLE_TAG | u64::from(i),
            Grant::Vacant(i) => VACANT_TAG | u64::from(i),
        }
    }

    fn decode(word: u64) -> Option<Grant> {
        match word {
            NONE => None,
            CLOSED => Some(Grant::Closed),
            RETRY => Some(Grant::Retry),
            w if w & !0xFFFF_FFFF == IDLE_TAG => Some(Grant::Idle(w as u32)),
            w => Some(Grant::Vacant(w as u32)),
        }
    }
}

/// Why a thread could not join the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// `max_wait_queue_size` threads already wait.
    Full,
    /// The queue was closed.
    Closed,
}

/// A parked thread's place in the queue.
#[derive(Debug)]
pub struct Waiter {
    /// The encoded [`Grant`]: written under the queue lock by whoever takes
    /// the waiter off the queue, read by the waiter without it.
    grant: AtomicU64,
    /// The waiting thread, to unpark.
    thread: Thread,
    priority: i32,
    ticket: u64,
    /// Whether it is counted in `Queue::starving`; changed under the queue lock.
    starving: AtomicBool,
}

impl Waiter {
    /// The arrival ticket, to pass back to [`WaitQueue::register`] when
    /// this acquire registers again.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Whether `self` is served before a waiter of `priority` and `ticket`.
    fn goes_before(&self, priority: i32, ticket: u64) -> bool {
        self.priority > priority || (self.priority == priority && self.ticket < ticket)
    }
}

#[derive(Debug, Default)]
struct Queue {
    waiters: VecDeque<Arc<Waiter>>,
    next_ticket: u64,
    /// Queued waiters that starve.
    starving: usize,
    closed: bool,
}

impl Queue {
    /// The state word for the queue as it is (see the module docs).
    fn state(&self) -> usize {
        (self.waiters.len() * ONE) | if self.starving > 0 { STARVING } else { 0 }
    }

    /// Takes the waiter at `at` off the queue.
    fn remove(&mut self, at: usize) -> Option<Arc<Waiter>> {
        let waiter = self.waiters.remove(at)?;
        // Relaxed: changed only under the queue lock, which we hold.
        if waiter.starving.load(Ordering::Relaxed) {
            self.starving -= 1;
        }
        Some(waiter)
    }
}

/// How a [`WaitQueue::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The waiter was granted this (and is off the queue).
    Granted(Grant),
    /// Its deadline passed (and it is off the queue).
    TimedOut,
    /// Its time to starve came: it is marked starving, still queued. The
    /// caller issues a `SeqCst` fence, looks at the stacks again (see
    /// [`WaitQueue::register`]) and waits on.
    Starving,
}

/// The queue of threads waiting for a connection.
#[derive(Debug, Default)]
pub struct WaitQueue {
    /// Waiters queued and whether one starves (see the module docs),
    /// written under the lock and read without it.
    state: CachePadded<AtomicUsize>,
    /// Whether a waiter woken by [`wake_one`](Self::wake_one) has yet to
    /// look at the stacks again: while one has, waking another is futile.
    woken: CachePadded<AtomicBool>,
    queue: Mutex<Queue>,
}

impl WaitQueue {
    /// An empty, open queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state word (see the module docs). SeqCst: it is the look in a
    /// releaser's half of the handshake; on x86 it costs a plain load.
    #[inline]
    pub fn state(&self) -> usize {
        self.state.load(Ordering::SeqCst)
    }

    /// How many threads wait (see [`state`](Self::state)).
    #[inline]
    pub fn len(&self) -> usize {
        self.state() / ONE
    }

    /// Whether nobody waits (see [`state`](Self::state)).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.state() == 0
    }

    /// Publishes the state word; under the queue lock.
    fn publish(&self, q: &Queue) {
        // Relaxed: see `state`; the lock orders it with other queue changes,
        // and each half of the handshake fences (or is SeqCst) after it.
        self.state.store(q.state(), Ordering::Relaxed);
    }

    /// Joins the queue behind every waiter of higher priority or earlier
    /// ticket, starving already if `starving`. A first registration
    /// (`ticket` `None`) takes a new ticket and counts against `max`; a
    /// re-registration was admitted before and does not.
    ///
    /// After this returns, the caller must issue a `SeqCst` fence and look
    /// for idle connections again before it parks.
    pub fn register(
        &self,
        priority: i32,
        ticket: Option<u64>,
        max: usize,
        starving: bool,
    ) -> Result<Arc<Waiter>, RegisterError> {
        let mut q = self.queue.lock();
        if q.closed {
            return Err(RegisterError::Closed);
        }
        let ticket = match ticket {
            Some(ticket) => ticket,
            None if q.waiters.len() >= max => return Err(RegisterError::Full),
            None => {
                q.next_ticket += 1;
                q.next_ticket
            }
        };
        let waiter = Arc::new(Waiter {
            grant: AtomicU64::new(NONE),
            thread: current_thread(),
            priority,
            ticket,
            starving: AtomicBool::new(starving),
        });
        let at = q.waiters.partition_point(|w| w.goes_before(priority, ticket));
        q.waiters.insert(at, Arc::clone(&waiter));
        q.starving += usize::from(starving);
        self.publish(&q);
        Ok(waiter)
    }

    /// Gives `grant` to the waiter at the front and wakes it; returns the
    /// grant back if nobody waits. A [`Grant::Retry`] marks that waiter as
    /// woken (see [`wake_one`](Self::wake_one)).
    pub fn hand_off(&self, grant: Grant) -> Result<(), Grant> {
        let mut q = self.queue.lock();
        let Some(waiter) = q.remove(0) else {
            return Err(grant);
        };
        self.publish(&q);
        if grant == Grant::Retry {
            // Relaxed: the woken waiter clears it after reading its grant,
            // which the lock and the grant's Release/Acquire order after this.
            self.woken.store(true, Ordering::Relaxed);
        }
        // Release: the waiter reads it without the lock (Acquire) and then
        // owns what it grants. Stored under the lock, so a waiter that finds
        // itself off the queue finds its grant too (see `wait`).
        waiter.grant.store(grant.encode(), Ordering::Release);
        drop(q);
        // After the unlock, so the woken thread does not wait for our lock.
        waiter.thread.unpark();
        Ok(())
    }

    /// A release that pushed its connection while nobody starves (`Fair`,
    /// `Priority`, `Unfair`): wakes the oldest waiter with
    /// [`Grant::Retry`] to compete for a connection, unless a waiter woken
    /// so has not looked at the stacks yet (it will see the push; see
    /// [`woke`](Self::woke)). Waking one per release would mostly wake
    /// threads that find the connection taken and go back to sleep.
    pub fn wake_one(&self) {
        // SeqCst: after the push, the releaser's half of the handshake in `woke`.
        if !self.woken.load(Ordering::SeqCst) {
            let _ = self.hand_off(Grant::Retry);
        }
    }

    /// Called by a waiter woken with [`Grant::Retry`] before it looks at the
    /// stacks again; the caller then issues a `SeqCst` fence. A releaser
    /// that skipped waking anyone because the flag was still set had pushed
    /// before its `SeqCst` load of the flag, so that look sees the push.
    pub fn woke(&self) {
        self.woken.store(false, Ordering::SeqCst);
    }

    /// Parks until `waiter` is granted something, `deadline` passes, or
    /// (if given) `starve_at` passes, whichever comes first.
    ///
    /// At its deadline the waiter is taken off the queue; at `starve_at`
    /// it is marked starving and stays queued. A grant that raced with
    /// either is returned, never dropped.
    pub fn wait(&self, waiter: &Arc<Waiter>, deadline: Instant, starve_at: Option<Instant>) -> Woke {
        let wake_at = starve_at.map_or(deadline, |at| at.min(deadline));
        loop {
            // Acquire: pairs with the Release store of whoever granted it.
            if let Some(grant) = Grant::decode(waiter.grant.load(Ordering::Acquire)) {
                return Woke::Granted(grant);
            }
            let now = Instant::now();
            if now >= wake_at {
                let mut q = self.queue.lock();
                let Some(at) = q.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) else {
                    // Off the queue, so granted: grants are stored under the lock.
                    return Grant::decode(waiter.grant.load(Ordering::Acquire)).map_or(Woke::TimedOut, Woke::Granted);
                };
                if now >= deadline {
                    q.remove(at);
                    self.publish(&q);
                    return Woke::TimedOut;
                }
                // Relaxed: changed only under the queue lock, which we hold.
                if !waiter.starving.swap(true, Ordering::Relaxed) {
                    q.starving += 1;
                    self.publish(&q);
                }
                return Woke::Starving;
            }
            park_until(wake_at);
        }
    }

    /// Wakes every waiter with [`Grant::Closed`] and refuses new ones.
    pub fn close(&self) {
        let mut q = self.queue.lock();
        q.closed = true;
        let closed: Vec<_> = q.waiters.drain(..).collect();
        q.starving = 0;
        for waiter in &closed {
            // Release: as in `hand_off`.
            waiter.grant.store(CLOSED, Ordering::Release);
        }
        self.publish(&q);
        drop(q);
        for waiter in closed {
            waiter.thread.unpark();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grants_round_trip_through_their_encoding() {
        for g in [Grant::Idle(0), Grant::Idle(7), Grant::Vacant(0), Grant::Vacant(99), Grant::Retry, Grant::Closed] {
            assert_eq!(Grant::decode(g.encode()), Some(g));
        }
        assert_eq!(Grant::decode(NONE), None);
    }

    #[test]
    fn priority_order_is_highest_first_then_arrival() {
        let q = WaitQueue::new();
        let low = q.register(0, None, 10, false).unwrap();
        let high = q.register(5, None, 10, false).unwrap();
        let low2 = q.register(0, None, 10, false).unwrap();
        let high2 = q.register(5, None, 10, false).unwrap();
        for (i, w) in [&high, &high2, &low, &low2].into_iter().enumerate() {
            q.hand_off(Grant::Idle(i as u32)).unwrap();
            assert_eq!(q.wait(w, Instant::now(), None), Woke::Granted(Grant::Idle(i as u32)));
        }
        assert_eq!(q.hand_off(Grant::Retry), Err(Grant::Retry));
    }

    #[test]
    fn re_registering_with_a_ticket_keeps_the_place_and_skips_the_bound() {
        let q = WaitQueue::new();
        let first = q.register(0, None, 2, false).unwrap();
        let ticket = first.ticket();
        q.hand_off(Grant::Retry).unwrap();
        let second = q.register(0, None, 2, false).unwrap();
        let _third = q.register(0, None, 2, false).unwrap();
        let again = q.register(0, Some(ticket), 2, false).expect("already admitted");
        q.hand_off(Grant::Idle(4)).unwrap();
        assert_eq!(q.wait(&again, Instant::now(), None), Woke::Granted(Grant::Idle(4)));
        q.hand_off(Grant::Idle(5)).unwrap();
        assert_eq!(q.wait(&second, Instant::now(), None), Woke::Granted(Grant::Idle(5)));
    }

    #[test]
    fn bound_and_close_are_enforced() {
        let q = WaitQueue::new();
        let w = q.register(0, None, 1, false).unwrap();
        assert_eq!(q.register(0, None, 1, false).unwrap_err(), RegisterError::Full);
        q.close();
        assert_eq!(q.wait(&w, Instant::now() + Duration::from_secs(5), None), Woke::Granted(Grant::Closed));
        assert_eq!(q.register(0, None, 1, false).unwrap_err(), RegisterError::Closed);
        assert!(q.is_empty());
    }

    #[test]
    fn the_state_word_counts_waiters_and_flags_starvation() {
        let q = WaitQueue::new();
        let later = Instant::now() + Duration::from_secs(5);
        let young = q.register(0, None, 4, false).unwrap();
        assert_eq!(q.state(), ONE);
        let old = q.register(0, None, 4, true).unwrap();
        assert_eq!(q.state(), (2 * ONE) | STARVING);
        // The young one's time comes: marked in place, still queued.
        assert_eq!(q.wait(&young, later, Some(Instant::now())), Woke::Starving);
        assert_eq!((q.len(), q.queue.lock().starving), (2, 2));
        q.hand_off(Grant::Idle(0)).unwrap();
        assert_eq!(q.wait(&young, later, None), Woke::Granted(Grant::Idle(0)));
        assert_eq!(q.state(), ONE | STARVING, "one starving waiter left");
        q.hand_off(Grant::Idle(1)).unwrap();
        assert_eq!(q.wait(&old, later, None), Woke::Granted(Grant::Idle(1)));
        assert_eq!(q.state(), 0, "nobody waits, nobody starves");
    }

    #[test]
    fn timeout_removes_the_waiter() {
        let q = WaitQueue::new();
        let w = q.register(0, None, 4, false).unwrap();
        assert_eq!(q.wait(&w, Instant::now() + Duration::from_millis(5), None), Woke::TimedOut);
        assert_eq!(q.len(), 0);
        assert_eq!(q.hand_off(Grant::Idle(1)), Err(Grant::Idle(1)));
    }
}
