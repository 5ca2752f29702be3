//! Backoff for connection creation while the factory fails.
//!
//! Without it, every waiter would retry `create` the moment a failed attempt
//! frees its slot, hammering a database that is down. After a failure only
//! one attempt is let through per backoff interval, which doubles from
//! [`FIRST_DELAY`] up to [`MAX_DELAY`]; the first success opens the gate.
//! The last error is kept so that callers who time out can be told why.

use std::time::{Duration, Instant};

use super::error::FactoryError;
use crate::sync::{AtomicBool, Mutex, Ordering};

/// Delay after the first failure.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(10);
/// Longest delay between attempts.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: Option<(Instant, FactoryError)>,
}

/// Lets creation attempts through, at a slower pace while the factory fails.
#[derive(Debug, Default)]
pub(crate) struct CreateGate {
    /// Fast check: `false` while the factory works.
    backing_off: AtomicBool,
    state: Mutex<Backoff>,
}

impl CreateGate {
    /// Whether a creation attempt may start now. While backing off, `Err`
    /// carries the instant the next attempt is allowed; the first caller at
    /// or after that instant is let through and the next slot moves on.
    pub(crate) fn permit(&self) -> Result<(), Instant> {
        // Relaxed: a stale `false` lets one extra attempt through, no more.
        if !self.backing_off.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.permit_at(Instant::now())
    }

    fn permit_at(&self, now: Instant) -> Result<(), Instant> {
        let mut b = self.state.lock();
        match b.next_attempt {
            Some(at) if now < at => Err(at),
            _ => {
                b.next_attempt = Some(now + delay(b.failures));
                Ok(())
            }
        }
    }

    /// When the next attempt is allowed, if the gate is backing off.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        if !self.backing_off.load(Ordering::Relaxed) {
            return None;
        }
        self.state.lock().next_attempt
    }

    /// Opens the gate; returns `true` if it was backing off.
    pub(crate) fn on_success(&self) -> bool {
        if !self.backing_off.load(Ordering::Relaxed) {
            return false;
        }
        let mut b = self.state.lock();
        b.failures = 0;
        b.next_attempt = None;
        self.backing_off.store(false, Ordering::Relaxed);
        true
    }

    pub(crate) fn on_failure(&self, now: Instant, error: FactoryError) {
        let mut b = self.state.lock();
        b.failures = b.failures.saturating_add(1);
        b.next_attempt = Some(now + delay(b.failures));
        b.last_error = Some((now, error));
        self.backing_off.store(true, Ordering::Relaxed);
    }

    /// The last factory error, while the gate is backing off because of it.
    pub(crate) fn current_error(&self) -> Option<FactoryError> {
        if !self.backing_off.load(Ordering::Relaxed) {
            return None;
        }
        self.state.lock().last_error.as_ref().map(|(_, e)| e.clone())
    }

    /// The last factory error if it happened at or after `since`.
    pub(crate) fn error_since(&self, since: Instant) -> Option<FactoryError> {
        let b = self.state.lock();
        b.last_error.as_ref().filter(|(at, _)| *at >= since).map(|(_, e)| e.clone())
    }
}

/// `FIRST_DELAY * 2^(failures-1)`, capped at `MAX_DELAY`.
fn delay(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << shift).min(MAX_DELAY)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_the_cap() {
        assert_eq!(delay(1), FIRST_DELAY);
        assert_eq!(delay(2), FIRST_DELAY * 2);
        assert_eq!(delay(3), FIRST_DELAY * 4);
        assert_eq!(delay(100), MAX_DELAY);
    }

    #[test]
    fn one_attempt_per_interval_while_failing() {
        let gate = CreateGate::default();
        let t0 = Instant::now();
        assert!(gate.permit().is_ok());
        assert_eq!(gate.retry_at(), None);
        gate.on_failure(t0, FactoryError::new("down"));
        assert_eq!(gate.permit_at(t0), Err(t0 + FIRST_DELAY));
        assert_eq!(gate.retry_at(), Some(t0 + FIRST_DELAY));
        let t1 = t0 + FIRST_DELAY;
        assert!(gate.permit_at(t1).is_ok(), "the first caller after the delay probes");
        assert!(gate.permit_at(t1).is_err(), "the second one waits for the next slot");
        assert!(gate.error_since(t0).is_some());
        assert!(gate.error_since(t1).is_none());
        assert!(gate.on_success());
        assert!(!gate.on_success());
        assert!(gate.permit().is_ok());
    }
}
