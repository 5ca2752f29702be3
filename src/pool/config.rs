//! Pool configuration: the reference's fields and defaults, plus the knobs
//! the lock-free design adds (`name`, `shards`, `queue_mode`).
//!
//! Fields are public so a config can be read and adjusted in place (start
//! from `PoolConfig::default()`; the struct is `#[non_exhaustive]`, so no
//! struct literal outside the crate); [`PoolConfig::builder`] is the checked
//! way in, and [`ConnectionPool::new`](super::ConnectionPool::new) checks again.

use std::time::Duration;

use std::sync::Arc;

use super::aging::AgingPolicy;
use super::error::{PoolError, Result};
use super::events::{EventListenerRef, PoolEventListener};
use super::index_stack::MAX_INDEX;
use super::maintenance::MaintenanceService;
use super::validator::ConnectionValidator;

/// The default [`PoolConfig::validation_bypass_window`].
pub const DEFAULT_VALIDATION_BYPASS_WINDOW: Duration = Duration::from_millis(500);

/// The default [`PoolConfig::fairness_threshold`].
pub const DEFAULT_FAIRNESS_THRESHOLD: Duration = Duration::from_micros(500);

/// The largest `max_size` a pool accepts.
///
/// The slab of slots is allocated when the pool is created, a few hundred
/// bytes per slot, so this bound (16 MiB of slots) keeps a mistyped size
/// an [`InvalidConfig`](PoolError::InvalidConfig) error rather than an
/// allocation failure that aborts the process. No database serves this
/// many connections to one client.
pub const MAX_POOL_SIZE: usize = 1 << 16;

// Slot indices must fit the index stacks' links.
const _: () = assert!(MAX_POOL_SIZE <= MAX_INDEX as usize);

/// How waiting threads are served when connections come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueMode {
    /// Bounded wait, the default: fast when threads outnumber connections,
    /// and no waiter is starved.
    ///
    /// While no waiter has waited longer than
    /// [`fairness_threshold`](PoolConfig::fairness_threshold) (500 µs by
    /// default), an acquire takes an idle connection even if others wait,
    /// and a returned connection goes back to the pool, waking the oldest
    /// waiter to compete for it: a thread that returns a connection and
    /// wants another goes on without a sleep, so the pool does not fall
    /// into a lock convoy where every operation waits for a thread to wake.
    ///
    /// A waiter past the threshold *starves*. From then on, until no
    /// starving waiter is left, every returned connection (and freed slot)
    /// goes straight to the oldest waiter, and new acquires queue behind
    /// the waiters instead of taking idle connections. The guarantee: once
    /// a waiter starves, each other thread can take at most one connection
    /// ahead of it (an acquire that had already looked before the waiter
    /// starved), and after that it is served in arrival order. So a waiter
    /// waits at most the threshold, plus its turn among the starving
    /// waiters before it, plus one operation per other thread.
    ///
    /// When borrows hold their connections for long (50 µs or more on
    /// average, as a database round trip does; back under 25 µs to return),
    /// the threshold in force follows them: 20 borrows' worth of hold
    /// time, at most 2 ms (never below the configured threshold). With the
    /// 500 µs default every such wait would starve, and every release
    /// would hand off to a sleeping thread, putting a wake-up between every
    /// two borrows. Maintenance estimates the hold time each pass (Little's
    /// law over the acquires since the last pass);
    /// [`ConnectionPool::fairness_threshold_in_force`](super::ConnectionPool::fairness_threshold_in_force)
    /// tells the threshold in force. Partition queues follow it too.
    #[default]
    Fair,
    /// Strict first come, first served: a returned connection always goes
    /// straight to the thread that has waited longest, and newcomers queue
    /// behind every waiter. The tightest tail latency when threads block
    /// while holding a connection (as in I/O), but once a queue forms each
    /// acquire waits for a thread wake-up, so throughput falls several
    /// times below `Fair` when threads outnumber connections.
    Fifo,
    /// Like `Fair`, with waiters of a higher priority (see
    /// [`ConnectionPool::acquire_with_priority`](super::ConnectionPool::acquire_with_priority))
    /// ahead of lower ones in the queue; equal priorities in arrival order.
    /// A starving waiter is served once the waiters of higher priority
    /// before it are.
    Priority,
    /// Throughput first: newcomers may always take an idle connection, and
    /// a returned connection wakes the oldest waiter to compete for it. No
    /// bound on how often a waiter is overtaken (but it is not starved past
    /// its timeout).
    Unfair,
}

/// The configuration of a [`ConnectionPool`](super::ConnectionPool).
///
/// Defaults follow the API reference: 10 to 100 connections, 10 created up
/// front, a 30 s acquire timeout, validation on acquire.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The pool's name in logs, metrics and the admin registry. Default `"default"`.
    pub name: String,
    /// Connections the pool keeps open even when idle. Default 10.
    pub min_size: usize,
    /// Hard cap on open (and opening) connections. Default 100; 1 to
    /// [`MAX_POOL_SIZE`].
    pub max_size: usize,
    /// Connections created by `ConnectionPool::new`. Default 10.
    pub initial_size: usize,
    /// How long `acquire` waits for a connection before failing: for one
    /// to come back, and for a factory's `create` (which, if stuck, then
    /// finishes for the pool, not the caller). Validation on acquire is not
    /// cut short: it runs on the caller's thread, so a slow validation that
    /// passes returns late; but once connections have failed validation for
    /// `acquire_timeout`, the acquire tries no further one and fails with
    /// [`PoolError::ValidationFailed`]. Default 30 s.
    pub acquire_timeout: Duration,
    /// Maximum age of a connection. Default `None` (no limit).
    pub max_lifetime: Option<Duration>,
    /// Maximum time a connection may sit idle. Default `None` (no limit).
    pub idle_timeout: Option<Duration>,
    /// Validate an idle connection before handing it out. Default `true`.
    /// How: see [`validation_bypass_window`](Self::validation_bypass_window).
    pub validate_on_acquire: bool,
    /// With `validate_on_acquire`, and a factory whose full check makes a
    /// round trip
    /// ([`ConnectionFactory::validation_round_trips`](super::ConnectionFactory::validation_round_trips):
    /// the PostgreSQL adapter, the r2d2 bridge), a connection returned
    /// within this window gets only the factory's cheap check
    /// ([`ConnectionFactory::validate`](super::ConnectionFactory::validate),
    /// no round trip: the PostgreSQL adapter asks the driver whether it saw
    /// the session end); one idle for longer gets the full check
    /// ([`ConnectionFactory::validate_mut`](super::ConnectionFactory::validate_mut),
    /// a round trip). Idle time is read on the pool's coarse clock, which
    /// maintenance advances at least four times per window, so a
    /// connection counts as idle for up to a quarter window less than it
    /// was. Zero checks fully every time. A configured
    /// [`validator`](Self::validator) decides by its own fast-validation
    /// window instead. Default 500 ms, as HikariCP's `aliveBypassWindowMs`.
    pub validation_bypass_window: Duration,
    /// Validate a connection when it comes back. Default `false`.
    pub validate_on_release: bool,
    /// Most threads that may wait at once; further callers get
    /// [`PoolError::WaitQueueFull`]. `0` means never wait. Default 1000.
    pub max_wait_queue_size: usize,
    /// Prepared statements cached per connection. Default 100.
    pub statement_cache_size: usize,
    /// Multi-tenant partitioning. Default `false`.
    pub enable_partitioning: bool,
    /// Number of idle-stack shards; threads prefer the shard of their CPU.
    /// Default: the number of CPUs.
    pub shards: usize,
    /// How waiters are served. Default [`QueueMode::Fair`].
    pub queue_mode: QueueMode,
    /// How long a waiter waits before it starves and can no longer be
    /// overtaken (see [`QueueMode::Fair`]; `Fair` and `Priority` only).
    /// Default 500 µs; at most `acquire_timeout`; zero starves every
    /// waiter at once (FIFO whenever anyone waits).
    pub fairness_threshold: Duration,
    /// Collect the pool's statistics (striped counters
    /// and sampled histograms). Default `true`.
    pub enable_statistics: bool,
    /// When connections retire, besides `max_lifetime`. Default `None`.
    pub aging_policy: Option<AgingPolicy>,
    /// Report a connection borrowed for longer than this as a leak.
    /// Default `None` (no leak detection).
    pub leak_detection_threshold: Option<Duration>,
    /// How often the maintenance thread runs. Default `None`: derived from
    /// the configured durations (a quarter of the shortest, between 10 ms
    /// and 30 s).
    pub maintenance_interval: Option<Duration>,
    /// Validates connections (timeout, query, fast path, keep-alive) in
    /// place of the bare `ConnectionFactory::validate`. Default `None`.
    pub validator: Option<ConnectionValidator>,
    /// Receives the pool's events. Default `None`.
    pub event_listener: Option<EventListenerRef>,
    /// A service shared with other pools instead of a thread of this
    /// pool's own. Default `None` (own thread).
    pub maintenance_service: Option<MaintenanceService>,
    /// Keep a spare of idle connections (one per four borrowed, plus one
    /// per waiting thread), created ahead of demand by the maintenance
    /// thread, and close idle connections beyond that spare (toward
    /// `min_size`) once the surplus has lasted four passes. Default `false`.
    pub adaptive_sizing: bool,
    /// How long `close()` (and dropping the last handle) waits for work in
    /// user code: the maintenance pass, creations in progress, and closing
    /// idle connections (on up to 4 threads at once). Whatever is still
    /// running then finishes in the background, closes what it holds, and
    /// is logged. Default 5 s; zero returns at once.
    pub shutdown_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "default".to_string(),
            min_size: 10,
            max_size: 100,
            initial_size: 10,
            acquire_timeout: Duration::from_secs(30),
            max_lifetime: None,
            idle_timeout: None,
            validate_on_acquire: true,
            validation_bypass_window: DEFAULT_VALIDATION_BYPASS_WINDOW,
            validate_on_release: false,
            max_wait_queue_size: 1000,
            statement_cache_size: 100,
            enable_partitioning: false,
            shards: default_shards(),
            queue_mode: QueueMode::Fair,
            fairness_threshold: DEFAULT_FAIRNESS_THRESHOLD,
            enable_statistics: true,
            aging_policy: None,
            leak_detection_threshold: None,
            maintenance_interval: None,
            validator: None,
            event_listener: None,
            maintenance_service: None,
            adaptive_sizing: false,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl PoolConfig {
    /// The maintenance interval: as configured, else an eighth of the
    /// shortest configured duration (so each is acted on within about a
    /// quarter of itself), between 10 ms and 1 s.
    pub fn effective_maintenance_interval(&self) -> Duration {
        if let Some(interval) = self.maintenance_interval {
            return interval;
        }
        let aging = self.aging_policy.and_then(|p| match p {
            AgingPolicy::TimeBased { max_lifetime } | AgingPolicy::Combined { max_lifetime, .. } => Some(max_lifetime),
            AgingPolicy::Adaptive { base_lifetime, .. } => Some(base_lifetime / 4),
            _ => None,
        });
        let keepalive = self.validator.as_ref().and_then(|v| v.keepalive_interval());
        // The coarse clock that reads a connection's idle time advances
        // with every pass: at least four per bypass window.
        let bypass = self.bypass_window_in_use().map(|w| w * 2);
        [self.idle_timeout, self.max_lifetime, self.leak_detection_threshold, aging, keepalive, bypass]
            .into_iter()
            .flatten()
            .map(|d| d / 8)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

impl PoolConfig {
    /// The bypass window acquires use, if any: only with
    /// `validate_on_acquire`, no validator of its own, and a window above zero.
    pub(crate) fn bypass_window_in_use(&self) -> Option<Duration> {
        let used = self.validate_on_acquire && self.validator.is_none() && !self.validation_bypass_window.is_zero();
        used.then_some(self.validation_bypass_window)
    }
}

/// One shard per CPU the process may run on.
pub(crate) fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl PoolConfig {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use rusty_db::pool::PoolConfig;
    /// use std::time::Duration;
    ///
    /// let config = PoolConfig::builder()
    ///     .min_size(10)
    ///     .max_size(100)
    ///     .initial_size(20)
    ///     .acquire_timeout(Duration::from_secs(30))
    ///     .max_lifetime(Duration::from_secs(3600))
    ///     .idle_timeout(Duration::from_secs(600))
    ///     .validate_on_acquire(true)
    ///     .statement_cache_size(100)
    ///     .enable_partitioning(true)
    ///     .build()?;
    /// assert_eq!(config.initial_size, 20);
    /// # Ok::<(), rusty_db::pool::PoolError>(())
    /// ```
    pub fn builder() -> PoolConfigBuilder {
        PoolConfigBuilder { config: PoolConfig::default() }
    }

    /// Checks the configuration for contradictions.
    ///
    /// Returns [`PoolError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(PoolError::InvalidConfig(msg));
        if self.name.trim().is_empty() {
            return invalid("name must not be empty".into());
        }
        if self.max_size == 0 {
            return invalid("max_size must be at least 1".into());
        }
        if self.max_size > MAX_POOL_SIZE {
            return invalid(format!(
                "max_size must be at most {MAX_POOL_SIZE} (the pool allocates a slot per connection up front), got {}",
                self.max_size
            ));
        }
        if self.min_size > self.max_size {
            return invalid(format!("min_size ({}) must not exceed max_size ({})", self.min_size, self.max_size));
        }
        if self.initial_size > self.max_size {
            return invalid(format!(
                "initial_size ({}) must not exceed max_size ({})",
                self.initial_size, self.max_size
            ));
        }
        if self.acquire_timeout.is_zero() {
            return invalid("acquire_timeout must be greater than zero (use try_acquire to never wait)".into());
        }
        if self.max_lifetime.is_some_and(|d| d.is_zero()) {
            return invalid("max_lifetime must be greater than zero, or None for no limit".into());
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero()) {
            return invalid("idle_timeout must be greater than zero, or None for no limit".into());
        }
        if self.fairness_threshold > self.acquire_timeout {
            return invalid(format!(
                "fairness_threshold ({:?}) must not exceed acquire_timeout ({:?}): a waiter would time out \
                 before it could starve",
                self.fairness_threshold, self.acquire_timeout
            ));
        }
        if self.shards == 0 {
            return invalid("shards must be at least 1".into());
        }
        if self.shards > 1024 {
            return invalid(format!("shards must be at most 1024, got {}", self.shards));
        }
        if let Some(policy) = &self.aging_policy {
            policy.check().or_else(invalid)?;
        }
        if self.leak_detection_threshold.is_some_and(|d| d.is_zero()) {
            return invalid("leak_detection_threshold must be greater than zero, or None to disable".into());
        }
        if self.maintenance_interval.is_some_and(|d| d.is_zero()) {
            return invalid("maintenance_interval must be greater than zero, or None to derive it".into());
        }
        Ok(())
    }
}

/// Builds a checked [`PoolConfig`]; every setter states its default.
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolConfigBuilder {
    config: PoolConfig,
}

impl PoolConfigBuilder {
    /// Name in logs, metrics and the admin registry. Default `"default"`; not empty.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Connections kept open when idle. Default 10; at most `max_size`.
    pub fn min_size(mut self, min_size: usize) -> Self {
        self.config.min_size = min_size;
        self
    }

    /// Cap on open connections. Default 100; 1 to [`MAX_POOL_SIZE`] (65 536).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// Connections created up front. Default 10; at most `max_size`.
    pub fn initial_size(mut self, initial_size: usize) -> Self {
        self.config.initial_size = initial_size;
        self
    }

    /// How long `acquire` waits for a connection (see
    /// [`PoolConfig::acquire_timeout`] for what it covers). Default 30 s;
    /// greater than zero.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.config.acquire_timeout = timeout;
        self
    }

    /// Maximum connection age. Default none; greater than zero.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.max_lifetime = Some(lifetime);
        self
    }

    /// Maximum idle time. Default none; greater than zero.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Validate before handing out. Default `true`.
    pub fn validate_on_acquire(mut self, validate: bool) -> Self {
        self.config.validate_on_acquire = validate;
        self
    }

    /// How recently a connection must have been returned for an acquire to
    /// check it without a round trip (see
    /// [`PoolConfig::validation_bypass_window`]). Default
    /// [`DEFAULT_VALIDATION_BYPASS_WINDOW`] (500 ms); zero checks fully on
    /// every acquire.
    pub fn validation_bypass_window(mut self, window: Duration) -> Self {
        self.config.validation_bypass_window = window;
        self
    }

    /// Validate on return. Default `false`.
    pub fn validate_on_release(mut self, validate: bool) -> Self {
        self.config.validate_on_release = validate;
        self
    }

    /// Most waiting threads. Default 1000; `0` means never wait.
    pub fn max_wait_queue_size(mut self, size: usize) -> Self {
        self.config.max_wait_queue_size = size;
        self
    }

    /// Prepared statements cached per connection. Default 100; `0` disables.
    pub fn statement_cache_size(mut self, size: usize) -> Self {
        self.config.statement_cache_size = size;
        self
    }

    /// Multi-tenant partitioning. Default `false`.
    pub fn enable_partitioning(mut self, enable: bool) -> Self {
        self.config.enable_partitioning = enable;
        self
    }

    /// Idle-stack shards. Default: the number of CPUs; 1 to 1024.
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = shards;
        self
    }

    /// How waiters are served. Default [`QueueMode::Fair`].
    pub fn queue_mode(mut self, mode: QueueMode) -> Self {
        self.config.queue_mode = mode;
        self
    }

    /// How long a waiter waits before it can no longer be overtaken (see
    /// [`QueueMode::Fair`]). Default 500 µs; at most `acquire_timeout`.
    pub fn fairness_threshold(mut self, threshold: Duration) -> Self {
        self.config.fairness_threshold = threshold;
        self
    }

    /// Collect statistics. Default `true`.
    pub fn enable_statistics(mut self, enable: bool) -> Self {
        self.config.enable_statistics = enable;
        self
    }

    /// When connections retire. Default none; numbers must be positive and
    /// `error_threshold` within `0.0..=1.0`.
    pub fn aging_policy(mut self, policy: AgingPolicy) -> Self {
        self.config.aging_policy = Some(policy);
        self
    }

    /// Borrow time after which a connection is reported as leaked. Default
    /// none (off); greater than zero.
    pub fn leak_detection_threshold(mut self, threshold: Duration) -> Self {
        self.config.leak_detection_threshold = Some(threshold);
        self
    }

    /// How often maintenance runs. Default: derived from the durations;
    /// greater than zero.
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.config.maintenance_interval = Some(interval);
        self
    }

    /// Validates with `validator` instead of the bare factory check.
    /// Default none.
    pub fn validator(mut self, validator: ConnectionValidator) -> Self {
        self.config.validator = Some(validator);
        self
    }

    /// Receives the pool's events. Default none.
    pub fn event_listener(mut self, listener: Arc<dyn PoolEventListener>) -> Self {
        self.config.event_listener = Some(EventListenerRef::new(listener));
        self
    }

    /// Share `service`'s maintenance thread. Default: a thread of the pool's own.
    pub fn maintenance_service(mut self, service: MaintenanceService) -> Self {
        self.config.maintenance_service = Some(service);
        self
    }

    /// Create ahead of demand and shrink surplus toward `min_size`. Default `false`.
    pub fn adaptive_sizing(mut self, adaptive: bool) -> Self {
        self.config.adaptive_sizing = adaptive;
        self
    }

    /// How long `close()` waits for factory and listener calls in
    /// progress (and for closing idle connections) before it returns and
    /// lets them finish in the background. Default 5 s; zero returns at once.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Checks the configuration and returns it.
    ///
    /// ```
    /// use rusty_db::pool::{PoolConfig, PoolError};
    /// let err = PoolConfig::builder().min_size(5).max_size(2).build().unwrap_err();
    /// assert!(matches!(err, PoolError::InvalidConfig(ref m) if m.contains("min_size")));
    /// ```
    pub fn build(self) -> Result<PoolConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let c = PoolConfig::default();
        assert_eq!((c.min_size, c.max_size, c.initial_size), (10, 100, 10));
        assert_eq!(c.acquire_timeout, Duration::from_secs(30));
        assert_eq!((c.max_lifetime, c.idle_timeout), (None, None));
        assert!(c.validate_on_acquire && !c.validate_on_release);
        assert_eq!((c.max_wait_queue_size, c.statement_cache_size), (1000, 100));
        assert!(!c.enable_partitioning);
        assert_eq!(c.queue_mode, QueueMode::Fair);
        assert!(c.shards >= 1);
        c.validate().expect("defaults are valid");
    }

    fn field_named(builder: PoolConfigBuilder, field: &str) {
        match builder.build() {
            Err(PoolError::InvalidConfig(msg)) => assert!(msg.contains(field), "{msg:?} should name {field}"),
            other => panic!("expected InvalidConfig naming {field}, got {other:?}"),
        }
    }

    #[test]
    fn every_contradiction_names_its_field() {
        let b = PoolConfig::builder;
        field_named(b().max_size(0).min_size(0).initial_size(0), "max_size");
        field_named(b().min_size(11).max_size(10), "min_size");
        field_named(b().min_size(1).initial_size(11).max_size(10), "initial_size");
        field_named(b().acquire_timeout(Duration::ZERO), "acquire_timeout");
        field_named(b().max_lifetime(Duration::ZERO), "max_lifetime");
        field_named(b().idle_timeout(Duration::ZERO), "idle_timeout");
        field_named(b().shards(0), "shards");
        field_named(b().shards(4096), "shards");
        field_named(b().name(" "), "name");
        field_named(b().leak_detection_threshold(Duration::ZERO), "leak_detection_threshold");
        field_named(b().maintenance_interval(Duration::ZERO), "maintenance_interval");
        field_named(
            b().acquire_timeout(Duration::from_millis(1)).fairness_threshold(Duration::from_millis(2)),
            "fairness_threshold",
        );
        field_named(b().aging_policy(AgingPolicy::UsageBased { max_borrows: 0 }), "max_borrows");
        field_named(
            b().aging_policy(AgingPolicy::Adaptive { base_lifetime: Duration::from_secs(1), error_threshold: 1.5 }),
            "error_threshold",
        );
    }
}
