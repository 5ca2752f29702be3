//! Release: a guard's connection comes back, is reset (and validated if
//! configured, or if its thread is unwinding), and is given back to the
//! pool, or closed; closing connections and freeing their slots.
//!
//! ```text
//!  release ─► reset / validate ─► give back: hand to the oldest waiter (if it
//!                                 must be) or push home shard, then look
//!          └► closed, broken, expired ─► discard: factory.close, free the slot
//! ```

use std::time::Duration;

use super::engine::{Detached, Looked, Owned};
use super::events::CloseReason;
use super::home_shard::home_shard;
use super::hooks::Hook;
use super::inner::Inner;
use super::slot::{Slot, SlotState};
use super::validator::ConnectionValidator;

impl<C: Send + 'static> Inner<C> {
    /// Takes back a guard's connection: recycled into the pool if it is
    /// healthy and the pool open (onto shard `home`, the caller's), closed
    /// otherwise (for `close`, if given). `dirty`: its borrower marked it
    /// so (the factory's full clean-up runs instead of its reset).
    #[inline]
    pub(crate) fn release(&self, slot: Detached, mut conn: C, close: Option<CloseReason>, dirty: bool, home: usize) {
        let owned = self.engine.attach(slot);
        let slot = owned.slot();
        if slot.has_borrow_state() {
            self.end_borrow(slot, owned.index());
        }
        if let Some(reason) = close {
            self.discard(owned, conn, reason);
        } else if slot.is_killed(slot.id()) {
            self.discard(owned, conn, CloseReason::Killed);
        } else if self.is_closed() {
            self.discard(owned, conn, CloseReason::Shutdown);
        } else if let Err(reason) = self.recycle(&mut conn, dirty) {
            self.discard(owned, conn, reason);
        } else if self.retire_on_return && self.is_expired(slot, self.now_nanos()) {
            self.discard(owned, conn, CloseReason::Lifetime);
        } else {
            slot.touch(self.now_nanos());
            self.give_back_to(owned, conn, home);
        }
    }

    /// Ends what a borrow carried beyond its connection: its trace (for
    /// leak reports) and its partition claim, released here, before the
    /// connection goes back (a partition waiter it wakes then waits in the
    /// pool's own queue for the connection, if it is quicker).
    #[cold]
    #[inline(never)]
    fn end_borrow(&self, slot: &Slot<C>, index: u32) {
        if let Some(trace) = slot.take_trace() {
            self.returned(slot.id(), &trace);
        }
        if self.config.enable_partitioning {
            drop(self.extras[index as usize].take_claim());
        }
    }

    /// Resets a returned connection (the factory's full clean-up if it was
    /// marked dirty or its guard dropped during a panic: its state is
    /// unknown), and validates it when configured or after a panic.
    #[inline]
    fn recycle(&self, conn: &mut C, dirty: bool) -> std::result::Result<(), CloseReason> {
        let panicking = std::thread::panicking();
        // A bool out of the closure, for the reason given in `is_valid_in`.
        let reset = if dirty || panicking {
            self.passes(Hook::Reset, || self.factory.clean(conn).is_ok())
        } else {
            self.passes(Hook::Reset, || self.factory.reset(conn).is_ok())
        };
        if !reset {
            return Err(CloseReason::Broken);
        }
        if (self.config.validate_on_release || panicking) && !self.is_valid_in(conn, None) {
            return Err(CloseReason::Validation);
        }
        Ok(())
    }

    /// Validates through the configured validator (which may skip a
    /// connection used within its bypass window), else the factory: on
    /// acquire (`slot` given) its cheap check for a connection returned
    /// within the pool's bypass window, its full one otherwise.
    /// Inlined, so the common case (no validator: ask the factory) costs the
    /// fast path no call of its own.
    #[inline(always)]
    pub(super) fn is_valid_in(&self, conn: &mut C, slot: Option<&Slot<C>>) -> bool {
        let valid = match &self.config.validator {
            Some(validator) => self.check_with_validator(validator, conn, slot),
            // Reduced to a bool inside the closure: moving the whole
            // `Result` out through `catch_unwind` re-read, as wide loads,
            // bytes the callee had just written piecewise (a stall the
            // store buffer cannot forward, about 5 ns per call).
            None => {
                let cheap = slot.is_some_and(|s| self.returned_within_bypass(s));
                self.passes(Hook::Validate, || {
                    let valid = if cheap { self.factory.validate(conn) } else { self.factory.validate_mut(conn) };
                    matches!(valid, Ok(true))
                })
            }
        };
        if !valid {
            if let Some(slot) = slot {
                slot.record_error();
            }
        }
        valid
    }

    /// Whether an acquired connection came back within the validation
    /// bypass window, on the coarse clock: it gets the factory's cheap
    /// check only (see `PoolConfig::validation_bypass_window`).
    #[inline(always)]
    fn returned_within_bypass(&self, slot: &Slot<C>) -> bool {
        self.bypass_nanos > 0 && self.now_nanos().saturating_sub(slot.last_used_nanos()) < self.bypass_nanos
    }

    /// `is_valid_in` through a configured validator.
    #[inline(never)]
    fn check_with_validator(&self, validator: &ConnectionValidator, conn: &mut C, slot: Option<&Slot<C>>) -> bool {
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
            None => self.passes(Hook::Validate, || matches!(self.factory.validate_mut(conn), Ok(true))),
        })
    }

    /// Publishes an idle connection (see `Engine::give_back`) from this
    /// thread's shard.
    pub(super) fn give_back(&self, owned: Owned<'_, C>, conn: C) {
        self.give_back_to(owned, conn, home_shard(self.shards()));
    }

    /// `give_back`, for a caller that knows its home shard already.
    #[inline(always)]
    pub(super) fn give_back_to(&self, owned: Owned<'_, C>, conn: C, home: usize) {
        self.looked(self.engine.give_back(owned, conn, home));
    }

    /// Closes a connection the caller owns and frees its slot.
    pub(super) fn discard(&self, owned: Owned<'_, C>, conn: C, reason: CloseReason) {
        let slot = owned.slot();
        slot.set_state(SlotState::Closing);
        self.close_connection(conn, slot.id(), reason);
        // Below min_size, freeing the slot asks for a refill now rather
        // than at the next scheduled pass.
        self.free_slot(owned);
    }

    /// Closes the connection of a slot the caller took out of the stacks
    /// (or just frees the slot, if it holds none).
    pub(super) fn close_owned(&self, mut owned: Owned<'_, C>, reason: CloseReason) {
        match owned.take() {
            Some(conn) => self.discard(owned, conn, reason),
            None => self.free_slot(owned),
        }
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
    pub(super) fn free_slot(&self, owned: Owned<'_, C>) {
        self.looked(self.engine.free(owned));
        // Only now that the slot is vacant: a pass that looked while it was
        // still counted as live skipped the refill and will not look again
        // before its next scheduled run.
        let min_size = self.min_size();
        if min_size > 0 && self.live() < min_size && !self.is_closed() {
            self.wake_maintenance();
        }
    }

    /// Serves waiters (say after the gate reopened), draining if closed.
    pub(super) fn serve_waiters(&self) {
        self.looked(self.engine.serve_waiters());
    }

    /// Acts on what a look after a push found: a closed pool's idle
    /// connections are closed by whoever finds it closed.
    #[inline(always)]
    pub(super) fn looked(&self, looked: Looked) {
        if looked == Looked::Closed {
            self.drain_idle();
        }
    }

    /// Closes every idle connection.
    pub(super) fn drain_idle(&self) {
        while let Some(mut owned) = self.engine.pop_any_idle() {
            match owned.take() {
                Some(conn) => self.discard(owned, conn, CloseReason::Shutdown),
                // An idle slot always holds its connection.
                None => self.free_slot(owned),
            }
        }
    }
}
