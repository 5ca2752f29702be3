//! The workloads and the loop that runs one case: `threads` threads doing
//! operations until told to stop, each counting its own operations and
//! timing one acquire in every [`SAMPLE_EVERY`].

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::subjects::Driver;

/// One acquire in this many is timed: reading the clock twice costs about
/// 50 ns here, so timing every acquire would measure the clock.
pub const SAMPLE_EVERY: u64 = 64;

/// What a thread does while it holds a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Nothing: acquire and drop.
    Cycle,
    /// About 1 µs of busy work.
    Hold,
    /// About 1 µs of busy work, then `yield_now()`, as a thread blocked in
    /// I/O would: with more threads than connections the pool runs empty.
    HoldYield,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Cycle, Workload::Hold, Workload::HoldYield];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Cycle => "cycle",
            Workload::Hold => "hold",
            Workload::HoldYield => "hold-yield",
        }
    }

    #[inline]
    pub fn while_holding(self) {
        match self {
            Workload::Cycle => {}
            Workload::Hold => busy_work(),
            Workload::HoldYield => {
                busy_work();
                std::thread::yield_now();
            }
        }
    }
}

/// Spin iterations per microsecond, set by [`calibrate`].
static SPINS_PER_MICRO: AtomicU64 = AtomicU64::new(100);

fn spin(iterations: u64) {
    let mut x = 0u64;
    for i in 0..iterations {
        x = black_box(x.wrapping_add(i));
    }
    black_box(x);
}

/// About one microsecond of work that touches no shared memory.
fn busy_work() {
    // Relaxed: a constant after calibration.
    spin(SPINS_PER_MICRO.load(Ordering::Relaxed));
}

/// Measures how many spin iterations take a microsecond (the fastest of a
/// few tries, so a busy machine does not shorten the work).
pub fn calibrate() {
    const N: u64 = 200_000;
    let best = (0..7)
        .map(|_| {
            let start = Instant::now();
            spin(N);
            start.elapsed()
        })
        .min()
        .expect("tries");
    let per_micro = (N as f64 * 1_000.0 / best.as_nanos().max(1) as f64).max(1.0) as u64;
    SPINS_PER_MICRO.store(per_micro, Ordering::Relaxed);
}

/// What one case measured.
pub struct Outcome {
    /// Operations completed by each thread.
    pub per_thread: Vec<u64>,
    pub elapsed: Duration,
    /// Sampled acquire latencies, in nanoseconds.
    pub latency: Histogram<u64>,
    /// The process's context switches while measuring, where the OS
    /// reports them: voluntary (a thread went to sleep: parked, waited on
    /// a futex) and involuntary (`yield_now()`, or preempted).
    pub switches: Option<Switches>,
}

/// Context switches, split by cause.
#[derive(Debug, Clone, Copy)]
pub struct Switches {
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Switches {
    /// The whole process's counts so far (every thread, exited ones too).
    #[cfg(unix)]
    fn now() -> Option<Switches> {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` is a valid, writable `rusage`; getrusage fills it
        // on success, and zeroed is a valid `rusage` if it does not.
        let (rc, usage) = unsafe { (libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), usage.assume_init()) };
        (rc == 0).then(|| Switches {
            voluntary: u64::try_from(usage.ru_nvcsw).unwrap_or(0),
            involuntary: u64::try_from(usage.ru_nivcsw).unwrap_or(0),
        })
    }

    #[cfg(not(unix))]
    fn now() -> Option<Switches> {
        None
    }

    fn since(self, earlier: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

impl Outcome {
    /// Operations completed by all threads.
    pub fn ops(&self) -> u64 {
        self.per_thread.iter().sum()
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.ops() as f64 / self.elapsed.as_secs_f64()
    }

    /// Fewest over most operations per thread (1.0 = perfectly even).
    pub fn fairness(&self) -> f64 {
        let min = self.per_thread.iter().copied().min().unwrap_or(0);
        let max = self.per_thread.iter().copied().max().unwrap_or(0);
        if max == 0 { 0.0 } else { min as f64 / max as f64 }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// The warm-up before a case of `duration` is measured, nothing counted:
/// a quarter of `duration`, at most 250 ms, so every thread is running and
/// the pool has settled.
pub fn warm_up(duration: Duration) -> Duration {
    (duration / 4).min(Duration::from_millis(250))
}

/// Runs `workload` on `threads` threads against `driver` for a
/// [`warm_up`], then for `duration`.
pub fn run<D: Driver>(driver: &D, workload: Workload, threads: usize, duration: Duration) -> Outcome {
    let phase = AtomicU8::new(WARMING);
    let start_line = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut latency = histogram();
                    let mut ops = 0u64;
                    let mut measuring = false;
                    start_line.wait();
                    loop {
                        // Relaxed: a stale phase only counts (or skips) one more operation.
                        match phase.load(Ordering::Relaxed) {
                            STOPPED => break,
                            MEASURING if !measuring => {
                                measuring = true;
                                ops = 0;
                                latency.reset();
                            }
                            _ => {}
                        }
                        if ops % SAMPLE_EVERY == 0 {
                            if let Some(nanos) = driver.op(workload, true) {
                                latency.saturating_record(nanos.max(1));
                            }
                        } else {
                            driver.op(workload, false);
                        }
                        ops += 1;
                    }
                    (ops, latency)
                })
            })
            .collect();
        start_line.wait();
        std::thread::sleep(warm_up(duration));
        let switches_before = Switches::now();
        phase.store(MEASURING, Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(duration);
        phase.store(STOPPED, Ordering::Relaxed);
        let elapsed = started.elapsed();
        // Counted by the OS, not sampled: this sleeping thread adds one.
        let switches = Switches::now().zip(switches_before).map(|(after, before)| after.since(before));
        let mut per_thread = Vec::with_capacity(threads);
        let mut latency = histogram();
        for worker in workers {
            let (ops, hist) = worker.join().expect("benchmark thread");
            per_thread.push(ops);
            latency.add(hist).expect("same bounds");
        }
        Outcome { per_thread, elapsed, latency, switches }
    })
}
