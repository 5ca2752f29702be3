//! rusty-db beside its peers under contention, in one process, so that
//! every pool meets the same machine at the same moment.
//!
//! Each case runs one pool under one workload at one point `T/P`: `T`
//! threads sharing a pool of `P` connections. The points are 1/8, 2/8, 8/8
//! and 32/8 (from an idle pool to four threads per connection), and 4/1 and
//! 8/2 (a scarce pool, where every acquire meets waiters). The workloads,
//! `cycle`, `hold` and `hold-yield`, are described in `workload.rs`.
//!
//! Two groups of pools. Over a null connection, which measures the pool
//! alone: rusty-db in its `Fair` (default), `Fifo` and `Unfair` queue modes
//! and through `CoreRuntime`; rusty-db fair with round-robin home shards (at
//! the 8-connection points only, for the home-shard comparison); and the
//! peers it is judged against, r2d2 and the textbook mutex-and-condvar pool
//! on `std::sync` and on `parking_lot`. Over SQLite running `SELECT 1`:
//! rusty-db fair and r2d2_sqlite. The report (markdown, printed and written
//! to `target/contention.md`) has one table per group, then rusty-db fair's
//! targets checked against the numbers.
//!
//! A full run is 174 cases (138 null, 36 SQLite), each a 250 ms warm-up and
//! 1 s of measurement: about 3 min 40 s, plus pool set-up.
//!
//! ```text
//! cargo bench --bench contention                          # about 4 minutes
//! RUSTY_DB_BENCH_SECS=0.2 cargo bench --bench contention  # under a minute
//! RUSTY_DB_BENCH_FILTER=null/hold/ cargo bench --bench contention
//! RUSTY_DB_BENCH_FILTER=/32/8 cargo bench --bench contention
//! ```
//!
//! The filter is a substring of the case's key,
//! `group/workload/subject/T/P`, such as `null/hold/rusty-db fair/32/8`.
//!
//! After the tables, `isolation.rs` measures a quiet tenant's waits beside
//! a noisy one, partitioned and not (`RUSTY_DB_BENCH_FILTER=isolation` runs
//! only that).
//!
//! Without `--bench` (as `cargo test --benches` runs it) every pool runs one
//! short case per workload, as a smoke test.

mod isolation;
mod report;
mod subjects;
mod workload;

use std::fmt;
use std::time::Duration;

use rusty_db::pool::QueueMode;
use rusty_db::runtime::{CoreRuntime, ShardPolicy, set_shard_policy};

use report::Row;
use subjects::{Direct, MutexPool, ParkingLotMonitor, Runtime, StdMonitor};
use workload::{Outcome, Workload};

/// Threads sharing a pool of some connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub threads: usize,
    pub connections: usize,
}

impl Point {
    pub const fn new(threads: usize, connections: usize) -> Point {
        Point { threads, connections }
    }

    /// More threads than connections: the pool runs empty and threads wait.
    pub fn oversubscribed(self) -> bool {
        self.threads > self.connections
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.threads, self.connections)
    }
}

/// The points every workload runs at.
pub const POINTS: [Point; 6] =
    [Point::new(1, 8), Point::new(2, 8), Point::new(8, 8), Point::new(32, 8), Point::new(4, 1), Point::new(8, 2)];

/// The smoke test's point: more threads than connections, so the waiting
/// paths run too.
const SMOKE: Point = Point::new(2, 1);

/// What the pools hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Null,
    Sqlite,
}

impl Group {
    const ALL: [Group; 2] = [Group::Null, Group::Sqlite];

    pub fn name(self) -> &'static str {
        match self {
            Group::Null => "null",
            Group::Sqlite => "sqlite",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Group::Null => "null connection",
            Group::Sqlite => "SQLite, `SELECT 1` while holding",
        }
    }

    /// Every pool of the group, in the order they take turns at a point.
    pub fn subjects(self) -> &'static [Subject] {
        match self {
            Group::Null => &[
                Subject::RustyFair,
                Subject::RustyFifo,
                Subject::RustyUnfair,
                Subject::RustyFairRoundRobin,
                Subject::RustyRuntime,
                Subject::R2d2,
                Subject::StdMutex,
                Subject::ParkingLotMutex,
            ],
            Group::Sqlite => &[Subject::RustySqlite, Subject::R2d2Sqlite],
        }
    }

    /// The pools that are not rusty-db, which the best peer is chosen from.
    pub fn peers(self) -> &'static [Subject] {
        match self {
            Group::Null => &[Subject::R2d2, Subject::StdMutex, Subject::ParkingLotMutex],
            Group::Sqlite => &[Subject::R2d2Sqlite],
        }
    }

    /// The group's r2d2 pool.
    pub fn r2d2(self) -> Subject {
        match self {
            Group::Null => Subject::R2d2,
            Group::Sqlite => Subject::R2d2Sqlite,
        }
    }

    /// rusty-db in its default configuration, which the targets are for.
    pub fn ours(self) -> Subject {
        match self {
            Group::Null => Subject::RustyFair,
            Group::Sqlite => Subject::RustySqlite,
        }
    }
}

/// A pool under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    RustyFair,
    RustyFifo,
    RustyUnfair,
    /// Fair, with threads' home shards handed out round-robin instead of
    /// following their CPU: the alternative `home_shard.rs` was measured against.
    RustyFairRoundRobin,
    RustyRuntime,
    R2d2,
    StdMutex,
    ParkingLotMutex,
    RustySqlite,
    R2d2Sqlite,
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::RustyFair | Subject::RustySqlite => "rusty-db fair",
            Subject::RustyFifo => "rusty-db fifo",
            Subject::RustyUnfair => "rusty-db unfair",
            Subject::RustyFairRoundRobin => "rusty-db fair, round-robin shards",
            Subject::RustyRuntime => "rusty-db CoreRuntime",
            Subject::R2d2 => "r2d2",
            Subject::StdMutex => "std mutex+condvar",
            Subject::ParkingLotMutex => "parking_lot mutex+condvar",
            Subject::R2d2Sqlite => "r2d2_sqlite",
        }
    }

    /// Whether the full run measures this pool at `point`. Round-robin home
    /// shards only serve the comparison with CPU home shards, which is made
    /// at the 8-connection points.
    fn runs_at(self, point: Point) -> bool {
        self != Subject::RustyFairRoundRobin || point.connections == 8
    }

    /// Builds the pool with the point's connections and runs one case
    /// against it.
    fn measure(self, workload: Workload, point: Point, duration: Duration) -> Outcome {
        let Point { threads, connections } = point;
        let rusty = |mode| {
            let pool = Direct(subjects::rusty_null(mode, connections));
            workload::run(&pool, workload, threads, duration)
        };
        match self {
            Subject::RustyFair => rusty(QueueMode::Fair),
            Subject::RustyFifo => rusty(QueueMode::Fifo),
            Subject::RustyUnfair => rusty(QueueMode::Unfair),
            Subject::RustyFairRoundRobin => {
                set_shard_policy(ShardPolicy::RoundRobin);
                let outcome = rusty(QueueMode::Fair);
                set_shard_policy(ShardPolicy::Cpu);
                outcome
            }
            Subject::RustyRuntime => {
                let runtime = CoreRuntime::new(subjects::rusty_null(QueueMode::Fair, connections)).expect("runtime");
                workload::run(&Runtime(runtime), workload, threads, duration)
            }
            Subject::R2d2 => workload::run(&Direct(subjects::r2d2_null(connections)), workload, threads, duration),
            Subject::StdMutex => {
                let pool = Direct(MutexPool::<StdMonitor>::new(connections));
                workload::run(&pool, workload, threads, duration)
            }
            Subject::ParkingLotMutex => {
                let pool = Direct(MutexPool::<ParkingLotMonitor>::new(connections));
                workload::run(&pool, workload, threads, duration)
            }
            Subject::RustySqlite => {
                workload::run(&Direct(subjects::rusty_sqlite(connections)), workload, threads, duration)
            }
            Subject::R2d2Sqlite => {
                workload::run(&Direct(subjects::r2d2_sqlite(connections)), workload, threads, duration)
            }
        }
    }
}

/// One case: a pool of a group, under a workload, at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub group: Group,
    pub workload: Workload,
    pub point: Point,
    pub subject: Subject,
}

impl Case {
    /// rusty-db in its default configuration, which the targets are for.
    pub fn ours(group: Group, workload: Workload, point: Point) -> Case {
        Case { group, workload, point, subject: group.ours() }
    }

    /// The same workload and point for another pool of the group.
    pub fn with(self, subject: Subject) -> Case {
        Case { subject, ..self }
    }

    fn measure(self, duration: Duration) -> Outcome {
        self.subject.measure(self.workload, self.point, duration)
    }
}

/// The key `RUSTY_DB_BENCH_FILTER` is matched against:
/// `group/workload/subject/T/P`.
impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.group.name(), self.workload.name(), self.subject.name(), self.point)
    }
}

/// Every case of a full run, in order. Pools take turns at each point, so
/// noise from the machine falls on all of them alike.
fn cases() -> impl Iterator<Item = Case> {
    Group::ALL.into_iter().flat_map(|group| {
        Workload::ALL.into_iter().flat_map(move |workload| {
            POINTS.into_iter().flat_map(move |point| {
                group.subjects().iter().filter(move |subject| subject.runs_at(point)).map(move |&subject| Case {
                    group,
                    workload,
                    point,
                    subject,
                })
            })
        })
    })
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
    let rows: Vec<Row> = cases()
        .filter(|case| case.to_string().contains(&filter))
        .map(|case| {
            let row = Row::new(case, &case.measure(duration));
            eprintln!("{case}: {}", row.summary());
            row
        })
        .collect();
    let mut markdown = report::markdown(&rows, &machine, duration);
    if "isolation".contains(&filter) || filter.is_empty() {
        markdown.push('\n');
        markdown.push_str(&isolation::markdown(duration.max(Duration::from_secs(1))));
    }
    println!("\n{markdown}");
    let dir =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = std::path::Path::new(&dir).join("contention.md");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &markdown)) {
        Ok(()) => eprintln!("written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

/// Every pool, one short case per workload: the harness works and nothing
/// deadlocks.
fn smoke_test() {
    for group in Group::ALL {
        for &subject in group.subjects() {
            for workload in Workload::ALL {
                let case = Case { group, workload, point: SMOKE, subject };
                assert!(case.measure(Duration::from_millis(10)).ops() > 0, "{case} made no progress");
            }
        }
    }
    isolation::smoke();
    println!("contention: smoke test passed (run `cargo bench --bench contention` to measure)");
}
