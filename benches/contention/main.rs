//! rusty-db beside its peers under contention, in one process:
//! rusty-db (fair, unfair, and through `CoreRuntime`), r2d2, and a
//! `parking_lot::Mutex<Vec<_>> + Condvar` pool, over 8 null connections,
//! then rusty-db and r2d2_sqlite running `SELECT 1` on SQLite. Workloads
//! `cycle`, `hold` and `hold-yield` (see `workload.rs`) at 1, 2, 8 and 32
//! threads. Prints a markdown table and writes it to `target/contention.md`.
//!
//! ```text
//! cargo bench --bench contention                          # 1 s per case, about 2 minutes
//! RUSTY_DB_BENCH_SECS=0.2 cargo bench --bench contention  # quick look
//! RUSTY_DB_BENCH_FILTER=cycle cargo bench --bench contention
//! ```
//!
//! Without `--bench` (as `cargo test --benches` runs it) every pool runs one
//! short case, as a smoke test.

mod report;
mod subjects;
mod workload;

use std::time::Duration;

use rusty_db::pool::QueueMode;
use rusty_db::runtime::{CoreRuntime, ShardPolicy, set_shard_policy};

use report::Row;
use subjects::{Direct, MutexPool, Runtime};
use workload::{Outcome, Workload};

/// Thread counts every workload runs at.
const THREADS: [usize; 4] = [1, 2, 8, 32];

/// A pool under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    RustyFair,
    /// Fair, with threads' home shards handed out round-robin instead of
    /// following their CPU: the alternative `home_shard.rs` was measured against.
    RustyFairRoundRobin,
    RustyUnfair,
    RustyRuntime,
    R2d2,
    Mutex,
    RustySqlite,
    R2d2Sqlite,
}

impl Subject {
    const NULL: [Subject; 6] = [
        Subject::RustyFair,
        Subject::RustyFairRoundRobin,
        Subject::RustyUnfair,
        Subject::RustyRuntime,
        Subject::R2d2,
        Subject::Mutex,
    ];
    const SQLITE: [Subject; 2] = [Subject::RustySqlite, Subject::R2d2Sqlite];

    pub fn name(self) -> &'static str {
        match self {
            Subject::RustyFair => "rusty-db fair",
            Subject::RustyFairRoundRobin => "rusty-db fair, round-robin shards",
            Subject::RustyUnfair => "rusty-db unfair",
            Subject::RustyRuntime => "rusty-db CoreRuntime",
            Subject::R2d2 => "r2d2",
            Subject::Mutex => "mutex+condvar",
            Subject::RustySqlite => "rusty-db fair",
            Subject::R2d2Sqlite => "r2d2_sqlite",
        }
    }

    /// Builds the pool and runs one case against it.
    fn measure(self, workload: Workload, threads: usize, duration: Duration) -> Outcome {
        match self {
            Subject::RustyFair => {
                let pool = Direct(subjects::rusty_null(QueueMode::Fair));
                workload::run(&pool, workload, threads, duration)
            }
            Subject::RustyFairRoundRobin => {
                set_shard_policy(ShardPolicy::RoundRobin);
                let pool = Direct(subjects::rusty_null(QueueMode::Fair));
                let outcome = workload::run(&pool, workload, threads, duration);
                set_shard_policy(ShardPolicy::Cpu);
                outcome
            }
            Subject::RustyUnfair => {
                let pool = Direct(subjects::rusty_null(QueueMode::Unfair));
                workload::run(&pool, workload, threads, duration)
            }
            Subject::RustyRuntime => {
                let runtime = CoreRuntime::new(subjects::rusty_null(QueueMode::Fair)).expect("runtime");
                workload::run(&Runtime(runtime), workload, threads, duration)
            }
            Subject::R2d2 => workload::run(&Direct(subjects::r2d2_null()), workload, threads, duration),
            Subject::Mutex => workload::run(&Direct(MutexPool::new()), workload, threads, duration),
            Subject::RustySqlite => workload::run(&Direct(subjects::rusty_sqlite()), workload, threads, duration),
            Subject::R2d2Sqlite => workload::run(&Direct(subjects::r2d2_sqlite()), workload, threads, duration),
        }
    }
}

fn env_secs() -> Duration {
    let secs = std::env::var("RUSTY_DB_BENCH_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs.clamp(0.01, 600.0))
}

fn main() {
    workload::calibrate();
    if !std::env::args().any(|arg| arg == "--bench") {
        smoke_test();
        return;
    }
    let duration = env_secs();
    let filter = std::env::var("RUSTY_DB_BENCH_FILTER").unwrap_or_default();
    let machine = report::Machine::now();
    let mut rows = Vec::new();
    for (group, subjects) in [("null", &Subject::NULL[..]), ("sqlite", &Subject::SQLITE[..])] {
        for workload in Workload::ALL {
            for threads in THREADS {
                // Subjects take turns at each point, so noise from the
                // machine falls on all of them alike.
                for &subject in subjects {
                    let key = format!("{group}/{}/{}/{threads}", workload.name(), subject.name());
                    if !key.contains(&filter) {
                        continue;
                    }
                    let outcome = subject.measure(workload, threads, duration);
                    let row = Row::new(group, workload, threads, subject, &outcome);
                    eprintln!("{key}: {}", row.summary());
                    rows.push(row);
                }
            }
        }
    }
    let markdown = report::markdown(&rows, &machine, duration);
    println!("\n{markdown}");
    let dir =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = std::path::Path::new(&dir).join("contention.md");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &markdown)) {
        Ok(()) => eprintln!("written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

/// Every pool, one short case each: the harness works and nothing deadlocks.
fn smoke_test() {
    let subjects = Subject::NULL.iter().chain(&Subject::SQLITE);
    for &subject in subjects {
        for workload in Workload::ALL {
            let outcome = subject.measure(workload, 2, Duration::from_millis(10));
            assert!(outcome.ops() > 0, "{} made no progress", subject.name());
        }
    }
    println!("contention: smoke test passed (run `cargo bench --bench contention` to measure)");
}
