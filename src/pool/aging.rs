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
    /// scale its lifetime with the pool's observed error rate.
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
