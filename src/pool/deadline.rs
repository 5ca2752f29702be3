//! Deadlines from durations that may be huge (`acquire_timeout` of a
//! century, `Duration::MAX`): they wait "forever" rather than overflow
//! `Instant` and panic.

use std::time::{Duration, Instant};

/// `start + timeout`, or a century from `start` if that overflows.
pub(crate) fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    start.checked_add(timeout).unwrap_or_else(|| far_future(start))
}

/// A deadline no caller will live to see (a century from `now`).
pub(crate) fn far_future(now: Instant) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(CENTURY).unwrap_or(now)
}
