//! The lock-free protocol, owned by one type: the slab of slots, the idle
//! stacks (one per shard), the vacant stack, the wait queue, the creation
//! gate and the closed flag. Nothing outside this file touches them; the
//! rest of the pool (acquire, release, creation, maintenance, close) calls
//! the methods below and handles connections through [`Owned`] tokens.
//!
//! ```text
//!  take:  pop_home / pop_idle (home, then steal) / reserve_vacant ──► Owned
//!         wait_for_grant ──► Granted::Idle(Owned) | Vacant(Owned) | Retry | Closed
//!  give:  give_back(Owned, conn) ─► hand to the oldest waiter (if it must be)
//!                                   or push home, then look (see below)
//!         free(Owned)             ─► push vacant, then look
//! ```
//!
//! # Ownership
//!
//! Whoever pops a slot index from a stack, or is handed one by the wait
//! queue, owns that slot until it pushes or hands it on: the stacks'
//! Release/Acquire CAS and the queue lock carry the connection cell with
//! the index. An [`Owned`] is that ownership as a value: only this file
//! makes one (from a pop or a grant), and only its safe `take`/`put` touch
//! the cell, so the argument is made once, here. A guard keeps its slot as
//! a [`Detached`] (no borrow of the pool) and attaches it again on return.
//!
//! # The publish-then-look handshake
//!
//! A waiter publishes itself (registering, or marking itself starving)
//! and issues a `SeqCst` fence before it looks at the stacks; `close()`
//! sets the closed flag (`SeqCst`) and fences before it looks. A releaser
//! publishes a connection or slot with a `SeqCst` push and then looks at
//! the wait queue's state word and the closed flag (`SeqCst` loads,
//! [`releaser_fence`] between). Either side sees the other, so no
//! connection sits idle beside a sleeping waiter, and none survives
//! `close()` on a stack. Both halves are written once: [`Engine::published`]
//! for the releaser, [`Engine::wait_for_grant`] and [`Engine::close`] for
//! the others.

use std::time::Instant;

use super::config::QueueMode;
use super::create_gate::CreateGate;
use super::home_shard::home_shard;
use super::index_stack::IndexStack;
use super::slot::{Slot, SlotState};
use super::waiters::{Grant, RegisterError, STARVING, WaitQueue, Woke};
use crate::sync::{AtomicBool, CachePadded, Ordering, fence, releaser_fence};

/// The protocol's state (see the module docs).
pub(crate) struct Engine<C> {
    slots: Box<[CachePadded<Slot<C>>]>,
    idle: Box<[IndexStack]>,
    vacant: IndexStack,
    waiters: WaitQueue,
    gate: CreateGate,
    closed: CachePadded<AtomicBool>,
    /// The wait-queue state bits that make a newcomer queue instead of
    /// taking an idle connection, and a release hand its connection
    /// straight to the oldest waiter: any waiter in `Fifo` mode, a starving
    /// one in `Fair` and `Priority`, none in `Unfair`.
    queue_mask: usize,
}

/// A slot the holder owns (see the module docs). It must end in
/// [`Engine::give_back`], [`Engine::put_back`], [`Engine::free`] or
/// [`Owned::detach`]; dropped otherwise, its capacity is lost (debug builds
/// panic unless the thread is already unwinding).
#[must_use = "an owned slot must be given back, freed or detached, or its capacity is lost"]
pub(crate) struct Owned<'a, C> {
    /// The slot at `index` in its engine's slab.
    slot: &'a Slot<C>,
    index: u32,
}

/// An [`Owned`] slot held without a borrow of the pool: a guard's, or one a
/// maintenance job carries to its thread. Only [`Owned::detach`] makes one.
#[must_use = "a detached slot must be attached again, or its capacity is lost"]
#[derive(Debug)]
pub(crate) struct Detached {
    index: u32,
}

/// What a waiter was handed.
pub(crate) enum Granted<'a, C> {
    /// An idle connection's slot (marked `InUse`: promised to the waiter).
    Idle(Owned<'a, C>),
    /// A vacant slot reserved for it to create in.
    Vacant(Owned<'a, C>),
    /// Something changed: look again (see [`Engine::woke`]).
    Retry,
    /// The pool closed.
    Closed,
}

/// What a releaser's look after its push found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a closed pool's idle stacks must be drained by the caller"]
pub(crate) enum Looked {
    /// Nothing more to do (waiters, if any, were served or woken).
    Done,
    /// The pool closed: the caller drains the idle stacks
    /// ([`Engine::pop_any_idle`]) and closes what it finds.
    Closed,
}

impl<'a, C> Owned<'a, C> {
    /// The slot's index in the slab.
    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The slot itself (its metadata).
    #[inline]
    pub(crate) fn slot(&self) -> &'a Slot<C> {
        self.slot
    }

    /// Moves the connection out of the slot (`None` if it holds none).
    #[inline]
    pub(crate) fn take(&mut self) -> Option<C> {
        // SAFETY: an `Owned` exists only for a slot its holder owns (module
        // docs), and `&mut self` keeps this the only access through it.
        unsafe { self.slot().take() }
    }

    /// Stores a connection in the slot, marked `state` (not yet published).
    #[inline]
    pub(crate) fn put(&mut self, conn: C, state: SlotState) {
        // SAFETY: as in `take`.
        unsafe { self.slot().put(conn) };
        self.slot().set_state(state);
    }

    /// Holds the slot on as a [`Detached`] (a guard's, or a job's).
    #[inline]
    pub(crate) fn detach(self) -> Detached {
        let index = self.index;
        std::mem::forget(self);
        Detached { index }
    }

    /// Ends the token once the slot is on a stack or handed on.
    #[inline]
    fn release(self) {
        std::mem::forget(self);
    }
}

impl<C> Drop for Owned<'_, C> {
    fn drop(&mut self) {
        debug_assert!(std::thread::panicking(), "slot {} dropped while owned: its capacity is lost", self.index);
    }
}

impl Detached {
    /// The slot's index in the slab.
    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }
}

impl<C> Engine<C> {
    /// The token for slot `index`, which the caller owns (module docs).
    #[inline(always)]
    fn owned(&self, index: u32) -> Owned<'_, C> {
        Owned { slot: &self.slots[index as usize], index }
    }

    /// A slab of `max_size` vacant slots and `shards` empty idle stacks.
    pub(crate) fn new(max_size: usize, shards: usize, mode: QueueMode) -> Self {
        let slots: Box<[CachePadded<Slot<C>>]> = (0..max_size).map(|_| CachePadded::new(Slot::new())).collect();
        let vacant = IndexStack::new();
        // Pushed in reverse so that slot 0 is used first.
        for i in (0..max_size as u32).rev() {
            vacant.push(&*slots, i);
        }
        Engine {
            slots,
            idle: (0..shards).map(|_| IndexStack::new()).collect(),
            vacant,
            waiters: WaitQueue::new(),
            gate: CreateGate::default(),
            closed: CachePadded::new(AtomicBool::new(false)),
            queue_mask: match mode {
                QueueMode::Fifo => usize::MAX,
                QueueMode::Unfair => 0,
                _ => STARVING,
            },
        }
    }

    #[inline]
    pub(crate) fn shards(&self) -> usize {
        self.idle.len()
    }

    /// The backoff that decides when a vacant slot may be created in.
    #[inline]
    pub(crate) fn gate(&self) -> &CreateGate {
        &self.gate
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // SeqCst: a releaser's look after its push (see `releaser_fence`).
        // Elsewhere a stale `false` lets one operation finish as if it came
        // before `close()`; connections it returns are still closed, because
        // releasers look again after their push (see `published`).
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether a newcomer may take an idle connection (or a vacant slot)
    /// now, rather than queue: see `queue_mask`.
    #[inline(always)]
    pub(crate) fn may_barge(&self) -> bool {
        self.waiters.state() & self.queue_mask == 0
    }

    /// Whether a releaser must hand its connection straight to the front
    /// waiter (or serve the waiters with it) rather than push it and wake
    /// one to compete: exactly when a newcomer may not take it.
    #[inline(always)]
    fn must_hand_off(&self) -> bool {
        self.waiters.state() & self.queue_mask != 0
    }

    // === taking ===

    /// Pops an idle slot from shard `home` only (the fast path).
    #[inline(always)]
    pub(crate) fn pop_home(&self, home: usize) -> Option<Owned<'_, C>> {
        let index = self.idle[home].pop(&*self.slots)?;
        Some(self.owned(index))
    }

    /// Pops an idle slot: shard `home` first, then the others in turn.
    #[inline(always)]
    pub(crate) fn pop_idle(&self, home: usize) -> Option<Owned<'_, C>> {
        match self.idle[home].pop(&*self.slots) {
            Some(index) => Some(self.owned(index)),
            None => self.steal_idle(home),
        }
    }

    /// Pops an idle slot from the shards after `home`, in turn.
    #[cold]
    #[inline(never)]
    fn steal_idle(&self, home: usize) -> Option<Owned<'_, C>> {
        let shards = self.shards();
        let index = (1..shards).find_map(|step| self.idle[(home + step) % shards].pop(&*self.slots))?;
        Some(self.owned(index))
    }

    /// Pops an idle slot from any shard (for draining).
    pub(crate) fn pop_any_idle(&self) -> Option<Owned<'_, C>> {
        self.pop_idle(0)
    }

    /// Takes every idle slot of shard `shard` out of its stack, top first.
    pub(crate) fn take_idle(&self, shard: usize) -> Vec<Owned<'_, C>> {
        std::iter::from_fn(|| self.idle[shard].pop(&*self.slots)).map(|index| self.owned(index)).collect()
    }

    /// Reserves a vacant slot if there is one and the gate lets a creation
    /// through. The slot is `Creating` from now on, so `size()` counts it
    /// even before a creation thread (or a granted waiter) gets to the factory.
    pub(crate) fn reserve_vacant(&self) -> Option<Owned<'_, C>> {
        if self.vacant.is_empty() || self.gate.permit().is_err() {
            return None;
        }
        self.take_vacant()
    }

    /// Takes a vacant slot for a creation the pool itself makes (the
    /// initial connections), ignoring the gate.
    pub(crate) fn take_vacant(&self) -> Option<Owned<'_, C>> {
        let index = self.vacant.pop(&*self.slots)?;
        self.slots[index as usize].set_state(SlotState::Creating);
        Some(self.owned(index))
    }

    /// The owned slot a [`Detached`] stands for.
    ///
    /// A `Detached` of this engine is the only way in: every one comes from
    /// an [`Owned`] of the same pool (a guard attaches to the pool it was
    /// leased from; a maintenance job to the pool whose pass detached it).
    #[inline]
    pub(crate) fn attach(&self, detached: Detached) -> Owned<'_, C> {
        debug_assert!((detached.index as usize) < self.slots.len());
        self.owned(detached.index)
    }

    // === giving back ===

    /// Publishes an idle connection: straight to the oldest waiter while it
    /// must be (a waiter starves; in `Fifo` mode, any waits), else onto
    /// shard `home`, then looks (see `published`).
    #[inline(always)]
    pub(crate) fn give_back(&self, mut owned: Owned<'_, C>, conn: C, home: usize) -> Looked {
        if self.must_hand_off() {
            // Promised to a waiter: counted as borrowed, never as idle.
            owned.put(conn, SlotState::InUse);
            if self.waiters.hand_off(Grant::Idle(owned.index)).is_ok() {
                owned.release();
                return Looked::Done;
            }
            owned.slot().set_state(SlotState::Idle);
        } else {
            owned.put(conn, SlotState::Idle);
        }
        self.idle[home].push(&*self.slots, owned.index);
        owned.release();
        self.published()
    }

    /// Puts slots a maintenance pass took out (with their connections)
    /// back on shard `shard`, in the order given, then looks.
    pub(crate) fn put_back(&self, shard: usize, owned: Vec<Owned<'_, C>>) -> Looked {
        for o in owned {
            self.idle[shard].push(&*self.slots, o.index);
            o.release();
        }
        self.published()
    }

    /// Returns a slot to the vacant stack, then looks for waiters (so none
    /// sleeps beside a vacant slot). A closed pool needs nothing more: a
    /// vacant slot holds no connection to close.
    pub(crate) fn free(&self, owned: Owned<'_, C>) -> Looked {
        owned.slot().set_state(SlotState::Vacant);
        self.vacant.push(&*self.slots, owned.index);
        owned.release();
        releaser_fence();
        if self.waiters.is_empty() { Looked::Done } else { self.serve_waiters() }
    }

    /// The releaser's half of the handshake, after a push: either we see
    /// the waiters (and serve them, or wake one to compete) and the close,
    /// or they see our push.
    #[inline(always)]
    fn published(&self) -> Looked {
        releaser_fence();
        if self.is_closed() {
            return Looked::Closed;
        }
        if self.waiters.is_empty() {
            return Looked::Done;
        }
        if self.must_hand_off() {
            self.serve_waiters()
        } else {
            // Nobody must be served: wake the oldest waiter to compete.
            self.waiters.wake_one();
            Looked::Done
        }
    }

    /// Moves idle connections and vacant slots to waiters, oldest first,
    /// until one of the two runs out. Callers fence (or are SeqCst) before.
    pub(crate) fn serve_waiters(&self) -> Looked {
        let home = home_shard(self.shards());
        while !self.waiters.is_empty() {
            let grant = if let Some(owned) = self.pop_idle(home) {
                // Promised to a waiter: counted as borrowed from now on.
                owned.slot().set_state(SlotState::InUse);
                Grant::Idle(owned.detach().index)
            } else if let Some(owned) = self.reserve_vacant() {
                Grant::Vacant(owned.detach().index)
            } else {
                return Looked::Done;
            };
            if let Err(grant) = self.waiters.hand_off(grant) {
                // The waiter left (timed out, or served by someone else).
                match grant {
                    Grant::Idle(index) => {
                        self.slots[index as usize].set_state(SlotState::Idle);
                        self.idle[home].push(&*self.slots, index);
                    }
                    Grant::Vacant(index) => {
                        self.slots[index as usize].set_state(SlotState::Vacant);
                        self.vacant.push(&*self.slots, index);
                    }
                    Grant::Retry | Grant::Closed => {}
                }
                // SeqCst: re-run the handshake for a waiter that registered
                // after it looked at the stacks and before our push, and
                // for a `close()` that drained the stacks before it.
                fence(Ordering::SeqCst);
                if self.is_closed() {
                    return Looked::Closed;
                }
            }
        }
        Looked::Done
    }

    // === waiting ===

    /// Queues the caller (at its old place if `ticket` is set, which it
    /// then is; starving already if `starve_at` has passed) and parks it
    /// until it is granted a slot, the pool closes, `until` passes
    /// (`Ok(None)`), or, at `starve_at`, it starves and waits on.
    pub(crate) fn wait_for_grant(
        &self,
        priority: i32,
        ticket: &mut Option<u64>,
        max_waiters: usize,
        starve_at: Option<Instant>,
        until: Instant,
    ) -> Result<(Option<Granted<'_, C>>, Looked), RegisterError> {
        let starving = starve_at.is_some_and(|at| Instant::now() >= at);
        let waiter = self.waiters.register(priority, *ticket, max_waiters, starving)?;
        *ticket = Some(waiter.ticket());
        // SeqCst: the waiter half of the handshake (module docs); after it,
        // a connection pushed before a releaser's look is visible to
        // `serve_waiters` below (or that releaser sees us and serves us).
        fence(Ordering::SeqCst);
        let mut looked = self.serve_waiters();
        let mut starve_at = starve_at.filter(|_| !starving);
        loop {
            let granted = match self.waiters.wait(&waiter, until, starve_at) {
                Woke::Granted(grant) => self.granted(grant),
                Woke::TimedOut => None,
                Woke::Starving => {
                    // SeqCst: as after registering, now for the starving bit:
                    // a releaser that pushed without seeing it is seen here.
                    fence(Ordering::SeqCst);
                    if self.serve_waiters() == Looked::Closed {
                        looked = Looked::Closed;
                    }
                    starve_at = None;
                    continue;
                }
            };
            return Ok((granted, looked));
        }
    }

    /// The token for what the wait queue handed a waiter.
    fn granted(&self, grant: Grant) -> Option<Granted<'_, C>> {
        Some(match grant {
            // The hand-off gave the waiter the slot (module docs).
            Grant::Idle(index) => Granted::Idle(self.owned(index)),
            Grant::Vacant(index) => Granted::Vacant(self.owned(index)),
            Grant::Retry => Granted::Retry,
            Grant::Closed => Granted::Closed,
        })
    }

    /// Called by a waiter woken with [`Granted::Retry`] before it looks at
    /// the stacks again (the other half of [`WaitQueue::wake_one`]).
    pub(crate) fn woke(&self) {
        self.waiters.woke();
        // SeqCst: the waiter half of the handshake with `wake_one`.
        fence(Ordering::SeqCst);
    }

    // === closing ===

    /// Sets the closed flag and wakes every waiter with `Closed`; `false`
    /// if the pool was closed already. The caller then drains the idle
    /// stacks: after this, a connection pushed concurrently is either seen
    /// there or drained by its releaser (its look finds `Looked::Closed`).
    pub(crate) fn close(&self) -> bool {
        // SeqCst: the closer half of the handshake (module docs).
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.waiters.close();
        fence(Ordering::SeqCst);
        true
    }

    /// Whether any idle stack holds a connection (a look after `close`).
    pub(crate) fn has_idle(&self) -> bool {
        self.idle.iter().any(|stack| !stack.is_empty())
    }

    // === observers ===

    /// Slot `index`, for its metadata (never its connection).
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> &Slot<C> {
        &self.slots[index as usize]
    }

    /// Every slot with its index, for observers.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (u32, &Slot<C>)> {
        self.slots.iter().enumerate().map(|(i, s)| (i as u32, &**s))
    }

    /// How many slots are in `state` right now (a snapshot).
    pub(crate) fn count(&self, state: SlotState) -> usize {
        self.slots.iter().filter(|s| s.state() == state).count()
    }

    /// Open and opening connections right now (a snapshot).
    pub(crate) fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.state() != SlotState::Vacant).count()
    }

    /// Threads waiting right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Takes every connection still in a slot; for the pool's last drop,
    /// when nothing else can reach the slots (`&mut self`).
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = (u64, C)> + '_ {
        self.slots.iter().filter_map(|slot| {
            // SAFETY: `&mut self`: nothing else can reach the slots.
            unsafe { slot.take() }.map(|conn| (slot.id(), conn))
        })
    }
}
