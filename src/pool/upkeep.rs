//! The maintenance pass of one pool, run by its [`MaintenanceService`].
//!
//! Each pass: ticks the coarse clock; reports leaks; retires idle
//! connections past their lifetime, usage or error limits, or idle past
//! `idle_timeout` (never below `min_size`); validates idle connections due
//! for keep-alive; refills to `min_size`; with adaptive sizing, creates
//! ahead to keep a spare idle connection per four borrowed and shrinks a
//! surplus beyond that spare that has idled for several passes.
//! Connections are inspected by popping a shard's idle stack and pushing
//! the survivors back at once, never a borrowed one.
//!
//! The pass itself never calls the factory: the closes, keep-alive
//! validations and creates it decides on run as one job on a thread of
//! their own (named `rdb-<pool name>`, like a pool's own maintenance
//! thread), so a factory that hangs delays neither the leak scan nor the
//! passes of other pools sharing the service. While that job runs, later
//! passes still scan for leaks but decide nothing new.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use super::background::Starter;
use super::engine::{Detached, Owned};
use super::events::CloseReason;
use super::hold_estimate::HoldEstimate;
use super::hooks::Hook;
use super::inner::{Inner, end_reference};
use super::maintenance::{Maintain, MaintenanceService, Task};
use super::slot::{Slot, SlotState, duration_nanos};
use crate::sync::{AtomicBool, Ordering};

/// Passes a surplus must persist before adaptive sizing shrinks it.
const SHRINK_AFTER_PASSES: u32 = 4;

/// A pool's place in a maintenance service.
pub(crate) struct Registration {
    service: MaintenanceService,
    task: Arc<Task>,
    /// The service is the pool's own and stops with it.
    dedicated: bool,
}

impl Registration {
    /// Registers the pool at `inner` with its configured service (or a new
    /// one of its own). The job holds a guard reference, so the pool's
    /// memory outlives it.
    pub(crate) fn start<C: Send + 'static>(inner: NonNull<Inner<C>>) {
        // SAFETY: called by `ConnectionPool::new` on a freshly leaked,
        // live `Inner`.
        let pool = unsafe { inner.as_ref() };
        let (service, dedicated) = match &pool.config.maintenance_service {
            Some(service) => (service.clone(), false),
            None => (MaintenanceService::new(&pool.config.name), true),
        };
        pool.refs.hold();
        let sightings = vec![Sighting::default(); pool.config.max_size].into_boxed_slice();
        let job =
            PoolJob { inner, surplus_passes: 0, min_surplus: usize::MAX, sightings, holds: HoldEstimate::default() };
        let task = service.register(Box::new(job));
        *pool.maintenance.lock() = Some(Registration { service, task, dedicated });
    }

    /// Asks for a pass as soon as possible.
    pub(crate) fn wake(&self) {
        self.service.wake(&self.task);
    }

    /// Unregisters and stops a dedicated thread, waiting until `deadline`
    /// at most for a pass in progress. `false` if the pass was still
    /// running then (it drops the job, and a dedicated thread exits, once
    /// it returns).
    pub(crate) fn stop_until(self, deadline: Instant) -> bool {
        let mut stopped = true;
        if self.service.is_current_thread() {
            // Closed from inside our own pass (say by an event listener):
            // the service drops the job when the pass returns.
            self.task.cancel();
        } else {
            stopped = self.service.unregister_until(&self.task, deadline);
        }
        if self.dedicated {
            stopped &= self.service.shutdown_until(deadline);
        }
        stopped
    }
}

/// The job a service runs for one pool.
struct PoolJob<C: Send + 'static> {
    inner: NonNull<Inner<C>>,
    /// Consecutive passes that found idle connections beyond `min_size`.
    surplus_passes: u32,
    /// The smallest surplus seen over those passes.
    min_surplus: usize,
    /// Per slot: since when passes have found its connection idle.
    sightings: Box<[Sighting]>,
    /// How long borrows hold their connections (see `hold_estimate`).
    holds: HoldEstimate,
}

/// Since when passes have found a slot's connection idle.
///
/// A return stamps the connection with the coarse clock, which runs behind
/// by as long as the maintenance thread is stalled (say in a slow factory
/// call, or another pool's pass on a shared service), and keep-alive
/// refreshes that stamp. Idle time for `idle_timeout` is therefore counted
/// from the first pass that found the connection idle since its last
/// borrow: never longer than it really was idle, at most one interval
/// shorter.
#[derive(Debug, Clone, Copy, Default)]
struct Sighting {
    /// The connection (ids are never reused) and its borrow count when first seen.
    id: u64,
    borrows: u64,
    /// When it was first seen idle, nanoseconds since the pool's epoch.
    since: u64,
}

impl Sighting {
    /// How long the idle connection in `slot` has been seen idle as of
    /// `now` (read after the pass popped it, so never before its return),
    /// starting over if it was borrowed (or replaced) since the last look.
    fn idle_for<C>(&mut self, slot: &Slot<C>, now: u64) -> u64 {
        let (id, borrows) = (slot.id(), slot.borrows());
        if (self.id, self.borrows) != (id, borrows) {
            *self = Sighting { id, borrows, since: now };
        }
        now.saturating_sub(self.since)
    }
}

// SAFETY: `Inner<C>` is shared between threads by design and the job holds
// a guard reference that keeps it allocated (see `Registration::start`).
unsafe impl<C: Send + 'static> Send for PoolJob<C> {}

impl<C: Send + 'static> Drop for PoolJob<C> {
    fn drop(&mut self) {
        // SAFETY: the job's hold (see `Registration::start`) is the
        // reference ended, and the job touches the pool no more.
        unsafe { end_reference(self.inner, 0) };
    }
}

impl<C: Send + 'static> Maintain for PoolJob<C> {
    fn run(&mut self, now: Instant) -> Instant {
        // SAFETY: as in `Drop`: the job's reference keeps `inner` alive.
        let pool = unsafe { self.inner.as_ref() };
        let mut interval = pool.config.effective_maintenance_interval();
        if let Some(detector) = pool.leaks.lock().as_ref() {
            interval = interval.min(detector.check_interval());
        }
        pool.maintain(now, self);
        let next = now + interval;
        match pool.engine.gate().retry_at() {
            Some(retry) if retry < next && pool.live() < pool.min_size() => retry,
            _ => next,
        }
    }
}

/// The factory calls a pass decided on, carried out by a job of their own
/// (see `Inner::carry_out`) so that a factory that hangs delays neither the
/// leak scan nor the next pass.
#[derive(Debug, Default)]
struct Upkeep {
    /// Idle connections the pass took out of the stacks, to close.
    retire: Vec<(Detached, CloseReason)>,
    /// Idle connections the pass took out of the stacks, to validate.
    check: Vec<Detached>,
    /// Connections to create ahead of demand (adaptive sizing).
    grow: usize,
    /// Whether to create up to `min_size`.
    refill: bool,
}

impl Upkeep {
    fn is_empty(&self) -> bool {
        self.retire.is_empty() && self.check.is_empty() && self.grow == 0 && !self.refill
    }
}

/// Clears `Inner::upkeep_running` when the upkeep job ends, however it ends.
struct UpkeepDone<'a>(&'a AtomicBool);

impl Drop for UpkeepDone<'_> {
    fn drop(&mut self) {
        // Release: the next pass's Acquire load sees the job's pushes and closes.
        self.0.store(false, Ordering::Release);
    }
}

impl<C: Send + 'static> Inner<C> {
    fn maintain(&self, now: Instant, job: &mut PoolJob<C>) {
        self.tick(now.saturating_duration_since(self.epoch));
        if self.is_closed() {
            return;
        }
        // First, and on a fresh clock: no factory call of ours delays it.
        self.scan_leaks(Instant::now());
        if self.starves {
            self.follow_holds(now, &mut job.holds);
        }
        // Acquire: pairs with `UpkeepDone`'s Release.
        if self.upkeep_running.load(Ordering::Acquire) {
            // The last pass's factory calls are still running; this pass
            // decides nothing new until they return.
            return;
        }
        let now_nanos = self.now_nanos();
        self.refresh_adaptive_scale();
        let mut work = Upkeep::default();
        self.retire_idle(now_nanos, &mut job.sightings, &mut work);
        if self.config.adaptive_sizing {
            self.adapt(job, &mut work);
        }
        // Not while creation backs off: the job would find the gate shut.
        let may_create = self.engine.gate().retry_at().is_none_or(|at| at <= Instant::now());
        work.refill = may_create && self.live() < self.min_size();
        if !work.is_empty() {
            self.start_upkeep(work);
        }
    }

    /// Samples how long borrows hold their connections, and sets the
    /// starvation threshold that follows (see `hold_estimate`).
    fn follow_holds(&self, now: Instant, holds: &mut HoldEstimate) {
        let census = self.census();
        let threshold = holds.observe(now, census.active, census.loans).threshold(self.config.fairness_threshold);
        // Relaxed: a setting read by waiters (see `Inner::threshold_nanos`).
        let before = self.threshold_nanos.swap(duration_nanos(threshold), Ordering::Relaxed);
        if before != duration_nanos(threshold) {
            log::debug!("pool {:?}: starvation threshold now {threshold:?}", self.config.name);
        }
    }

    /// Hands `work` to a job of its own, or takes its connections back if
    /// the pool closed meanwhile (and closes them, seeing it closed).
    fn start_upkeep(&self, work: Upkeep) {
        // Relaxed: read by the next pass, on this same thread.
        self.upkeep_running.store(true, Ordering::Relaxed);
        let name = format!("rdb-{}", self.config.name);
        if let Err(work) = self.spawn_job(&name, Starter::Open, work, |pool, work| pool.carry_out(work)) {
            self.upkeep_running.store(false, Ordering::Relaxed);
            let held = work.retire.into_iter().map(|(d, _)| d).chain(work.check);
            let owned = held.map(|d| self.engine.attach(d)).collect();
            self.looked(self.engine.put_back(0, owned));
        }
    }

    /// A pass's factory calls, on a job's thread: closes the connections it
    /// retired, validates those due for keep-alive, then creates. Once the
    /// pool closes it closes what it still holds and creates nothing.
    fn carry_out(&self, work: Upkeep) {
        let _done = UpkeepDone(&self.upkeep_running);
        for (slot, reason) in work.retire {
            self.close_owned(self.engine.attach(slot), if self.is_closed() { CloseReason::Shutdown } else { reason });
        }
        for slot in work.check {
            let owned = self.engine.attach(slot);
            if self.is_closed() {
                self.close_owned(owned, CloseReason::Shutdown);
            } else {
                self.keep_alive(owned);
            }
        }
        for _ in 0..work.grow {
            if self.is_closed() || !self.create_idle() {
                break;
            }
        }
        if work.refill {
            self.refill();
        }
    }

    /// Takes out of the stacks the idle connections due for retirement
    /// (past their lifetime, usage or error limits, or idle past
    /// `idle_timeout` above `min_size`) or keep-alive, into `work`, and
    /// puts the others back.
    fn retire_idle(&self, now: u64, sightings: &mut [Sighting], work: &mut Upkeep) {
        let idle_limit = self.config.idle_timeout.map(duration_nanos);
        let keepalive = self.config.validator.as_ref().and_then(|v| v.keepalive_interval()).map(duration_nanos);
        let mut live = self.live();
        // Once per pass: with partitions attached it takes their ledger's lock.
        let min_size = self.min_size();
        if !self.anything_due(now, sightings, idle_limit, keepalive, live, min_size) {
            return;
        }
        for shard in 0..self.shards() {
            let popped = self.engine.take_idle(shard);
            // Read after the pops: each popped connection came back before it.
            let seen_at = duration_nanos(self.epoch.elapsed());
            let mut keep = Vec::with_capacity(popped.len());
            for owned in popped {
                let slot = owned.slot();
                let idle_for = sightings[owned.index() as usize].idle_for(slot, seen_at);
                // Keep-alive goes by the stamp: an early check costs nothing.
                let unchecked_for = now.saturating_sub(slot.last_used_nanos());
                if self.is_expired(slot, now) {
                    work.retire.push((owned.detach(), CloseReason::Lifetime));
                    live -= 1;
                } else if idle_limit.is_some_and(|limit| idle_for >= limit) && live > min_size {
                    work.retire.push((owned.detach(), CloseReason::Idle));
                    live -= 1;
                } else if keepalive.is_some_and(|k| unchecked_for >= k) {
                    work.check.push(owned.detach());
                } else {
                    keep.push(owned);
                }
            }
            // Reverse pop order restores the stack as it was.
            keep.reverse();
            self.looked(self.engine.put_back(shard, keep));
        }
    }

    /// Whether any idle connection is due for retirement or keep-alive,
    /// judged from the slots without taking anything out of the stacks
    /// (and starting the idle sightings). Taking the idle connections out
    /// makes a racing acquire open a connection it did not need, so a pass
    /// does it only when there is work for it.
    fn anything_due(
        &self,
        now: u64,
        sightings: &mut [Sighting],
        idle_limit: Option<u64>,
        keepalive: Option<u64>,
        live: usize,
        min_size: usize,
    ) -> bool {
        let idle: Vec<_> = self.engine.slots().filter(|(_, s)| s.state() == SlotState::Idle).collect();
        // Read after the states: each slot seen idle was returned before it.
        let seen_at = duration_nanos(self.epoch.elapsed());
        let mut due = false;
        for (index, slot) in idle {
            let idle_for = sightings[index as usize].idle_for(slot, seen_at);
            due |= self.is_expired(slot, now)
                || (idle_limit.is_some_and(|limit| idle_for >= limit) && live > min_size)
                || keepalive.is_some_and(|k| now.saturating_sub(slot.last_used_nanos()) >= k);
        }
        due
    }

    /// Validates one idle connection the pass took out; puts it back or
    /// closes it.
    fn keep_alive(&self, mut owned: Owned<'_, C>) {
        let Some(mut conn) = owned.take() else { return self.free_slot(owned) };
        if self.is_valid_in(&mut conn, None) {
            // Stamped when the check ended, not when the pass began: a check
            // slower than the interval would otherwise come due again at once.
            let now = self.epoch.elapsed();
            self.tick(now);
            owned.slot().touch(duration_nanos(now));
            self.give_back(owned, conn);
        } else {
            self.discard(owned, conn, CloseReason::Validation);
        }
    }

    /// Creates connections until `min_size` are open (or creation fails).
    fn refill(&self) {
        while !self.is_closed() && self.live() < self.min_size() {
            if !self.create_idle() {
                return;
            }
        }
    }

    /// Creates one connection and makes it available. `false` if none could be.
    fn create_idle(&self) -> bool {
        let Some(owned) = self.engine.reserve_vacant() else { return false };
        match self.create_in(owned) {
            Ok((owned, conn)) if self.is_closed() => {
                self.discard(owned, conn, CloseReason::Shutdown);
                false
            }
            Ok((owned, conn)) => {
                self.give_back(owned, conn);
                true
            }
            Err(_) => false,
        }
    }

    /// Adaptive sizing keeps a spare: one idle connection per four borrowed
    /// (rounded up) plus one per waiting thread. A pass that finds fewer
    /// idle creates the rest ahead of demand (up to `max_size`), so the
    /// next borrower under rising load need not wait for the factory. Idle
    /// connections beyond the spare and above `min_size` are a surplus: the
    /// smallest surplus seen over [`SHRINK_AFTER_PASSES`] passes in a row
    /// is closed. An unused pool (nothing borrowed) keeps no spare, and
    /// steady load keeps the same one, so neither churns.
    fn adapt(&self, job: &mut PoolJob<C>, work: &mut Upkeep) {
        let census = self.census();
        // Those this pass retires still read as idle and live.
        let retiring = work.retire.len();
        let (idle, live) = (census.idle.saturating_sub(retiring), census.live.saturating_sub(retiring));
        let spare = census.active.div_ceil(4) + self.waiting();
        if idle < spare && live < self.config.max_size {
            work.grow = (spare - idle).min(self.config.max_size - live);
            log::debug!("pool {:?}: adaptive sizing creates {} ahead of demand", self.config.name, work.grow);
        }
        let surplus = idle.saturating_sub(spare).min(live.saturating_sub(self.min_size()));
        if surplus == 0 {
            job.surplus_passes = 0;
            job.min_surplus = usize::MAX;
            return;
        }
        job.surplus_passes += 1;
        job.min_surplus = job.min_surplus.min(surplus);
        if job.surplus_passes >= SHRINK_AFTER_PASSES {
            log::debug!("pool {:?}: adaptive sizing closes {} surplus idle", self.config.name, job.min_surplus);
            self.shrink(job.min_surplus, work);
            job.surplus_passes = 0;
            job.min_surplus = usize::MAX;
        }
    }

    /// Takes up to `count` idle connections out of the stacks, least
    /// recently used first, for `work` to close.
    fn shrink(&self, count: usize, work: &mut Upkeep) {
        let mut popped: Vec<_> = (0..self.shards()).flat_map(|shard| self.engine.take_idle(shard)).collect();
        popped.sort_by_key(|owned| owned.slot().last_used_nanos());
        let mut keep = popped.split_off(count.min(popped.len()));
        keep.reverse();
        self.looked(self.engine.put_back(0, keep));
        work.retire.extend(popped.into_iter().map(|owned| (owned.detach(), CloseReason::Idle)));
    }

    /// Reports connections borrowed for longer than the leak threshold to
    /// the pool's detector. Each borrow is logged, counted and told to the
    /// listener once; one reported to a detector since replaced moves to
    /// the new one, unlisted from the old.
    fn scan_leaks(&self, now: Instant) {
        if !self.tracks_borrows() {
            return;
        }
        let Some(detector) = self.leaks.lock().clone() else { return };
        for (_, slot) in self.engine.slots().filter(|(_, s)| s.state() == SlotState::InUse) {
            let mut trace = slot.peek_trace();
            let Some(t) = trace.as_mut() else { continue };
            let listed_here = t.reported_to.as_ref().is_some_and(|d| d.is(&detector));
            if listed_here || now.saturating_duration_since(t.acquired) < detector.threshold() {
                continue;
            }
            let (acquired, info) = (t.acquired, t.to_info(slot.id(), now));
            // Listed before the trace is let go: a return that sees
            // `reported_to` must find the leak in that list to take it out.
            let listed = detector.report(acquired, info.clone());
            let earlier = t.reported_to.replace(detector.clone());
            if let Some(earlier) = &earlier {
                earlier.returned(info.connection_id);
            }
            drop(trace);
            if listed && earlier.is_none() {
                self.stats.record_leak();
                log::warn!(
                    "pool {:?}: connection {} leaked: borrowed {:.1} s ago by thread {:?}{}",
                    self.config.name,
                    info.connection_id,
                    info.active_duration.as_secs_f64(),
                    info.thread_name.as_deref().unwrap_or("<unnamed>"),
                    info.last_query.as_deref().map(|q| format!(", last query: {q}")).unwrap_or_default(),
                );
                self.notify(Hook::OnLeak, |l| l.on_leak(&info));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    use crate::pool::slot::SlotState;
    use crate::pool::{CloseReason, ConnectionFactory, ConnectionPool, PoolConfig, Result};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl ConnectionFactory<usize> for Counting {
        fn create(&self) -> Result<usize> {
            Ok(self.0.fetch_add(1, SeqCst))
        }
    }

    /// Polls `cond` every millisecond for up to 10 s.
    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// An acquire that closes a connection failing validation holds its
    /// slot (counted as live) until it frees it. A pass that looks in
    /// between finds the pool at `min_size` and skips the refill; the free
    /// must then ask for one, or the pool stays short until the next
    /// scheduled pass (a minute here).
    #[test]
    fn a_slot_freed_below_min_size_after_a_pass_looked_is_refilled() {
        let factory = Arc::new(Counting::default());
        let config = PoolConfig::builder()
            .name("upkeep")
            .min_size(2)
            .initial_size(0)
            .max_size(2)
            .shards(1)
            .maintenance_interval(Duration::from_secs(60))
            .build()
            .unwrap();
        let pool = ConnectionPool::new(config, Arc::clone(&factory)).unwrap();
        assert!(eventually(|| pool.idle() == 2), "the first pass fills the pool");
        let inner = pool.inner();

        // What `check_out` and `reject` do with a connection failing validation.
        let mut owned = inner.engine.pop_any_idle().expect("an idle connection");
        let conn = owned.take().expect("an idle slot holds a connection");
        let slot = owned.slot();
        slot.set_state(SlotState::InUse);
        slot.set_state(SlotState::Closing);
        inner.close_connection(conn, slot.id(), CloseReason::Validation);
        // A pass now finds both slots taken: nothing to refill.
        inner.refill();
        assert_eq!(factory.0.load(SeqCst), 2);
        assert_eq!(inner.live(), 2);

        inner.free_slot(owned);
        assert!(
            eventually(|| pool.idle() == 2),
            "refilled long before the next scheduled pass: idle {}, size {}",
            pool.idle(),
            pool.size()
        );
        assert_eq!(factory.0.load(SeqCst), 3);
    }

    /// A slot reserved for a creation counts in `size()` (and against
    /// `min_size`) from the reservation on, not only once the factory is
    /// running: an acquire that may wait creates on a thread of its own,
    /// which may start well after the acquire has given up.
    #[test]
    fn a_reserved_slot_counts_as_open_before_its_creation_starts() {
        let config = PoolConfig::builder()
            .name("reserved")
            .min_size(0)
            .initial_size(0)
            .max_size(2)
            .maintenance_interval(Duration::from_secs(60))
            .build()
            .unwrap();
        let pool = ConnectionPool::new(config, Arc::new(Counting::default())).unwrap();
        let inner = pool.inner();
        assert_eq!(pool.size(), 0);

        let owned = inner.engine.reserve_vacant().expect("a vacant slot");
        assert_eq!(pool.size(), 1, "the reservation is counted at once");
        assert_eq!(pool.idle(), 0);

        inner.free_slot(owned);
        assert_eq!(pool.size(), 0, "and uncounted when it is given back unused");
    }
}
