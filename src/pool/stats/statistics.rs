//! The statistics snapshot: every figure the API reference shows, each
//! defined by its doc comment (what it counts, over which window, in
//! which unit).
//!
//! Three kinds of figure: **gauges** are the pool's state at the moment of
//! the snapshot; **counters** count events since the pool was created and
//! never go down; **derived** figures are computed from those two, over
//! the pool's whole life unless their doc says otherwise (the
//! [`DashboardProvider`](super::DashboardProvider) adds windowed rates).

use std::time::Duration;

use super::counters::{CounterTotals, Event, Failure};
use super::histograms::{MergedTimes, TimeHistogram};
use super::recorder::Gauges;
use crate::pool::partition::PartitionStatistics;
use crate::pool::{CloseReason, Hook};

/// A snapshot of one pool's statistics, from
/// [`ConnectionPool::statistics`](crate::pool::ConnectionPool::statistics)
/// or [`PoolStats::statistics`](super::PoolStats::statistics).
///
/// With [`enable_statistics(false)`](crate::pool::PoolConfigBuilder::enable_statistics)
/// nothing is recorded: only the gauges and `pool_utilization` are filled
/// in, every counter, time and rate is zero, and `statistics_enabled` says so.
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};
/// use std::sync::Arc;
///
/// struct Conn;
/// struct Factory;
/// impl ConnectionFactory<Conn> for Factory {
///     fn create(&self) -> Result<Conn> { Ok(Conn) }
/// }
///
/// let config = PoolConfig::builder().min_size(0).max_size(4).initial_size(1).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(Factory))?;
/// let held = pool.acquire()?;
/// let stats = pool.statistics();
/// assert_eq!(stats.connections_created, 1);
/// assert_eq!(stats.active_connections, 1);
/// assert_eq!(stats.pool_utilization, 0.25);
/// assert_eq!(stats.success_rate, 1.0);
/// assert_eq!(stats.immediate_acquires, 1); // the initial connection was idle
/// drop(held);
/// # Ok::<(), rusty_db::pool::PoolError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolStatistics {
    /// Whether counters and times are recorded (`PoolConfig::enable_statistics`).
    pub statistics_enabled: bool,
    /// Time since the pool was created.
    pub uptime: Duration,

    /// Gauge: connections borrowed right now (a connection handed to a
    /// waiting thread counts from the handoff).
    pub active_connections: usize,
    /// Gauge: connections idle in the pool right now.
    pub idle_connections: usize,
    /// Gauge: open connections right now: idle, borrowed, and being opened
    /// or closed (`ConnectionPool::size`). Exported to Prometheus as the
    /// gauge `rustydb_pool_connections`.
    pub total_connections: usize,
    /// Gauge: threads waiting for a connection right now.
    pub wait_queue_size: usize,
    /// The pool's `max_size`.
    pub max_size: usize,
    /// Gauge: `active_connections / max_size` right now, in `0.0..=1.0`.
    pub pool_utilization: f64,

    /// Counter: connections the factory created (the initial ones, those
    /// created for an acquire, and those the maintenance created).
    pub connections_created: u64,
    /// Counter: connections closed, for any reason (`closed_by_reason.total()`).
    pub connections_closed: u64,
    /// Counters: connections closed, by reason.
    pub closed_by_reason: ClosedByReason,
    /// Counter: calls to the factory's `create` that failed or panicked.
    pub connection_create_failures: u64,
    /// Counter: successful acquires (`acquire`, `acquire_timeout`,
    /// `acquire_with_priority`, `try_acquire`).
    pub acquires: u64,
    /// Counter: successful acquires served at once from an idle connection
    /// (the fast path).
    pub immediate_acquires: u64,
    /// Counter: successful acquires that found no idle connection at once
    /// and created one or queued: `acquires - immediate_acquires`.
    pub waited_acquires: u64,
    /// Counter: waited acquires that were handed a newly created connection.
    pub new_connection_acquires: u64,
    /// Counter: acquire calls that returned an error (`acquire_failures.total()`).
    pub failed_acquires: u64,
    /// Counters: failed acquires, by error.
    pub acquire_failures: AcquireFailures,
    /// Counter: acquires that failed with `ConnectionTimeout`
    /// (`acquire_failures.timeout`). An acquire whose wait ended while the
    /// factory kept failing returns `Factory` and counts there instead.
    pub timeouts: u64,
    /// Counter: connections that failed validation (each was closed:
    /// `closed_by_reason.validation`).
    pub validation_failures: u64,
    /// Counter: borrows reported as leaked by leak detection (once each).
    pub leaks_detected: u64,
    /// Counters: panics caught in user code, by [`Hook`] (factory methods
    /// and listener hooks). The pool carried on after each as if the hook
    /// had returned (a factory method as if it had failed).
    pub hook_panics: HookPanics,
    /// Counter: statement-cache lookups that found the statement (recorded
    /// through [`PoolStats::record_cache_hit`](super::PoolStats::record_cache_hit);
    /// zero until statements are cached).
    pub cache_hits: u64,
    /// Counter: statement-cache lookups that missed.
    pub cache_misses: u64,

    /// Successful acquires per second since the pool was created:
    /// `acquires / uptime`.
    pub connections_per_second: f64,
    /// `acquires / (acquires + failed_acquires)` since the pool was
    /// created, in `0.0..=1.0`; 1.0 before the first attempt.
    pub success_rate: f64,
    /// `cache_hits / (cache_hits + cache_misses)` since the pool was
    /// created, in `0.0..=1.0`; 0.0 before the first lookup, and so until
    /// a statement cache records into the pool.
    pub cache_hit_rate: f64,
    /// Mean time a successful acquire spent in the pool, since the pool was
    /// created (`acquire_time_histogram.mean`). Waited acquires are timed
    /// exactly, from the moment the fast path failed; immediate ones are
    /// estimated from a sample (one in 256 per shard) so the fast path
    /// rarely reads the clock. Failed acquires are not included.
    pub average_acquire_time: Duration,
    /// Mean wait per successful acquire since the pool was created, where
    /// an immediate acquire waited zero and a waited one as long as it took
    /// (`wait_time_histogram.mean`, exact).
    pub average_wait_time: Duration,
    /// Distribution of the acquire times of successful acquires (see
    /// `average_acquire_time`; immediate ones estimated from the sample).
    pub acquire_time_histogram: TimeHistogram,
    /// Distribution of the wait of successful acquires: immediate acquires
    /// count as zero, waited ones as timed. `count == acquires`.
    pub wait_time_histogram: TimeHistogram,
    /// Utilization, cache and reuse ratios.
    pub efficiency_metrics: EfficiencyMetrics,

    /// Each partition's counters, in creation order; empty unless a
    /// [`PartitionManager`](crate::pool::PartitionManager) is attached
    /// (filled by `ConnectionPool::statistics`, not by a `PoolStats` handle).
    pub partitions: Vec<PartitionStatistics>,
}

/// How well the pool's connections are used, as ratios in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct EfficiencyMetrics {
    /// Gauge: `active_connections / max_size` right now.
    pub pool_utilization: f64,
    /// As [`PoolStatistics::cache_hit_rate`].
    pub cache_hit_rate: f64,
    /// Share of successful acquires handed an existing connection rather
    /// than a newly created one: `1 - new_connection_acquires / acquires`
    /// since the pool was created; 0.0 before the first acquire.
    pub connection_reuse_rate: f64,
    /// Share of acquire attempts served at once from an idle connection:
    /// `immediate_acquires / (acquires + failed_acquires)` since the pool
    /// was created; 1.0 before the first attempt. The dashboard's
    /// `pool_efficiency`.
    pub immediate_acquire_rate: f64,
}

/// Connections closed, by [`CloseReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClosedByReason {
    /// Idle longer than `idle_timeout`, or surplus.
    pub idle: u64,
    /// Reached `max_lifetime` or the aging policy's limit.
    pub lifetime: u64,
    /// Marked broken by its user, or `reset` failed.
    pub broken: u64,
    /// Failed validation.
    pub validation: u64,
    /// Killed on request.
    pub killed: u64,
    /// Closed with the pool.
    pub shutdown: u64,
}

impl ClosedByReason {
    /// The count for `reason`.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::Idle => self.idle,
            CloseReason::Lifetime => self.lifetime,
            CloseReason::Broken => self.broken,
            CloseReason::Validation => self.validation,
            CloseReason::Killed => self.killed,
            CloseReason::Shutdown => self.shutdown,
        }
    }

    /// Every reason with its count, in the order of [`CloseReason::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (CloseReason, u64)> + '_ {
        CloseReason::ALL.into_iter().map(|reason| (reason, self.get(reason)))
    }

    /// Connections closed, whatever the reason.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    fn from_totals(totals: &CounterTotals) -> Self {
        ClosedByReason {
            idle: totals.closed(CloseReason::Idle),
            lifetime: totals.closed(CloseReason::Lifetime),
            broken: totals.closed(CloseReason::Broken),
            validation: totals.closed(CloseReason::Validation),
            killed: totals.closed(CloseReason::Killed),
            shutdown: totals.closed(CloseReason::Shutdown),
        }
    }
}

/// Panics caught in user code, by [`Hook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HookPanics([u64; Hook::COUNT]);

impl HookPanics {
    /// Panics of `hook`.
    pub fn get(&self, hook: Hook) -> u64 {
        self.0[hook.index()]
    }

    /// Every hook with its count, in the order of [`Hook::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (Hook, u64)> + '_ {
        Hook::ALL.into_iter().map(|hook| (hook, self.get(hook)))
    }

    /// Panics, whatever the hook.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn from_totals(totals: &CounterTotals) -> Self {
        HookPanics(Hook::ALL.map(|hook| totals.panics(hook)))
    }
}

/// Failed acquires, by the error they returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AcquireFailures {
    /// `ConnectionTimeout`: no connection within the timeout.
    pub timeout: u64,
    /// `WaitQueueFull`: too many threads were waiting already.
    pub wait_queue_full: u64,
    /// `PoolExhausted`: `try_acquire` found nothing free.
    pub exhausted: u64,
    /// `Factory`: creating a connection failed.
    pub factory: u64,
    /// `PoolClosed`: the pool was closed.
    pub closed: u64,
    /// Any other error.
    pub other: u64,
}

impl AcquireFailures {
    /// Each kind with a lower-case name (the `reason` label in exports).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("timeout", self.timeout),
            ("wait_queue_full", self.wait_queue_full),
            ("exhausted", self.exhausted),
            ("factory", self.factory),
            ("closed", self.closed),
            ("other", self.other),
        ]
        .into_iter()
    }

    /// Failed acquires, whatever the error.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    fn from_totals(totals: &CounterTotals) -> Self {
        AcquireFailures {
            timeout: totals.failure(Failure::Timeout),
            wait_queue_full: totals.failure(Failure::WaitQueueFull),
            exhausted: totals.failure(Failure::Exhausted),
            factory: totals.failure(Failure::Factory),
            closed: totals.failure(Failure::Closed),
            other: totals.failure(Failure::Other),
        }
    }
}

/// `part / whole`, or `empty` when `whole` is zero.
fn ratio(part: u64, whole: u64, empty: f64) -> f64 {
    if whole == 0 { empty } else { part as f64 / whole as f64 }
}

impl PoolStatistics {
    /// Assembles a snapshot; `recorded` is `None` when statistics are off.
    pub(crate) fn new(gauges: Gauges, uptime: Duration, recorded: Option<(&CounterTotals, &MergedTimes)>) -> Self {
        let pool_utilization = ratio(gauges.active as u64, gauges.max_size as u64, 0.0).min(1.0);
        let mut stats = PoolStatistics {
            statistics_enabled: recorded.is_some(),
            uptime,
            active_connections: gauges.active,
            idle_connections: gauges.idle,
            total_connections: gauges.total,
            wait_queue_size: gauges.waiting,
            max_size: gauges.max_size,
            pool_utilization,
            connections_created: 0,
            connections_closed: 0,
            closed_by_reason: ClosedByReason::default(),
            connection_create_failures: 0,
            acquires: 0,
            immediate_acquires: 0,
            waited_acquires: 0,
            new_connection_acquires: 0,
            failed_acquires: 0,
            acquire_failures: AcquireFailures::default(),
            timeouts: 0,
            validation_failures: 0,
            leaks_detected: 0,
            hook_panics: HookPanics::default(),
            cache_hits: 0,
            cache_misses: 0,
            connections_per_second: 0.0,
            success_rate: 0.0,
            cache_hit_rate: 0.0,
            average_acquire_time: Duration::ZERO,
            average_wait_time: Duration::ZERO,
            acquire_time_histogram: TimeHistogram::default(),
            wait_time_histogram: TimeHistogram::default(),
            efficiency_metrics: EfficiencyMetrics { pool_utilization, ..EfficiencyMetrics::default() },
            partitions: Vec::new(),
        };
        let Some((totals, times)) = recorded else {
            return stats;
        };
        let waited = times.waited();
        // A waited acquire is counted (as a loan) before its time is
        // recorded. A loan withdrawn before the caller had it is no acquire.
        let acquires = gauges.acquires.saturating_sub(totals.event(Event::Withdrawn)).max(waited);
        let immediate = acquires - waited;
        let failed = totals.failures();
        let attempts = acquires + failed;
        let (hits, misses) = (totals.event(Event::CacheHit), totals.event(Event::CacheMiss));
        stats.closed_by_reason = ClosedByReason::from_totals(totals);
        stats.acquire_failures = AcquireFailures::from_totals(totals);
        stats.connections_created = totals.event(Event::Created);
        stats.connections_closed = totals.closes();
        stats.connection_create_failures = totals.event(Event::CreateFailed);
        stats.acquires = acquires;
        stats.immediate_acquires = immediate;
        stats.waited_acquires = waited;
        stats.new_connection_acquires = times.fresh();
        stats.failed_acquires = failed;
        stats.timeouts = stats.acquire_failures.timeout;
        stats.validation_failures = stats.closed_by_reason.validation;
        stats.leaks_detected = totals.event(Event::Leak);
        stats.hook_panics = HookPanics::from_totals(totals);
        stats.cache_hits = hits;
        stats.cache_misses = misses;
        stats.connections_per_second = if uptime.is_zero() { 0.0 } else { acquires as f64 / uptime.as_secs_f64() };
        stats.success_rate = ratio(acquires, attempts, 1.0);
        stats.cache_hit_rate = ratio(hits, hits + misses, 0.0);
        stats.acquire_time_histogram = times.acquire_time(immediate);
        stats.wait_time_histogram = times.wait_time(immediate);
        stats.average_acquire_time = stats.acquire_time_histogram.mean;
        stats.average_wait_time = stats.wait_time_histogram.mean;
        stats.efficiency_metrics = EfficiencyMetrics {
            pool_utilization,
            cache_hit_rate: stats.cache_hit_rate,
            connection_reuse_rate: ratio(acquires - times.fresh(), acquires, 0.0),
            immediate_acquire_rate: ratio(immediate, attempts, 1.0),
        };
        stats
    }
}
