//! rusty-db beside r2d2 and deadpool-postgres against a real PostgreSQL
//! server: what one borrow costs once the connection is real, in time and
//! in server transactions (issue 22, item 1).
//!
//! The null-connection numbers of `benches/contention` measure the pool
//! alone; here every operation is an acquire, real statements on a real
//! session, and a release, so a pool's round trips of its own (a check on
//! acquire, a reset on release, a prepare where it has no statement cache)
//! show up beside the work. The server counts them for us: each case reads
//! `pg_stat_database` before and after and reports the server transactions
//! one operation cost (see `counting.rs` for how that count is made exact).
//!
//! Each case runs one pool under one workload at one point `T/P`: `T`
//! threads (tasks, for the async pool) in a closed loop sharing a pool of
//! `P` sessions, opened before the case. Points 1/4, 4/4, 16/4 and 32/8;
//! workloads `select1`, `select-only` and `tpcb-like` (`workload.rs`);
//! pools in `subjects.rs` and `async_pool.rs`. A case is a warm-up (a
//! quarter of the measured time, at most 0.5 s) and 2 s of measurement.
//!
//! ```text
//! RUSTY_DB_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench real_db        # about 3 minutes
//! RUSTY_DB_BENCH_SECS=0.3 ...                              # about 1 minute
//! RUSTY_DB_BENCH_FILTER=select1/ ...
//! RUSTY_DB_BENCH_FILTER='rusty-db lean/32/8' ...
//! ```
//!
//! The filter is a substring of the case's key, `workload/subject/T/P`,
//! such as `tpcb-like/r2d2 no check/16/4`. The report (markdown) is printed
//! and written to `target/real_db.md`.
//!
//! Without `RUSTY_DB_TEST_PG_URL` the bench says why it skips and exits 0.
//! Without `--bench` (as `cargo test --benches` runs it) every pool runs
//! one short case per workload, as a smoke test. The pgbench tables it
//! needs are created in the URL's database when missing (`pgbench.rs`).

mod async_pool;
mod counting;
mod pgbench;
mod report;
mod run;
mod server;
mod subjects;
mod workload;

use std::fmt;
use std::time::Duration;

use counting::Counter;
use report::Row;
use server::Server;
use subjects::Subject;
use workload::Workload;

/// Threads (or tasks) sharing a pool of some sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Point {
    pub threads: usize,
    pub connections: usize,
}

impl Point {
    pub const fn new(threads: usize, connections: usize) -> Point {
        Point { threads, connections }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.threads, self.connections)
    }
}

/// The points every workload and pool runs at: fewer threads than
/// sessions, as many, and four times as many.
pub const POINTS: [Point; 4] = [Point::new(1, 4), Point::new(4, 4), Point::new(16, 4), Point::new(32, 8)];

/// The smoke test's point: more threads than sessions, so the waiting
/// paths run too.
const SMOKE: Point = Point::new(2, 1);

/// One case: a pool under a workload at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub workload: Workload,
    pub point: Point,
    pub subject: Subject,
}

/// The key `RUSTY_DB_BENCH_FILTER` is matched against: `workload/subject/T/P`.
impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.workload.name(), self.subject.name(), self.point)
    }
}

/// Every case of a full run, in order: the pools take turns at each point,
/// so a change in the machine's load falls on all of them alike.
fn cases() -> impl Iterator<Item = Case> {
    Workload::ALL.into_iter().flat_map(|workload| {
        POINTS
            .into_iter()
            .flat_map(move |point| Subject::ALL.into_iter().map(move |subject| Case { workload, point, subject }))
    })
}

/// The warm-up before a case of `duration` is measured: a quarter of it,
/// at most 0.5 s, so that every thread is running and the server has
/// settled (its caches warm, its backends scheduled) before anything counts.
pub fn warm_up(duration: Duration) -> Duration {
    (duration / 4).min(Duration::from_millis(500))
}

fn env_secs() -> Duration {
    let secs = std::env::var("RUSTY_DB_BENCH_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(secs.clamp(0.01, 600.0))
}

/// Opens the pool of `case`, runs it, closes it, inside a counting window;
/// the pool's own opening and closing are taken out by its calibration.
fn measure(server: &Server, counter: &mut Counter, case: Case, duration: Duration) -> Row {
    let Case { workload, point, subject } = case;
    let calibration = counter.calibration((subject, workload, point.connections), || {
        subject.open(server, point.connections, workload).close()
    });
    let (outcome, window) = counter.window(|| {
        let pool = subject.open(server, point.connections, workload);
        let outcome = pool.run(workload, point.threads, warm_up(duration), duration);
        pool.close();
        outcome
    });
    Row::new(case, &outcome, &window, &calibration)
}

fn main() {
    let server = match Server::from_env() {
        Ok(server) => server,
        Err(why) => {
            println!("real_db: skipped: {why}");
            return;
        }
    };
    let setup = pgbench::ensure_tables(&server).unwrap_or_else(|e| panic!("the pgbench tables: {e}"));
    eprintln!("real_db: {setup}");
    let mut counter = Counter::new(&server).unwrap_or_else(|e| panic!("the monitoring connection: {e}"));
    let check = counter.self_check(&server);
    eprintln!("real_db: {check}");
    if !std::env::args().any(|arg| arg == "--bench") {
        smoke_test(&server, &mut counter);
        return;
    }
    let duration = env_secs();
    let filter = std::env::var("RUSTY_DB_BENCH_FILTER").unwrap_or_default();
    let machine = report::Machine::now(counter.server_version());
    let rows: Vec<Row> = cases()
        .filter(|case| case.to_string().contains(&filter))
        .map(|case| {
            let row = measure(&server, &mut counter, case, duration);
            eprintln!("{case}: {}", row.summary());
            row
        })
        .collect();
    let markdown = report::markdown(&rows, &machine, &check, &setup, duration);
    println!("\n{markdown}");
    let dir =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = std::path::Path::new(&dir).join("real_db.md");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &markdown)) {
        Ok(()) => eprintln!("written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

/// Every pool, one short case per workload: the harness works, nothing
/// deadlocks, and the server counted something for every case.
fn smoke_test(server: &Server, counter: &mut Counter) {
    for workload in Workload::ALL {
        for subject in Subject::ALL {
            let case = Case { workload, point: SMOKE, subject };
            let row = measure(server, counter, case, Duration::from_millis(50));
            assert!(row.ops() > 0, "{case} made no progress");
            println!("{case}: {}", row.summary());
        }
    }
    println!("real_db: smoke test passed (run `cargo bench --features postgres --bench real_db` to measure)");
}
