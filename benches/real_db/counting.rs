//! Server transactions per operation, counted exactly.
//!
//! PostgreSQL 15 backends flush their statistics lazily (at the end of a
//! transaction at most once a second, when idle for a while, and when they
//! exit), so two reads of `pg_stat_database` around a running pool miss
//! some of its transactions and catch some of its warm-up's. Instead a
//! counting window spans a pool's whole life: it opens after the bench's
//! previous sessions have gone, the pool is opened, primed, run and
//! closed inside it, and it closes once `pg_stat_activity` no longer shows
//! the pool's sessions (each flushed as it exited). Everything the pool
//! made the server do is then in the difference.
//!
//! What the pool does to open, prime and close its sessions is taken out
//! by a calibration of the same subject, workload and size: the same
//! window around opening and closing the pool with no work. Run twice,
//! the lower kept (other programs can only add). What remains, over every
//! operation run (warm-up included), is the server's cost of one borrow.

use std::collections::HashMap;
use std::ops::Sub;
use std::time::Duration;

use rusty_db::adapters::postgres::postgres::{self, NoTls};

use crate::server::{Monitor, Server};
use crate::subjects::Subject;
use crate::workload::Workload;

/// How long the pool's sessions may take to leave once it is closed.
const SESSIONS_LEAVE_WITHIN: Duration = Duration::from_secs(30);

/// Committed and rolled-back transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Xacts {
    pub commits: i64,
    pub rollbacks: i64,
}

impl Xacts {
    pub fn total(self) -> i64 {
        self.commits + self.rollbacks
    }

    /// The lower of two counts of the same thing (by total).
    fn min(self, other: Xacts) -> Xacts {
        if other.total() < self.total() { other } else { self }
    }
}

impl Sub for Xacts {
    type Output = Xacts;

    fn sub(self, earlier: Xacts) -> Xacts {
        Xacts { commits: self.commits - earlier.commits, rollbacks: self.rollbacks - earlier.rollbacks }
    }
}

/// What the server counted while a window was open, and whether to trust it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub xacts: Xacts,
    /// Most sessions of other programs seen in the pools' database when the
    /// window opened or closed: their transactions may be in the count.
    pub others: i64,
    /// The pool's sessions had not all left when the window closed.
    pub late: bool,
}

impl Window {
    /// Nothing suggests the count holds anything but the pool's work.
    pub fn clean(&self) -> bool {
        self.others == 0 && !self.late
    }
}

/// A calibration: the lower of two windows around a pool opened and closed
/// with no work, and whether the two agreed.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    pub xacts: Xacts,
    pub agreed: bool,
    pub clean: bool,
}

/// Which pools a calibration holds for.
pub type CalibrationKey = (Subject, Workload, usize);

/// Server transactions per operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerOp {
    pub total: f64,
    pub commits: f64,
    pub rollbacks: f64,
}

impl PerOp {
    /// `window` less `calibration`, over `ops` operations.
    pub fn new(window: Xacts, calibration: Xacts, ops: u64) -> PerOp {
        let work = window - calibration;
        let ops = ops.max(1) as f64;
        PerOp {
            total: work.total() as f64 / ops,
            commits: work.commits as f64 / ops,
            rollbacks: work.rollbacks as f64 / ops,
        }
    }
}

/// The monitoring session, and the calibrations measured so far.
pub struct Counter {
    monitor: Monitor,
    calibrations: HashMap<CalibrationKey, Calibration>,
}

impl Counter {
    pub fn new(server: &Server) -> Result<Counter, String> {
        Ok(Counter { monitor: Monitor::connect(server)?, calibrations: HashMap::new() })
    }

    pub fn server_version(&mut self) -> String {
        self.monitor.server_version()
    }

    /// Runs `f` (which opens, uses and closes a pool) inside a counting
    /// window.
    pub fn window<R>(&mut self, f: impl FnOnce() -> R) -> (R, Window) {
        let mut late = !self.monitor.wait_until_ours_gone(SESSIONS_LEAVE_WITHIN);
        let others_before = self.monitor.sessions().others;
        let before = self.xacts();
        let result = f();
        late |= !self.monitor.wait_until_ours_gone(SESSIONS_LEAVE_WITHIN);
        let after = self.xacts();
        let others = others_before.max(self.monitor.sessions().others);
        (result, Window { xacts: after - before, others, late })
    }

    /// The calibration for `key`, measured by running `open_and_close`
    /// twice the first time it is asked for.
    pub fn calibration(&mut self, key: CalibrationKey, open_and_close: impl Fn()) -> Calibration {
        if let Some(calibration) = self.calibrations.get(&key) {
            return *calibration;
        }
        let ((), first) = self.window(&open_and_close);
        let ((), second) = self.window(&open_and_close);
        let calibration = Calibration {
            xacts: first.xacts.min(second.xacts),
            agreed: first.xacts == second.xacts,
            clean: first.clean() && second.clean(),
        };
        self.calibrations.insert(key, calibration);
        calibration
    }

    /// The method checked without any pool: one plain session runs `N`
    /// simple `SELECT 1`s and closes; less the same session opened and
    /// closed with none (a backend's start-up runs one transaction of its
    /// own), the window must count `N` commits.
    pub fn self_check(&mut self, server: &Server) -> String {
        const N: usize = 1000;
        let session = |queries: usize| -> Result<(), postgres::Error> {
            let mut client = server.config().connect(NoTls)?;
            for _ in 0..queries {
                client.simple_query("SELECT 1")?;
            }
            client.close()
        };
        let (opened, empty) = self.window(|| session(0));
        let (ran, full) = self.window(|| session(N));
        if let Err(e) = opened.and(ran) {
            panic!("the counting check's session: {e}");
        }
        let Xacts { commits, rollbacks } = full.xacts - empty.xacts;
        let exact = usize::try_from(commits).is_ok_and(|c| c == N) && rollbacks == 0;
        let verdict = if exact { "exact" } else { "**off**" };
        let noise = if empty.clean() && full.clean() {
            ""
        } else {
            " (other sessions were connected: their work may be counted)"
        };
        format!(
            "Counting check: {N} simple `SELECT 1` on one plain session counted as {commits} commits and \
             {rollbacks} rollbacks beyond the {} of opening and closing it: {verdict}{noise}",
            match empty.xacts.commits {
                1 => "1 commit".to_string(),
                n => format!("{n} commits"),
            }
        )
    }

    /// The monitor's current counts.
    fn xacts(&mut self) -> Xacts {
        let (commits, rollbacks) = self.monitor.counters();
        Xacts { commits, rollbacks }
    }
}
