//! Resource quotas of a pool partition, with meanings the pool can measure.
//!
//! The pool cannot see the database's CPU, memory or disk, so each limit
//! bounds something it does see:
//! - **cpu**: the total connection *hold time* of the partition (how long
//!   each borrow held its connection, plus CPU time users report through the
//!   guard) within a rolling window ([`QUOTA_WINDOW`] by default), kept as a
//!   ring of [`BUCKETS`] fixed buckets of `window / BUCKETS` each;
//! - **memory**: the bytes borrowers *report* in use: reserved while a
//!   borrow runs, freed when it ends;
//! - **io**: operations per second, as a token bucket refilling at the limit
//!   per second with a burst of the limit, starting full.
//!
//! Exceeding a limit is a *violation*: it is counted per resource and
//! reported as `Err(`[`Resource`]`)`. No limit (`None`) never refuses, but
//! usage is still tracked. Time only moves forward: a `now` earlier than the
//! last one seen counts as the last one seen.

use std::time::{Duration, Instant};

/// The default length of the rolling window the cpu limit applies to.
pub(crate) const QUOTA_WINDOW: Duration = Duration::from_secs(60);

/// How many buckets the rolling window is cut into (its granularity is
/// `window / BUCKETS`).
const BUCKETS: usize = 60;

/// Io tokens are kept in units of a billionth of a token, so that a refill
/// of `rate` tokens per second is exactly `rate` units per nanosecond and
/// no fraction is lost to rounding, however often the bucket refills.
const UNITS_PER_TOKEN: u128 = 1_000_000_000;

/// Which limit a check ran into (the pool's public name for it).
pub(crate) use crate::pool::error::QuotaResource as Resource;

/// How many times each limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Violations {
    /// Refused admissions for hold time, and charges that took the window
    /// over the cpu limit.
    pub(crate) cpu: u64,
    /// Refused admissions and reservations for memory.
    pub(crate) memory: u64,
    /// Refused admissions and takes for io.
    pub(crate) io: u64,
}

impl Violations {
    /// All violations, of every resource (saturating).
    pub(crate) fn total(&self) -> u64 {
        self.cpu.saturating_add(self.memory).saturating_add(self.io)
    }
}

/// A partition's usage at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuotaUsage {
    /// Hold time charged within the rolling window.
    pub(crate) cpu_in_window: Duration,
    /// Bytes reserved and not yet freed.
    pub(crate) memory_in_use: u64,
    /// Tokens in the io bucket; `f64::INFINITY` without an io limit.
    pub(crate) io_tokens: f64,
}

/// The quotas of one partition: its limits, its usage and its violations.
///
/// Not synchronised: the partition keeps it behind its own lock.
#[derive(Debug)]
pub(crate) struct Quotas {
    cpu_limit: Option<Duration>,
    memory_limit: Option<u64>,
    io_limit: Option<u64>,
    /// The latest `now` seen; earlier ones are read as this one.
    now: Instant,
    /// Bucket `i` covers ticks `t` with `t % BUCKETS == i`; tick `t` is
    /// `[origin + t * granularity, origin + (t + 1) * granularity)`.
    origin: Instant,
    granularity: Duration,
    /// The tick of `now`; its bucket takes the charges.
    tick: u64,
    cpu_buckets: [Duration; BUCKETS],
    memory_in_use: u64,
    /// Io tokens in billionths (see [`UNITS_PER_TOKEN`]), at most the burst.
    io_units: u128,
    violations: Violations,
}

impl Quotas {
    /// Quotas with the given limits (`None`: unlimited), a cpu window of
    /// `window` (see [`QUOTA_WINDOW`]) starting at `now`, no usage and a
    /// full io bucket.
    ///
    /// The window is cut into [`BUCKETS`] buckets of `window / BUCKETS`
    /// (at least a nanosecond), counted from `now`; the effective window is
    /// `BUCKETS` of them (`window` rounded down to a multiple of 60 ns, and
    /// exactly `window` for the default 60 s). A charge leaves the window
    /// when its bucket does: between one bucket short of a window and a
    /// whole window after it was made.
    pub(crate) fn new(
        cpu_limit: Option<Duration>,
        memory_limit: Option<u64>,
        io_limit: Option<u64>,
        window: Duration,
        now: Instant,
    ) -> Self {
        let granularity = (window / BUCKETS as u32).max(Duration::from_nanos(1));
        Quotas {
            cpu_limit,
            memory_limit,
            io_limit,
            now,
            origin: now,
            granularity,
            tick: 0,
            cpu_buckets: [Duration::ZERO; BUCKETS],
            memory_in_use: 0,
            io_units: io_limit.map_or(0, io_burst_units),
            violations: Violations::default(),
        }
    }

    /// Whether a new borrow may start now, checking in this order:
    /// `Err(Cpu)` if the hold time in the window has reached the cpu limit
    /// (`>=`: a window holding exactly the limit refuses), `Err(Memory)` if
    /// memory in use has reached the memory limit (`>=`), `Err(Io)` if the io
    /// bucket holds less than one token. Takes no token. Counts one
    /// violation, of the resource returned, on `Err`.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Resource> {
        self.advance(now);
        if self.cpu_limit.is_some_and(|limit| self.cpu_in_window() >= limit) {
            return Err(self.violation(Resource::Cpu));
        }
        if self.memory_limit.is_some_and(|limit| self.memory_in_use >= limit) {
            return Err(self.violation(Resource::Memory));
        }
        if self.io_limit.is_some() && self.io_units < UNITS_PER_TOKEN {
            return Err(self.violation(Resource::Io));
        }
        Ok(())
    }

    /// Charges hold time (a borrow ended, or CPU a user reported) to the
    /// window, in the bucket of `now`: a hold spanning buckets is charged
    /// whole to the bucket it ends in. Never refuses; going over shows at the
    /// next [`admit`](Self::admit). Returns `Err(Cpu)`, counting a violation,
    /// if this charge took the window over the limit: from at most the limit
    /// before to more than it after (`>`: ending at exactly the limit is
    /// `Ok`, and a charge to a window already over it is `Ok` too). The time
    /// is charged either way.
    pub(crate) fn charge_cpu(&mut self, now: Instant, held: Duration) -> Result<(), Resource> {
        self.advance(now);
        let before = self.cpu_in_window();
        let bucket = &mut self.cpu_buckets[bucket_index(self.tick)];
        *bucket = bucket.saturating_add(held);
        match self.cpu_limit {
            Some(limit) if before <= limit && self.cpu_in_window() > limit => Err(self.violation(Resource::Cpu)),
            _ => Ok(()),
        }
    }

    /// Reserves `bytes` of reported memory until
    /// [`free_memory`](Self::free_memory). `Err(Memory)`, reserving nothing
    /// and counting a violation, if the in-use total would go over the limit
    /// (`>`: reaching exactly the limit is allowed).
    pub(crate) fn reserve_memory(&mut self, bytes: u64) -> Result<(), Resource> {
        let total = self.memory_in_use.checked_add(bytes);
        match (self.memory_limit, total) {
            (None, _) => {
                self.memory_in_use = self.memory_in_use.saturating_add(bytes);
                Ok(())
            }
            (Some(limit), Some(total)) if total <= limit => {
                self.memory_in_use = total;
                Ok(())
            }
            (Some(_), _) => Err(self.violation(Resource::Memory)),
        }
    }

    /// Frees `bytes` reserved by [`reserve_memory`](Self::reserve_memory)
    /// (saturating at zero if more is freed than is in use).
    pub(crate) fn free_memory(&mut self, bytes: u64) {
        self.memory_in_use = self.memory_in_use.saturating_sub(bytes);
    }

    /// Takes `ops` io tokens after refilling the bucket up to `now`.
    /// `Err(Io)`, taking none and counting a violation, if the bucket holds
    /// fewer than `ops` (holding exactly `ops` succeeds); more than the burst
    /// (the io limit) always fails.
    pub(crate) fn take_io(&mut self, now: Instant, ops: u64) -> Result<(), Resource> {
        self.advance(now);
        let Some(limit) = self.io_limit else {
            return Ok(());
        };
        let needed = u128::from(ops).saturating_mul(UNITS_PER_TOKEN);
        if ops > limit || needed > self.io_units {
            return Err(self.violation(Resource::Io));
        }
        self.io_units -= needed;
        Ok(())
    }

    /// Usage at `now`: the window rotated and the io bucket refilled to it.
    pub(crate) fn usage(&mut self, now: Instant) -> QuotaUsage {
        self.advance(now);
        QuotaUsage {
            cpu_in_window: self.cpu_in_window(),
            memory_in_use: self.memory_in_use,
            io_tokens: match self.io_limit {
                Some(_) => self.io_units as f64 / UNITS_PER_TOKEN as f64,
                None => f64::INFINITY,
            },
        }
    }

    /// The violations counted so far.
    pub(crate) fn violations(&self) -> Violations {
        self.violations
    }

    /// Moves time to `now` (or keeps it, if `now` is earlier): rotates the
    /// window, emptying the buckets of the ticks passed, and refills the io
    /// bucket for the time elapsed, up to its burst.
    fn advance(&mut self, now: Instant) {
        if now <= self.now {
            return;
        }
        let elapsed = now.duration_since(self.now);
        self.now = now;

        let since_origin = now.duration_since(self.origin).as_nanos();
        let tick = u64::try_from(since_origin / self.granularity.as_nanos()).unwrap_or(u64::MAX);
        let passed = tick.saturating_sub(self.tick);
        if passed >= BUCKETS as u64 {
            self.cpu_buckets = [Duration::ZERO; BUCKETS];
        } else {
            for t in 1..=passed {
                self.cpu_buckets[bucket_index(self.tick.wrapping_add(t))] = Duration::ZERO;
            }
        }
        self.tick = tick;

        if let Some(limit) = self.io_limit {
            // `limit` tokens per second is `limit` units per nanosecond.
            let refill = elapsed.as_nanos().saturating_mul(u128::from(limit));
            self.io_units = self.io_units.saturating_add(refill).min(io_burst_units(limit));
        }
    }

    /// Hold time in the window: the sum of its buckets (saturating).
    fn cpu_in_window(&self) -> Duration {
        self.cpu_buckets.iter().fold(Duration::ZERO, |sum, b| sum.saturating_add(*b))
    }

    /// Counts a violation of `resource`, and returns it.
    fn violation(&mut self, resource: Resource) -> Resource {
        let count = match resource {
            Resource::Cpu => &mut self.violations.cpu,
            Resource::Memory => &mut self.violations.memory,
            Resource::Io => &mut self.violations.io,
        };
        *count = count.saturating_add(1);
        resource
    }
}

/// The bucket of `tick` in the ring.
fn bucket_index(tick: u64) -> usize {
    // The remainder is below BUCKETS, so it fits.
    (tick % BUCKETS as u64) as usize
}

/// A full io bucket for a limit of `limit` ops per second, in units.
fn io_burst_units(limit: u64) -> u128 {
    u128::from(limit).saturating_mul(UNITS_PER_TOKEN)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn cpu(limit: Duration, t0: Instant) -> Quotas {
        Quotas::new(Some(limit), None, None, QUOTA_WINDOW, t0)
    }

    #[test]
    fn resource_names() {
        assert_eq!(Resource::Cpu.as_str(), "cpu");
        assert_eq!(Resource::Memory.to_string(), "memory");
        assert_eq!(Resource::Io.as_str(), "io");
    }

    #[test]
    fn cpu_charges_within_the_window_add_up() {
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        assert_eq!(q.charge_cpu(t0, secs(10)), Ok(()));
        assert_eq!(q.charge_cpu(t0 + secs(5), secs(10)), Ok(()));
        assert_eq!(q.charge_cpu(t0 + secs(59), secs(5)), Ok(()));
        assert_eq!(q.usage(t0 + secs(59)).cpu_in_window, secs(25));
        assert_eq!(q.admit(t0 + secs(59)), Ok(()));
        assert_eq!(q.violations(), Violations::default());
    }

    #[test]
    fn cpu_admit_refuses_at_exactly_the_limit() {
        // `>=` refuses: a window holding exactly the limit admits no more.
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        assert_eq!(q.charge_cpu(t0, secs(40) - Duration::from_nanos(1)), Ok(()));
        assert_eq!(q.admit(t0), Ok(()), "one nanosecond under the limit admits");
        assert_eq!(q.charge_cpu(t0, Duration::from_nanos(1)), Ok(()), "reaching the limit is not over it");
        assert_eq!(q.admit(t0), Err(Resource::Cpu));
        assert_eq!(q.violations().cpu, 1);
    }

    #[test]
    fn cpu_charges_older_than_the_window_drop_out_bucket_by_bucket() {
        // 1 s buckets: a charge in the bucket [k, k+1) s counts until k + 60 s.
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        assert_eq!(q.charge_cpu(t0, secs(30)), Ok(()));
        assert_eq!(q.charge_cpu(t0 + secs(10), secs(10)), Ok(()));
        assert_eq!(q.admit(t0 + secs(10)), Err(Resource::Cpu), "30 + 10 = the 40 s limit");
        assert_eq!(q.usage(t0 + secs(59) + SEC / 2).cpu_in_window, secs(40));
        assert_eq!(q.admit(t0 + secs(59) + SEC / 2), Err(Resource::Cpu));
        // At 60 s the bucket of t0 leaves the window; the one of 10 s stays.
        assert_eq!(q.usage(t0 + secs(60)).cpu_in_window, secs(10));
        assert_eq!(q.admit(t0 + secs(60)), Ok(()));
        assert_eq!(q.usage(t0 + secs(69) + SEC / 2).cpu_in_window, secs(10));
        assert_eq!(q.usage(t0 + secs(70)).cpu_in_window, Duration::ZERO);
        assert_eq!(q.violations().cpu, 2);
    }

    #[test]
    fn cpu_charge_mid_bucket_counts_until_its_bucket_leaves() {
        // Charged at 0.9 s (bucket [0, 1) s): gone at 60 s, 59.1 s later.
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        assert_eq!(q.charge_cpu(t0 + SEC * 9 / 10, secs(5)), Ok(()));
        assert_eq!(q.usage(t0 + secs(60) - Duration::from_nanos(1)).cpu_in_window, secs(5));
        assert_eq!(q.usage(t0 + secs(60)).cpu_in_window, Duration::ZERO);
    }

    #[test]
    fn cpu_idle_across_many_windows_resets_to_zero() {
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        for s in 0..60 {
            assert_eq!(q.charge_cpu(t0 + secs(s), SEC / 2), Ok(()));
        }
        assert_eq!(q.usage(t0 + secs(59)).cpu_in_window, secs(30));
        // Idle for 1000 windows, landing on the same ring position.
        let later = t0 + secs(59) + QUOTA_WINDOW * 1000;
        assert_eq!(q.usage(later).cpu_in_window, Duration::ZERO);
        assert_eq!(q.charge_cpu(later, secs(1)), Ok(()));
        assert_eq!(q.usage(later).cpu_in_window, secs(1));
    }

    #[test]
    fn cpu_charge_crossing_the_limit_is_a_violation_but_still_charged() {
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        assert_eq!(q.charge_cpu(t0, secs(30)), Ok(()));
        assert_eq!(q.charge_cpu(t0 + secs(1), secs(15)), Err(Resource::Cpu));
        assert_eq!(q.violations().cpu, 1);
        assert_eq!(q.usage(t0 + secs(1)).cpu_in_window, secs(45));
        // Already over: the charge is not the one that crossed.
        assert_eq!(q.charge_cpu(t0 + secs(2), secs(1)), Ok(()));
        assert_eq!(q.violations().cpu, 1);
        assert_eq!(q.admit(t0 + secs(2)), Err(Resource::Cpu));
        assert_eq!(q.violations().cpu, 2);
    }

    #[test]
    fn cpu_huge_charges_saturate() {
        let t0 = Instant::now();
        let mut q = cpu(secs(40), t0);
        assert_eq!(q.charge_cpu(t0, Duration::MAX), Err(Resource::Cpu));
        assert_eq!(q.charge_cpu(t0 + secs(1), Duration::MAX), Ok(()));
        assert_eq!(q.usage(t0 + secs(1)).cpu_in_window, Duration::MAX);
    }

    #[test]
    fn cpu_tiny_window_does_not_divide_by_zero() {
        let t0 = Instant::now();
        let mut q = Quotas::new(Some(SEC), None, None, Duration::ZERO, t0);
        assert_eq!(q.charge_cpu(t0, SEC), Ok(()));
        assert_eq!(q.admit(t0), Err(Resource::Cpu));
        assert_eq!(q.usage(t0 + secs(1)).cpu_in_window, Duration::ZERO);
    }

    #[test]
    fn memory_exactly_the_limit_fits_one_byte_over_does_not() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, Some(1000), None, QUOTA_WINDOW, t0);
        assert_eq!(q.reserve_memory(600), Ok(()));
        assert_eq!(q.reserve_memory(401), Err(Resource::Memory));
        assert_eq!(q.usage(t0).memory_in_use, 600, "a refused reservation reserves nothing");
        assert_eq!(q.admit(t0), Ok(()));
        assert_eq!(q.reserve_memory(400), Ok(()));
        assert_eq!(q.usage(t0).memory_in_use, 1000);
        // `>=` refuses admission: memory in use at the limit.
        assert_eq!(q.admit(t0), Err(Resource::Memory));
        assert_eq!(q.reserve_memory(1), Err(Resource::Memory));
        assert_eq!(q.reserve_memory(u64::MAX), Err(Resource::Memory), "no overflow");
        assert_eq!(q.usage(t0).memory_in_use, 1000);
        assert_eq!(q.violations().memory, 4);
    }

    #[test]
    fn memory_free_lets_more_in_and_saturates_at_zero() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, Some(1000), None, QUOTA_WINDOW, t0);
        assert_eq!(q.reserve_memory(1000), Ok(()));
        assert_eq!(q.reserve_memory(100), Err(Resource::Memory));
        q.free_memory(100);
        assert_eq!(q.reserve_memory(100), Ok(()));
        q.free_memory(5000);
        assert_eq!(q.usage(t0).memory_in_use, 0);
        assert_eq!(q.reserve_memory(1000), Ok(()), "the over-free did not leave credit");
        assert_eq!(q.reserve_memory(1), Err(Resource::Memory));
    }

    #[test]
    fn io_starts_full_and_refuses_the_one_past_the_burst() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, None, Some(100), QUOTA_WINDOW, t0);
        assert_eq!(q.usage(t0).io_tokens, 100.0);
        assert_eq!(q.take_io(t0, 100), Ok(()));
        assert_eq!(q.usage(t0).io_tokens, 0.0);
        assert_eq!(q.take_io(t0, 1), Err(Resource::Io));
        assert_eq!(q.admit(t0), Err(Resource::Io), "less than one token");
        assert_eq!(q.violations().io, 2);
    }

    #[test]
    fn io_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, None, Some(100), QUOTA_WINDOW, t0);
        assert_eq!(q.take_io(t0, 100), Ok(()));
        let half = t0 + SEC / 2;
        assert_eq!(q.usage(half).io_tokens, 50.0);
        assert_eq!(q.take_io(half, 51), Err(Resource::Io), "a refused take takes none");
        assert_eq!(q.take_io(half, 50), Ok(()));
        assert_eq!(q.take_io(half, 1), Err(Resource::Io));
        // Many small refills lose nothing to rounding: 10 ms is one token.
        for i in 1..=10u32 {
            assert_eq!(q.usage(half + Duration::from_millis(10) * i).io_tokens, f64::from(i));
        }
        assert_eq!(q.take_io(half + Duration::from_millis(100), 10), Ok(()));
    }

    #[test]
    fn io_never_above_the_burst() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, None, Some(100), QUOTA_WINDOW, t0);
        assert_eq!(q.take_io(t0, 30), Ok(()));
        let later = t0 + secs(3600);
        assert_eq!(q.usage(later).io_tokens, 100.0);
        assert_eq!(q.take_io(later, 100), Ok(()));
        assert_eq!(q.take_io(later, 1), Err(Resource::Io));
        // A huge io limit and a huge idle time saturate instead of overflowing.
        let mut q = Quotas::new(None, None, Some(u64::MAX), QUOTA_WINDOW, t0);
        assert_eq!(q.take_io(t0, u64::MAX), Ok(()));
        let later = t0 + secs(1_000_000_000);
        assert!(q.usage(later).io_tokens <= u64::MAX as f64);
        assert_eq!(q.take_io(later, u64::MAX), Ok(()));
        assert_eq!(q.take_io(later, 1), Err(Resource::Io));
    }

    #[test]
    fn io_more_than_the_burst_always_fails() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, None, Some(100), QUOTA_WINDOW, t0);
        assert_eq!(q.take_io(t0, 101), Err(Resource::Io));
        assert_eq!(q.take_io(t0 + secs(3600), 101), Err(Resource::Io));
        assert_eq!(q.take_io(t0 + secs(3600), u64::MAX), Err(Resource::Io));
        assert_eq!(q.usage(t0 + secs(3600)).io_tokens, 100.0, "failed takes took nothing");
        assert_eq!(q.violations().io, 3);
    }

    #[test]
    fn zero_limits_refuse_every_admission() {
        let t0 = Instant::now();
        let mut q = Quotas::new(Some(Duration::ZERO), None, None, QUOTA_WINDOW, t0);
        assert_eq!(q.admit(t0), Err(Resource::Cpu));
        let mut q = Quotas::new(None, Some(0), None, QUOTA_WINDOW, t0);
        assert_eq!(q.admit(t0), Err(Resource::Memory));
        assert_eq!(q.reserve_memory(0), Ok(()));
        let mut q = Quotas::new(None, None, Some(0), QUOTA_WINDOW, t0);
        assert_eq!(q.admit(t0 + secs(3600)), Err(Resource::Io));
        assert_eq!(q.take_io(t0, 0), Ok(()));
    }

    #[test]
    fn no_limits_never_refuse_but_track_usage() {
        let t0 = Instant::now();
        let mut q = Quotas::new(None, None, None, QUOTA_WINDOW, t0);
        assert_eq!(q.charge_cpu(t0, Duration::MAX), Ok(()));
        assert_eq!(q.reserve_memory(u64::MAX), Ok(()));
        assert_eq!(q.reserve_memory(u64::MAX), Ok(()), "saturates");
        assert_eq!(q.take_io(t0, u64::MAX), Ok(()));
        assert_eq!(q.admit(t0), Ok(()));
        let usage = q.usage(t0);
        assert_eq!(usage.cpu_in_window, Duration::MAX);
        assert_eq!(usage.memory_in_use, u64::MAX);
        assert_eq!(usage.io_tokens, f64::INFINITY);
        assert_eq!(q.violations().total(), 0);
    }

    #[test]
    fn violations_are_counted_per_resource() {
        let t0 = Instant::now();
        let mut q = Quotas::new(Some(secs(1)), Some(10), Some(1), QUOTA_WINDOW, t0);
        assert_eq!(q.charge_cpu(t0, secs(2)), Err(Resource::Cpu));
        assert_eq!(q.admit(t0), Err(Resource::Cpu));
        assert_eq!(q.reserve_memory(11), Err(Resource::Memory));
        assert_eq!(q.take_io(t0, 2), Err(Resource::Io));
        assert_eq!(q.take_io(t0, 1), Ok(()));
        assert_eq!(q.take_io(t0, 1), Err(Resource::Io));
        assert_eq!(q.take_io(t0, 1), Err(Resource::Io));
        // Cpu is checked first: one violation per refused admit, cpu's.
        assert_eq!(q.admit(t0), Err(Resource::Cpu));
        let v = q.violations();
        assert_eq!(v, Violations { cpu: 3, memory: 1, io: 3 });
        assert_eq!(v.total(), 7);
        // The window empties: memory and io refuse in turn.
        let later = t0 + QUOTA_WINDOW;
        assert_eq!(q.reserve_memory(10), Ok(()));
        assert_eq!(q.admit(later), Err(Resource::Memory));
        q.free_memory(10);
        assert_eq!(q.take_io(later, 1), Ok(()));
        assert_eq!(q.admit(later), Err(Resource::Io));
        assert_eq!(q.violations(), Violations { cpu: 3, memory: 2, io: 4 });
        assert_eq!(q.violations().total(), 9);
    }

    #[test]
    fn now_going_backwards_neither_panics_nor_refills_nor_rotates() {
        let t0 = Instant::now();
        let t10 = t0 + secs(10);
        let mut q = Quotas::new(Some(secs(40)), None, Some(100), QUOTA_WINDOW, t10);
        assert_eq!(q.take_io(t10, 100), Ok(()));
        assert_eq!(q.charge_cpu(t10, secs(30)), Ok(()));
        // Earlier than anything seen, even than `new`'s `now`: read as t10.
        assert_eq!(q.take_io(t0, 1), Err(Resource::Io));
        assert_eq!(q.usage(t0).io_tokens, 0.0);
        assert_eq!(q.charge_cpu(t0, secs(5)), Ok(()));
        assert_eq!(q.usage(t0).cpu_in_window, secs(35));
        // Forward to 70 s, then back to 40 s: back does not refill again.
        let t70 = t10 + secs(60);
        assert_eq!(q.usage(t70).cpu_in_window, Duration::ZERO);
        assert_eq!(q.take_io(t70, 100), Ok(()));
        assert_eq!(q.charge_cpu(t70, secs(1)), Ok(()));
        let t40 = t10 + secs(30);
        let usage = q.usage(t40);
        assert_eq!(usage.io_tokens, 0.0);
        assert_eq!(usage.cpu_in_window, secs(1));
        // And the clock goes on from t70, not t40.
        assert_eq!(q.usage(t70 + SEC / 2).io_tokens, 50.0);
    }
}
