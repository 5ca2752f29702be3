//! [`DashboardProvider`]: a pool's dashboard figures, recomputed at most
//! once per refresh interval however often a dashboard polls.
//!
//! Each refresh takes a [`PoolStatistics`] snapshot and compares its
//! counters with the previous refresh's, so the rates and ratios describe
//! the last window rather than the pool's whole life.

use std::time::{Duration, Instant};

use super::histograms::Percentiles;
use super::recorder::PoolStats;
use super::statistics::PoolStatistics;
use crate::sync::Mutex;

/// What a dashboard shows about one pool, from
/// [`DashboardProvider::get_dashboard_data`].
///
/// Gauges are as of `generated_at`. Rates and ratios cover `window`: the
/// time between the previous refresh and this one (since the pool was
/// created, for the first). Percentiles cover the pool's whole life.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DashboardData {
    /// When these figures were computed.
    pub generated_at: Instant,
    /// The span the rates and ratios cover.
    pub window: Duration,
    /// Share of acquire attempts in the window served at once from an idle
    /// connection (no creation, no wait), in `0.0..=1.0`; 1.0 if there was
    /// no attempt.
    pub pool_efficiency: f64,
    /// Connections borrowed.
    pub active_connections: usize,
    /// Idle connections.
    pub idle_connections: usize,
    /// Open connections (idle, borrowed, being opened or closed).
    pub total_connections: usize,
    /// Threads waiting for a connection.
    pub wait_queue_size: usize,
    /// `active_connections / max_size`, in `0.0..=1.0`.
    pub pool_utilization: f64,
    /// Successful over attempted acquires in the window; 1.0 if there was
    /// no attempt.
    pub success_rate: f64,
    /// Statement-cache hits over lookups in the window; 0.0 if none.
    pub cache_hit_rate: f64,
    /// Successful acquires per second over the window.
    pub acquires_per_second: f64,
    /// Failed acquires per second over the window.
    pub failures_per_second: f64,
    /// Connections created per second over the window.
    pub connections_created_per_second: f64,
    /// Connections closed per second over the window.
    pub connections_closed_per_second: f64,
    /// Wait-time percentiles since the pool was created (immediate
    /// acquires count as zero).
    pub wait_time_percentiles: Percentiles,
    /// Acquire-time percentiles since the pool was created.
    pub acquire_time_percentiles: Percentiles,
}

/// Dashboard figures for one pool, cached for `refresh_interval`.
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, DashboardProvider, PoolConfig, Result};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// struct Conn;
/// struct Factory;
/// impl ConnectionFactory<Conn> for Factory {
///     fn create(&self) -> Result<Conn> { Ok(Conn) }
/// }
///
/// let pool = ConnectionPool::new(PoolConfig::default(), Arc::new(Factory))?;
/// let dashboard = DashboardProvider::new(pool.stats.clone(), Duration::from_secs(5));
/// let held = pool.acquire()?;
/// let data = dashboard.get_dashboard_data();
/// assert_eq!(data.active_connections, 1);
/// assert_eq!(data.pool_efficiency, 1.0); // served from an idle connection
/// drop(held);
/// // Within the refresh interval the same figures come back.
/// assert_eq!(dashboard.get_dashboard_data(), data);
/// # Ok::<(), rusty_db::pool::PoolError>(())
/// ```
#[derive(Debug)]
pub struct DashboardProvider {
    stats: PoolStats,
    refresh_interval: Duration,
    last: Mutex<Option<Refresh>>,
}

/// The last refresh: its figures and the counters its window ended with.
#[derive(Debug)]
struct Refresh {
    data: DashboardData,
    counts: Counts,
}

/// The counters windowed figures are differences of.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    uptime: Duration,
    acquires: u64,
    immediate: u64,
    failed: u64,
    created: u64,
    closed: u64,
    cache_hits: u64,
    cache_misses: u64,
}

impl Counts {
    fn of(s: &PoolStatistics) -> Self {
        Counts {
            uptime: s.uptime,
            acquires: s.acquires,
            immediate: s.immediate_acquires,
            failed: s.failed_acquires,
            created: s.connections_created,
            closed: s.connections_closed,
            cache_hits: s.cache_hits,
            cache_misses: s.cache_misses,
        }
    }
}

impl DashboardProvider {
    /// A provider over `stats` (a pool's [`stats`](crate::pool::ConnectionPool::stats)
    /// field, cloned) that recomputes its figures at most once per
    /// `refresh_interval`.
    pub fn new(stats: PoolStats, refresh_interval: Duration) -> Self {
        DashboardProvider { stats, refresh_interval, last: Mutex::default() }
    }

    /// How long figures are cached.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// The dashboard figures: those of the last refresh if it is younger
    /// than the refresh interval, else freshly computed.
    pub fn get_dashboard_data(&self) -> DashboardData {
        let mut last = self.last.lock();
        if let Some(refresh) = last.as_ref() {
            if refresh.data.generated_at.elapsed() < self.refresh_interval {
                return refresh.data.clone();
            }
        }
        let stats = self.stats.statistics();
        let before = last.as_ref().map(|r| r.counts).unwrap_or_default();
        let now = Counts::of(&stats);
        let data = figures(&stats, &before, &now);
        *last = Some(Refresh { data: data.clone(), counts: now });
        data
    }
}

fn figures(stats: &PoolStatistics, before: &Counts, now: &Counts) -> DashboardData {
    let window = now.uptime.saturating_sub(before.uptime);
    let delta = |f: fn(&Counts) -> u64| f(now).saturating_sub(f(before));
    let per_second = |n: u64| if window.is_zero() { 0.0 } else { n as f64 / window.as_secs_f64() };
    let ratio = |part: u64, whole: u64, empty: f64| if whole == 0 { empty } else { part as f64 / whole as f64 };
    let (acquires, failed) = (delta(|c| c.acquires), delta(|c| c.failed));
    let (hits, misses) = (delta(|c| c.cache_hits), delta(|c| c.cache_misses));
    DashboardData {
        generated_at: Instant::now(),
        window,
        pool_efficiency: ratio(delta(|c| c.immediate), acquires + failed, 1.0),
        active_connections: stats.active_connections,
        idle_connections: stats.idle_connections,
        total_connections: stats.total_connections,
        wait_queue_size: stats.wait_queue_size,
        pool_utilization: stats.pool_utilization,
        success_rate: ratio(acquires, acquires + failed, 1.0),
        cache_hit_rate: ratio(hits, hits + misses, 0.0),
        acquires_per_second: per_second(acquires),
        failures_per_second: per_second(failed),
        connections_created_per_second: per_second(delta(|c| c.created)),
        connections_closed_per_second: per_second(delta(|c| c.closed)),
        wait_time_percentiles: stats.wait_time_histogram.percentiles,
        acquire_time_percentiles: stats.acquire_time_histogram.percentiles,
    }
}
