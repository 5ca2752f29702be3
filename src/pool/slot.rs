//! One place in the slab: a connection's home for its whole life.
//!
//! The slab is allocated once with `max_size` slots, so capacity is a fixed
//! set of places rather than a counter. A slot is owned by exactly one party
//! at a time (an idle stack, the vacant stack, a guard, or a thread creating
//! or closing its connection); only that owner touches the connection cell.
//! The state word and the metadata are atomics so that observers (`size()`,
//! statistics, the admin API) can read them without taking ownership.
//!
//! | state      | connection cell | owned by                               | becomes |
//! |------------|-----------------|----------------------------------------|---------|
//! | `Vacant`   | empty           | the vacant stack                       | `Creating` |
//! | `Creating` | empty           | its reserver: the creator, a granted waiter or a creation thread | `InUse`, `Vacant` |
//! | `Idle`     | full            | an idle stack, or a pass inspecting it | `InUse`, `Closing` |
//! | `InUse`    | moved to a guard, or full while handed to a waiter | a guard, or a woken waiter | `Idle`, `Closing` |
//! | `Closing`  | empty (moved out) | the thread running `factory.close`   | `Vacant`, `Creating` |
//!
//! (A state may also be set again to itself.) `Closing` becomes `Creating`
//! when a waiter whose granted connection failed validation creates a new
//! one in its slot, keeping its turn. Debug builds check every transition
//! against this table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connections::ConnectionDescription;
use super::index_stack::{Links, NIL};
use super::leak::BorrowTrace;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, CachePadded, Mutex, MutexGuard, Ordering, UnsafeCell};

/// What a slot holds, and so who owns it (see the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum SlotState {
    /// No connection; the slot is capacity waiting to be used.
    Vacant = 0,
    /// Reserved for creating a connection (from the vacant stack's pop on).
    Creating = 1,
    /// Holds an idle connection.
    Idle = 2,
    /// Its connection is borrowed by a guard (or promised to a waiter).
    InUse = 3,
    /// Its connection is being closed.
    Closing = 4,
}

impl SlotState {
    fn from_word(word: u32) -> SlotState {
        match word {
            0 => SlotState::Vacant,
            1 => SlotState::Creating,
            2 => SlotState::Idle,
            3 => SlotState::InUse,
            _ => SlotState::Closing,
        }
    }

    /// Whether the table above lets a slot in `self` become `next`.
    fn may_become(self, next: SlotState) -> bool {
        use SlotState::*;
        self == next
            || matches!(
                (self, next),
                (Vacant, Creating)
                    | (Creating, InUse | Vacant)
                    | (Idle, InUse | Closing)
                    | (InUse, Idle | Closing)
                    | (Closing, Vacant | Creating)
            )
    }
}

/// A slot of the slab, padded to its own cache line so that threads
/// holding neighbouring connections never share a line.
pub(crate) struct Slot<C> {
    /// Link word for whichever [`IndexStack`](super::index_stack::IndexStack) holds this slot.
    next: AtomicU32,
    /// A [`SlotState`], as its discriminant.
    state: AtomicU32,
    /// The connection while the slot is `IDLE`.
    conn: UnsafeCell<Option<C>>,
    /// Id of the current connection (unique over the pool's life; 0 = none yet).
    id: AtomicU64,
    /// When the current connection was created, in nanoseconds since the pool's epoch.
    created_nanos: AtomicU64,
    /// How many times the current connection has been handed out.
    borrows: AtomicU64,
    /// How many guards this slot has ever made (never reset): the pool's
    /// count of acquires, and the made half of `GuardRefs`.
    loans: AtomicU64,
    /// Errors seen on the current connection (failed validations and
    /// resets, errors its users recorded); feeds `AgingPolicy::Adaptive`.
    errors: AtomicU64,
    /// When it was last returned, on the pool's coarse clock (nanoseconds
    /// since the epoch).
    last_used_nanos: AtomicU64,
    /// Its (jittered) retirement age in nanoseconds; `u64::MAX` for none.
    lifetime_nanos: AtomicU64,
    /// Who borrowed it, while leak detection is on or a query was recorded.
    trace: Mutex<Option<BorrowTrace>>,
    /// Whether `trace` may be `Some`, so release skips the lock otherwise.
    traced: AtomicBool,
    /// Id of the connection an operator killed while it was borrowed (0:
    /// none): its release closes it. By id, so that a connection born
    /// later in this slot is not hit by a late mark.
    killed: AtomicU64,
    /// What the factory said of the current connection (set at creation).
    description: Mutex<Option<Arc<ConnectionDescription>>>,
}

// SAFETY: the connection cell is only accessed by the slot's single owner
// (see the table above); ownership moves between threads through the
// Release/Acquire edges of the index stacks and the wait queue's lock, so
// `Slot<C>` is as thread-safe as sending a `C` between threads.
unsafe impl<C: Send> Sync for Slot<C> {}

impl<C> Slot<C> {
    pub(crate) fn new() -> Self {
        Slot {
            next: AtomicU32::new(NIL),
            state: AtomicU32::new(SlotState::Vacant as u32),
            conn: UnsafeCell::new(None),
            id: AtomicU64::new(0),
            created_nanos: AtomicU64::new(0),
            borrows: AtomicU64::new(0),
            loans: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_used_nanos: AtomicU64::new(0),
            lifetime_nanos: AtomicU64::new(u64::MAX),
            trace: Mutex::default(),
            traced: AtomicBool::new(false),
            killed: AtomicU64::new(0),
            description: Mutex::default(),
        }
    }

    /// The current state, for observers. Relaxed: a snapshot, not a claim.
    #[inline]
    pub(crate) fn state(&self) -> SlotState {
        SlotState::from_word(self.state.load(Ordering::Relaxed))
    }

    /// Records a state change made by the slot's owner (checked against
    /// the module's table in debug builds). Relaxed: ownership itself moves
    /// through the stacks and the wait queue; this word only tells
    /// observers what the owner is doing.
    #[inline]
    pub(crate) fn set_state(&self, next: SlotState) {
        debug_assert!(self.state().may_become(next), "slot state {:?} cannot become {next:?}", self.state());
        self.state.store(next as u32, Ordering::Relaxed);
    }

    /// Moves the idle connection out of the slot.
    ///
    /// # Safety
    /// The caller must own the slot (it popped it from an idle stack or was
    /// handed it by a releaser) and no other thread may access the cell.
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<C> {
        // SAFETY: exclusive ownership is the caller's contract.
        self.conn.with_mut(|cell| unsafe { (*cell).take() })
    }

    /// Stores a connection in the slot before it is published as idle.
    ///
    /// # Safety
    /// As for [`Slot::take`]: the caller owns the slot.
    #[inline]
    pub(crate) unsafe fn put(&self, conn: C) {
        // SAFETY: exclusive ownership is the caller's contract.
        self.conn.with_mut(|cell| unsafe { *cell = Some(conn) });
    }

    /// Records a freshly created connection's identity. Called by the owner.
    pub(crate) fn born(&self, id: u64, created: Duration, lifetime: Option<Duration>) {
        let created = duration_nanos(created);
        self.id.store(id, Ordering::Relaxed);
        self.created_nanos.store(created, Ordering::Relaxed);
        self.last_used_nanos.store(created, Ordering::Relaxed);
        self.borrows.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.lifetime_nanos.store(lifetime.map_or(u64::MAX, duration_nanos), Ordering::Relaxed);
    }

    /// Stamps the time the connection came back (coarse clock). Called by the owner.
    #[inline]
    pub(crate) fn touch(&self, now_nanos: u64) {
        self.last_used_nanos.store(now_nanos, Ordering::Relaxed);
    }

    /// When it was last returned, in nanoseconds since the epoch.
    pub(crate) fn last_used_nanos(&self) -> u64 {
        self.last_used_nanos.load(Ordering::Relaxed)
    }

    /// When it was created, in nanoseconds since the epoch.
    pub(crate) fn created_nanos(&self) -> u64 {
        self.created_nanos.load(Ordering::Relaxed)
    }

    /// Its retirement age in nanoseconds (`u64::MAX`: none).
    pub(crate) fn lifetime_nanos(&self) -> u64 {
        self.lifetime_nanos.load(Ordering::Relaxed)
    }

    /// Counts an error on the current connection.
    pub(crate) fn record_error(&self) {
        // Relaxed: a statistic read by maintenance.
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Errors seen on the current connection.
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The borrow trace, locked; the caller may fill it in.
    pub(crate) fn trace(&self) -> MutexGuard<'_, Option<BorrowTrace>> {
        // Relaxed: only the slot's owner sets it, before publishing the slot.
        self.traced.store(true, Ordering::Relaxed);
        self.trace.lock()
    }

    /// The borrow trace, locked, for a reader that fills nothing in.
    pub(crate) fn peek_trace(&self) -> MutexGuard<'_, Option<BorrowTrace>> {
        self.trace.lock()
    }

    /// Whether the borrow has state to end when the connection comes back:
    /// a trace, or a partition claim (see `mark_borrow_state`). One flag
    /// for both, so that a plain borrow's release tests one word.
    #[inline]
    pub(crate) fn has_borrow_state(&self) -> bool {
        self.traced.load(Ordering::Relaxed)
    }

    /// The borrow holds state beyond a trace (a partition claim). Called by
    /// the owner.
    pub(crate) fn mark_borrow_state(&self) {
        // Relaxed: as in `trace`.
        self.traced.store(true, Ordering::Relaxed);
    }

    /// Takes the borrow trace when the connection comes back, once
    /// `has_borrow_state` said there is something to end. Called by the
    /// owner.
    pub(crate) fn take_trace(&self) -> Option<BorrowTrace> {
        self.traced.store(false, Ordering::Relaxed);
        self.trace.lock().take()
    }

    /// Counts one more borrow (and loan); returns the connection's id.
    /// Called by the owner, for a guard it is about to make.
    #[inline]
    pub(crate) fn lend(&self) -> u64 {
        // Only the owner writes, so load + store is exact and cheaper than an
        // RMW. Relaxed: the next owner (through the stacks' Release/Acquire)
        // and teardown (after every handle's drop) read them.
        let borrows = self.borrows.load(Ordering::Relaxed);
        self.borrows.store(borrows + 1, Ordering::Relaxed);
        let loans = self.loans.load(Ordering::Relaxed);
        self.loans.store(loans + 1, Ordering::Relaxed);
        self.id.load(Ordering::Relaxed)
    }

    /// How many guards this slot has made, ever.
    pub(crate) fn loans(&self) -> u64 {
        self.loans.load(Ordering::Relaxed)
    }

    /// Id of the slot's current connection (0 before the first).
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// Marks connection `id` killed. Relaxed: its release may miss a mark
    /// made while it runs; the admin's kill then finds it idle and closes it.
    pub(crate) fn kill(&self, id: u64) {
        self.killed.store(id, Ordering::Relaxed);
    }

    /// Whether connection `id` (this slot's, as its guard knows it) was killed.
    #[inline]
    pub(crate) fn is_killed(&self, id: u64) -> bool {
        self.killed.load(Ordering::Relaxed) == id
    }

    /// Records what the factory said of the current connection.
    pub(crate) fn describe(&self, description: Option<ConnectionDescription>) {
        *self.description.lock() = description.map(Arc::new);
    }

    /// What the factory said of the current connection.
    pub(crate) fn description(&self) -> Option<Arc<ConnectionDescription>> {
        self.description.lock().clone()
    }

    /// How many times the current connection has been borrowed.
    pub(crate) fn borrows(&self) -> u64 {
        self.borrows.load(Ordering::Relaxed)
    }

    /// When the current connection was created.
    pub(crate) fn created_at(&self, epoch: Instant) -> Instant {
        epoch + Duration::from_nanos(self.created_nanos.load(Ordering::Relaxed))
    }
}

/// Nanoseconds as `u64`, saturating (584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<C> Links for [CachePadded<Slot<C>>] {
    #[inline]
    fn link(&self, index: u32) -> &AtomicU32 {
        &self[index as usize].next
    }
}
