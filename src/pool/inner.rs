//! The pool's shared state and its life: what it holds, how it starts, how
//! the last reference frees it. The rest of the engine extends `Inner`
//! from a module per concern:
//!
//! ```text
//!  engine      the lock-free protocol: slots, idle stacks, vacant stack, wait queue
//!  acquire     acquire: fast path, steal, create, wait; validation on the way out
//!  release     release: reset, validate, give back or discard; closing connections
//!  create      calling the factory, and creating within an acquire's timeout
//!  retirement  the coarse clock, lifetimes, aging and the adaptive scale
//!  borrows     borrow traces for leak reports, per-borrow records
//!  close       close(): waiters, maintenance, jobs, closers, within shutdown_timeout
//!  upkeep      the maintenance pass
//! ```
//!
//! Nothing takes a lock unless somebody waits (the wait queue) or the
//! factory keeps failing (the create gate). Blocking factory calls hold no
//! lock; an acquire that may wait runs `create` on a thread of its own, so
//! its timeout bounds it (see `create`).

use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use super::background::Jobs;
use super::config::{PoolConfig, QueueMode};
use super::engine::{Detached, Engine};
use super::error::Result;
pub(crate) use super::events::CloseReason;
use super::events::PoolEventListener;
use super::factory::ConnectionFactory;
use super::guard_refs::GuardRefs;
use super::hooks::{Hook, Panicked, panic_message};
use super::leak::LeakDetector;
use super::partition::PartitionManager;
use super::slot::{SlotState, duration_nanos};
use super::slot_extras::SlotExtras;
use super::stats::{Gauges, PoolStats};
use super::upkeep::Registration;
use crate::sync::{AtomicBool, AtomicU64, CachePadded, Mutex};

/// A connection checked out of the pool, on its way into a guard.
pub(crate) struct Lease<C> {
    pub(crate) slot: Detached,
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
/// modules that extend it; the protocol's own state is `engine`'s alone.
pub(crate) struct Inner<C: Send + 'static> {
    pub(crate) config: PoolConfig,
    /// Dropped by hand in `Drop`, where a panic in its destructor is caught.
    pub(super) factory: ManuallyDrop<Box<dyn ConnectionFactory<C>>>,
    pub(super) engine: Engine<C>,
    pub(crate) refs: GuardRefs,
    pub(crate) epoch: Instant,
    /// The wall-clock time at `epoch`, for the times the admin API shows.
    pub(super) epoch_wall: SystemTime,
    /// Whether waiters starve once they have waited the threshold in force
    /// (`Fair`, `Priority`); in `Fifo` and `Unfair` the queue mask decides.
    pub(super) starves: bool,
    /// The starvation threshold in force, in nanoseconds: the configured
    /// one, raised by maintenance while borrows hold their connections for
    /// long (see `hold_estimate`). Shared with the partitions' ledger.
    pub(crate) threshold_nanos: Arc<AtomicU64>,
    /// Coarse clock, nanoseconds since `epoch`: ticked by maintenance and by
    /// slow paths, read (instead of the real clock) on release.
    pub(super) clock: CachePadded<AtomicU64>,
    /// Whether returned connections are checked against lifetime and aging.
    pub(super) retire_on_return: bool,
    /// `PoolConfig::validation_bypass_window` in nanoseconds, if acquires
    /// use it (see `PoolConfig::bypass_window_in_use`) and the factory's
    /// full check costs more than its cheap one; 0 if not.
    pub(super) bypass_nanos: u64,
    /// `AgingPolicy::Adaptive`'s lifetime scale (`f64` bits), as of the
    /// last maintenance pass: a release reads it instead of every slot.
    pub(super) adaptive_scale: AtomicU64,
    pub(super) listener: Option<Arc<dyn PoolEventListener>>,
    /// Which hooks have panicked before, for their log level (see `hooks`).
    pub(super) panicked: Panicked,
    /// Leak detection and the borrow traces it needs.
    pub(super) leaks: Mutex<Option<LeakDetector>>,
    pub(super) track_borrows: AtomicBool,
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
    /// The partitions, once attached (`enable_partitioning` pools only).
    pub(crate) partitions: OnceLock<Arc<PartitionManager>>,
    /// Each slot's statement cache and partition state, by slot index.
    pub(crate) extras: Box<[SlotExtras]>,
}

impl<C: Send + 'static> Inner<C> {
    /// Allocates the slab and creates `initial_size` connections.
    pub(crate) fn new(config: PoolConfig, factory: Box<dyn ConnectionFactory<C>>) -> Result<Self> {
        config.validate()?;
        let round_trips = factory.validation_round_trips();
        let inner = Inner {
            engine: Engine::new(config.max_size, config.shards, config.queue_mode),
            refs: GuardRefs::new(config.shards),
            starves: matches!(config.queue_mode, QueueMode::Fair | QueueMode::Priority),
            threshold_nanos: Arc::new(AtomicU64::new(duration_nanos(config.fairness_threshold))),
            factory: ManuallyDrop::new(factory),
            epoch: Instant::now(),
            epoch_wall: SystemTime::now(),
            clock: CachePadded::new(AtomicU64::new(0)),
            retire_on_return: config.max_lifetime.is_some() || config.aging_policy.is_some(),
            bypass_nanos: config.bypass_window_in_use().filter(|_| round_trips).map_or(0, duration_nanos),
            adaptive_scale: AtomicU64::new(1.0f64.to_bits()),
            listener: config.event_listener.as_ref().map(|l| Arc::clone(&l.0)),
            panicked: Panicked::default(),
            leaks: Mutex::default(),
            track_borrows: AtomicBool::new(false),
            maintenance: Mutex::default(),
            jobs: Arc::default(),
            upkeep_running: AtomicBool::new(false),
            stats: PoolStats::new(&config),
            partitions: OnceLock::new(),
            extras: (0..config.max_size).map(|_| SlotExtras::default()).collect(),
            config,
        };
        if let Some(threshold) = inner.config.leak_detection_threshold {
            let interval = inner.config.effective_maintenance_interval();
            inner.attach_leak_detector(LeakDetector::new(threshold, interval));
        }
        inner.guarded(Hook::Attach, || inner.factory.attach(&inner.config));
        for n in 0..inner.config.initial_size {
            let owned = inner.engine.take_vacant().expect("initial_size <= max_size");
            // On error `inner` is dropped, which closes what was created.
            let (owned, conn) = inner.create_in(owned)?;
            // Nobody else sees the pool yet: nobody waits, nothing closed it.
            inner.give_back_to(owned, conn, n % inner.shards());
        }
        Ok(inner)
    }

    /// The connections maintenance keeps open: `min_size`, or the
    /// partitions' reservations if they are more.
    pub(crate) fn min_size(&self) -> usize {
        let min = self.config.min_size;
        match self.partitions.get() {
            Some(manager) => min.max(manager.reserved()),
            None => min,
        }
    }

    #[inline]
    pub(crate) fn shards(&self) -> usize {
        self.engine.shards()
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.engine.is_closed()
    }

    /// How many slots are in `state` right now (a snapshot).
    pub(crate) fn count(&self, state: SlotState) -> usize {
        self.engine.count(state)
    }

    /// Open and opening connections right now (a snapshot).
    pub(crate) fn live(&self) -> usize {
        self.engine.live()
    }

    /// Idle, borrowed and live counts from one pass over the slots.
    pub(crate) fn census(&self) -> Census {
        let mut census = Census { idle: 0, active: 0, live: 0, loans: 0 };
        for (_, s) in self.engine.slots() {
            census.loans += s.loans();
            match s.state() {
                SlotState::Vacant => continue,
                SlotState::Idle => census.idle += 1,
                SlotState::InUse => census.active += 1,
                SlotState::Creating | SlotState::Closing => {}
            }
            census.live += 1;
        }
        census
    }

    /// The live gauges for the statistics, from one pass over the slots.
    pub(crate) fn gauges(&self) -> Gauges {
        let census = self.census();
        Gauges {
            active: census.active,
            idle: census.idle,
            total: census.live,
            waiting: self.waiting(),
            max_size: self.config.max_size,
            acquires: census.loans,
        }
    }

    /// When a leased connection was created.
    pub(crate) fn created_at(&self, index: u32) -> Instant {
        self.engine.slot(index).created_at(self.epoch)
    }

    /// How many times a leased connection has been borrowed.
    pub(crate) fn borrows(&self, index: u32) -> u64 {
        self.engine.slot(index).borrows()
    }

    /// Threads waiting right now.
    pub(crate) fn waiting(&self) -> usize {
        self.engine.waiting()
    }

    /// Asks the maintenance thread for a pass as soon as possible.
    pub(crate) fn wake_maintenance(&self) {
        if let Some(registration) = self.maintenance.lock().as_ref() {
            registration.wake();
        }
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
        let left: Vec<(u64, C)> = self.engine.take_all().collect();
        for (id, conn) in left {
            self.close_connection(conn, id, CloseReason::Shutdown);
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
