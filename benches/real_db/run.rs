//! One case's closed loop: each worker (a thread, or a task for the async
//! pool) borrows, runs one operation, releases, and starts again, until
//! told to stop. Every operation is timed (they take tens of
//! microseconds, so the clock's cost does not matter): the acquire, and
//! the whole operation from asking for a session to having released it.
//! Operations run during the warm-up are counted apart: the server counts
//! their transactions too (see `counting.rs`).

use std::sync::Barrier;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::workload::{self, Rng, Session, Workload};

pub const WARMING: u8 = 0;
pub const MEASURING: u8 = 1;
pub const STOPPED: u8 = 2;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// One worker's counts.
pub struct Tally {
    /// Operations started while measuring.
    measured: u64,
    /// Every operation, warm-up included.
    all: u64,
    op: Histogram<u64>,
    acquire: Histogram<u64>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally { measured: 0, all: 0, op: histogram(), acquire: histogram() }
    }

    /// An operation that started in `phase`, its acquire and its whole time.
    pub fn record(&mut self, phase: u8, acquire: Duration, op: Duration) {
        self.all += 1;
        if phase == MEASURING {
            self.measured += 1;
            self.op.saturating_record(nanos(op));
            self.acquire.saturating_record(nanos(acquire));
        }
    }
}

/// What one case measured.
pub struct Outcome {
    /// Operations each worker started while measuring.
    pub per_worker: Vec<u64>,
    /// Every operation run on the pool, warm-up included.
    pub all_ops: u64,
    pub elapsed: Duration,
    /// Operation latency (acquire, statements, release), in nanoseconds.
    pub op: Histogram<u64>,
    /// Acquire latency, in nanoseconds.
    pub acquire: Histogram<u64>,
}

impl Outcome {
    pub fn new(tallies: Vec<Tally>, elapsed: Duration) -> Outcome {
        let (mut op, mut acquire) = (histogram(), histogram());
        let mut per_worker = Vec::with_capacity(tallies.len());
        let mut all_ops = 0;
        for tally in tallies {
            op.add(&tally.op).expect("same bounds");
            acquire.add(&tally.acquire).expect("same bounds");
            per_worker.push(tally.measured);
            all_ops += tally.all;
        }
        Outcome { per_worker, all_ops, elapsed, op, acquire }
    }

    /// Operations started while measuring.
    pub fn ops(&self) -> u64 {
        self.per_worker.iter().sum()
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64()
    }

    /// Fewest over most operations of any worker (1.0 = perfectly even).
    pub fn fairness(&self) -> f64 {
        let min = self.per_worker.iter().copied().min().unwrap_or(0);
        let max = self.per_worker.iter().copied().max().unwrap_or(0);
        if max == 0 { 0.0 } else { min as f64 / max as f64 }
    }
}

/// Drives the phases from the calling thread: warm-up, measurement, stop.
/// Returns the measured time.
pub fn timeline(phase: &AtomicU8, warm_up: Duration, duration: Duration) -> Duration {
    std::thread::sleep(warm_up);
    // Relaxed: a worker that sees the change an operation late counts one
    // operation more or less, nothing else depends on it.
    phase.store(MEASURING, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(duration);
    phase.store(STOPPED, Ordering::Relaxed);
    started.elapsed()
}

/// A blocking pool, as the loop sees it.
pub trait Borrow: Sync {
    type Session<'a>: Session
    where
        Self: 'a;

    /// A session, waiting as long as the pool makes its callers wait.
    fn borrow(&self) -> Self::Session<'_>;
}

/// Runs `workload` on `threads` threads against `pool`.
pub fn run<B: Borrow>(pool: &B, workload: Workload, threads: usize, warm_up: Duration, duration: Duration) -> Outcome {
    let phase = AtomicU8::new(WARMING);
    let start_line = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (phase, start_line) = (&phase, &start_line);
                s.spawn(move || {
                    let mut rng = Rng::new(i as u64 + 1);
                    let mut tally = Tally::new();
                    start_line.wait();
                    loop {
                        // Relaxed: see `timeline`.
                        let now = phase.load(Ordering::Relaxed);
                        if now == STOPPED {
                            break;
                        }
                        let params = rng.params();
                        let start = Instant::now();
                        let mut session = pool.borrow();
                        let acquired = start.elapsed();
                        workload::run(&mut session, workload, params);
                        drop(session);
                        tally.record(now, acquired, start.elapsed());
                    }
                    tally
                })
            })
            .collect();
        start_line.wait();
        let elapsed = timeline(&phase, warm_up, duration);
        let tallies = workers.into_iter().map(|w| w.join().expect("a benchmark thread")).collect();
        Outcome::new(tallies, elapsed)
    })
}
