//! The JSON bodies of the admin API, in the API reference's shapes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::registry::AdminPool;
use crate::pool::{Buckets, ConnectionInfo, LeakInfo, Partition, PartitionLimits, PoolStatistics, TimeHistogram};

/// `conn_<id>`: how the API names a connection.
pub(crate) fn connection_name(id: u64) -> String {
    format!("conn_{id}")
}

/// The id in `conn_<id>`, if `name` is one.
pub(crate) fn parse_connection_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("conn_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&id| id > 0)
}

/// An entry of `GET /pools`.
pub(crate) fn pool_summary(id: &str, pool: &dyn AdminPool) -> Value {
    let stats = pool.statistics();
    let config = pool.config();
    json!({
        "id": id,
        "name": config.name,
        "min_connections": config.min_size,
        "max_connections": config.max_size,
        "active_connections": stats.active_connections,
        "idle_connections": stats.idle_connections,
        "total_connections": stats.total_connections,
        "wait_queue_size": stats.wait_queue_size,
        "closed": pool.is_closed(),
    })
}

/// The body of `GET /pools/{id}/histograms`: the fixed bucket bounds, and
/// the wait and acquire times counted in them since the pool was created.
/// Two polls' counts subtract into the distribution between them.
pub(crate) fn histograms(stats: &PoolStatistics) -> Value {
    let bounds: Vec<f64> = Buckets::upper_bounds().map(|b| b.as_nanos() as f64 / 1e6).collect();
    let times = |h: &TimeHistogram| {
        json!({
            "count": h.count,
            "sum_ms": h.sum.as_secs_f64() * 1000.0,
            "buckets": h.buckets.counts(),
        })
    };
    json!({
        "upper_bounds_ms": bounds,
        "uptime_seconds": stats.uptime.as_secs_f64(),
        "wait_time": times(&stats.wait_time_histogram),
        "acquire_time": times(&stats.acquire_time_histogram),
    })
}

/// An entry of `GET /connections`.
pub(crate) fn connection(pool_id: &str, info: &ConnectionInfo) -> Value {
    let described = info.description.as_deref();
    json!({
        "id": connection_name(info.id),
        "pool_id": pool_id,
        "user": described.and_then(|d| d.user.clone()),
        "database": described.and_then(|d| d.database.clone()),
        "client_addr": described.and_then(|d| d.client_addr.clone()),
        "state": info.state.as_str(),
        "query": info.query,
        "connected_at": rfc3339(info.connected_at),
        "last_activity": rfc3339(info.last_activity),
        "age_seconds": info.age.as_secs(),
        "borrow_count": info.borrow_count,
        "killed": info.killed,
    })
}

/// The body of `GET /pools/{id}/leaks`: each leak, with the borrower's
/// database user when the factory described the connection.
pub(crate) fn leaks(leaks: &[LeakInfo], connections: &[ConnectionInfo]) -> Value {
    let detected: Vec<Value> = leaks
        .iter()
        .map(|leak| {
            let user = connections
                .iter()
                .find(|c| c.id == leak.connection_id)
                .and_then(|c| c.description.as_deref())
                .and_then(|d| d.user.clone());
            json!({
                "connection_id": connection_name(leak.connection_id),
                "age_seconds": leak.active_duration.as_secs(),
                "user": user,
                "query": leak.last_query,
                "allocated_at": rfc3339(leak.acquired_at),
                "thread_name": leak.thread_name,
            })
        })
        .collect();
    json!({ "total_leaks": detected.len(), "detected_leaks": detected })
}

/// The body of a `201` to `POST /pools/{id}/partitions`: the reference's
/// `id`, `name`, `type` and `created_at`, with the `value` it serves and
/// its `limits`.
pub(crate) fn created_partition(partition: &Partition) -> Value {
    json!({
        "id": partition.id(),
        "name": partition.name(),
        "type": partition.partition_type().kind(),
        "value": partition.partition_type().value(),
        "limits": partition_limits(partition.limits()),
        "created_at": rfc3339(partition.created_at()),
    })
}

/// An entry of `GET /pools/{id}/partitions`. `idle` is the pool's idle
/// count: idle connections belong to no partition, so every entry shows
/// the same shared figure.
pub(crate) fn partition(partition: &Partition, idle: usize) -> Value {
    let stats = partition.statistics();
    let mut entry = created_partition(partition);
    entry["usage"] = json!({
            "active_connections": stats.active,
            "idle_connections": idle,
            "waiting": stats.waiting,
            "acquired": stats.acquired,
            "timeouts": stats.timeouts,
            "rejected": stats.rejected,
            "violations": stats.violations,
            "cpu_violations": stats.cpu_violations,
            "memory_violations": stats.memory_violations,
            "io_violations": stats.io_violations,
            "cpu_seconds_in_window": seconds(stats.cpu_in_window),
            "memory_in_use_bytes": stats.memory_in_use,
    });
    entry
}

/// A partition's limits, the request body's names; a resource limit not
/// set is `null`.
fn partition_limits(limits: &PartitionLimits) -> Value {
    json!({
        "max_connections": limits.max_connections,
        "min_connections": limits.min_connections,
        "max_wait_queue": limits.max_wait_queue,
        "cpu_limit_seconds": limits.cpu_limit.map(seconds),
        "memory_limit_bytes": limits.memory_limit,
        "io_limit_iops": limits.io_limit,
    })
}

/// `duration` in seconds: an integer when it is whole (so `60` comes back
/// as it was sent), else a fraction.
fn seconds(duration: Duration) -> Value {
    if duration.subsec_nanos() == 0 { Value::from(duration.as_secs()) } else { Value::from(duration.as_secs_f64()) }
}

/// `time` in RFC 3339, UTC, to the second: `2025-12-28T09:00:00Z`. Times
/// before 1970 (a clock set far back) show as the epoch.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard
/// Hinnant's days-to-civil algorithm, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_766_912_400), "2025-12-28T09:00:00Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn whole_seconds_stay_integers() {
        assert_eq!(seconds(Duration::from_secs(60)), json!(60));
        assert_eq!(seconds(Duration::ZERO), json!(0));
        assert_eq!(seconds(Duration::from_millis(1500)), json!(1.5));
    }

    #[test]
    fn connection_names_round_trip_and_reject_the_rest() {
        assert_eq!(parse_connection_name(&connection_name(12_345)), Some(12_345));
        for bad in ["conn_", "conn_0", "conn_-1", "conn_1x", "12", "conn_ 1", "conn_99999999999999999999", "CONN_1"] {
            assert_eq!(parse_connection_name(bad), None, "{bad:?}");
        }
    }
}
