//! The markdown report: the machine and server, how the counting was
//! checked, one summary table per workload (a column per pool, as issue
//! 22's table reads: `ops/s (op p99) [server tx/op]`), then every metric
//! of every case, then the calibrations that were subtracted.

use std::fmt::Write as _;
use std::time::Duration;

use crate::counting::{Calibration, PerOp, Window};
use crate::run::Outcome;
use crate::subjects::Subject;
use crate::workload::Workload;
use crate::{Case, POINTS, Point, warm_up};

/// One measured case.
pub struct Row {
    case: Case,
    ops: u64,
    ops_per_sec: f64,
    op_p50: u64,
    op_p99: u64,
    op_p999: u64,
    acquire_p99: u64,
    fairness: f64,
    per_op: PerOp,
    window: Window,
    calibration: Calibration,
}

impl Row {
    pub fn new(case: Case, outcome: &Outcome, window: &Window, calibration: &Calibration) -> Row {
        let op = |q| outcome.op.value_at_quantile(q);
        Row {
            case,
            ops: outcome.ops(),
            ops_per_sec: outcome.ops_per_sec(),
            op_p50: op(0.5),
            op_p99: op(0.99),
            op_p999: op(0.999),
            acquire_p99: outcome.acquire.value_at_quantile(0.99),
            fairness: outcome.fairness(),
            per_op: PerOp::new(window.xacts, calibration.xacts, outcome.all_ops),
            window: *window,
            calibration: *calibration,
        }
    }

    /// Operations started while measuring.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    pub fn summary(&self) -> String {
        format!(
            "{} ops/s, op p50 {} p99 {} p99.9 {}, acquire p99 {}, fairness {:.2}, server tx/op {:.2} \
             ({:.2} commits + {:.2} rollbacks){}",
            ops(self.ops_per_sec),
            nanos(self.op_p50),
            nanos(self.op_p99),
            nanos(self.op_p999),
            nanos(self.acquire_p99),
            self.fairness,
            self.per_op.total,
            self.per_op.commits,
            self.per_op.rollbacks,
            self.caveat().map(|c| format!(" ({c})")).unwrap_or_default()
        )
    }

    /// Why the transaction count may hold more than this pool's work.
    fn caveat(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.window.others > 0 {
            why.push(format!("{} other session(s) on the database", self.window.others));
        }
        if self.window.late {
            why.push("sessions left late".to_string());
        }
        if !self.calibration.clean || !self.calibration.agreed {
            why.push("calibration noisy".to_string());
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    /// The server's count, marked when it may be off.
    fn tx_per_op(&self) -> String {
        let mark = if self.caveat().is_some() { "†" } else { "" };
        format!("{:.2}{mark}", self.per_op.total)
    }
}

/// Where and when the bench ran.
pub struct Machine {
    cpu: String,
    cpus: usize,
    kernel: String,
    server: String,
    load_before: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Machine {
    pub fn now(server_version: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
            .map_or_else(|| std::env::consts::ARCH.to_string(), |s| s.trim().to_string());
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| std::env::consts::OS.to_string(), |s| format!("Linux {}", s.trim())),
            server: server_version,
            load_before: load_average(),
        }
    }
}

fn ops(per_sec: f64) -> String {
    if per_sec >= 1e6 { format!("{:.2} M", per_sec / 1e6) } else { format!("{:.1} k", per_sec / 1e3) }
}

fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.0} µs", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

fn find(rows: &[Row], workload: Workload, point: Point, subject: Subject) -> Option<&Row> {
    rows.iter().find(|r| r.case == Case { workload, point, subject })
}

/// The whole report.
pub fn markdown(rows: &[Row], machine: &Machine, check: &str, setup: &str, duration: Duration) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {} × {} CPUs, {}; PostgreSQL {} on the same machine; load average {} before the run, {} after.\n",
        machine.cpu,
        machine.cpus,
        machine.kernel,
        machine.server,
        machine.load_before,
        load_average()
    );
    let _ = writeln!(
        md,
        "Each case: {} s after a {} s warm-up, at a point T/P: T threads (tasks, for deadpool) in a closed loop \
         sharing a pool of P sessions, all opened and primed before the case. One op = acquire, the workload's \
         statements, release; `op` latency covers all three. `select1` is `SELECT 1` as a simple query; \
         `select-only` and `tpcb-like` are pgbench's scripts (scale 1) with prepared statements through the \
         pool's statement cache (rusty-db's `prepare_cached`, deadpool's); **r2d2 has no statement cache, so \
         it prepares every statement at every execution** (SQL text passed to `query`/`execute`, as r2d2 code \
         does): one more round trip each, and in `select-only` one more server transaction. {setup}.\n",
        duration.as_secs_f64(),
        warm_up(duration).as_secs_f64(),
    );
    let _ = writeln!(
        md,
        "Server tx/op: `xact_commit + xact_rollback` of the database in `pg_stat_database`, over a window \
         spanning the pool's whole life (opened, primed, run, closed, its sessions gone, so every backend has \
         flushed its statistics), less a calibration (the same pool opened, primed and closed with no work), \
         over every op run, warm-up included. † marks a count other sessions on the database may have added \
         to. {check}.{}\n",
        one_query_check(rows)
    );
    for workload in Workload::ALL {
        summary(&mut md, rows, workload);
    }
    details(&mut md, rows);
    calibrations(&mut md, rows);
    md
}

/// The pools that send the server nothing but the op's own statement on
/// `select1`: no check, no reset, no prepare.
const ONE_QUERY_PER_OP: [Subject; 3] = [Subject::RustyLean, Subject::R2d2NoCheck, Subject::Deadpool];

/// The count checked against what is known: on `select1` the pools of
/// [`ONE_QUERY_PER_OP`] send one simple query per op, so each must count
/// 1.00 server transactions per op (0.00 rollbacks) at every point.
fn one_query_check(rows: &[Row]) -> String {
    let checked: Vec<&Row> = rows
        .iter()
        .filter(|r| r.case.workload == Workload::Select1 && ONE_QUERY_PER_OP.contains(&r.case.subject))
        .collect();
    if checked.is_empty() {
        return String::new();
    }
    let off: Vec<String> = checked
        .iter()
        .filter(|r| (r.per_op.commits - 1.0).abs() >= 0.005 || r.per_op.rollbacks >= 0.005)
        .map(|r| {
            format!("{} {}: {:.3} + {:.3}", r.case.subject.name(), r.case.point, r.per_op.commits, r.per_op.rollbacks)
        })
        .collect();
    let names: Vec<&str> = ONE_QUERY_PER_OP.iter().map(|s| s.name()).collect();
    if off.is_empty() {
        format!(
            " On `select1`, the pools that send one simple query per op and nothing else ({}) count 1.00 \
             commits and 0.00 rollbacks per op in all {} of their cases.",
            names.join(", "),
            checked.len()
        )
    } else {
        format!(
            " **On `select1`, {} should count 1.00 commits and 0.00 rollbacks per op, but: {}.**",
            names.join(", "),
            off.join("; ")
        )
    }
}

/// One workload's table: a row per point, a column per pool.
fn summary(md: &mut String, rows: &[Row], workload: Workload) {
    if !rows.iter().any(|r| r.case.workload == workload) {
        return;
    }
    let _ = writeln!(md, "### {}: ops/s (op p99) [server tx/op]\n", workload.name());
    let _ = write!(md, "| T/P |");
    for subject in Subject::ALL {
        let _ = write!(md, " {} |", subject.name());
    }
    let _ = writeln!(md, "\n|---|{}", "--:|".repeat(Subject::ALL.len()));
    for point in POINTS {
        if !rows.iter().any(|r| r.case.workload == workload && r.case.point == point) {
            continue;
        }
        let _ = write!(md, "| {point} |");
        for subject in Subject::ALL {
            match find(rows, workload, point, subject) {
                Some(r) => {
                    let _ = write!(md, " {} ({}) [{}] |", ops(r.ops_per_sec), nanos(r.op_p99), r.tx_per_op());
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    md.push('\n');
}

/// Every metric of every case.
fn details(md: &mut String, rows: &[Row]) {
    let _ = writeln!(md, "### Every metric\n");
    let _ = writeln!(
        md,
        "| workload | T/P | pool | ops/s | op p50 | op p99 | op p99.9 | acquire p99 | fairness \
         | tx/op | commits/op | rollbacks/op | note |"
    );
    let _ = writeln!(md, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {:.2} | {} |",
            r.case.workload.name(),
            r.case.point,
            r.case.subject.name(),
            ops(r.ops_per_sec),
            nanos(r.op_p50),
            nanos(r.op_p99),
            nanos(r.op_p999),
            nanos(r.acquire_p99),
            r.fairness,
            r.tx_per_op(),
            r.per_op.commits,
            r.per_op.rollbacks,
            r.caveat().unwrap_or_default()
        );
    }
    md.push('\n');
}

/// The calibrations subtracted: what opening, priming and closing a pool
/// costs the server, per pool, workload and size.
fn calibrations(md: &mut String, rows: &[Row]) {
    let mut seen = Vec::new();
    let _ = writeln!(md, "### Calibrations (open P sessions, prime them, close; no work)\n");
    let _ = writeln!(md, "| pool | workload | P | commits | rollbacks | two runs agreed |");
    let _ = writeln!(md, "|---|---|--:|--:|--:|---|");
    for r in rows {
        let key = (r.case.subject, r.case.workload, r.case.point.connections);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let c = &r.calibration;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.case.subject.name(),
            r.case.workload.name(),
            r.case.point.connections,
            c.xacts.commits,
            c.xacts.rollbacks,
            if c.agreed { "yes" } else { "no (the lower kept)" }
        );
    }
}
