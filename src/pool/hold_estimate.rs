//! How long borrows hold their connections, and the starvation threshold
//! that follows from it (`QueueMode::Fair` and `Priority`).
//!
//! Letting newcomers overtake a waiter (barging) is what makes the pool
//! fast when threads outnumber connections: the thread that returns a
//! connection is running and takes it again at once, while a hand-off to a
//! sleeping waiter puts a wake-up between every two borrows. The fairness
//! threshold bounds how long a waiter can be overtaken. With borrows of a
//! few microseconds, waits stay far below its 500 µs. With borrows that
//! wait on the database (a round trip: tens of microseconds and more),
//! every wait passes it, so every release hands off to a sleeping thread
//! and the pool runs at the speed of wake-ups: measured on PostgreSQL
//! (`SELECT 1`, 16 threads on 4 connections, medians of three runs, one
//! machine), 36 k ops/s with 500 µs, 49 k with 1 ms, 52 k with 1.5 ms,
//! 53 k with 2 ms and 63 k with 4 ms, against r2d2's 46 k, while the op
//! p99 grows about as the threshold does (1.4, 1.5, 2.0, 2.5 and 4.3 ms;
//! r2d2 4.4 ms) and fairness stays 0.88 to 0.94. Strict arrival order
//! from the first moment gave 39 k with a 0.8 ms p99.
//!
//! So while borrows are long, the threshold in force is 20 borrows' worth
//! of hold time, between the configured threshold and 2 ms (never below
//! the configured one): waits stay bounded by a couple of milliseconds,
//! far below what an unfair pool lets them reach, and most releases need
//! no wake-up.
//!
//! The hold time is not measured per borrow (two clock reads on the fast
//! path): maintenance estimates it each pass by Little's law, from the
//! borrowed connections it sees and the acquires counted since the last
//! pass: `hold = borrowed × elapsed / acquires`, smoothed over passes. With
//! hysteresis, so an estimate near the bound does not flap.

// The maintenance pass that reads it is left out of loom builds.
#![cfg_attr(loom, allow(dead_code))]

use std::time::{Duration, Instant};

/// Borrows holding their connection this long on average (or longer) are
/// long: the starvation threshold follows their hold time.
pub(crate) const LONG_HOLD: Duration = Duration::from_micros(50);
/// Below this again, they are short: the configured threshold applies.
pub(crate) const SHORT_HOLD: Duration = Duration::from_micros(25);
/// The threshold in force while borrows are long: this many borrows' worth
/// of hold time...
const HOLDS_PER_THRESHOLD: u32 = 20;
/// ... but not longer than this (unless the configured threshold is).
pub(crate) const MAX_RAISED_THRESHOLD: Duration = Duration::from_millis(2);
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

/// What the estimate says after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holds {
    /// Short (or not known yet): the configured threshold applies.
    Short,
    /// Long, this long on average.
    Long(Duration),
}

impl Holds {
    /// The starvation threshold to apply, given the configured one.
    pub(crate) fn threshold(self, configured: Duration) -> Duration {
        match self {
            Holds::Short => configured,
            Holds::Long(hold) => (hold * HOLDS_PER_THRESHOLD).min(MAX_RAISED_THRESHOLD).max(configured),
        }
    }
}

impl HoldEstimate {
    /// Takes a sample: `borrowed` connections now, `acquires` since the pool
    /// began.
    pub(crate) fn observe(&mut self, now: Instant, borrowed: usize, acquires: u64) -> Holds {
        let Some((then, before)) = self.last else {
            self.last = Some((now, acquires));
            return self.holds();
        };
        let count = acquires.saturating_sub(before);
        if count < MIN_ACQUIRES {
            return self.holds();
        }
        self.last = Some((now, acquires));
        let elapsed = now.saturating_duration_since(then).as_nanos() as f64;
        let sample = borrowed as f64 * elapsed / count as f64;
        self.hold_nanos = if self.hold_nanos == 0.0 { sample } else { (self.hold_nanos + sample) / 2.0 };
        let bound = if self.long { SHORT_HOLD } else { LONG_HOLD };
        self.long = self.hold_nanos >= bound.as_nanos() as f64;
        self.holds()
    }

    fn holds(&self) -> Holds {
        if self.long { Holds::Long(Duration::from_nanos(self.hold_nanos as u64)) } else { Holds::Short }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIGURED: Duration = Duration::from_micros(500);

    /// `passes` samples 100 ms apart, each with `borrowed` connections out
    /// and borrows of `hold` each (so `borrowed * 100 ms / hold` acquires).
    fn run(
        estimate: &mut HoldEstimate,
        at: &mut (Instant, u64),
        passes: u32,
        borrowed: usize,
        hold: Duration,
    ) -> Holds {
        let mut holds = Holds::Short;
        for _ in 0..passes {
            at.0 += Duration::from_millis(100);
            at.1 += (borrowed as u128 * Duration::from_millis(100).as_nanos() / hold.as_nanos()) as u64;
            holds = estimate.observe(at.0, borrowed, at.1);
        }
        holds
    }

    #[test]
    fn round_trips_are_long_and_raise_the_threshold_cpu_bound_borrows_do_not() {
        let mut estimate = HoldEstimate::default();
        let mut at = (Instant::now(), 0);
        assert_eq!(run(&mut estimate, &mut at, 1, 4, Duration::from_micros(80)), Holds::Short, "nothing known yet");
        let Holds::Long(hold) = run(&mut estimate, &mut at, 3, 4, Duration::from_micros(80)) else {
            panic!("80 µs round trips are long");
        };
        assert!(hold > Duration::from_micros(75) && hold < Duration::from_micros(85), "{hold:?}");
        let threshold = Holds::Long(hold).threshold(CONFIGURED);
        assert!(threshold > Duration::from_micros(1500) && threshold < Duration::from_micros(1700), "{threshold:?}");
        assert_eq!(run(&mut estimate, &mut at, 6, 8, Duration::from_micros(2)), Holds::Short, "2 µs of work");
        assert_eq!(Holds::Short.threshold(CONFIGURED), CONFIGURED);
    }

    #[test]
    fn the_raised_threshold_has_bounds() {
        let long = |us| Holds::Long(Duration::from_micros(us));
        assert_eq!(long(1000).threshold(CONFIGURED), MAX_RAISED_THRESHOLD, "at most 2 ms");
        assert_eq!(long(20).threshold(CONFIGURED), CONFIGURED, "never below the configured one");
        assert_eq!(
            long(1000).threshold(Duration::from_millis(5)),
            Duration::from_millis(5),
            "nor a longer configured one"
        );
    }

    #[test]
    fn the_bounds_have_hysteresis() {
        let mut estimate = HoldEstimate::default();
        let mut at = (Instant::now(), 0);
        let is_long = |h: Holds| matches!(h, Holds::Long(_));
        assert!(!is_long(run(&mut estimate, &mut at, 8, 4, Duration::from_micros(40))), "40 µs: not yet long");
        assert!(is_long(run(&mut estimate, &mut at, 8, 4, Duration::from_micros(60))));
        assert!(is_long(run(&mut estimate, &mut at, 8, 4, Duration::from_micros(40))), "long until under 25 µs");
        assert!(!is_long(run(&mut estimate, &mut at, 8, 4, Duration::from_micros(20))));
    }

    #[test]
    fn too_few_acquires_keep_the_last_verdict() {
        let mut estimate = HoldEstimate::default();
        let now = Instant::now();
        assert_eq!(estimate.observe(now, 4, 0), Holds::Short);
        assert_eq!(estimate.observe(now + Duration::from_secs(1), 4, 10), Holds::Short, "10 acquires say too little");
        assert!(matches!(estimate.observe(now + Duration::from_secs(2), 4, 100), Holds::Long(_)), "80 ms holds");
    }
}
