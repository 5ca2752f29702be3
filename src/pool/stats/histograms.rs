//! Acquire- and wait-time histograms: recorded per shard, merged when read.
//!
//! Each shard has its own [`hdrhistogram`] recorders behind its own lock on
//! its own cache lines, so threads of different shards never contend, and
//! the lock-free fast path takes a lock only for one acquire in
//! [`SAMPLE_EVERY`]. Two populations are kept apart:
//!
//! - **waited**: every successful acquire that found no idle connection at
//!   once (it created one, or queued), timed from the moment its fast path
//!   failed. Their nanoseconds are also summed exactly.
//! - **sampled**: one fast-path acquire in [`SAMPLE_EVERY`] per thread, timed
//!   from entry. When read they are scaled up to the number of fast-path
//!   acquires, which the slots' loans count exactly.
//!
//! Values are nanoseconds at two significant digits (1 % resolution), from
//! 1 ns to one hour; a longer time is recorded as one hour. A shard's
//! histogram is allocated when it records its first value.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::sync::{CachePadded, Mutex};

/// One fast-path acquire in this many (per shard) is timed. A sample costs
/// two clock reads and a lock (about 60 ns); one in 256 makes that a
/// quarter of a nanosecond per acquire (one in 64 measured +1 ns).
pub(crate) const SAMPLE_EVERY: u64 = 256;

/// The longest time a histogram tells apart: one hour, in nanoseconds.
const HIGHEST_NANOS: u64 = 3_600 * 1_000_000_000;

/// Significant decimal digits kept: 1 % resolution at ~37 KB per histogram.
const SIGNIFICANT_DIGITS: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NANOS, SIGNIFICANT_DIGITS).expect("constant bounds are valid")
}

/// A distribution of durations: how many, their mean, percentiles, and
/// counts in fixed buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TimeHistogram {
    /// How many durations it holds.
    pub count: u64,
    /// Their sum.
    pub sum: Duration,
    /// Their mean (zero when `count` is zero).
    pub mean: Duration,
    /// Percentiles of the durations (all zero when `count` is zero).
    pub percentiles: Percentiles,
    /// How many durations fall in each of the fixed buckets of
    /// [`Buckets::upper_bounds`].
    pub buckets: Buckets,
}

/// The finite buckets' upper bounds in nanoseconds: the R10 series (1,
/// 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8 per decade) from 100 ns to 100 s.
/// Buckets 26 % wide read percentiles to about ±13 %, in 91 numbers.
const UPPER_BOUNDS_NS: [u64; 91] = {
    const MANTISSAS: [u64; 10] = [100, 125, 160, 200, 250, 315, 400, 500, 630, 800];
    let mut bounds = [0u64; 91];
    let (mut i, mut decade) = (0, 1u64);
    while i < 90 {
        bounds[i] = MANTISSAS[i % 10] * decade;
        i += 1;
        if i % 10 == 0 {
            decade *= 10;
        }
    }
    bounds[90] = 100 * decade;
    bounds
};

/// The number of buckets: one per bound, and one above the last.
const BUCKETS: usize = UPPER_BOUNDS_NS.len() + 1;

/// Durations counted in fixed buckets, the same for every pool and every
/// snapshot, so that two snapshots' counts subtract into the distribution
/// of what happened between them (as a dashboard does to chart the last
/// minutes' percentiles).
///
/// Bucket `i` counts the durations above bound `i - 1` and at most bound
/// `i` (bucket 0 from zero); the last one, past the bounds, counts those
/// above 100 s.
///
/// ```
/// use rusty_db::pool::Buckets;
/// use std::time::Duration;
///
/// let bounds: Vec<Duration> = Buckets::upper_bounds().collect();
/// assert_eq!(bounds[0], Duration::from_nanos(100));
/// assert_eq!(bounds[1], Duration::from_nanos(125));
/// assert_eq!(bounds.last(), Some(&Duration::from_secs(100)));
/// assert_eq!(Buckets::default().counts().len(), bounds.len() + 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets([u64; BUCKETS]);

impl Default for Buckets {
    fn default() -> Self {
        Buckets([0; BUCKETS])
    }
}

impl Buckets {
    /// The finite buckets' upper bounds, smallest first: 100 ns, 125 ns,
    /// 160 ns, ... 80 s, 100 s.
    pub fn upper_bounds() -> impl Iterator<Item = Duration> {
        UPPER_BOUNDS_NS.iter().map(|&ns| Duration::from_nanos(ns))
    }

    /// Each bucket's count, in the order of the bounds, then the count
    /// above the last bound.
    pub fn counts(&self) -> &[u64] {
        &self.0
    }

    /// The counts of `histogram`'s values, each placed by the lowest value
    /// its hdrhistogram bucket stands for (so a value recorded exactly at
    /// a bound counts at or below it).
    fn of(histogram: &Histogram<u64>) -> Buckets {
        let mut buckets = Buckets::default();
        for recorded in histogram.iter_recorded() {
            let value = histogram.lowest_equivalent(recorded.value_iterated_to());
            let bucket = UPPER_BOUNDS_NS.partition_point(|&bound| bound < value);
            buckets.0[bucket] = buckets.0[bucket].saturating_add(recorded.count_at_value());
        }
        buckets
    }
}

/// Percentiles of a [`TimeHistogram`], to within 1 % (the histogram's
/// resolution) and never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Percentiles {
    /// The median.
    pub p50: Duration,
    /// 95 % of the durations are at most this.
    pub p95: Duration,
    /// 99 % of the durations are at most this.
    pub p99: Duration,
    /// 99.9 % of the durations are at most this.
    pub p999: Duration,
    /// The longest duration.
    pub max: Duration,
}

/// The quantiles [`Percentiles`] reports, with their labels in exports.
pub(crate) const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.95, "0.95"), (0.99, "0.99"), (0.999, "0.999")];

impl Percentiles {
    /// `p50`, `p95`, `p99`, `p999` in the order of [`QUANTILES`].
    pub(crate) fn quantiles(&self) -> [Duration; 4] {
        [self.p50, self.p95, self.p99, self.p999]
    }
}

/// Durations recorded in one histogram, with their exact sum and maximum.
#[derive(Debug, Clone, Default)]
struct Recorder {
    /// `None` until the first value.
    histogram: Option<Histogram<u64>>,
    sum_nanos: u128,
    max_nanos: u64,
}

impl Recorder {
    fn record(&mut self, nanos: u64) {
        self.histogram.get_or_insert_with(new_histogram).saturating_record(nanos);
        self.sum_nanos += u128::from(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }

    fn count(&self) -> u64 {
        self.histogram.as_ref().map_or(0, Histogram::len)
    }

    fn add(&mut self, other: &Recorder) {
        if let Some(theirs) = &other.histogram {
            let ours = self.histogram.get_or_insert_with(new_histogram);
            ours.add(theirs).expect("histograms with equal bounds add up");
        }
        self.sum_nanos += other.sum_nanos;
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }
}

/// What one shard recorded.
#[derive(Debug, Default)]
struct ShardTimes {
    waited: Recorder,
    /// Waited acquires that were handed a newly created connection.
    fresh: u64,
    sampled: Recorder,
}

// === impl StripedTimes ===

/// Per-shard time recorders.
#[derive(Debug)]
pub(crate) struct StripedTimes {
    shards: Box<[CachePadded<Mutex<ShardTimes>>]>,
}

impl StripedTimes {
    /// `shards` empty recorders (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        StripedTimes { shards: (0..shards.max(1)).map(|_| CachePadded::new(Mutex::default())).collect() }
    }

    /// Records a successful acquire that found no idle connection at once
    /// and took `took`; `fresh` if it was handed a new connection.
    pub(crate) fn record_waited(&self, shard: usize, took: Duration, fresh: bool) {
        let mut times = self.shards[shard].lock();
        times.waited.record(nanos(took));
        times.fresh += u64::from(fresh);
    }

    /// Records a timed fast-path acquire.
    pub(crate) fn record_sample(&self, shard: usize, took: Duration) {
        self.shards[shard].lock().sampled.record(nanos(took));
    }

    /// Everything recorded so far, all shards added up. Takes each shard's
    /// lock in turn, never two at once.
    pub(crate) fn merge(&self) -> MergedTimes {
        let mut merged = ShardTimes::default();
        for shard in self.shards.iter() {
            let times = shard.lock();
            merged.waited.add(&times.waited);
            merged.fresh += times.fresh;
            merged.sampled.add(&times.sampled);
        }
        MergedTimes(merged)
    }
}

// === impl MergedTimes ===

/// All shards' recorders added up, ready to be read.
#[derive(Debug)]
pub(crate) struct MergedTimes(ShardTimes);

impl MergedTimes {
    /// Successful acquires that found no idle connection at once.
    pub(crate) fn waited(&self) -> u64 {
        self.0.waited.count()
    }

    /// Waited acquires that were handed a newly created connection.
    pub(crate) fn fresh(&self) -> u64 {
        self.0.fresh
    }

    /// Wait times of every successful acquire: the waited ones as timed,
    /// the `immediate` (fast-path) ones as zero.
    pub(crate) fn wait_time(&self, immediate: u64) -> TimeHistogram {
        let waited = &self.0.waited;
        let mut histogram = waited.histogram.clone().unwrap_or_else(new_histogram);
        histogram.saturating_record_n(0, immediate);
        summarize(&histogram, waited.count() + immediate, waited.sum_nanos, waited.max_nanos)
    }

    /// Acquire times of every successful acquire: the waited ones as timed,
    /// the `immediate` ones estimated from the samples (each sample standing
    /// for an equal share of them; as zero while there is no sample).
    pub(crate) fn acquire_time(&self, immediate: u64) -> TimeHistogram {
        let (waited, sampled) = (&self.0.waited, &self.0.sampled);
        let mut histogram = waited.histogram.clone().unwrap_or_else(new_histogram);
        let mut sum = waited.sum_nanos;
        let mut max = waited.max_nanos;
        let samples = sampled.count();
        match &sampled.histogram {
            Some(samples_histogram) if samples > 0 => {
                for bucket in samples_histogram.iter_recorded() {
                    let stands_for = scale(bucket.count_at_value(), immediate, samples);
                    histogram.saturating_record_n(bucket.value_iterated_to(), stands_for);
                }
                sum += sampled.sum_nanos * u128::from(immediate) / u128::from(samples);
                max = max.max(sampled.max_nanos);
            }
            _ => histogram.saturating_record_n(0, immediate),
        }
        summarize(&histogram, waited.count() + immediate, sum, max)
    }
}

/// `count * total / samples`, rounded to nearest.
fn scale(count: u64, total: u64, samples: u64) -> u64 {
    let scaled = (u128::from(count) * u128::from(total) * 2 + u128::from(samples)) / (2 * u128::from(samples));
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

fn summarize(histogram: &Histogram<u64>, count: u64, sum_nanos: u128, max_nanos: u64) -> TimeHistogram {
    if count == 0 {
        return TimeHistogram::default();
    }
    let mean = u64::try_from(sum_nanos / u128::from(count)).unwrap_or(u64::MAX);
    // The histogram answers with the top of a bucket; the exact max caps it.
    let at = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q).min(max_nanos));
    let [p50, p95, p99, p999] = QUANTILES.map(|(q, _)| at(q));
    TimeHistogram {
        count,
        sum: duration_from_nanos(sum_nanos),
        mean: Duration::from_nanos(mean),
        percentiles: Percentiles { p50, p95, p99, p999, max: Duration::from_nanos(max_nanos) },
        buckets: Buckets::of(histogram),
    }
}

/// A `u128` of nanoseconds as a `Duration`, saturating.
fn duration_from_nanos(nanos: u128) -> Duration {
    const PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % PER_SEC) as u32)
}

/// Nanoseconds as `u64`, saturating (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fast_path_acquires_count_as_zero_wait() {
        let times = StripedTimes::new(2);
        times.record_waited(0, 10 * MS, true);
        times.record_waited(1, 30 * MS, false);
        let merged = times.merge();
        assert_eq!((merged.waited(), merged.fresh()), (2, 1));
        let wait = merged.wait_time(98);
        assert_eq!(wait.count, 100);
        assert_eq!(wait.mean, 400 * Duration::from_micros(1));
        assert_eq!(wait.percentiles.p50, Duration::ZERO);
        assert_eq!(wait.percentiles.p95, Duration::ZERO);
        let p99 = wait.percentiles.p99;
        assert!(p99 >= 9_900 * Duration::from_micros(1) && p99 <= 10_100 * Duration::from_micros(1), "{p99:?}");
        assert_eq!(wait.percentiles.p999, 30 * MS);
        assert_eq!(wait.percentiles.max, 30 * MS);
    }

    #[test]
    fn samples_stand_for_every_fast_path_acquire() {
        let times = StripedTimes::new(1);
        for nanos in [100, 100, 300] {
            times.record_sample(0, Duration::from_nanos(nanos));
        }
        times.record_waited(0, MS, true);
        // 120 fast-path acquires: 80 stand at 100 ns, 40 at 300 ns.
        let acquire = times.merge().acquire_time(120);
        assert_eq!(acquire.count, 121);
        assert_eq!(acquire.sum, MS + Duration::from_nanos(120 * 500 / 3));
        assert_eq!(acquire.mean, acquire.sum / 121);
        assert_eq!(acquire.percentiles.max, MS);
        assert_eq!(acquire.percentiles.p50, Duration::from_nanos(100));
        // Within the histogram's 1 % resolution.
        let p95 = acquire.percentiles.p95.as_nanos();
        assert!((300..=303).contains(&p95), "{p95}");
        assert_eq!(acquire.percentiles.p999, MS);
    }

    #[test]
    fn buckets_count_each_duration_once_at_or_below_its_bound() {
        let times = StripedTimes::new(2);
        // Exactly at a bound, just above it, past the last bound, and the
        // fast path's zeros in bucket 0.
        for (shard, took) in [(0, 1_000), (1, 1_000), (0, 1_300), (1, 200_000_000_000)] {
            times.record_waited(shard, Duration::from_nanos(took), false);
        }
        let wait = times.merge().wait_time(5);
        let counts = wait.buckets.counts();
        let bounds: Vec<u64> = Buckets::upper_bounds().map(|b| b.as_nanos() as u64).collect();
        let at = |ns: u64| bounds.iter().position(|&b| b == ns).expect("a bound");
        assert_eq!(counts[0], 5);
        assert_eq!(counts[at(1_000)], 2);
        assert_eq!(counts[at(1_600)], 1, "1.3 µs is above 1.25 µs and at most 1.6 µs");
        assert_eq!(counts[bounds.len()], 1, "200 s is past the last bound");
        assert_eq!(counts.iter().sum::<u64>(), wait.count);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((bounds[0], bounds[bounds.len() - 1]), (100, 100_000_000_000));
    }

    #[test]
    fn nothing_recorded_reads_as_zero() {
        let merged = StripedTimes::new(3).merge();
        assert_eq!(merged.wait_time(0), TimeHistogram::default());
        assert_eq!(merged.acquire_time(0), TimeHistogram::default());
        let unsampled = merged.acquire_time(5);
        assert_eq!((unsampled.count, unsampled.mean), (5, Duration::ZERO));
    }

    #[test]
    fn times_beyond_an_hour_are_kept_as_an_hour_in_percentiles() {
        let times = StripedTimes::new(1);
        times.record_waited(0, Duration::from_secs(7_200), false);
        let wait = times.merge().wait_time(0);
        assert_eq!(wait.mean, Duration::from_secs(7_200));
        let p50 = wait.percentiles.p50;
        assert!(p50 >= Duration::from_secs(3_564) && p50 <= Duration::from_secs(3_636), "{p50:?}");
    }
}
