//! When a connection is old enough to retire.
//!
//! An [`AgingPolicy`] is checked when a connection comes back and by the
//! maintenance thread while it idles; a connection that a policy retires is
//! closed instead of reused (never while a guard holds it).

use std::time::Duration;

/// Rules for retiring connections, as in the API reference.
///
/// ```
/// use rusty_db::pool::AgingPolicy;
/// use std::time::Duration;
///
/// // Time-based aging
/// let policy = AgingPolicy::TimeBased { max_lifetime: Duration::from_secs(3600) };
/// // Usage-based aging
/// let policy = AgingPolicy::UsageBased { max_borrows: 1000 };
/// // Combined aging
/// let policy = AgingPolicy::Combined { max_lifetime: Duration::from_secs(3600), max_borrows: 1000 };
/// // Adaptive aging
/// let policy = AgingPolicy::Adaptive {
///     base_lifetime: Duration::from_secs(3600),
///     error_threshold: 0.05, // Recycle if >5% error rate
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum AgingPolicy {
    /// Retire a connection once it is `max_lifetime` old.
    TimeBased {
        /// Age at which a connection is retired.
        max_lifetime: Duration,
    },
    /// Retire a connection after it has been handed out `max_borrows` times.
    UsageBased {
        /// Borrows after which a connection is retired.
        max_borrows: u64,
    },
    /// Retire a connection at whichever limit it reaches first.
    Combined {
        /// Age at which a connection is retired.
        max_lifetime: Duration,
        /// Borrows after which a connection is retired.
        max_borrows: u64,
    },
    /// Retire a connection whose error rate exceeds `error_threshold`, and
    /// scale lifetimes with the pool's observed error rate.
    ///
    /// The exact rules:
    /// - A connection's errors are those its users record with
    ///   [`record_error`](super::PooledConnectionGuard::record_error) (a
    ///   failed validation or reset closes it outright). Once it has been
    ///   borrowed at least 10 times, it is retired when `errors / borrows >
    ///   error_threshold`.
    /// - The pool's rate `r` is errors over borrows summed over its open
    ///   connections (judged once they add up to 10 borrows). Lifetimes are
    ///   `base_lifetime × clamp(error_threshold / r, 0.25, 2.0)`, and
    ///   `2 × base_lifetime` while `r` is 0: a healthy pool keeps
    ///   connections longer, a failing one recycles them up to four times
    ///   sooner.
    /// - Lifetimes carry the same jitter as `max_lifetime` (up to 5 %
    ///   shorter), and are checked when a connection comes back and by the
    ///   maintenance thread while it idles; never while it is borrowed.
    Adaptive {
        /// Lifetime of a connection while the pool sees no errors.
        base_lifetime: Duration,
        /// Error rate (errors over borrows, `0.0..=1.0`) above which a
        /// connection is retired.
        error_threshold: f64,
    },
}

impl AgingPolicy {
    /// Checks the policy's numbers; the message names the field.
    pub(crate) fn check(&self) -> Result<(), String> {
        match *self {
            AgingPolicy::TimeBased { max_lifetime } | AgingPolicy::Combined { max_lifetime, .. }
                if max_lifetime.is_zero() =>
            {
                Err("aging_policy: max_lifetime must be greater than zero".into())
            }
            AgingPolicy::UsageBased { max_borrows } | AgingPolicy::Combined { max_borrows, .. } if max_borrows == 0 => {
                Err("aging_policy: max_borrows must be at least 1".into())
            }
            AgingPolicy::Adaptive { base_lifetime, .. } if base_lifetime.is_zero() => {
                Err("aging_policy: base_lifetime must be greater than zero".into())
            }
            AgingPolicy::Adaptive { error_threshold, .. } if !(0.0..=1.0).contains(&error_threshold) => {
                Err(format!("aging_policy: error_threshold must be within 0.0..=1.0, got {error_threshold}"))
            }
            _ => Ok(()),
        }
    }
}
