//! The wait queue: the pool's only slow path.
//!
//! A thread that finds no idle connection and no vacant slot registers here
//! and parks (`std::thread::park`). Whoever serves it writes its grant under
//! the queue lock and unparks it after unlocking, and the woken thread reads
//! the grant without the lock, so a hand-off costs the waiter no second
//! trip through the lock (with a condition variable it had to re-acquire
//! it to return). Releasers read the lock-free
//! `len` word first and touch the lock only when somebody waits, so release
//! stays lock-free in the common case. When they do, they hand the slot
//! straight to the waiter at the front ([`Grant::Idle`] or
//! [`Grant::Vacant`]): a released connection never sits idle while a thread
//! sleeps, and in fair mode a newcomer cannot take it first.
//!
//! The protocol against lost wake-ups is Dekker's, as in crossbeam-channel's
//! waker: a waiter publishes itself (`len`), issues a `SeqCst` fence and
//! then looks at the stacks again; a releaser publishes the connection
//! (a `SeqCst` push) and then reads `len` with a `SeqCst` load (see
//! `sync::releaser_fence` for why no fence is needed on that side). At
//! least one of the two sees the other, and whoever does moves the
//! connection to the waiter.
//!
//! Queue order: higher priority first (fair mode registers everyone at
//! priority 0), then arrival order. Arrival is a ticket taken at the first
//! registration of an acquire; a waiter that has to look again (its granted
//! connection failed validation, or a creation retry is due) re-registers
//! with the same ticket and so keeps its place.

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
    /// Something changed (unfair mode, or creation may be retried): look again.
    Retry,
    /// The pool closed.
    Closed,
}

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
    closed: bool,
}

/// The queue of threads waiting for a connection.
#[derive(Debug, Default)]
pub struct WaitQueue {
    /// Number of queued waiters, written under the lock and read without it.
    len: CachePadded<AtomicUsize>,
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

    /// How many threads wait. SeqCst: it is the look in a releaser's half of
    /// the handshake (see the module docs); on x86 it costs a plain load.
    #[inline]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// Whether nobody waits (see [`WaitQueue::len`]).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Joins the queue behind every waiter of higher priority or earlier
    /// ticket. A first registration (`ticket` `None`) takes a new ticket
    /// and counts against `max`; a re-registration was admitted before and
    /// does not.
    ///
    /// After this returns, the caller must issue a `SeqCst` fence and look
    /// for idle connections again before it parks.
    pub fn register(&self, priority: i32, ticket: Option<u64>, max: usize) -> Result<Arc<Waiter>, RegisterError> {
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
        let waiter = Arc::new(Waiter { grant: AtomicU64::new(NONE), thread: current_thread(), priority, ticket });
        let at = q.waiters.partition_point(|w| w.goes_before(priority, ticket));
        q.waiters.insert(at, Arc::clone(&waiter));
        // Relaxed: see `len`; the lock orders it with other queue changes.
        self.len.store(q.waiters.len(), Ordering::Relaxed);
        Ok(waiter)
    }

    /// Gives `grant` to the waiter at the front and wakes it; returns the
    /// grant back if nobody waits. A [`Grant::Retry`] marks that waiter as
    /// woken (see [`wake_one`](Self::wake_one)).
    pub fn hand_off(&self, grant: Grant) -> Result<(), Grant> {
        let mut q = self.queue.lock();
        let Some(waiter) = q.waiters.pop_front() else {
            return Err(grant);
        };
        self.len.store(q.waiters.len(), Ordering::Relaxed);
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

    /// Unfair mode's release, after its push: wakes the oldest waiter with
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

    /// Parks until `waiter` is granted something or `deadline` passes.
    ///
    /// Returns `None` on timeout, with the waiter removed from the queue.
    /// A grant that raced with the timeout is returned, never dropped.
    pub fn wait(&self, waiter: &Arc<Waiter>, deadline: Instant) -> Option<Grant> {
        loop {
            // Acquire: pairs with the Release store of whoever granted it.
            if let Some(grant) = Grant::decode(waiter.grant.load(Ordering::Acquire)) {
                return Some(grant);
            }
            if Instant::now() >= deadline {
                let mut q = self.queue.lock();
                if let Some(at) = q.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                    q.waiters.remove(at);
                    self.len.store(q.waiters.len(), Ordering::Relaxed);
                    return None;
                }
                // Off the queue, so granted: grants are stored under the lock.
                return Grant::decode(waiter.grant.load(Ordering::Acquire));
            }
            park_until(deadline);
        }
    }

    /// Wakes every waiter with [`Grant::Closed`] and refuses new ones.
    pub fn close(&self) {
        let mut q = self.queue.lock();
        q.closed = true;
        let closed: Vec<_> = q.waiters.drain(..).collect();
        for waiter in &closed {
            // Release: as in `hand_off`.
            waiter.grant.store(CLOSED, Ordering::Release);
        }
        self.len.store(0, Ordering::Relaxed);
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
        let low = q.register(0, None, 10).unwrap();
        let high = q.register(5, None, 10).unwrap();
        let low2 = q.register(0, None, 10).unwrap();
        let high2 = q.register(5, None, 10).unwrap();
        for (i, w) in [&high, &high2, &low, &low2].into_iter().enumerate() {
            q.hand_off(Grant::Idle(i as u32)).unwrap();
            assert_eq!(q.wait(w, Instant::now()), Some(Grant::Idle(i as u32)));
        }
        assert_eq!(q.hand_off(Grant::Retry), Err(Grant::Retry));
    }

    #[test]
    fn re_registering_with_a_ticket_keeps_the_place_and_skips_the_bound() {
        let q = WaitQueue::new();
        let first = q.register(0, None, 2).unwrap();
        let ticket = first.ticket();
        q.hand_off(Grant::Retry).unwrap();
        let second = q.register(0, None, 2).unwrap();
        let _third = q.register(0, None, 2).unwrap();
        let again = q.register(0, Some(ticket), 2).expect("already admitted");
        q.hand_off(Grant::Idle(4)).unwrap();
        assert_eq!(q.wait(&again, Instant::now()), Some(Grant::Idle(4)));
        q.hand_off(Grant::Idle(5)).unwrap();
        assert_eq!(q.wait(&second, Instant::now()), Some(Grant::Idle(5)));
    }

    #[test]
    fn bound_and_close_are_enforced() {
        let q = WaitQueue::new();
        let w = q.register(0, None, 1).unwrap();
        assert_eq!(q.register(0, None, 1).unwrap_err(), RegisterError::Full);
        q.close();
        assert_eq!(q.wait(&w, Instant::now() + Duration::from_secs(5)), Some(Grant::Closed));
        assert_eq!(q.register(0, None, 1).unwrap_err(), RegisterError::Closed);
        assert!(q.is_empty());
    }

    #[test]
    fn timeout_removes_the_waiter() {
        let q = WaitQueue::new();
        let w = q.register(0, None, 4).unwrap();
        assert_eq!(q.wait(&w, Instant::now() + Duration::from_millis(5)), None);
        assert_eq!(q.len(), 0);
        assert_eq!(q.hand_off(Grant::Idle(1)), Err(Grant::Idle(1)));
    }
}
