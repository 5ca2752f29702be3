//! The pool's engine: acquire and release over the slab, the idle stacks,
//! the vacant stack and the wait queue.
//!
//! ```text
//!  acquire ─► pop home shard ─► steal from the others ─► reserve a vacant slot
//!                                                        and create (no lock held)
//!                                                        ─► register, fence, serve, park
//!  release ─► reset/validate ─► hand to the oldest waiter ─► else push home shard,
//!                                                            fence, serve late waiters
//! ```
//!
//! Nothing here takes a lock unless somebody waits (the wait queue) or the
//! factory keeps failing (the create gate). Blocking factory calls hold no
//! lock; an acquire that may wait runs `create` on a thread of its own, so
//! its timeout bounds it (see `bounded_create`).

use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::aging::AgingPolicy;
use super::background::{Jobs, Starter};
use super::config::{PoolConfig, QueueMode};
use super::create_gate::CreateGate;
use super::error::{FactoryError, PoolError, Result};
pub(crate) use super::events::CloseReason;
use super::events::PoolEventListener;
use super::factory::ConnectionFactory;
use super::guard_refs::GuardRefs;
use super::home_shard::home_shard;
use super::hooks::{Hook, Panicked, panic_message};
use super::index_stack::IndexStack;
use super::leak::{BorrowTrace, LeakDetector};
use super::slot::{self, Slot, SlotState};
use super::stats::{AcquireProbe, PoolStats};
use super::upkeep::Registration;
use super::validator::ConnectionValidator;
use super::waiters::{Grant, RegisterError, STARVING, WaitQueue, Woke};
use crate::sync::{AtomicBool, AtomicU64, CachePadded, Mutex, Ordering, fence, releaser_fence};

/// A connection checked out of the pool, on its way into a guard.
pub(crate) struct Lease<C> {
    pub(crate) slot: u32,
    /// The acquiring thread's home shard: the guard returns the connection
    /// there and ends its reference there, without a second lookup.
    pub(crate) home: u32,
    pub(crate) conn: C,
    pub(crate) id: u64,
}

/// What the slots held at one pass over them.
pub(crate) struct Census {
    pub(crate) idle: usize,
    pub(crate) active: usize,
    pub(crate) live: usize,
    /// Guards ever made (successful acquires).
    pub(crate) loans: u64,
}

/// The shared state of one pool. Fields are visible to the sibling
/// modules that extend it (`upkeep` holds the maintenance pass).
pub(crate) struct Inner<C: Send + 'static> {
    pub(crate) config: PoolConfig,
    /// Dropped by hand in `Drop`, where a panic in its destructor is caught.
    pub(super) factory: ManuallyDrop<Box<dyn ConnectionFactory<C>>>,
    pub(super) slots: Box<[CachePadded<Slot<C>>]>,
    pub(super) idle: Box<[IndexStack]>,
    pub(super) vacant: IndexStack,
    pub(super) waiters: WaitQueue,
    pub(crate) refs: GuardRefs,
    pub(super) gate: CreateGate,
    closed: CachePadded<AtomicBool>,
    next_id: AtomicU64,
    pub(crate) epoch: Instant,
    /// The wait-queue state bits (see `waiters::STARVING`) that make a
    /// newcomer queue instead of taking an idle connection, and a release
    /// hand its connection straight to the oldest waiter: any waiter in
    /// `Fifo` mode, a starving one in `Fair` and `Priority`, none in `Unfair`.
    queue_mask: usize,
    /// How long a waiter waits before it starves (`Fair`, `Priority`).
    starve_after: Option<Duration>,
    /// Coarse clock, nanoseconds since `epoch`: ticked by maintenance and by
    /// slow paths, read (instead of the real clock) on release.
    clock: CachePadded<AtomicU64>,
    /// Whether returned connections are checked against lifetime and aging.
    retire_on_return: bool,
    /// `AgingPolicy::Adaptive`'s lifetime scale (`f64` bits), as of the
    /// last maintenance pass: a release reads it instead of every slot.
    adaptive_scale: AtomicU64,
    pub(super) listener: Option<Arc<dyn PoolEventListener>>,
    /// Which hooks have panicked before, for their log level (see `hooks`).
    pub(super) panicked: Panicked,
    /// Leak detection and the borrow traces it needs.
    pub(super) leaks: Mutex<Option<LeakDetector>>,
    track_borrows: AtomicBool,
    /// Work running on threads of its own: creations for acquires, the
    /// maintenance pass's factory calls, closers (see `background`).
    pub(super) jobs: Arc<Jobs>,
    /// Whether a maintenance pass's factory calls are still running on a
    /// job (see `upkeep`); the next pass decides nothing new until then.
    pub(super) upkeep_running: AtomicBool,
    /// The maintenance registration, until `close()`.
    pub(super) maintenance: Mutex<Option<Registration>>,
    /// Counters and times behind `ConnectionPool::statistics`.
    pub(crate) stats: PoolStats,
}

impl<C: Send + 'static> Inner<C> {
    /// Allocates the slab and creates `initial_size` connections.
    pub(crate) fn new(config: PoolConfig, factory: Box<dyn ConnectionFactory<C>>) -> Result<Self> {
        config.validate()?;
        let slots: Box<[CachePadded<Slot<C>>]> = (0..config.max_size).map(|_| CachePadded::new(Slot::new())).collect();
        let vacant = IndexStack::new();
        // Pushed in reverse so that slot 0 is used first.
        for i in (0..config.max_size as u32).rev() {
            vacant.push(&*slots, i);
        }
        let inner = Inner {
            idle: (0..config.shards).map(|_| IndexStack::new()).collect(),
            refs: GuardRefs::new(config.shards),
            queue_mask: match config.queue_mode {
                QueueMode::Fifo => usize::MAX,
                QueueMode::Unfair => 0,
                _ => STARVING,
            },
            starve_after: matches!(config.queue_mode, QueueMode::Fair | QueueMode::Priority)
                .then_some(config.fairness_threshold),
            factory: ManuallyDrop::new(factory),
            slots,
            vacant,
            waiters: WaitQueue::new(),
            gate: CreateGate::default(),
            closed: CachePadded::new(AtomicBool::new(false)),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            clock: CachePadded::new(AtomicU64::new(0)),
            retire_on_return: config.max_lifetime.is_some() || config.aging_policy.is_some(),
            adaptive_scale: AtomicU64::new(1.0f64.to_bits()),
            listener: config.event_listener.as_ref().map(|l| Arc::clone(&l.0)),
            panicked: Panicked::default(),
            leaks: Mutex::default(),
            track_borrows: AtomicBool::new(false),
            maintenance: Mutex::default(),
            jobs: Arc::default(),
            upkeep_running: AtomicBool::new(false),
            stats: PoolStats::new(&config),
            config,
        };
        if let Some(threshold) = inner.config.leak_detection_threshold {
            let interval = inner.config.effective_maintenance_interval();
            inner.attach_leak_detector(LeakDetector::new(threshold, interval));
        }
        for n in 0..inner.config.initial_size {
            let index = inner.vacant.pop(&*inner.slots).expect("initial_size <= max_size");
            // On error `inner` is dropped, which closes what was created.
            let conn = inner.create_in(index)?;
            inner.store(index, conn, SlotState::Idle);
            inner.idle[n % inner.idle.len()].push(&*inner.slots, index);
        }
        Ok(inner)
    }

    #[inline]
    pub(crate) fn shards(&self) -> usize {
        self.idle.len()
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // SeqCst: a releaser's look after its push (see `releaser_fence`).
        // Elsewhere a stale `false` lets one operation finish as if it came
        // before `close()`; connections it returns are still closed, because
        // releasers re-check after their push (see `give_back`).
        self.closed.load(Ordering::SeqCst)
    }

    /// Takes a connection, waiting until `timeout` if none is free.
    ///
    /// `wait` is false for `try_acquire`: never park, fail with
    /// `PoolExhausted` instead.
    #[inline]
    pub(crate) fn acquire(&self, timeout: Duration, priority: i32, wait: bool) -> Result<Lease<C>> {
        let home = home_shard(self.shards());
        // A sample of fast-path acquires is timed, for the statistics.
        let sample = self.stats.sample_start();
        // Whether a connection failed validation (see `validation_ran_out`).
        let mut rejected = false;
        // The fast path, inlined into the caller: an idle connection on this
        // thread's shard while nobody waits.
        if !self.is_closed() && self.may_barge() {
            if let Some(index) = self.idle[home].pop(&*self.slots) {
                match self.check_out(index, home) {
                    Some(lease) => {
                        self.stats.record_immediate_acquire(home, sample);
                        return Ok(lease);
                    }
                    None => {
                        self.free_slot(index);
                        rejected = true;
                    }
                }
            }
        }
        self.acquire_slow(home, sample, timeout, priority, wait, rejected)
    }

    /// Everything else `acquire` does: steal, create, wait; and the fast
    /// path again, since it loops. `rejected`: whether the fast path's
    /// connection failed validation (which starts the clock).
    #[inline(never)]
    fn acquire_slow(
        &self,
        home: usize,
        sample: AcquireProbe,
        timeout: Duration,
        priority: i32,
        wait: bool,
        rejected: bool,
    ) -> Result<Lease<C>> {
        // Read the clock only once the fast path has failed.
        let mut start: Option<Instant> = rejected.then(Instant::now);
        // Our place in the wait queue, kept across re-registrations.
        let mut ticket: Option<u64> = None;
        let priority = if self.config.queue_mode == QueueMode::Priority { priority } else { 0 };
        loop {
            if self.is_closed() {
                return Err(PoolError::PoolClosed);
            }
            // A newcomer does not overtake a starving waiter (in `Fifo` mode,
            // any waiter).
            if self.may_barge() {
                if let Some(index) = self.pop_idle(home) {
                    match self.check_out(index, home) {
                        Some(lease) => {
                            self.stats.record_immediate_acquire(home, sample);
                            return Ok(lease);
                        }
                        None => {
                            let now = self.rejected(index);
                            let start = *start.get_or_insert(now);
                            if wait && !timeout.is_zero() && now >= deadline_after(start, timeout) {
                                return Err(self.validation_ran_out(timeout));
                            }
                            continue;
                        }
                    }
                }
                if let Some(index) = self.reserve_vacant() {
                    let start = *start.get_or_insert_with(Instant::now);
                    // Only an acquire that may wait bounds the factory by its deadline.
                    let deadline = (wait && !timeout.is_zero()).then(|| deadline_after(start, timeout));
                    match self.create_lease(index, home, deadline) {
                        Ok(Some(lease)) => {
                            self.stats.record_waited_acquire(home, start, true);
                            return Ok(lease);
                        }
                        Ok(None) => return Err(self.timed_out(timeout, start)),
                        // Failures are remembered by the gate and reported at
                        // the deadline; meanwhile another connection may come back.
                        Err(PoolError::Factory(_)) if wait => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            if !wait {
                if let Some(error) = self.gate.current_error() {
                    return Err(PoolError::Factory(error));
                }
                return Err(PoolError::PoolExhausted {
                    active: self.count(SlotState::InUse),
                    max: self.config.max_size,
                });
            }
            let start = *start.get_or_insert_with(Instant::now);
            let deadline = deadline_after(start, timeout);
            let grant = self.wait_for_grant(priority, &mut ticket, start, deadline)?;
            if grant == Some(Grant::Retry) {
                self.waiters.woke();
                // SeqCst: the waiter half of the handshake with `wake_one`.
                fence(Ordering::SeqCst);
            }
            // A granted connection that fails validation leaves us its slot:
            // create in it rather than pass it on, so we keep our turn.
            let grant = match grant {
                Some(Grant::Idle(index)) => match self.check_out(index, home) {
                    Some(lease) => {
                        self.stats.record_waited_acquire(home, start, false);
                        return Ok(lease);
                    }
                    None if Instant::now() >= deadline => {
                        self.rejected(index);
                        return Err(self.validation_ran_out(timeout));
                    }
                    None if self.gate.permit().is_ok() => Some(Grant::Vacant(index)),
                    None => {
                        self.rejected(index);
                        Some(Grant::Retry)
                    }
                },
                other => other,
            };
            match grant {
                Some(Grant::Idle(_)) => unreachable!("handled above"),
                Some(Grant::Vacant(index)) => {
                    match self.create_lease(index, home, (!timeout.is_zero()).then_some(deadline)) {
                        Ok(Some(lease)) => {
                            self.stats.record_waited_acquire(home, start, true);
                            return Ok(lease);
                        }
                        Ok(None) => return Err(self.timed_out(timeout, start)),
                        Err(PoolError::Factory(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(Grant::Closed) => return Err(PoolError::PoolClosed),
                Some(Grant::Retry) => {}
                None if Instant::now() >= deadline => return Err(self.timed_out(timeout, start)),
                None => {}
            }
        }
    }

    /// The error of an acquire that started at `start` and ran out of
    /// `timeout`: the factory's last error if creating failed since then or
    /// is still failing (the gate backs off until a create succeeds; while
    /// its delay exceeds the timeout, most acquires make no attempt of
    /// their own), else `ConnectionTimeout`. Tells the listener.
    #[cold]
    fn timed_out(&self, timeout: Duration, start: Instant) -> PoolError {
        self.notify(Hook::OnTimeout, |l| l.on_timeout(timeout));
        match self.gate.error_since(start).or_else(|| self.gate.current_error()) {
            Some(error) => PoolError::Factory(error),
            None => PoolError::ConnectionTimeout(timeout),
        }
    }

    /// Frees the slot of a connection that failed validation on its way
    /// out (`check_out` closed it); returns the time, which starts the
    /// acquire's clock if nothing had yet.
    #[cold]
    #[inline(never)]
    fn rejected(&self, index: u32) -> Instant {
        self.free_slot(index);
        Instant::now()
    }

    /// The error of an acquire whose connections kept failing validation
    /// until its timeout ran out. Validation runs on the caller's thread
    /// and is never cut short, so the acquire stops only between two
    /// connections. Tells the listener, as a timeout.
    #[cold]
    fn validation_ran_out(&self, timeout: Duration) -> PoolError {
        self.notify(Hook::OnTimeout, |l| l.on_timeout(timeout));
        PoolError::ValidationFailed(format!(
            "connections kept failing validation until acquire_timeout ({timeout:?}) ran out; \
             check that the database is reachable (each validation runs to completion, so it \
             can take longer than the timeout)"
        ))
    }

    /// Whether a newcomer may take an idle connection (or a vacant slot)
    /// now, rather than queue: see `queue_mask`.
    #[inline(always)]
    fn may_barge(&self) -> bool {
        self.waiters.state() & self.queue_mask == 0
    }

    /// Queues the caller (at its old place if `ticket` is set, which it
    /// then is) and parks it until it is granted a slot, the pool closes,
    /// `deadline` passes (`Ok(None)`), or creation may be retried. Waiting
    /// since `start`, it starves once `starve_after` has passed.
    fn wait_for_grant(
        &self,
        priority: i32,
        ticket: &mut Option<u64>,
        start: Instant,
        deadline: Instant,
    ) -> Result<Option<Grant>> {
        let starve_at = self.starve_after.map(|after| deadline_after(start, after));
        let starving = starve_at.is_some_and(|at| Instant::now() >= at);
        let max = self.config.max_wait_queue_size;
        let waiter = match self.waiters.register(priority, *ticket, max, starving) {
            Ok(w) => {
                *ticket = Some(w.ticket());
                w
            }
            Err(RegisterError::Full) => return Err(PoolError::WaitQueueFull),
            Err(RegisterError::Closed) => return Err(PoolError::PoolClosed),
        };
        // SeqCst: the waiter half of the handshake with `give_back` and
        // `free_slot`; after it, a connection pushed before a releaser's
        // fence is visible to `serve_waiters` below (or that releaser sees
        // us in `len` and serves us itself).
        fence(Ordering::SeqCst);
        self.serve_waiters();
        let wake_at = match self.gate.retry_at() {
            Some(retry) if retry < deadline => retry,
            _ => deadline,
        };
        let mut starve_at = starve_at.filter(|_| !starving);
        loop {
            match self.waiters.wait(&waiter, wake_at, starve_at) {
                Woke::Granted(grant) => return Ok(Some(grant)),
                Woke::TimedOut => return Ok(None),
                Woke::Starving => {
                    // SeqCst: as after registering, now for the starving bit:
                    // a releaser that pushed without seeing it is seen here.
                    fence(Ordering::SeqCst);
                    self.serve_waiters();
                    starve_at = None;
                }
            }
        }
    }

    /// Moves idle connections and vacant slots to waiters, oldest first,
    /// until one of the two runs out. Callers fence before calling.
    pub(super) fn serve_waiters(&self) {
        let home = home_shard(self.shards());
        while !self.waiters.is_empty() {
            let grant = if let Some(index) = self.pop_idle(home) {
                // Promised to a waiter: counted as borrowed from now on.
                self.slots[index as usize].set_state(SlotState::InUse);
                Grant::Idle(index)
            } else if let Some(index) = self.reserve_vacant() {
                Grant::Vacant(index)
            } else {
                return;
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
                    self.drain_idle();
                    return;
                }
            }
        }
    }

    /// Pops an idle slot: the home shard first, then the others in turn.
    /// (The fast path is inlined into its callers, stealing is not.)
    #[inline(always)]
    fn pop_idle(&self, home: usize) -> Option<u32> {
        match self.idle[home].pop(&*self.slots) {
            Some(index) => Some(index),
            None => self.steal_idle(home),
        }
    }

    /// Pops an idle slot from the shards after `home`, in turn.
    #[cold]
    #[inline(never)]
    fn steal_idle(&self, home: usize) -> Option<u32> {
        let shards = self.shards();
        (1..shards).find_map(|step| self.idle[(home + step) % shards].pop(&*self.slots))
    }

    /// Reserves a vacant slot if there is one and creation is allowed. The
    /// slot is `CREATING` from now on, so `size()` counts it even before a
    /// creation thread (or a granted waiter) gets to the factory.
    pub(super) fn reserve_vacant(&self) -> Option<u32> {
        if self.vacant.is_empty() || self.gate.permit().is_err() {
            return None;
        }
        let index = self.vacant.pop(&*self.slots)?;
        self.slots[index as usize].set_state(SlotState::Creating);
        Some(index)
    }

    /// Takes the connection out of a slot the caller now owns and validates
    /// it if configured. `None` if it failed and was closed; the caller
    /// still owns the (now empty) slot and must create in it or free it.
    #[inline(always)]
    fn check_out(&self, index: u32, home: usize) -> Option<Lease<C>> {
        let slot = &self.slots[index as usize];
        // SAFETY: the caller popped `index` from an idle stack or was handed
        // it by the wait queue, so it owns the slot exclusively.
        let conn = unsafe { slot.take() }.expect("an idle slot holds a connection");
        slot.set_state(SlotState::InUse);
        if self.config.validate_on_acquire && !self.is_valid_in(&conn, Some(slot)) {
            self.reject(slot, conn);
            return None;
        }
        Some(self.lease(index, conn, home))
    }

    /// Closes a connection that failed validation on its way out.
    #[cold]
    #[inline(never)]
    fn reject(&self, slot: &Slot<C>, conn: C) {
        slot.set_state(SlotState::Closing);
        self.close_connection(conn, slot.id(), CloseReason::Validation);
        // The caller creates in this slot or frees it; `free_slot` asks for
        // the refill. Asking here, with the slot still counted as live, let
        // a pass that ran before the free find the pool full and skip it.
    }

    /// Counts the borrow and records who made it (while leak detection is on).
    #[inline(always)]
    fn lease(&self, index: u32, conn: C, home: usize) -> Lease<C> {
        let slot = &self.slots[index as usize];
        // Relaxed: a stale `false` just skips tracing one borrow.
        if self.track_borrows.load(Ordering::Relaxed) {
            self.trace_borrow(slot);
        }
        // `home` is a shard index, below 1024 (config validation).
        Lease { slot: index, home: home as u32, conn, id: slot.lend() }
    }

    /// Records who is borrowing `slot`'s connection, for leak reports.
    #[cold]
    #[inline(never)]
    fn trace_borrow(&self, slot: &Slot<C>) {
        let backtraces = self.leaks.lock().as_ref().is_some_and(|d| d.captures_backtraces());
        *slot.trace() = Some(BorrowTrace::capture(backtraces));
    }

    /// Creates a connection in a reserved slot and leases it. With a
    /// `deadline`, the factory runs on a thread of its own and the caller
    /// waits for it until then (`Ok(None)` after; see `bounded_create`).
    fn create_lease(&self, index: u32, home: usize, deadline: Option<Instant>) -> Result<Option<Lease<C>>> {
        let conn = match deadline {
            Some(deadline) => match self.create_by(index, deadline)? {
                Some(conn) => conn,
                None => return Ok(None),
            },
            None => self.create_in(index)?,
        };
        if self.is_closed() {
            self.discard(index, conn, CloseReason::Shutdown);
            return Err(PoolError::PoolClosed);
        }
        Ok(Some(self.lease(index, conn, home)))
    }

    /// Runs `factory.create` for a reserved slot. On failure (or panic) the
    /// slot goes back to the vacant stack and the gate starts backing off.
    pub(super) fn create_in(&self, index: u32) -> Result<C> {
        let slot = &self.slots[index as usize];
        slot.set_state(SlotState::Creating);
        let outcome = match self.caught(Hook::Create, || self.factory.create()) {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(PoolError::Factory(e))) => Err(e),
            Ok(Err(other)) => Err(FactoryError::new(other)),
            Err(panic) => Err(FactoryError::new(format!("ConnectionFactory::create panicked: {panic}"))),
        };
        match outcome {
            Ok(conn) => {
                // Relaxed: ids only need to be unique.
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let now = self.epoch.elapsed();
                self.tick(now);
                slot.born(id, now, self.lifetime_for(id));
                slot.set_state(SlotState::InUse);
                self.stats.record_created();
                self.notify(Hook::OnCreate, |l| l.on_create(id));
                if self.gate.on_success() {
                    log::info!("pool {:?}: connection factory recovered", self.config.name);
                    // Waiters held back by the backoff may create now.
                    fence(Ordering::SeqCst);
                    self.serve_waiters();
                }
                Ok(conn)
            }
            Err(error) => {
                log::warn!("pool {:?}: creating a connection failed: {error}", self.config.name);
                self.stats.record_create_failure();
                self.gate.on_failure(Instant::now(), error.clone());
                self.free_slot(index);
                // Refill will be due once the backoff allows another try.
                self.wake_maintenance();
                Err(PoolError::Factory(error))
            }
        }
    }

    /// Takes back a guard's connection: recycled into the pool if it is
    /// healthy and the pool open (onto shard `home`, the caller's), closed
    /// otherwise (for `close`, if given).
    #[inline]
    pub(crate) fn release(&self, index: u32, mut conn: C, close: Option<CloseReason>, home: usize) {
        let slot = &self.slots[index as usize];
        if let Some(trace) = slot.take_trace() {
            self.returned(slot.id(), &trace);
        }
        if let Some(reason) = close {
            self.discard(index, conn, reason);
        } else if self.is_closed() {
            self.discard(index, conn, CloseReason::Shutdown);
        } else if let Err(reason) = self.recycle(&mut conn) {
            self.discard(index, conn, reason);
        } else if self.retire_on_return && self.is_expired(slot, self.now_nanos()) {
            self.discard(index, conn, CloseReason::Lifetime);
        } else {
            slot.touch(self.now_nanos());
            self.give_back_to(index, conn, home);
        }
    }

    /// Logs (and unlists) a leaked connection that came back.
    fn returned(&self, id: u64, trace: &BorrowTrace) {
        if !trace.reported {
            return;
        }
        let detector = self.leaks.lock().clone();
        if let Some(after) = detector.and_then(|d| d.returned(id)) {
            log::info!(
                "pool {:?}: leaked connection {id} returned after {:.1} s",
                self.config.name,
                after.as_secs_f64()
            );
        }
    }

    /// The coarse clock, nanoseconds since the epoch.
    #[inline]
    pub(super) fn now_nanos(&self) -> u64 {
        // Relaxed: a clock reading; staleness is bounded by the tick interval.
        self.clock.load(Ordering::Relaxed)
    }

    /// Advances the coarse clock to `since_epoch` (never backwards).
    pub(super) fn tick(&self, since_epoch: Duration) {
        self.clock.fetch_max(slot::duration_nanos(since_epoch), Ordering::Relaxed);
    }

    /// A new connection's retirement age: the tightest time limit of
    /// `max_lifetime` and the aging policy, shortened by up to 5 % (by a
    /// hash of its id) so connections born together do not retire together.
    fn lifetime_for(&self, id: u64) -> Option<Duration> {
        let policy = match self.config.aging_policy {
            Some(AgingPolicy::TimeBased { max_lifetime } | AgingPolicy::Combined { max_lifetime, .. }) => {
                Some(max_lifetime)
            }
            Some(AgingPolicy::Adaptive { base_lifetime, .. }) => Some(base_lifetime),
            _ => None,
        };
        let limit = [self.config.max_lifetime, policy].into_iter().flatten().min()?;
        // 0..=50 thousandths of the limit, from a mixed id.
        let per_mille = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as u32 % 51;
        Some(limit - limit * per_mille / 1000)
    }

    /// Whether a connection has reached its lifetime or usage limit.
    pub(super) fn is_expired(&self, slot: &Slot<C>, now_nanos: u64) -> bool {
        let lifetime = slot.lifetime_nanos();
        let scale = self.adaptive_lifetime_scale();
        let lifetime = if scale == 1.0 || lifetime == u64::MAX { lifetime } else { (lifetime as f64 * scale) as u64 };
        if now_nanos.saturating_sub(slot.created_nanos()) >= lifetime {
            return true;
        }
        match self.config.aging_policy {
            Some(AgingPolicy::UsageBased { max_borrows } | AgingPolicy::Combined { max_borrows, .. }) => {
                slot.borrows() >= max_borrows
            }
            Some(AgingPolicy::Adaptive { error_threshold, .. }) => {
                let borrows = slot.borrows();
                borrows >= ADAPTIVE_MIN_BORROWS && slot.errors() as f64 / borrows as f64 > error_threshold
            }
            _ => false,
        }
    }

    /// How `AgingPolicy::Adaptive` scales lifetimes, as of the last
    /// maintenance pass (1 for other policies).
    pub(super) fn adaptive_lifetime_scale(&self) -> f64 {
        // Relaxed: a figure refreshed once per pass; staleness is bounded by it.
        f64::from_bits(self.adaptive_scale.load(Ordering::Relaxed))
    }

    /// Recomputes the adaptive lifetime scale (see `compute_adaptive_scale`).
    pub(super) fn refresh_adaptive_scale(&self) {
        let scale = self.compute_adaptive_scale();
        self.adaptive_scale.store(scale.to_bits(), Ordering::Relaxed);
    }

    /// How `AgingPolicy::Adaptive` scales lifetimes: `threshold / rate`
    /// over the live connections (errors over borrows), within 0.25..=2.
    /// One pass over the slots, so it runs once per maintenance pass rather
    /// than on every release (with 100 connections that pass cost a release
    /// 52 ns: criterion, 80.6 vs 28.6 ns per acquire and release).
    fn compute_adaptive_scale(&self) -> f64 {
        let Some(AgingPolicy::Adaptive { error_threshold, .. }) = self.config.aging_policy else {
            return 1.0;
        };
        // Open connections only: a slot left vacant (or being refilled)
        // still holds the counts of the connection it last had.
        let open = self.slots.iter().filter(|s| matches!(s.state(), SlotState::Idle | SlotState::InUse));
        let (errors, borrows) = open.fold((0u64, 0u64), |(e, b), s| (e + s.errors(), b + s.borrows()));
        if borrows < ADAPTIVE_MIN_BORROWS {
            return 1.0;
        }
        let rate = errors as f64 / borrows as f64;
        if rate == 0.0 { 2.0 } else { (error_threshold / rate).clamp(0.25, 2.0) }
    }

    /// Counts an error its user reported on a borrowed connection.
    pub(crate) fn record_error(&self, index: u32) {
        self.slots[index as usize].record_error();
    }

    /// Records the last query run on a borrowed connection (and in its
    /// leak report, if it is listed as leaked already).
    pub(crate) fn set_query(&self, index: u32, query: String) {
        // Before the slot's lock: `scan_leaks` takes them in this order too.
        let detector = self.leaks.lock().clone();
        let slot = &self.slots[index as usize];
        let mut trace = slot.trace();
        let trace = trace.get_or_insert_with(|| BorrowTrace::capture(false));
        if trace.reported {
            if let Some(detector) = detector {
                detector.update_query(slot.id(), &query);
            }
        }
        trace.query = Some(query);
    }

    /// Asks the maintenance thread for a pass as soon as possible.
    pub(crate) fn wake_maintenance(&self) {
        if let Some(registration) = self.maintenance.lock().as_ref() {
            registration.wake();
        }
    }

    /// Attaches a leak detector (replacing any other).
    ///
    /// Connections borrowed before it was attached have no record of their
    /// borrower; they are traced from now on (thread unknown, borrowed at
    /// least since now), so a leak already in progress is reported too.
    pub(crate) fn attach_leak_detector(&self, detector: LeakDetector) {
        *self.leaks.lock() = Some(detector);
        self.track_borrows.store(true, Ordering::Relaxed);
        for slot in self.slots.iter().filter(|s| s.state() == SlotState::InUse) {
            // Who borrowed it, and when, is unknown: the borrow counts from
            // now. A slot returned meanwhile keeps this trace only until its
            // next borrow, which records its own (tracking is on now).
            slot.trace().get_or_insert_with(|| BorrowTrace { thread_name: None, ..BorrowTrace::capture(false) });
        }
    }

    /// Resets a returned connection, and validates it when configured or
    /// when its guard was dropped during a panic (its state is unknown).
    #[inline]
    fn recycle(&self, conn: &mut C) -> std::result::Result<(), CloseReason> {
        // A bool out of the closure, for the reason given in `is_valid_in`.
        if !self.passes(Hook::Reset, || self.factory.reset(conn).is_ok()) {
            return Err(CloseReason::Broken);
        }
        if (self.config.validate_on_release || std::thread::panicking()) && !self.is_valid_in(conn, None) {
            return Err(CloseReason::Validation);
        }
        Ok(())
    }

    /// Validates through the configured validator (which may skip a
    /// connection used within its bypass window), else the factory.
    /// Inlined, so the common case (no validator: ask the factory) costs the
    /// fast path no call of its own.
    #[inline(always)]
    pub(super) fn is_valid_in(&self, conn: &C, slot: Option<&Slot<C>>) -> bool {
        let valid = match &self.config.validator {
            Some(validator) => self.check_with_validator(validator, conn, slot),
            // Reduced to a bool inside the closure: moving the whole
            // `Result` out through `catch_unwind` re-read, as wide loads,
            // bytes the callee had just written piecewise (a stall the
            // store buffer cannot forward, about 5 ns per call).
            None => self.passes(Hook::Validate, || matches!(self.factory.validate(conn), Ok(true))),
        };
        if !valid {
            if let Some(slot) = slot {
                slot.record_error();
            }
        }
        valid
    }

    /// `is_valid_in` through a configured validator.
    #[inline(never)]
    fn check_with_validator(&self, validator: &ConnectionValidator, conn: &C, slot: Option<&Slot<C>>) -> bool {
        // Tick first: on a stale clock, a connection idle for longer than the
        // bypass window would look recently used and skip its check. (Its
        // stamp may be stale too, which only errs toward checking.)
        let since_use = slot.map(|s| {
            self.tick(self.epoch.elapsed());
            Duration::from_nanos(self.now_nanos().saturating_sub(s.last_used_nanos()))
        });
        validator.check_with(since_use, |query| match query {
            Some(query) => {
                self.passes(Hook::ValidateQuery, || matches!(self.factory.validate_query(conn, query), Ok(true)))
            }
            None => self.passes(Hook::Validate, || matches!(self.factory.validate(conn), Ok(true))),
        })
    }

    /// Stores a connection in its slot (not yet published), marked `state`.
    #[inline]
    fn store(&self, index: u32, conn: C, state: SlotState) {
        let slot = &self.slots[index as usize];
        // SAFETY: the caller owns the slot (it leased or created it) and
        // publishes it only after this store.
        unsafe { slot.put(conn) };
        slot.set_state(state);
    }

    /// Publishes an idle connection: straight to the oldest waiter while a
    /// waiter starves (in `Fifo` mode, while any waits), else onto this
    /// thread's shard; then serves the waiters (starving, or `Fifo`) or
    /// wakes one to compete for it.
    pub(super) fn give_back(&self, index: u32, conn: C) {
        self.give_back_to(index, conn, home_shard(self.shards()));
    }

    /// `give_back`, for a caller that knows its home shard already.
    #[inline(always)]
    fn give_back_to(&self, index: u32, conn: C, home: usize) {
        if !self.may_barge() {
            // Promised to a waiter: counted as borrowed, never as idle.
            self.store(index, conn, SlotState::InUse);
            if self.waiters.hand_off(Grant::Idle(index)).is_ok() {
                return;
            }
            self.slots[index as usize].set_state(SlotState::Idle);
        } else {
            self.store(index, conn, SlotState::Idle);
        }
        self.idle[home].push(&*self.slots, index);
        // The releaser half of the handshake (see `wait_for_grant` and
        // `close`): either we see the waiter / the close, or they see our push.
        releaser_fence();
        if self.is_closed() {
            self.drain_idle();
        } else if !self.waiters.is_empty() {
            if self.may_barge() {
                // Nobody starves: wake the oldest waiter to compete for it.
                self.waiters.wake_one();
            } else {
                self.serve_waiters();
            }
        }
    }

    /// Closes a connection the caller owns and frees its slot.
    pub(super) fn discard(&self, index: u32, conn: C, reason: CloseReason) {
        let slot = &self.slots[index as usize];
        slot.set_state(SlotState::Closing);
        self.close_connection(conn, slot.id(), reason);
        // Below min_size, freeing the slot asks for a refill now rather
        // than at the next scheduled pass.
        self.free_slot(index);
    }

    pub(super) fn close_connection(&self, conn: C, id: u64, reason: CloseReason) {
        self.stats.record_closed(reason);
        self.notify(Hook::OnClose, |l| l.on_close(id, reason));
        match self.guarded(Hook::Close, || self.factory.close(conn)) {
            Some(Ok(())) => log::debug!("pool {:?}: closed connection {id} ({reason:?})", self.config.name),
            Some(Err(e)) => log::warn!("pool {:?}: closing connection {id} ({reason:?}) failed: {e}", self.config.name),
            // Counted and logged by `guarded`.
            None => {}
        }
    }

    /// Returns a slot to the vacant stack and serves waiters with it.
    pub(super) fn free_slot(&self, index: u32) {
        self.slots[index as usize].set_state(SlotState::Vacant);
        self.vacant.push(&*self.slots, index);
        // As in `give_back`, so a waiter never sleeps beside a vacant slot.
        releaser_fence();
        if !self.waiters.is_empty() {
            self.serve_waiters();
        }
        // Only now that the slot is vacant: a pass that looked while it was
        // still counted as live skipped the refill and will not look again
        // before its next scheduled run.
        if self.config.min_size > 0 && self.live() < self.config.min_size && !self.is_closed() {
            self.wake_maintenance();
        }
    }

    /// Closes every idle connection.
    pub(super) fn drain_idle(&self) {
        for stack in self.idle.iter() {
            while let Some(index) = stack.pop(&*self.slots) {
                let slot = &self.slots[index as usize];
                // SAFETY: popped from an idle stack, so we own the slot.
                if let Some(conn) = unsafe { slot.take() } {
                    self.discard(index, conn, CloseReason::Shutdown);
                }
            }
        }
    }

    /// Closes the pool: wakes every waiter with `PoolClosed`, stops the
    /// maintenance, waits for the jobs in progress (creations, the pass's
    /// factory calls) and closes idle connections on up to [`CLOSERS`]
    /// threads; borrowed ones are closed as they come back. All of it
    /// within `shutdown_timeout`: what is still running in user code then
    /// finishes in the background (and closes what it holds), and is logged.
    pub(crate) fn close(&self) {
        // SeqCst: the closer half of the handshake with `give_back`: a
        // connection pushed concurrently is drained by us or by its releaser.
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let deadline = deadline_after(Instant::now(), self.config.shutdown_timeout);
        // No job starts from now on but our closers.
        self.jobs.refuse();
        self.waiters.close();
        fence(Ordering::SeqCst);
        // Closers first, so that idle connections close while we wait for
        // the rest; a pass or job that pushes connections back after this
        // sees `closed` and closes them itself.
        if self.idle.iter().any(|stack| !stack.is_empty()) {
            let closers = self.count(SlotState::Idle).clamp(1, CLOSERS);
            for _ in 0..closers {
                self.spawn_job(CLOSER_THREAD_NAME, Starter::Close, |pool| pool.drain_idle());
            }
        }
        let registration = self.maintenance.lock().take();
        let maintenance_stopped = registration.is_none_or(|r| r.stop_until(deadline));
        let busy = match (self.jobs.wait_until(deadline), maintenance_stopped) {
            (Ok(()), true) => {
                log::debug!("pool {:?}: closed", self.config.name);
                return;
            }
            (Ok(()), false) => "the maintenance pass".to_string(),
            (Err(jobs), true) => format!("{jobs} background job(s)"),
            (Err(jobs), false) => format!("the maintenance pass and {jobs} background job(s)"),
        };
        log::warn!(
            "pool {:?}: close() returns after its shutdown_timeout of {:?} with {busy} still in user code \
             (a factory or listener call); they finish in the background and close what they hold",
            self.config.name,
            self.config.shutdown_timeout,
        );
    }

    /// How many slots are in `state` right now (a snapshot).
    pub(crate) fn count(&self, state: SlotState) -> usize {
        self.slots.iter().filter(|s| s.state() == state).count()
    }

    /// Open and opening connections right now (a snapshot).
    pub(crate) fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.state() != SlotState::Vacant).count()
    }

    /// Idle, borrowed and live counts from one pass over the slots.
    pub(crate) fn census(&self) -> Census {
        let mut census = Census { idle: 0, active: 0, live: 0, loans: 0 };
        for s in self.slots.iter() {
            census.loans += s.loans();
            match s.state() {
                SlotState::Vacant => continue,
                SlotState::Idle => census.idle += 1,
                SlotState::InUse => census.active += 1,
                _ => {}
            }
            census.live += 1;
        }
        census
    }

    /// When a leased connection was created.
    pub(crate) fn created_at(&self, index: u32) -> Instant {
        self.slots[index as usize].created_at(self.epoch)
    }

    /// How many times a leased connection has been borrowed.
    pub(crate) fn borrows(&self, index: u32) -> u64 {
        self.slots[index as usize].borrows()
    }

    /// Whether borrow traces are being recorded.
    pub(super) fn tracks_borrows(&self) -> bool {
        self.track_borrows.load(Ordering::Relaxed)
    }

    /// Threads waiting right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

impl<C: Send + 'static> Drop for Inner<C> {
    /// Runs once no handle and no guard is left: closes whatever is still
    /// in a slot (idle connections of a pool that was never closed, or
    /// connections pushed back while the pool was torn down), then drops
    /// the user's factory and listener one at a time, each destructor's
    /// panic caught: this runs inside our destructors, maybe on a thread
    /// that is already unwinding, where a second panic aborts.
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            // SAFETY: `&mut self`: nothing else can reach the slots.
            if let Some(conn) = unsafe { slot.take() } {
                self.close_connection(conn, slot.id(), CloseReason::Shutdown);
            }
        }
        // SAFETY: taken once, here, and never used again: the pool is gone.
        let factory = unsafe { ManuallyDrop::take(&mut self.factory) };
        drop_user_code(&self.config.name, "factory", factory);
        drop_user_code(&self.config.name, "listener", (self.listener.take(), self.config.event_listener.take()));
    }
}

/// Drops `value`, which may run user code: a panic in it is logged.
fn drop_user_code<T>(pool: &str, what: &str, value: T) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(value))) {
        log::error!("pool {pool:?}: the {what}'s destructor panicked: {}", panic_message(&*panic));
    }
}

/// Ends one reference on the pool (a guard's, or one taken with
/// `GuardRefs::hold`), counted on `stripe`, and frees the pool if it was
/// the last reference.
///
/// # Safety
/// `pool` came from `Box::leak` in `ConnectionPool::new`, and the caller
/// holds a reference on it that it has not ended; it must not touch the
/// pool after this call.
#[inline]
pub(crate) unsafe fn end_reference<C: Send + 'static>(pool: NonNull<Inner<C>>, stripe: usize) {
    // SAFETY: the caller's reference keeps the pool allocated until this release.
    let last = unsafe { pool.as_ref() }.refs.release(stripe);
    if last {
        // SAFETY: that was the last reference: no handle, guard or job
        // reaches the pool any more, and it came from `Box::leak`.
        drop(unsafe { Box::from_raw(pool.as_ptr()) });
    }
}

/// Most threads `close()` closes idle connections on, so that closing a
/// pool of slow-to-close connections takes a fraction of their sum.
const CLOSERS: usize = 4;

/// The thread name of `close()`'s closers (15 bytes at most).
const CLOSER_THREAD_NAME: &str = "rusty-db-close";

/// Borrows a connection needs before `AgingPolicy::Adaptive` judges its
/// error rate (so one early error does not retire it).
pub(crate) const ADAPTIVE_MIN_BORROWS: u64 = 10;

/// `start + timeout`; a timeout too large for the clock waits "forever"
/// rather than panicking.
fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start.checked_add(timeout).unwrap_or_else(|| far_future(start))
}

/// A deadline no caller will live to see (a century from `now`).
pub(crate) fn far_future(now: Instant) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(CENTURY).unwrap_or(now)
}
