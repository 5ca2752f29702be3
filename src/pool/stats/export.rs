//! JSON and CSV views of a [`PoolStatistics`], for custom dashboards and
//! offline analysis.
//!
//! Both come from one table of fields, so they always carry the same
//! figures in the same order: first exactly the fields of the API
//! reference's stats response (the object inside its `data`), then the
//! rest. Times are milliseconds (`_ms`) or seconds (`_seconds`) as `f64`.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Map, Value};

use super::statistics::PoolStatistics;

/// One exported figure.
#[derive(Clone, Copy)]
enum Field {
    Count(u64),
    Real(f64),
    Flag(bool),
}

fn count(n: usize) -> Field {
    Field::Count(n as u64)
}

fn millis(d: Duration) -> Field {
    Field::Real(d.as_secs_f64() * 1000.0)
}

/// How a field is read from the statistics.
type Read = fn(&PoolStatistics) -> Field;

/// Every exported field, in order. The first twelve are the reference's.
const FIELDS: &[(&str, Read)] = &[
    ("connections_created", |s| Field::Count(s.connections_created)),
    ("connections_closed", |s| Field::Count(s.connections_closed)),
    ("active_connections", |s| count(s.active_connections)),
    ("idle_connections", |s| count(s.idle_connections)),
    ("total_connections", |s| count(s.total_connections)),
    ("wait_queue_size", |s| count(s.wait_queue_size)),
    ("connections_per_second", |s| Field::Real(s.connections_per_second)),
    ("avg_acquire_time_ms", |s| millis(s.average_acquire_time)),
    ("avg_wait_time_ms", |s| millis(s.average_wait_time)),
    ("success_rate", |s| Field::Real(s.success_rate)),
    ("pool_utilization", |s| Field::Real(s.pool_utilization)),
    ("cache_hit_rate", |s| Field::Real(s.cache_hit_rate)),
    // Beyond the reference.
    ("statistics_enabled", |s| Field::Flag(s.statistics_enabled)),
    ("uptime_seconds", |s| Field::Real(s.uptime.as_secs_f64())),
    ("max_connections", |s| count(s.max_size)),
    ("acquires", |s| Field::Count(s.acquires)),
    ("immediate_acquires", |s| Field::Count(s.immediate_acquires)),
    ("waited_acquires", |s| Field::Count(s.waited_acquires)),
    ("new_connection_acquires", |s| Field::Count(s.new_connection_acquires)),
    ("failed_acquires", |s| Field::Count(s.failed_acquires)),
    ("timeouts", |s| Field::Count(s.timeouts)),
    ("failed_wait_queue_full", |s| Field::Count(s.acquire_failures.wait_queue_full)),
    ("failed_exhausted", |s| Field::Count(s.acquire_failures.exhausted)),
    ("failed_factory", |s| Field::Count(s.acquire_failures.factory)),
    ("failed_closed", |s| Field::Count(s.acquire_failures.closed)),
    ("failed_other", |s| Field::Count(s.acquire_failures.other)),
    ("connection_create_failures", |s| Field::Count(s.connection_create_failures)),
    ("validation_failures", |s| Field::Count(s.validation_failures)),
    ("leaks_detected", |s| Field::Count(s.leaks_detected)),
    ("closed_idle", |s| Field::Count(s.closed_by_reason.idle)),
    ("closed_lifetime", |s| Field::Count(s.closed_by_reason.lifetime)),
    ("closed_broken", |s| Field::Count(s.closed_by_reason.broken)),
    ("closed_validation", |s| Field::Count(s.closed_by_reason.validation)),
    ("closed_killed", |s| Field::Count(s.closed_by_reason.killed)),
    ("closed_shutdown", |s| Field::Count(s.closed_by_reason.shutdown)),
    ("cache_hits", |s| Field::Count(s.cache_hits)),
    ("cache_misses", |s| Field::Count(s.cache_misses)),
    ("connection_reuse_rate", |s| Field::Real(s.efficiency_metrics.connection_reuse_rate)),
    ("immediate_acquire_rate", |s| Field::Real(s.efficiency_metrics.immediate_acquire_rate)),
    ("wait_time_p50_ms", |s| millis(s.wait_time_histogram.percentiles.p50)),
    ("wait_time_p95_ms", |s| millis(s.wait_time_histogram.percentiles.p95)),
    ("wait_time_p99_ms", |s| millis(s.wait_time_histogram.percentiles.p99)),
    ("wait_time_p999_ms", |s| millis(s.wait_time_histogram.percentiles.p999)),
    ("wait_time_max_ms", |s| millis(s.wait_time_histogram.percentiles.max)),
    ("acquire_time_p50_ms", |s| millis(s.acquire_time_histogram.percentiles.p50)),
    ("acquire_time_p95_ms", |s| millis(s.acquire_time_histogram.percentiles.p95)),
    ("acquire_time_p99_ms", |s| millis(s.acquire_time_histogram.percentiles.p99)),
    ("acquire_time_p999_ms", |s| millis(s.acquire_time_histogram.percentiles.p999)),
    ("acquire_time_max_ms", |s| millis(s.acquire_time_histogram.percentiles.max)),
    ("hook_panics", |s| Field::Count(s.hook_panics.total())),
];

impl PoolStatistics {
    /// The statistics as a JSON object: the reference's stats response
    /// fields (`connections_created`, `connections_closed`,
    /// `active_connections`, `idle_connections`, `total_connections`,
    /// `wait_queue_size`, `connections_per_second`, `avg_acquire_time_ms`,
    /// `avg_wait_time_ms`, `success_rate`, `pool_utilization`,
    /// `cache_hit_rate`), then the same further fields as the CSV columns.
    /// The admin API wraps it in `{"success": true, "data": ...}`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        for (name, read) in FIELDS {
            let value = match read(self) {
                Field::Count(n) => Value::from(n),
                Field::Real(x) => Value::from(x),
                Field::Flag(b) => Value::from(b),
            };
            object.insert((*name).to_string(), value);
        }
        Value::Object(object)
    }

    /// The CSV header row (RFC 4180, no line break): `pool`, then the
    /// fields of [`to_json`](Self::to_json) in the same order. The column
    /// order is stable; new columns are only ever appended.
    pub fn csv_header() -> String {
        std::iter::once("pool").chain(FIELDS.iter().map(|(name, _)| *name)).collect::<Vec<_>>().join(",")
    }

    /// One CSV row (RFC 4180, no line break) for the pool named
    /// `pool_name`, matching [`csv_header`](Self::csv_header). The name is
    /// always quoted, with its double quotes doubled; numbers are plain.
    pub fn to_csv_row(&self, pool_name: &str) -> String {
        let mut row = format!("\"{}\"", pool_name.replace('"', "\"\""));
        for (_, read) in FIELDS {
            // Writing to a String cannot fail.
            let _ = match read(self) {
                Field::Count(n) => write!(row, ",{n}"),
                Field::Real(x) => write!(row, ",{x}"),
                Field::Flag(b) => write!(row, ",{b}"),
            };
        }
        row
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_unique_and_start_with_the_reference_response() {
        let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        let reference = [
            "connections_created",
            "connections_closed",
            "active_connections",
            "idle_connections",
            "total_connections",
            "wait_queue_size",
            "connections_per_second",
            "avg_acquire_time_ms",
            "avg_wait_time_ms",
            "success_rate",
            "pool_utilization",
            "cache_hit_rate",
        ];
        assert_eq!(names[..reference.len()], reference);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }
}
