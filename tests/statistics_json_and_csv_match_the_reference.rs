//! The JSON export carries the reference's stats response fields (the
//! object inside its `data`) with their values; the CSV export parses as
//! RFC 4180 with a header, one row per pool, and a stable column order.

mod common;

use common::{REFERENCE_STATS_FIELDS as REFERENCE_FIELDS, TrackingFactory, config};
use rusty_db::pool::{ConnectionPool, PoolStatistics};
use serde_json::Value;

/// A pool with two connections created, one borrowed, one broken and closed.
fn used_pool(name: &str) -> (ConnectionPool<common::TestConn>, PoolStatistics) {
    let pool = ConnectionPool::new(config().name(name).build().unwrap(), TrackingFactory::new()).unwrap();
    let mut broken = pool.acquire().unwrap();
    let held = pool.acquire().unwrap();
    broken.mark_broken();
    drop(broken);
    pool.stats.record_cache_hit();
    let stats = pool.statistics();
    drop(held);
    (pool, stats)
}

#[test]
fn json_has_the_reference_fields_with_their_values() {
    let (_pool, s) = used_pool("json");
    let json = s.to_json();
    let object = json.as_object().expect("an object");
    for field in REFERENCE_FIELDS {
        assert!(object.get(field).is_some_and(Value::is_number), "{field} missing or not a number in {json}");
    }
    assert_eq!(json["connections_created"], 2);
    assert_eq!(json["connections_closed"], 1);
    assert_eq!(json["active_connections"], 1);
    assert_eq!(json["idle_connections"], 0);
    assert_eq!(json["total_connections"], 1);
    assert_eq!(json["wait_queue_size"], 0);
    assert_eq!(json["connections_per_second"], s.connections_per_second);
    assert_eq!(json["avg_acquire_time_ms"], s.average_acquire_time.as_secs_f64() * 1000.0);
    assert_eq!(json["avg_wait_time_ms"], s.average_wait_time.as_secs_f64() * 1000.0);
    assert_eq!(json["success_rate"], 1.0);
    assert_eq!(json["pool_utilization"], 0.25);
    assert_eq!(json["cache_hit_rate"], 1.0);
    // The admin API wraps it; the wrapped form is the reference's response.
    let response = serde_json::json!({ "success": true, "data": json });
    let text = serde_json::to_string(&response).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["data"]["connections_created"], 2);
}

/// Splits RFC 4180 text into records of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quoted field");
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

#[test]
fn csv_parses_with_a_header_and_one_row_per_pool() {
    let awkward = "tenant \"a\", eu\nwest";
    let (_a, sa) = used_pool(awkward);
    let (_b, sb) = used_pool("plain");
    let text = [PoolStatistics::csv_header(), sa.to_csv_row(awkward), sb.to_csv_row("plain")].join("\r\n") + "\r\n";
    let records = parse_csv(&text);
    assert_eq!(records.len(), 3, "{text}");
    let header = &records[0];
    assert_eq!(header[0], "pool");
    assert_eq!(header[1..=REFERENCE_FIELDS.len()], REFERENCE_FIELDS);
    assert!(records.iter().all(|r| r.len() == header.len()), "{records:?}");
    assert_eq!(records[1][0], awkward);
    assert_eq!(records[2][0], "plain");
    // Every other column is a number or a flag, and the CSV agrees with the JSON.
    let json = sa.to_json();
    for (column, value) in header.iter().zip(&records[1]).skip(1) {
        match &json[column.as_str()] {
            Value::Bool(b) => assert_eq!(value, &b.to_string(), "{column}"),
            Value::Number(n) => {
                let parsed: f64 = value.parse().unwrap_or_else(|_| panic!("{column}: {value:?}"));
                assert_eq!(parsed, n.as_f64().unwrap(), "{column}");
            }
            other => panic!("{column} has no JSON twin: {other}"),
        }
    }
    // The header is the same every time, and the JSON has the same fields.
    assert_eq!(PoolStatistics::csv_header(), header.join(","));
    assert_eq!(json.as_object().unwrap().len(), header.len() - 1);
}
