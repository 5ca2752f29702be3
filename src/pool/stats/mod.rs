//! Statistics: what a pool records, how it records it without slowing the
//! fast path, and the ways out (a [`PoolStatistics`] snapshot, Prometheus
//! text, JSON, CSV, and [`DashboardProvider`] figures).
//!
//! ```text
//!  engine ──record──► PoolStats ─┬─ counters:   one CachePadded block of atomics per shard
//!                                └─ histograms: one locked hdrhistogram pair per shard
//!  statistics() ── sums the blocks, merges the histograms, reads live gauges ──► PoolStatistics
//!                                                        └─► to_prometheus / to_json / to_csv_row
//! ```
//!
//! An acquire served at once from an idle stack costs one `Relaxed`
//! increment on its shard's own cache line and one load of it; only one
//! such acquire in 256 per shard reads the clock and takes its shard's
//! histogram lock. Acquires that had to create a connection or queue
//! already read the clock, and are all timed. Releases record nothing.
//! Figures that follow from others are derived when read, not counted
//! (attempts are successes plus failures; validation failures are
//! validation closes). With `enable_statistics(false)` nothing is
//! recorded and snapshots carry only the live gauges.

mod counters;
mod dashboard;
mod export;
mod histograms;
mod prometheus;
mod recorder;
mod statistics;

pub use dashboard::{DashboardData, DashboardProvider};
pub use histograms::{Buckets, Percentiles, TimeHistogram};
pub use recorder::PoolStats;
pub(crate) use recorder::{AcquireProbe, GaugeSource, Gauges, Served};
pub use statistics::{AcquireFailures, ClosedByReason, EfficiencyMetrics, HookPanics, PoolStatistics};
