//! The markdown report: the machine, one table per group of pools, and
//! rusty-db fair's targets checked against the numbers. Every comparison
//! is between pools at the same point and workload, which take turns and
//! so are measured seconds apart, under the same state of the machine.

use std::fmt::Write as _;
use std::time::Duration;

use crate::workload::{Outcome, SAMPLE_EVERY, Workload, warm_up};
use crate::{Case, Group, POINTS, Point, Subject};

/// One measured case.
pub struct Row {
    case: Case,
    ops_per_sec: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    fairness: f64,
    /// Context switches per operation: (voluntary, involuntary).
    switches: Option<(f64, f64)>,
}

impl Row {
    pub fn new(case: Case, outcome: &Outcome) -> Row {
        let q = |quantile| outcome.latency.value_at_quantile(quantile);
        Row {
            case,
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
        self.case.point.threads as f64 * 1e9 / self.ops_per_sec
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

/// The row measured for `case`, if it ran.
fn find(rows: &[Row], case: Case) -> Option<&Row> {
    rows.iter().find(|r| r.case == case)
}

/// The rows of every peer at `case`'s point and workload, or `None` unless
/// all of them ran: a best peer chosen from some would flatter us.
fn peers(rows: &[Row], case: Case) -> Option<Vec<&Row>> {
    case.group.peers().iter().map(|&peer| find(rows, case.with(peer))).collect()
}

/// The peer with the most ops/s at `case`'s point and workload.
fn best_peer(rows: &[Row], case: Case) -> Option<&Row> {
    peers(rows, case)?.into_iter().max_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec))
}

/// `case`'s ops/s over `subject`'s at the same point and workload.
fn speedup(rows: &[Row], case: Case, over: Subject) -> Option<f64> {
    Some(find(rows, case)?.ops_per_sec / find(rows, case.with(over))?.ops_per_sec)
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |x| format!("{x:.2}"))
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
    let peer_names: Vec<&str> = Group::Null.peers().iter().map(|p| p.name()).collect();
    let _ = writeln!(
        md,
        "Each case: {} s after a {} s warm-up, at a point T/P: T threads sharing a pool of P connections. \
         Acquire latency sampled 1 in {SAMPLE_EVERY} (for CoreRuntime: execute to join). \
         `× best peer` divides ops/s by the highest ops/s among {} at the same point and workload \
         (for SQLite the only peer is {}, so only `× r2d2` is shown); `× r2d2` by r2d2's; \
         fairness = fewest / most ops of any thread; \
         switches/op = the process's context switches per operation while measuring, voluntary (a thread slept) \
         + involuntary (`yield_now()` or preempted), from getrusage.",
        duration.as_secs_f64(),
        warm_up(duration).as_secs_f64(),
        peer_names.join(", "),
        Group::Sqlite.r2d2().name(),
    );
    for group in Group::ALL {
        table(&mut md, rows, group);
    }
    targets(&mut md, rows);
    md
}

/// The group's table, if any of its cases ran. The `× best peer` column
/// only where there is more than one peer to choose from.
fn table(md: &mut String, rows: &[Row], group: Group) {
    let rows_of_group = || rows.iter().filter(move |r| r.case.group == group);
    if rows_of_group().next().is_none() {
        return;
    }
    let several_peers = group.peers().len() > 1;
    let (best_header, best_rule) = if several_peers { (" × best peer |", "--:|") } else { ("", "") };
    let _ = writeln!(md, "\n### {}\n", group.title());
    let _ = writeln!(
        md,
        "| workload | T/P | pool | ops/s | ns/op/thread |{best_header} × r2d2 \
         | acquire p50 | p99 | p99.9 | fairness | switches/op |"
    );
    let _ = writeln!(md, "|---|--:|---|--:|--:|{best_rule}--:|--:|--:|--:|--:|--:|");
    for row in rows_of_group() {
        let best = if several_peers {
            let x = best_peer(rows, row.case).map(|best| row.ops_per_sec / best.ops_per_sec);
            format!(" {} |", ratio(x))
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} |{best} {} | {} | {} | {} | {:.2} | {} |",
            row.case.workload.name(),
            row.case.point,
            row.case.subject.name(),
            ops(row.ops_per_sec),
            row.nanos_per_op(),
            ratio(speedup(rows, row.case, group.r2d2())),
            nanos(row.p50),
            nanos(row.p99),
            nanos(row.p999),
            row.fairness,
            row.switches_per_op()
        );
    }
}

/// What a target bounds.
#[derive(Debug, Clone, Copy)]
enum Metric {
    /// ops/s over the best peer's: at least the bound.
    OverBestPeer,
    /// ops/s over this pool's: at least the bound.
    Over(Subject),
    /// Fewest / most ops of any thread: at least the bound.
    Fairness,
    /// Acquire p99 over the lowest p99 among the peers: at most the bound.
    P99OverLowestPeer,
}

impl Metric {
    /// Whether the bound is an upper one.
    fn at_most(self) -> bool {
        matches!(self, Metric::P99OverLowestPeer)
    }

    /// Fairness is a plain fraction; the others are ratios.
    fn unit(self) -> &'static str {
        if matches!(self, Metric::Fairness) { "" } else { "×" }
    }
}

/// A bound on one of rusty-db fair's numbers at one case.
struct Target {
    case: Case,
    metric: Metric,
    bound: f64,
}

impl Target {
    /// rusty-db fair (the default configuration) at `workload` and `point`.
    fn new(group: Group, workload: Workload, point: Point, metric: Metric, bound: f64) -> Target {
        Target { case: Case::ours(group, workload, point), metric, bound }
    }

    /// "- met: ..." or "- **missed:** ..." with the measured value and the
    /// target, or `None` when a case it needs did not run.
    fn check(&self, rows: &[Row]) -> Option<String> {
        let ours = find(rows, self.case)?;
        let (value, measured) = match self.metric {
            Metric::OverBestPeer => {
                let best = best_peer(rows, self.case)?;
                let x = ours.ops_per_sec / best.ops_per_sec;
                (x, format!("{x:.2}× the best peer ({})", best.case.subject.name()))
            }
            Metric::Over(peer) => {
                let x = speedup(rows, self.case, peer)?;
                (x, format!("{x:.2}× {}", peer.name()))
            }
            Metric::Fairness => (ours.fairness, format!("fairness {:.2}", ours.fairness)),
            Metric::P99OverLowestPeer => {
                let lowest = peers(rows, self.case)?.into_iter().min_by_key(|peer| peer.p99)?;
                let x = ours.p99 as f64 / lowest.p99.max(1) as f64;
                let (p99, theirs, name) = (nanos(ours.p99), nanos(lowest.p99), lowest.case.subject.name());
                (x, format!("acquire p99 {p99}, {x:.2}× the lowest peer's ({name} {theirs})"))
            }
        };
        let (met, relation) =
            if self.metric.at_most() { (value <= self.bound, "≤") } else { (value >= self.bound, "≥") };
        let verdict = if met { "met:" } else { "**missed:**" };
        let group = if self.case.group == Group::Null { String::new() } else { format!("{} ", self.case.group.name()) };
        let (workload, point, bound, unit) =
            (self.case.workload.name(), self.case.point, self.bound, self.metric.unit());
        Some(format!("- {verdict} {group}{workload} {point}: {measured} (target {relation} {bound:?}{unit})"))
    }
}

/// The targets for rusty-db fair: well ahead of every peer where threads
/// outnumber connections, without starving any thread; ahead where they do
/// not; never behind the plain mutex pool on one thread, nor behind
/// r2d2_sqlite on real connections.
fn all_targets() -> Vec<Target> {
    use Group::{Null, Sqlite};
    use Metric::{Fairness, Over, OverBestPeer, P99OverLowestPeer};
    use Workload::{Cycle, HoldYield};
    let mut targets = Vec::new();
    for point in POINTS.into_iter().filter(|p| p.oversubscribed()) {
        for workload in Workload::ALL {
            let (speed, fairness) = if workload == HoldYield { (1.2, 0.8) } else { (1.5, 0.5) };
            targets.push(Target::new(Null, workload, point, OverBestPeer, speed));
            targets.push(Target::new(Null, workload, point, Fairness, fairness));
            if workload == HoldYield && point == Point::new(32, 8) {
                targets.push(Target::new(Null, workload, point, P99OverLowestPeer, 0.5));
            }
        }
    }
    for point in [Point::new(2, 8), Point::new(8, 8)] {
        targets.push(Target::new(Null, Cycle, point, OverBestPeer, 2.0));
    }
    targets.push(Target::new(Null, Cycle, Point::new(1, 8), Over(Subject::ParkingLotMutex), 1.0));
    for workload in Workload::ALL {
        targets.push(Target::new(Sqlite, workload, Point::new(32, 8), Over(Subject::R2d2Sqlite), 1.0));
    }
    targets
}

/// The targets that could be checked, then two comparisons for
/// information: fifo against fair mode where threads wait, and CPU
/// against round-robin home shards.
fn targets(md: &mut String, rows: &[Row]) {
    let lines: Vec<String> = all_targets().iter().filter_map(|target| target.check(rows)).collect();
    let ours = |workload, point| Case::ours(Group::Null, workload, point);
    let fifo: Vec<String> = POINTS
        .into_iter()
        .filter(|p| p.oversubscribed())
        .flat_map(|point| Workload::ALL.map(|workload| ours(workload, point)))
        .filter_map(|case| {
            let x = speedup(rows, case.with(Subject::RustyFifo), Subject::RustyFair)?;
            Some(format!("{} {} {x:.2}×", case.workload.name(), case.point))
        })
        .collect();
    let policy: Vec<String> = POINTS
        .into_iter()
        .filter_map(|point| {
            let x = speedup(rows, ours(Workload::Cycle, point), Subject::RustyFairRoundRobin)?;
            Some(format!("{point} {x:.2}×"))
        })
        .collect();
    if lines.is_empty() && fifo.is_empty() && policy.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n### Targets for rusty-db fair (2-core machine)\n");
    for line in lines {
        let _ = writeln!(md, "{line}");
    }
    if !fifo.is_empty() {
        let _ = writeln!(
            md,
            "\nrusty-db fifo vs. fair where threads outnumber connections (ops/s ratio fifo/fair): {}.",
            fifo.join(", ")
        );
    }
    if !policy.is_empty() {
        let _ = writeln!(md, "\nHome shard by CPU vs. round-robin (cycle, fair, ops/s ratio): {}.", policy.join(", "));
    }
}
