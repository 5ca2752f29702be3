//! How long borrows hold their connections, and what that says about how
//! waiters should be served (`QueueMode::Fair` and `Priority`).
//!
//! A waiter that may be overtaken (barging) is cheap when borrows are
//! short: the releasing thread is running and takes the connection again
//! at once, and a hand-off to a sleeping waiter would cost more (a wake-up,
//! a few microseconds) than the borrow itself. When borrows wait on the
//! database (a round trip: tens of microseconds and more), waits grow past
//! the fairness threshold, waiters starve all the time, and every release
//! alternates between a futile wake-up (the woken thread finds its
//! connection taken) and a hand-off: worse than either extreme (measured
//! on PostgreSQL, `SELECT 1` at 16 threads on 4 connections: 31 k ops/s
//! with the 500 µs threshold, 60 k serving waiters strictly in order, 62 k
//! unfairly). Next to such a borrow a hand-off costs little, so then the
//! pool serves waiters in order from the first moment.
//!
//! The hold time is not measured per borrow (two clock reads on the fast
//! path): maintenance estimates it each pass by Little's law, from the
//! borrowed connections it sees and the acquires counted since the last
//! pass: `hold = borrowed × elapsed / acquires`, smoothed over passes.
//! With hysteresis, so an estimate near the bound does not flap.

// The maintenance pass that reads it is left out of loom builds.
#![cfg_attr(loom, allow(dead_code))]

use std::time::{Duration, Instant};

/// Borrows holding their connection this long on average (or longer) are
/// served in order from the first moment they wait.
pub(crate) const LONG_HOLD: Duration = Duration::from_micros(50);
/// Below this again, newcomers may overtake a waiter until it has waited
/// the fairness threshold.
pub(crate) const SHORT_HOLD: Duration = Duration::from_micros(25);
/// Fewer acquires than this since the last sample say too little: the
/// estimate waits for more.
const MIN_ACQUIRES: u64 = 32;

/// The estimate, kept by the maintenance job between passes.
#[derive(Debug, Default)]
pub(crate) struct HoldEstimate {
    /// When the last sample was taken, and the pool's acquires then.
    last: Option<(Instant, u64)>,
    /// Smoothed hold time, in nanoseconds (0 before the first sample).
    hold_nanos: f64,
    long: bool,
}

impl HoldEstimate {
    /// Takes a sample: `borrowed` connections now, `acquires` since the pool
    /// began. Returns whether borrows are long (waiters served in order).
    pub(crate) fn observe(&mut self, now: Instant, borrowed: usize, acquires: u64) -> bool {
        let Some((then, before)) = self.last else {
            self.last = Some((now, acquires));
            return self.long;
        };
        let count = acquires.saturating_sub(before);
        if count < MIN_ACQUIRES {
            return self.long;
        }
        self.last = Some((now, acquires));
        let elapsed = now.saturating_duration_since(then).as_nanos() as f64;
        let sample = borrowed as f64 * elapsed / count as f64;
        self.hold_nanos = if self.hold_nanos == 0.0 { sample } else { (self.hold_nanos + sample) / 2.0 };
        let bound = if self.long { SHORT_HOLD } else { LONG_HOLD };
        self.long = self.hold_nanos >= bound.as_nanos() as f64;
        self.long
    }

    /// The smoothed hold time.
    #[cfg(test)]
    fn hold(&self) -> Duration {
        Duration::from_nanos(self.hold_nanos as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `passes` samples 100 ms apart, each with `borrowed` connections out
    /// and borrows of `hold` each (so `borrowed * 100 ms / hold` acquires).
    fn run(
        estimate: &mut HoldEstimate,
        start: &mut (Instant, u64),
        passes: u32,
        borrowed: usize,
        hold: Duration,
    ) -> bool {
        let mut long = false;
        for _ in 0..passes {
            start.0 += Duration::from_millis(100);
            start.1 += (borrowed as u128 * Duration::from_millis(100).as_nanos() / hold.as_nanos()) as u64;
            long = estimate.observe(start.0, borrowed, start.1);
        }
        long
    }

    #[test]
    fn round_trips_are_long_and_cpu_bound_borrows_short() {
        let mut estimate = HoldEstimate::default();
        let mut at = (Instant::now(), 0);
        assert!(!run(&mut estimate, &mut at, 1, 4, Duration::from_micros(80)), "one sample: nothing known");
        assert!(run(&mut estimate, &mut at, 3, 4, Duration::from_micros(80)), "80 µs round trips");
        let hold = estimate.hold();
        assert!(hold > Duration::from_micros(75) && hold < Duration::from_micros(85), "{hold:?}");
        assert!(!run(&mut estimate, &mut at, 6, 8, Duration::from_micros(2)), "2 µs of work");
    }

    #[test]
    fn the_bounds_have_hysteresis() {
        let mut estimate = HoldEstimate::default();
        let mut at = (Instant::now(), 0);
        assert!(!run(&mut estimate, &mut at, 8, 4, Duration::from_micros(40)), "40 µs: not yet long");
        assert!(run(&mut estimate, &mut at, 8, 4, Duration::from_micros(60)));
        assert!(run(&mut estimate, &mut at, 8, 4, Duration::from_micros(40)), "long until under 25 µs");
        assert!(!run(&mut estimate, &mut at, 8, 4, Duration::from_micros(20)));
    }

    #[test]
    fn too_few_acquires_keep_the_last_verdict() {
        let mut estimate = HoldEstimate::default();
        let now = Instant::now();
        assert!(!estimate.observe(now, 4, 0));
        assert!(!estimate.observe(now + Duration::from_secs(1), 4, 10), "10 acquires say too little");
        assert!(estimate.observe(now + Duration::from_secs(2), 4, 100), "4 s·conn over 100 acquires: long");
    }
}
