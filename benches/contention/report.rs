//! The markdown report: the machine, one table per connection kind and
//! workload, and the targets checked against the numbers.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Subject;
use crate::workload::{Outcome, SAMPLE_EVERY, Workload};

/// One measured case.
pub struct Row {
    group: &'static str,
    workload: Workload,
    threads: usize,
    subject: Subject,
    ops_per_sec: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    fairness: f64,
    /// Context switches per operation: (voluntary, involuntary).
    switches: Option<(f64, f64)>,
}

impl Row {
    pub fn new(group: &'static str, workload: Workload, threads: usize, subject: Subject, outcome: &Outcome) -> Row {
        let q = |quantile| outcome.latency.value_at_quantile(quantile);
        Row {
            group,
            workload,
            threads,
            subject,
            ops_per_sec: outcome.ops_per_sec(),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            fairness: outcome.fairness(),
            switches: outcome.switches.map(|s| {
                let ops = outcome.ops().max(1) as f64;
                (s.voluntary as f64 / ops, s.involuntary as f64 / ops)
            }),
        }
    }

    /// Nanoseconds one thread spends per operation.
    fn nanos_per_op(&self) -> f64 {
        self.threads as f64 * 1e9 / self.ops_per_sec
    }

    pub fn summary(&self) -> String {
        format!(
            "{} ops/s, {:.1} ns/op/thread, acquire p50 {} p99 {} p99.9 {}, fairness {:.2}, switches/op {}",
            ops(self.ops_per_sec),
            self.nanos_per_op(),
            nanos(self.p50),
            nanos(self.p99),
            nanos(self.p999),
            self.fairness,
            self.switches_per_op()
        )
    }

    /// "sleeps + yields/preemptions" per operation, or "–".
    fn switches_per_op(&self) -> String {
        self.switches.map_or_else(|| "–".into(), |(v, i)| format!("{v:.2} + {i:.2}"))
    }
}

/// Where and when the benchmark ran.
pub struct Machine {
    cpu: String,
    cpus: usize,
    kernel: String,
    load_before: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Machine {
    pub fn now() -> Machine {
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
            load_before: load_average(),
        }
    }
}

fn ops(per_sec: f64) -> String {
    if per_sec >= 1e6 { format!("{:.2} M", per_sec / 1e6) } else { format!("{:.0} k", per_sec / 1e3) }
}

fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

fn find<'a>(rows: &'a [Row], group: &str, workload: Workload, threads: usize, subject: Subject) -> Option<&'a Row> {
    rows.iter().find(|r| r.group == group && r.workload == workload && r.threads == threads && r.subject == subject)
}

/// The whole report.
pub fn markdown(rows: &[Row], machine: &Machine, duration: Duration) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {} × {} CPUs, {}; load average {} before the run, {} after.",
        machine.cpu,
        machine.cpus,
        machine.kernel,
        machine.load_before,
        load_average()
    );
    let _ = writeln!(
        md,
        "Each case: {:.1} s, {} connections, acquire latency sampled 1 in {SAMPLE_EVERY} (for CoreRuntime: execute to join). \
         `×` columns divide ops/s by the peer's at the same point; fairness = fewest / most ops of any thread; \
         switches/op = the process's context switches per operation while measuring, voluntary (a thread slept) \
         + involuntary (`yield_now()` or preempted), from getrusage.",
        duration.as_secs_f64(),
        crate::subjects::CONNECTIONS
    );
    for (group, title, baseline_mutex, baseline_r2d2) in [
        ("null", "null connection", Some(Subject::Mutex), Subject::R2d2),
        ("sqlite", "SQLite, `SELECT 1` while holding", None, Subject::R2d2Sqlite),
    ] {
        if !rows.iter().any(|r| r.group == group) {
            continue;
        }
        let _ = writeln!(md, "\n### {title}\n");
        let mutex_col = if baseline_mutex.is_some() { " × mutex |" } else { "" };
        let _ = writeln!(
            md,
            "| workload | threads | pool | ops/s | ns/op/thread |{mutex_col} × r2d2 | acquire p50 | p99 | p99.9 | fairness | switches/op |"
        );
        let _ = writeln!(
            md,
            "|---|--:|---|--:|--:|{}--:|--:|--:|--:|--:|--:|",
            if baseline_mutex.is_some() { "--:|" } else { "" }
        );
        for row in rows.iter().filter(|r| r.group == group) {
            let ratio = |peer: Subject| {
                find(rows, group, row.workload, row.threads, peer)
                    .map_or_else(|| "–".to_string(), |p| format!("{:.1}", row.ops_per_sec / p.ops_per_sec))
            };
            let mutex = baseline_mutex.map(|m| format!(" {} |", ratio(m))).unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} |{mutex} {} | {} | {} | {} | {:.2} | {} |",
                row.workload.name(),
                row.threads,
                row.subject.name(),
                ops(row.ops_per_sec),
                row.nanos_per_op(),
                ratio(baseline_r2d2),
                nanos(row.p50),
                nanos(row.p99),
                nanos(row.p999),
                row.fairness,
                row.switches_per_op()
            );
        }
    }
    targets(&mut md, rows);
    md
}

/// The targets, each with the measured value. `cycle` targets are
/// checked for both queue modes (the issue names none); `hold-yield` ones in
/// fair mode, as the issue asks.
fn targets(md: &mut String, rows: &[Row]) {
    let get = |workload, threads, subject| find(rows, "null", workload, threads, subject);
    let mut lines = Vec::new();
    let mut check =
        |ok: bool, text: String| lines.push(format!("- {} {text}", if ok { "met:" } else { "**missed:**" }));
    use Subject::{Mutex, R2d2, RustyFair, RustyFairRoundRobin, RustyUnfair};
    use Workload::{Cycle, HoldYield};
    for (us, mode) in [(RustyFair, "fair"), (RustyUnfair, "unfair")] {
        if let (Some(one), Some(r2d2)) = (get(Cycle, 1, us), get(Cycle, 1, R2d2)) {
            let ns = one.nanos_per_op();
            check(ns <= 20.0, format!("cycle, 1 thread, {mode}: {ns:.1} ns per acquire+release (target ≤ 20)"));
            let x = one.ops_per_sec / r2d2.ops_per_sec;
            check(x >= 8.0, format!("cycle, 1 thread, {mode}: {x:.1}× r2d2 (target ≥ 8×)"));
        }
        if let (Some(one), Some(two)) = (get(Cycle, 1, us), get(Cycle, 2, us)) {
            let x = two.ops_per_sec / one.ops_per_sec;
            check(x >= 1.6, format!("cycle, 2 threads, {mode}: {x:.2}× 1 thread (target ≥ 1.6×)"));
        }
        for threads in [2, 8, 32] {
            let (Some(row), Some(r2d2), Some(mutex)) =
                (get(Cycle, threads, us), get(Cycle, threads, R2d2), get(Cycle, threads, Mutex))
            else {
                continue;
            };
            let (xr, xm) = (row.ops_per_sec / r2d2.ops_per_sec, row.ops_per_sec / mutex.ops_per_sec);
            check(xr >= 15.0, format!("cycle, {threads} threads, {mode}: {xr:.1}× r2d2 (target ≥ 15×)"));
            check(xm >= 3.0, format!("cycle, {threads} threads, {mode}: {xm:.1}× mutex (target ≥ 3×)"));
            let p99 = nanos(row.p99);
            check(row.p99 < 1_000, format!("cycle, {threads} threads, {mode}: acquire p99 {p99} (target < 1 µs)"));
        }
    }
    if let (Some(us), Some(r2d2), Some(mutex)) =
        (get(HoldYield, 32, RustyFair), get(HoldYield, 32, R2d2), get(HoldYield, 32, Mutex))
    {
        for (peer, name) in [(mutex, "mutex"), (r2d2, "r2d2")] {
            let x = us.ops_per_sec / peer.ops_per_sec;
            check(x >= 2.0, format!("hold-yield, 32 threads, fair: {x:.1}× {name} (target ≥ 2×)"));
            let (ours, theirs) = (nanos(us.p99), nanos(peer.p99));
            check(
                us.p99 * 2 <= peer.p99,
                format!("hold-yield, 32 threads, fair: acquire p99 {ours} vs {name} {theirs} (target ≤ half)"),
            );
        }
        check(us.fairness > 0.5, format!("hold-yield, 32 threads, fair: fairness {:.2} (target > 0.5)", us.fairness));
    }
    let policy: Vec<String> = [1, 2, 8, 32]
        .into_iter()
        .filter_map(|t| {
            let (cpu, rr) = (get(Cycle, t, RustyFair)?, get(Cycle, t, RustyFairRoundRobin)?);
            Some(format!("{t} threads {:.2}×", cpu.ops_per_sec / rr.ops_per_sec))
        })
        .collect();
    if !lines.is_empty() || !policy.is_empty() {
        let _ = writeln!(md, "\n### Targets (2-core machine)\n");
        for line in lines {
            let _ = writeln!(md, "{line}");
        }
    }
    if !policy.is_empty() {
        let _ = writeln!(md, "\nHome shard by CPU vs. round-robin (cycle, fair, ops/s ratio): {}.", policy.join(", "));
    }
}
