//! Prometheus text exposition (format 0.0.4) of pools' statistics.
//!
//! Every family has its `# HELP` and `# TYPE` lines, every series a
//! `pool="<name>"` label (escaped as the format requires), and names follow
//! Prometheus conventions: base units (seconds), `_total` on counters and
//! only on counters. That is why the current number of connections is the
//! gauge `rustydb_pool_connections`: the API reference's
//! `rustydb_pool_connections_total` is a gauge, which `promtool check
//! metrics` rejects for its `_total` suffix.

use std::fmt::Write;

use super::histograms::QUANTILES;
use super::statistics::PoolStatistics;
use crate::pool::partition::PartitionStatistics;

/// What a family's samples are.
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
        }
    }
}

/// A sample's value: counts stay exact integers.
#[derive(Clone, Copy)]
enum Value {
    Count(u64),
    Real(f64),
}

/// One line of a family: name suffix (`_sum`, `_count` or none), an extra
/// label, and the value.
struct Sample {
    suffix: &'static str,
    /// The partition it is of, for the `rustydb_partition_*` families.
    partition: Option<String>,
    label: Option<(&'static str, &'static str)>,
    value: Value,
}

impl Sample {
    fn plain(value: Value) -> Self {
        Sample { suffix: "", partition: None, label: None, value }
    }

    fn labelled(name: &'static str, label: &'static str, value: Value) -> Self {
        Sample { suffix: "", partition: None, label: Some((name, label)), value }
    }

    fn of_partition(partition: &str, label: Option<(&'static str, &'static str)>, value: Value) -> Self {
        Sample { suffix: "", partition: Some(escape_label_value(partition)), label, value }
    }
}

/// One sample per partition.
fn per_partition(s: &PoolStatistics, value: impl Fn(&PartitionStatistics) -> Value) -> Vec<Sample> {
    s.partitions.iter().map(|p| Sample::of_partition(&p.name, None, value(p))).collect()
}

/// A metric family: name, type, help, whether it exists only while
/// statistics are recorded, and how to read its samples.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    recorded: bool,
    samples: fn(&PoolStatistics) -> Vec<Sample>,
}

const fn gauge(name: &'static str, help: &'static str, samples: fn(&PoolStatistics) -> Vec<Sample>) -> Family {
    Family { name, kind: Kind::Gauge, help, recorded: false, samples }
}

const fn counter(name: &'static str, help: &'static str, samples: fn(&PoolStatistics) -> Vec<Sample>) -> Family {
    Family { name, kind: Kind::Counter, help, recorded: true, samples }
}

/// A partition's counter: kept by its manager, whether or not the pool
/// records statistics.
const fn partition_counter(
    name: &'static str,
    help: &'static str,
    samples: fn(&PoolStatistics) -> Vec<Sample>,
) -> Family {
    Family { name, kind: Kind::Counter, help, recorded: false, samples }
}

fn count(n: usize) -> Vec<Sample> {
    vec![Sample::plain(Value::Count(n as u64))]
}

fn total(n: u64) -> Vec<Sample> {
    vec![Sample::plain(Value::Count(n))]
}

const FAMILIES: &[Family] = &[
    gauge("rustydb_pool_connections", "Open connections: idle, borrowed, and being opened or closed.", |s| {
        count(s.total_connections)
    }),
    gauge("rustydb_pool_active_connections", "Connections borrowed right now.", |s| count(s.active_connections)),
    gauge("rustydb_pool_idle_connections", "Idle connections in the pool.", |s| count(s.idle_connections)),
    gauge("rustydb_pool_wait_queue_size", "Threads waiting for a connection.", |s| count(s.wait_queue_size)),
    gauge("rustydb_pool_max_connections", "The pool's max_size.", |s| count(s.max_size)),
    counter("rustydb_pool_connections_created_total", "Connections the factory created.", |s| {
        total(s.connections_created)
    }),
    counter("rustydb_pool_connections_closed_total", "Connections closed, by reason.", |s| {
        s.closed_by_reason.iter().map(|(r, n)| Sample::labelled("reason", r.as_str(), Value::Count(n))).collect()
    }),
    counter("rustydb_pool_connection_create_failures_total", "Factory create calls that failed or panicked.", |s| {
        total(s.connection_create_failures)
    }),
    counter("rustydb_pool_acquires_total", "Successful acquires.", |s| total(s.acquires)),
    counter(
        "rustydb_pool_acquire_failures_total",
        "Failed acquires, by error; reason=\"timeout\" counts acquire timeouts.",
        |s| s.acquire_failures.iter().map(|(r, n)| Sample::labelled("reason", r, Value::Count(n))).collect(),
    ),
    counter("rustydb_pool_leaks_detected_total", "Borrows reported as leaked.", |s| total(s.leaks_detected)),
    counter("rustydb_pool_hook_panics_total", "Panics caught in factory methods and listener hooks, by hook.", |s| {
        s.hook_panics.iter().map(|(h, n)| Sample::labelled("hook", h.as_str(), Value::Count(n))).collect()
    }),
    counter("rustydb_pool_statement_cache_lookups_total", "Statement cache lookups, by result.", |s| {
        vec![
            Sample::labelled("result", "hit", Value::Count(s.cache_hits)),
            Sample::labelled("result", "miss", Value::Count(s.cache_misses)),
        ]
    }),
    Family {
        name: "rustydb_pool_wait_seconds",
        kind: Kind::Summary,
        help: "Wait of successful acquires for a connection; immediate ones count as 0.",
        recorded: true,
        samples: |s| {
            let h = &s.wait_time_histogram;
            let quantiles = QUANTILES.iter().zip(h.percentiles.quantiles());
            let mut samples: Vec<Sample> =
                quantiles.map(|(&(_, q), d)| Sample::labelled("quantile", q, Value::Real(d.as_secs_f64()))).collect();
            samples.push(Sample {
                suffix: "_sum",
                partition: None,
                label: None,
                value: Value::Real(h.sum.as_secs_f64()),
            });
            samples.push(Sample { suffix: "_count", partition: None, label: None, value: Value::Count(h.count) });
            samples
        },
    },
    Family {
        name: "rustydb_pool_average_acquire_seconds",
        kind: Kind::Gauge,
        help: "Mean time of a successful acquire since the pool started (fast-path ones sampled 1 in 256).",
        recorded: true,
        samples: |s| vec![Sample::plain(Value::Real(s.average_acquire_time.as_secs_f64()))],
    },
    gauge("rustydb_partition_active_connections", "Connections a partition's requests hold right now.", |s| {
        per_partition(s, |p| Value::Count(p.active as u64))
    }),
    gauge("rustydb_partition_waiting", "A partition's requests waiting right now.", |s| {
        per_partition(s, |p| Value::Count(p.waiting as u64))
    }),
    gauge(
        "rustydb_partition_cpu_seconds_in_window",
        "A partition's hold time plus reported CPU in the rolling minute.",
        |s| per_partition(s, |p| Value::Real(p.cpu_in_window.as_secs_f64())),
    ),
    gauge("rustydb_partition_memory_in_use_bytes", "Bytes a partition's borrowers report in use.", |s| {
        per_partition(s, |p| Value::Count(p.memory_in_use))
    }),
    partition_counter("rustydb_partition_acquires_total", "Connections given to a partition's requests.", |s| {
        per_partition(s, |p| Value::Count(p.acquired))
    }),
    partition_counter("rustydb_partition_timeouts_total", "A partition's requests that timed out waiting.", |s| {
        per_partition(s, |p| Value::Count(p.timeouts))
    }),
    partition_counter(
        "rustydb_partition_rejected_total",
        "A partition's requests refused for a full wait queue.",
        |s| per_partition(s, |p| Value::Count(p.rejected)),
    ),
    partition_counter(
        "rustydb_partition_quota_violations_total",
        "Times a partition went over a quota, by resource.",
        |s| {
            s.partitions
                .iter()
                .flat_map(|p| {
                    [("cpu", p.cpu_violations), ("memory", p.memory_violations), ("io", p.io_violations)]
                        .map(|(r, n)| Sample::of_partition(&p.name, Some(("resource", r)), Value::Count(n)))
                })
                .collect()
        },
    ),
];

impl PoolStatistics {
    /// This pool's statistics in the Prometheus text format 0.0.4, every
    /// series labelled `pool="<pool_name>"`.
    ///
    /// Families: the gauges `rustydb_pool_connections` (open connections;
    /// the reference's `rustydb_pool_connections_total` renamed, since only
    /// counters may end in `_total`), `rustydb_pool_active_connections`,
    /// `rustydb_pool_idle_connections`, `rustydb_pool_wait_queue_size`,
    /// `rustydb_pool_max_connections`; while statistics are recorded also
    /// the counters `rustydb_pool_connections_created_total`,
    /// `rustydb_pool_connections_closed_total{reason}`,
    /// `rustydb_pool_connection_create_failures_total`,
    /// `rustydb_pool_acquires_total`,
    /// `rustydb_pool_acquire_failures_total{reason}` (timeouts are
    /// `reason="timeout"`), `rustydb_pool_leaks_detected_total`,
    /// `rustydb_pool_hook_panics_total{hook}`,
    /// `rustydb_pool_statement_cache_lookups_total{result}`, the summary
    /// `rustydb_pool_wait_seconds` (quantiles 0.5 to 0.999, `_sum`, `_count`)
    /// and the gauge `rustydb_pool_average_acquire_seconds`. A partitioned
    /// pool adds, with a `partition` label, the gauges
    /// `rustydb_partition_active_connections`, `rustydb_partition_waiting`,
    /// `rustydb_partition_cpu_seconds_in_window`,
    /// `rustydb_partition_memory_in_use_bytes` and the counters
    /// `rustydb_partition_acquires_total`, `rustydb_partition_timeouts_total`,
    /// `rustydb_partition_rejected_total` and
    /// `rustydb_partition_quota_violations_total{resource}`.
    ///
    /// To expose several pools in one scrape, use
    /// [`prometheus_exposition`](Self::prometheus_exposition): concatenating
    /// two outputs would repeat each family's `HELP` and `TYPE`.
    pub fn to_prometheus(&self, pool_name: &str) -> String {
        Self::prometheus_exposition([(pool_name, self)])
    }

    /// Several pools' statistics in one exposition: each family once, with
    /// one series per pool.
    pub fn prometheus_exposition<'a>(pools: impl IntoIterator<Item = (&'a str, &'a PoolStatistics)>) -> String {
        let pools: Vec<(String, &PoolStatistics)> =
            pools.into_iter().map(|(name, stats)| (escape_label_value(name), stats)).collect();
        let mut out = String::new();
        for family in FAMILIES {
            let present: Vec<_> = pools
                .iter()
                .filter(|(_, s)| s.statistics_enabled || !family.recorded)
                .map(|(pool, stats)| (pool, (family.samples)(stats)))
                .filter(|(_, samples)| !samples.is_empty())
                .collect();
            if present.is_empty() {
                continue;
            }
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
            for (pool, samples) in present {
                for sample in samples {
                    let _ = write!(out, "{}{}{{pool=\"{pool}\"", family.name, sample.suffix);
                    if let Some(partition) = &sample.partition {
                        let _ = write!(out, ",partition=\"{partition}\"");
                    }
                    if let Some((label, value)) = sample.label {
                        let _ = write!(out, ",{label}=\"{value}\"");
                    }
                    let _ = match sample.value {
                        Value::Count(n) => writeln!(out, "}} {n}"),
                        Value::Real(x) => writeln!(out, "}} {x}"),
                    };
                }
            }
        }
        out
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_label_value("plain-name_1"), "plain-name_1");
    }

    #[test]
    fn only_counters_end_in_total() {
        for family in FAMILIES {
            let is_counter = matches!(family.kind, Kind::Counter);
            assert_eq!(family.name.ends_with("_total"), is_counter, "{}", family.name);
        }
    }
}
