//! [`PoolStats`]: the handle the engine records into and readers snapshot.
//!
//! It owns the striped counters and time recorders. The live gauges
//! (active, idle, waiting) are the engine's own slot states, so it reads
//! them through a weak reference to the pool: a `PoolStats` kept by a
//! dashboard never keeps a dropped pool alive, and reads zero gauges once
//! the pool is gone.
//!
//! Acquires are not counted here: every guard is a slot's loan, which the
//! slot's owner counts with a plain store (the pool needs that count anyway,
//! see `GuardRefs`), so the gauges carry the total and the fast path pays no
//! shared read-modify-write for the statistic. The pool hands over its
//! final total when its last handle drops.

use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::counters::{Event, Failure, StripedCounters};
use super::histograms::{SAMPLE_EVERY, StripedTimes};
use super::statistics::PoolStatistics;
use crate::pool::config::PoolConfig;
use crate::pool::error::PoolError;
use crate::pool::home_shard::home_shard;
use crate::pool::{CloseReason, Hook};
use crate::sync::{AtomicU64, Mutex, Ordering};

thread_local! {
    /// This thread's acquires, for picking the ones to time.
    static SAMPLE_TICK: Cell<u64> = const { Cell::new(0) };
}

/// The pool's state at one moment, read from its slots and wait queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    pub(crate) active: usize,
    pub(crate) idle: usize,
    pub(crate) total: usize,
    pub(crate) waiting: usize,
    pub(crate) max_size: usize,
    /// Successful acquires since the pool was created (the slots' loans).
    pub(crate) acquires: u64,
}

/// What the start of an acquire hands to its fast-path end: for a sampled
/// acquire, when it started.
pub(crate) struct AcquireProbe {
    started: Option<Instant>,
}

/// How an acquire got its connection, recorded once the caller has it.
pub(crate) enum Served {
    /// At once, from an idle connection.
    Immediate(AcquireProbe),
    /// After creating or queueing, which took this long; `fresh`: with a
    /// newly created connection.
    Waited { took: Duration, fresh: bool },
}

/// The clock, for a sampled acquire (kept out of the fast path's code).
#[cold]
#[inline(never)]
fn sample_clock() -> Option<Instant> {
    Some(Instant::now())
}

/// Something that can read a live pool's gauges (the pool's handle).
pub(crate) trait GaugeSource: Send + Sync {
    fn gauges(&self) -> Gauges;
}

/// A cheap, cloneable handle to one pool's statistics: the pool records
/// into it, and anyone holding a clone can take a
/// [`statistics`](Self::statistics) snapshot or feed the statement-cache
/// figures. It is the pool's public `stats` field.
///
/// Holding a `PoolStats` does not keep the pool open. Once every
/// `ConnectionPool` handle is dropped its gauges read zero; counters keep
/// their last values. (A snapshot taken while the last handle is being
/// dropped holds the pool for the few microseconds of the read, so that
/// pool closes when the read ends, on the reading thread.)
#[derive(Clone)]
pub struct PoolStats {
    core: Arc<Core>,
}

struct Core {
    enabled: bool,
    max_size: usize,
    started: Instant,
    counters: StripedCounters,
    times: StripedTimes,
    /// The pool, for live gauges; set once the pool's handle exists.
    source: Mutex<Option<Weak<dyn GaugeSource>>>,
    /// The pool's acquires when its last handle dropped.
    final_acquires: AtomicU64,
}

impl fmt::Debug for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolStats")
            .field("enabled", &self.core.enabled)
            .field("shards", &self.core.counters.shards())
            .finish_non_exhaustive()
    }
}

impl PoolStats {
    /// Empty statistics for a pool configured by `config`.
    pub(crate) fn new(config: &PoolConfig) -> Self {
        // Recording needs no stripes when nothing is recorded.
        let shards = if config.enable_statistics { config.shards } else { 1 };
        PoolStats {
            core: Arc::new(Core {
                enabled: config.enable_statistics,
                max_size: config.max_size,
                started: Instant::now(),
                counters: StripedCounters::new(shards),
                times: StripedTimes::new(shards),
                source: Mutex::default(),
                final_acquires: AtomicU64::new(0),
            }),
        }
    }

    /// Points the live gauges at the pool's handle.
    pub(crate) fn attach(&self, source: Weak<dyn GaugeSource>) {
        *self.core.source.lock() = Some(source);
    }

    /// A snapshot: the pool's live gauges (zero if every handle of the pool
    /// has been dropped) and everything recorded so far.
    pub fn statistics(&self) -> PoolStatistics {
        let source = self.core.source.lock().as_ref().and_then(Weak::upgrade);
        let gauges = source.map_or_else(
            || Gauges {
                max_size: self.core.max_size,
                // Relaxed: a statistic; stored by the dropping handle.
                acquires: self.core.final_acquires.load(Ordering::Relaxed),
                ..Gauges::default()
            },
            |s| s.gauges(),
        );
        self.statistics_with(gauges)
    }

    /// Keeps the pool's acquire count for snapshots taken after its last
    /// handle dropped. (A snapshot in the instant between that drop and
    /// this call reads zero acquires.)
    pub(crate) fn keep_final_acquires(&self, acquires: u64) {
        self.core.final_acquires.store(acquires, Ordering::Relaxed);
    }

    /// A snapshot with gauges the caller read.
    pub(crate) fn statistics_with(&self, gauges: Gauges) -> PoolStatistics {
        let core = &self.core;
        let uptime = core.started.elapsed();
        if !core.enabled {
            return PoolStatistics::new(gauges, uptime, None);
        }
        // Times after the gauges: a fast-path acquire counts its loan before
        // it records its sample, so merged samples rarely outnumber the
        // acquires they stand for (and are scaled down if they do).
        let times = core.times.merge();
        let totals = core.counters.totals();
        PoolStatistics::new(gauges, uptime, Some((&totals, &times)))
    }

    /// Whether the pool records statistics (`PoolConfig::enable_statistics`).
    pub fn is_enabled(&self) -> bool {
        self.core.enabled
    }

    /// Counts a statement-cache hit (for the statement cache; feeds
    /// `cache_hit_rate`).
    pub fn record_cache_hit(&self) {
        self.count(Event::CacheHit);
    }

    /// Counts a statement-cache miss (for the statement cache; feeds
    /// `cache_hit_rate`).
    pub fn record_cache_miss(&self) {
        self.count(Event::CacheMiss);
    }

    // === recording, called by the engine ===

    /// At the start of an acquire: the clock, if this acquire is one of
    /// the `1 / SAMPLE_EVERY` of its thread to be timed.
    #[inline]
    pub(crate) fn sample_start(&self) -> AcquireProbe {
        // Under loom a per-thread count would survive from one explored
        // execution to the next and make the model nondeterministic.
        if !self.core.enabled || cfg!(loom) {
            return AcquireProbe { started: None };
        }
        let tick = SAMPLE_TICK.try_with(|t| t.replace(t.get().wrapping_add(1))).unwrap_or(1);
        AcquireProbe { started: if tick % SAMPLE_EVERY == 0 { sample_clock() } else { None } }
    }

    /// An acquire served at once from an idle connection; `probe` is what
    /// [`sample_start`](Self::sample_start) returned.
    #[inline]
    pub(crate) fn record_immediate_acquire(&self, shard: usize, probe: AcquireProbe) {
        if let Some(start) = probe.started {
            self.record_sample(shard, start);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_sample(&self, shard: usize, start: Instant) {
        self.core.times.record_sample(shard, start.elapsed());
    }

    /// An acquire succeeded as `served` says.
    pub(crate) fn record_served(&self, shard: usize, served: Served) {
        match served {
            Served::Immediate(probe) => self.record_immediate_acquire(shard, probe),
            Served::Waited { took, fresh } if self.core.enabled => self.core.times.record_waited(shard, took, fresh),
            Served::Waited { .. } => {}
        }
    }

    /// A connection was lent for an acquire that then failed (see
    /// `Event::Withdrawn`): the loan is taken off the acquires.
    pub(crate) fn record_withdrawn(&self) {
        self.count(Event::Withdrawn);
    }

    /// An acquire returned `error`.
    pub(crate) fn record_acquire_failure(&self, error: &PoolError) {
        if !self.core.enabled {
            return;
        }
        let failure = match error {
            PoolError::ConnectionTimeout(_) => Failure::Timeout,
            PoolError::WaitQueueFull => Failure::WaitQueueFull,
            PoolError::PoolExhausted { .. } => Failure::Exhausted,
            PoolError::Factory(_) => Failure::Factory,
            PoolError::PoolClosed => Failure::Closed,
            PoolError::ValidationFailed(_)
            | PoolError::InvalidConfig(_)
            | PoolError::ConnectionNotFound(_)
            | PoolError::ConnectionInUse(_)
            | PoolError::PartitionNotFound(_)
            | PoolError::PartitionExists(_)
            | PoolError::QuotaExceeded { .. } => Failure::Other,
        };
        self.core.counters.add_failure(self.shard(), failure);
    }

    /// The factory created a connection.
    pub(crate) fn record_created(&self) {
        self.count(Event::Created);
    }

    /// The factory failed (or panicked) creating a connection.
    pub(crate) fn record_create_failure(&self) {
        self.count(Event::CreateFailed);
    }

    /// A connection was closed.
    pub(crate) fn record_closed(&self, reason: CloseReason) {
        if self.core.enabled {
            self.core.counters.add_closed(self.shard(), reason);
        }
    }

    /// A hook (user code) panicked.
    pub(crate) fn record_hook_panic(&self, hook: Hook) {
        if self.core.enabled {
            self.core.counters.add_panic(self.shard(), hook);
        }
    }

    /// Leak detection reported a borrow as leaked.
    // The leak scan runs on the maintenance thread, which loom builds leave out.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn record_leak(&self) {
        self.count(Event::Leak);
    }

    fn count(&self, event: Event) {
        if self.core.enabled {
            self.core.counters.add(self.shard(), event);
        }
    }

    /// The calling thread's stripe.
    fn shard(&self) -> usize {
        home_shard(self.core.counters.shards())
    }
}
