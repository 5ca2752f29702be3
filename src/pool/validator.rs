//! Connection validation with a timeout, a query, a fast path and statistics.
//!
//! A [`ConnectionValidator`] decides whether a connection is healthy. Given
//! to a pool with
//! [`PoolConfigBuilder::validator`](super::PoolConfigBuilder::validator),
//! it replaces the bare `ConnectionFactory::validate` call on acquire and
//! release, and (with a keep-alive interval) the maintenance thread uses it
//! on idle connections. Its query reaches the database through
//! [`ConnectionFactory::validate_query`](super::ConnectionFactory::validate_query),
//! which a driver's factory overrides (the SQLite adapter does); used on
//! its own, [`ConnectionValidator::validate`] needs the connection type to
//! implement [`ValidationQuery`].
//!
//! A blocking call cannot be interrupted, so a validation that takes longer
//! than the timeout is waited out and then counted as failed (the
//! connection is closed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Result;
use crate::sync::{AtomicU64, Ordering};

/// How long a connection may have been used successfully before fast
/// validation stops skipping the round trip, unless configured otherwise.
pub const DEFAULT_BYPASS_WINDOW: Duration = Duration::from_millis(500);

/// A connection that can run a validation query by itself.
pub trait ValidationQuery {
    /// Runs `query` (or the driver's cheapest round trip when `None`);
    /// `Ok(true)` if the connection answered as expected.
    fn run_validation_query(&self, query: Option<&str>) -> Result<bool>;
}

/// Checks connections, with a timeout, and keeps statistics.
///
/// ```
/// use rusty_db::pool::{ConnectionValidator, Result, ValidationQuery};
/// use std::time::Duration;
///
/// struct MyConnection { connected: bool }
/// impl ValidationQuery for MyConnection {
///     fn run_validation_query(&self, _query: Option<&str>) -> Result<bool> { Ok(self.connected) }
/// }
/// let connection = MyConnection { connected: true };
///
/// let validator = ConnectionValidator::new(Duration::from_secs(5))
///     .with_query("SELECT 1".to_string())
///     .with_fast_validation(true);
///
/// let is_valid = validator.validate(&connection)?;
/// let stats = validator.statistics();
/// println!("Validation success rate: {:.2}%", stats.success_rate * 100.0);
/// assert!(is_valid);
/// assert_eq!(stats.total_validations, 1);
/// # Ok::<(), rusty_db::pool::PoolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionValidator {
    timeout: Duration,
    query: Option<String>,
    fast_validation: bool,
    bypass_window: Duration,
    keepalive_interval: Option<Duration>,
    counters: Arc<Counters>,
}

impl PartialEq for ConnectionValidator {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.counters, &other.counters)
    }
}

#[derive(Debug, Default)]
struct Counters {
    successes: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

/// What a validator has seen since it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ValidatorStatistics {
    /// Validations that ran (skipped ones not included).
    pub total_validations: u64,
    /// Validations that passed within the timeout.
    pub successful_validations: u64,
    /// Validations that failed, errored, panicked or exceeded the timeout.
    pub failed_validations: u64,
    /// Round trips skipped by fast validation.
    pub skipped_validations: u64,
    /// `successful / total`, `1.0` before the first validation.
    pub success_rate: f64,
    /// Mean duration of the validations that ran.
    pub average_latency: Duration,
    /// Longest validation seen.
    pub max_latency: Duration,
}

impl ConnectionValidator {
    /// A validator that fails validations slower than `timeout`.
    pub fn new(timeout: Duration) -> Self {
        ConnectionValidator {
            timeout,
            query: None,
            fast_validation: false,
            bypass_window: DEFAULT_BYPASS_WINDOW,
            keepalive_interval: None,
            counters: Arc::default(),
        }
    }

    /// The query to run (default: the driver's own check).
    pub fn with_query(mut self, query: String) -> Self {
        self.query = Some(query);
        self
    }

    /// Skip the round trip for a connection used successfully within the
    /// bypass window (default off). Only a pool knows when a connection was
    /// last used, so a standalone [`validate`](Self::validate) always runs.
    pub fn with_fast_validation(mut self, fast: bool) -> Self {
        self.fast_validation = fast;
        self
    }

    /// The fast-validation window. Default [`DEFAULT_BYPASS_WINDOW`].
    pub fn with_bypass_window(mut self, window: Duration) -> Self {
        self.bypass_window = window;
        self
    }

    /// Have the pool's maintenance thread validate connections idle for
    /// longer than `interval` (keep-alive). Default off.
    pub fn with_keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = Some(interval);
        self
    }

    /// The configured timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The keep-alive interval, if any.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        self.keepalive_interval
    }

    /// Validates a connection that can run the query itself.
    pub fn validate<C: ValidationQuery>(&self, connection: &C) -> Result<bool> {
        let started = Instant::now();
        let outcome = connection.run_validation_query(self.query.as_deref());
        let ok = matches!(outcome, Ok(true));
        let passed = self.record(started.elapsed(), ok);
        outcome.map(|_| passed)
    }

    /// Validates through a pool's factory: `run` sends the query (or, for
    /// `None`, the factory's own check) and says whether the connection
    /// passed, a panic already counted as a failure by the pool. `since_use`
    /// is how long ago the connection was last returned healthy (for fast
    /// validation).
    pub(crate) fn check_with(&self, since_use: Option<Duration>, run: impl FnOnce(Option<&str>) -> bool) -> bool {
        if self.fast_validation && since_use.is_some_and(|d| d < self.bypass_window) {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let started = Instant::now();
        let ok = run(self.query.as_deref());
        self.record(started.elapsed(), ok)
    }

    /// Counts one validation; a slow one fails. Returns the verdict.
    fn record(&self, took: Duration, ok: bool) -> bool {
        let passed = ok && took <= self.timeout;
        let nanos = super::slot::duration_nanos(took);
        // Relaxed: statistics only; no other memory depends on them.
        let c = &self.counters;
        if passed { &c.successes } else { &c.failures }.fetch_add(1, Ordering::Relaxed);
        c.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        if ok && !passed {
            log::warn!(
                "validation took {took:?}, over its {:?} timeout: the connection counts as invalid",
                self.timeout
            );
        }
        passed
    }

    /// Statistics since the validator was made (shared by its clones).
    pub fn statistics(&self) -> ValidatorStatistics {
        let c = &self.counters;
        let successes = c.successes.load(Ordering::Relaxed);
        let failures = c.failures.load(Ordering::Relaxed);
        let total = successes + failures;
        ValidatorStatistics {
            total_validations: total,
            successful_validations: successes,
            failed_validations: failures,
            skipped_validations: c.skipped.load(Ordering::Relaxed),
            success_rate: if total == 0 { 1.0 } else { successes as f64 / total as f64 },
            average_latency: Duration::from_nanos(
                c.total_nanos.load(Ordering::Relaxed).checked_div(total).unwrap_or(0),
            ),
            max_latency: Duration::from_nanos(c.max_nanos.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Slow(Duration, bool);
    impl ValidationQuery for Slow {
        fn run_validation_query(&self, _: Option<&str>) -> Result<bool> {
            std::thread::sleep(self.0);
            Ok(self.1)
        }
    }

    #[test]
    fn slower_than_the_timeout_counts_as_failed() {
        let v = ConnectionValidator::new(Duration::from_millis(5));
        assert!(v.validate(&Slow(Duration::ZERO, true)).unwrap());
        assert!(!v.validate(&Slow(Duration::from_millis(30), true)).unwrap());
        assert!(!v.validate(&Slow(Duration::ZERO, false)).unwrap());
        let s = v.statistics();
        assert_eq!((s.total_validations, s.successful_validations, s.failed_validations), (3, 1, 2));
        assert!((s.success_rate - 1.0 / 3.0).abs() < 1e-9);
        assert!(s.max_latency >= Duration::from_millis(30));
        assert!(s.average_latency >= Duration::from_millis(10));
    }

    /// What a pool's `run` does for a connection that answers `healthy`:
    /// pass if it is healthy and the query, if any, is `SELECT 1`.
    fn answer(healthy: bool) -> impl FnOnce(Option<&str>) -> bool {
        move |query| healthy && query.is_none_or(|q| q == "SELECT 1")
    }

    #[test]
    fn fast_validation_skips_recently_used_connections_only() {
        let v = ConnectionValidator::new(Duration::from_secs(1)).with_fast_validation(true);
        assert!(v.check_with(Some(Duration::from_millis(10)), answer(false)), "skipped: used 10 ms ago");
        assert!(!v.check_with(Some(Duration::from_secs(2)), answer(false)), "ran: idle for 2 s");
        assert!(!v.check_with(None, answer(false)), "ran: never used");
        let s = v.statistics();
        assert_eq!((s.skipped_validations, s.total_validations), (1, 2));
    }

    #[test]
    fn the_query_is_handed_to_the_pool() {
        let v = ConnectionValidator::new(Duration::from_secs(1)).with_query("SELECT 1".into());
        assert!(v.check_with(None, answer(true)));
        let other = ConnectionValidator::new(Duration::from_secs(1)).with_query("SELECT 2".into());
        assert!(!other.check_with(None, answer(true)));
        let s = other.statistics();
        assert_eq!((s.total_validations, s.failed_validations), (1, 1));
    }
}
