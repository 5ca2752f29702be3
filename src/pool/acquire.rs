//! Acquire: take an idle connection (home shard, then steal), else create
//! in a vacant slot, else wait; validate on the way out.
//!
//! ```text
//!  acquire ─► may barge? ─► pop home shard ─► (slow) steal ─► reserve a vacant
//!                                                             slot and create
//!          ─► register, fence, serve, park (starving after fairness_threshold)
//! ```
//!
//! The fast path (an idle connection on the thread's own shard, nobody it
//! must not overtake) reads one word of the wait queue and pops one stack;
//! it is inlined into `ConnectionPool::acquire`. Everything else is
//! `acquire_slow`, which loops until it has a connection or an error.

use std::time::{Duration, Instant};

use super::config::QueueMode;
use super::deadline::deadline_after;
use super::engine::{Granted, Owned};
use super::error::{PoolError, Result};
use super::events::CloseReason;
use super::home_shard::home_shard;
use super::hooks::Hook;
use super::inner::{Inner, Lease};
use super::slot::SlotState;
use super::stats::{AcquireProbe, Served};
use super::waiters::RegisterError;
use crate::sync::Ordering;

impl<C: Send + 'static> Inner<C> {
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
        // thread's shard while nobody it must not overtake waits.
        if !self.is_closed() && self.engine.may_barge() {
            if let Some(owned) = self.engine.pop_home(home) {
                match self.check_out(owned, home) {
                    Ok(lease) => {
                        self.stats.record_immediate_acquire(home, sample);
                        return Ok(lease);
                    }
                    Err(owned) => {
                        self.free_slot(owned);
                        rejected = true;
                    }
                }
            }
        }
        self.acquire_recorded(home, sample, timeout, priority, wait, rejected)
    }

    /// `acquire_slow` for `acquire`, recording how it served. Out of line
    /// and returning just the lease, so that `acquire`'s inlined fast path
    /// is the same code as when `acquire_slow` recorded itself (returning
    /// the pair from there cost 12 instructions per uncontended cycle).
    #[inline(never)]
    fn acquire_recorded(
        &self,
        home: usize,
        sample: AcquireProbe,
        timeout: Duration,
        priority: i32,
        wait: bool,
        rejected: bool,
    ) -> Result<Lease<C>> {
        let (lease, served) = self.acquire_slow(home, sample, timeout, priority, wait, rejected, None)?;
        self.stats.record_served(home, served);
        Ok(lease)
    }

    /// An acquire the partitions' ledger admitted: like
    /// [`acquire`](Self::acquire), but the pool-wide `max_wait_queue_size`
    /// does not apply (the ledger bounds these requests by their own
    /// queues and admits at most `max_size` of them), and the caller
    /// records how it was served once the borrow is really handed over.
    pub(crate) fn acquire_admitted(&self, timeout: Duration, priority: i32, wait: bool) -> Result<(Lease<C>, Served)> {
        let home = home_shard(self.shards());
        let sample = self.stats.sample_start();
        self.acquire_slow(home, sample, timeout, priority, wait, false, Some(usize::MAX))
    }

    /// Everything else `acquire` does: steal, create, wait; and the fast
    /// path again, since it loops. `rejected`: whether the fast path's
    /// connection failed validation (which starts the clock);
    /// `queue_bound`: the most waiters it may queue behind, if not the
    /// pool's `max_wait_queue_size`. Returns how it was served, for the
    /// caller to record.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn acquire_slow(
        &self,
        home: usize,
        sample: AcquireProbe,
        timeout: Duration,
        priority: i32,
        wait: bool,
        rejected: bool,
        queue_bound: Option<usize>,
    ) -> Result<(Lease<C>, Served)> {
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
            if self.engine.may_barge() {
                if let Some(owned) = self.engine.pop_idle(home) {
                    match self.check_out(owned, home) {
                        Ok(lease) => return Ok((lease, Served::Immediate(sample))),
                        Err(owned) => {
                            let now = self.rejected(owned);
                            let start = *start.get_or_insert(now);
                            if wait && !timeout.is_zero() && now >= deadline_after(start, timeout) {
                                return Err(self.validation_ran_out(timeout));
                            }
                            continue;
                        }
                    }
                }
                if let Some(owned) = self.engine.reserve_vacant() {
                    let start = *start.get_or_insert_with(Instant::now);
                    // Only an acquire that may wait bounds the factory by its deadline.
                    let deadline = (wait && !timeout.is_zero()).then(|| deadline_after(start, timeout));
                    match self.create_lease(owned, home, deadline) {
                        Ok(Some(lease)) => return Ok((lease, waited(start, true))),
                        Ok(None) => return Err(self.timed_out(timeout, start)),
                        // Failures are remembered by the gate and reported at
                        // the deadline; meanwhile another connection may come back.
                        Err(PoolError::Factory(_)) if wait => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            if !wait {
                if let Some(error) = self.engine.gate().current_error() {
                    return Err(PoolError::Factory(error));
                }
                return Err(PoolError::PoolExhausted {
                    active: self.count(SlotState::InUse),
                    max: self.config.max_size,
                });
            }
            let start = *start.get_or_insert_with(Instant::now);
            let deadline = deadline_after(start, timeout);
            let granted = match self.wait_for_grant(priority, &mut ticket, queue_bound, start, deadline)? {
                Some(Granted::Idle(owned)) => match self.check_out(owned, home) {
                    Ok(lease) => return Ok((lease, waited(start, false))),
                    Err(owned) if Instant::now() >= deadline => {
                        self.rejected(owned);
                        return Err(self.validation_ran_out(timeout));
                    }
                    // A granted connection that fails validation leaves us
                    // its slot: create in it rather than pass it on, so we
                    // keep our turn.
                    Err(owned) if self.engine.gate().permit().is_ok() => Some(Granted::Vacant(owned)),
                    Err(owned) => {
                        self.rejected(owned);
                        Some(Granted::Retry)
                    }
                },
                other => other,
            };
            match granted {
                Some(Granted::Idle(_)) => unreachable!("handled above"),
                Some(Granted::Vacant(owned)) => {
                    match self.create_lease(owned, home, (!timeout.is_zero()).then_some(deadline)) {
                        Ok(Some(lease)) => return Ok((lease, waited(start, true))),
                        Ok(None) => return Err(self.timed_out(timeout, start)),
                        Err(PoolError::Factory(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(Granted::Closed) => return Err(PoolError::PoolClosed),
                Some(Granted::Retry) => self.engine.woke(),
                None if Instant::now() >= deadline => return Err(self.timed_out(timeout, start)),
                None => {}
            }
        }
    }

    /// Queues the caller and parks it until it is granted a slot, the pool
    /// closes, `deadline` passes (`Ok(None)`), or creation may be retried.
    /// Waiting since `start`, it starves once the threshold in force has
    /// passed (`Fair`, `Priority`).
    fn wait_for_grant(
        &self,
        priority: i32,
        ticket: &mut Option<u64>,
        queue_bound: Option<usize>,
        start: Instant,
        deadline: Instant,
    ) -> Result<Option<Granted<'_, C>>> {
        let starve_at = self.starves.then(|| deadline_after(start, self.threshold_in_force()));
        let until = match self.engine.gate().retry_at() {
            Some(retry) if retry < deadline => retry,
            _ => deadline,
        };
        let max = queue_bound.unwrap_or(self.config.max_wait_queue_size);
        match self.engine.wait_for_grant(priority, ticket, max, starve_at, until) {
            Ok((granted, looked)) => {
                self.looked(looked);
                Ok(granted)
            }
            Err(RegisterError::Full) => Err(PoolError::WaitQueueFull),
            Err(RegisterError::Closed) => Err(PoolError::PoolClosed),
        }
    }

    /// How long a waiter may be overtaken before it starves, now: the
    /// fairness threshold, or longer while borrows are long (see
    /// `hold_estimate`).
    pub(crate) fn threshold_in_force(&self) -> Duration {
        // Relaxed: a setting; a stale one serves one waiter by the last rule.
        Duration::from_nanos(self.threshold_nanos.load(Ordering::Relaxed))
    }

    /// The error of an acquire that started at `start` and ran out of
    /// `timeout`: the factory's last error if creating failed since then or
    /// is still failing (the gate backs off until a create succeeds; while
    /// its delay exceeds the timeout, most acquires make no attempt of
    /// their own), else `ConnectionTimeout`. Tells the listener.
    #[cold]
    fn timed_out(&self, timeout: Duration, start: Instant) -> PoolError {
        self.notify(Hook::OnTimeout, |l| l.on_timeout(timeout));
        let gate = self.engine.gate();
        match gate.error_since(start).or_else(|| gate.current_error()) {
            Some(error) => PoolError::Factory(error),
            None => PoolError::ConnectionTimeout(timeout),
        }
    }

    /// Frees the slot of a connection that failed validation on its way
    /// out (`check_out` closed it); returns the time, which starts the
    /// acquire's clock if nothing had yet.
    #[cold]
    #[inline(never)]
    fn rejected(&self, owned: Owned<'_, C>) -> Instant {
        self.free_slot(owned);
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

    /// Takes the connection out of a slot the caller owns and validates it
    /// if configured. `Err` if it failed and was closed: the caller still
    /// owns the (now empty) slot and must create in it or free it.
    #[inline(always)]
    fn check_out<'a>(&'a self, mut owned: Owned<'a, C>, home: usize) -> std::result::Result<Lease<C>, Owned<'a, C>> {
        let mut conn = owned.take().expect("an idle slot holds a connection");
        let slot = owned.slot();
        slot.set_state(SlotState::InUse);
        if self.config.validate_on_acquire && !self.is_valid_in(&mut conn, Some(slot)) {
            self.reject(&owned, conn);
            return Err(owned);
        }
        Ok(self.lease(owned, conn, home))
    }

    /// Closes a connection that failed validation on its way out.
    #[cold]
    #[inline(never)]
    fn reject(&self, owned: &Owned<'_, C>, conn: C) {
        let slot = owned.slot();
        slot.set_state(SlotState::Closing);
        self.close_connection(conn, slot.id(), CloseReason::Validation);
        // The caller creates in this slot or frees it; `free_slot` asks for
        // the refill. Asking here, with the slot still counted as live, let
        // a pass that ran before the free find the pool full and skip it.
    }

    /// Counts the borrow and records who made it (while leak detection is
    /// on); the slot becomes the guard's.
    #[inline(always)]
    pub(super) fn lease(&self, owned: Owned<'_, C>, conn: C, home: usize) -> Lease<C> {
        let slot = owned.slot();
        if self.tracks_borrows() {
            self.trace_borrow(slot);
        }
        let id = slot.lend();
        // `home` is a shard index, below 1024 (config validation).
        Lease { slot: owned.detach(), home: home as u32, conn, id }
    }
}

/// A waited acquire that started at `start` and got its connection now.
fn waited(start: Instant, fresh: bool) -> Served {
    Served::Waited { took: start.elapsed(), fresh }
}
