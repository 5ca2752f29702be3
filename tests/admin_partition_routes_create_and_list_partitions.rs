//! `POST` and `GET /api/v1/pools/{pool_id}/partitions` over loopback on a
//! partitioned pool: a created partition is answered 201 in the reference's
//! shape and lives in the pool with the limits and type asked for; the list
//! shows every partition with its limits and usage (a borrowed connection
//! counts, idle connections are the pool's shared ones); a taken name gets
//! 409, limits the pool cannot fit 422 with the pool's reason, bad JSON
//! 400; a pool without partitions 404 `partitioning_not_enabled`, an
//! unknown one 404 `pool_not_found`, no token 401.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::eventually;
use common::http::{Response, request};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::{
    ConnectionFactory, ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest, PartitionType, PoolConfig,
    Result, RoutingStrategy,
};
use serde_json::{Value, json};

const TOKEN: &str = "partition-token-0123456789";
const PARTITIONS: &str = "/api/v1/pools/pool_tenants/partitions";

/// The reference's create-partition body, with limits that fit in a pool
/// of 8 (max 5, min 2) and the tenant it serves.
const ACME: &str = r#"{"name":"tenant_acme","type":"TENANT","value":"ACME Corp","limits":{"max_connections":5,
    "min_connections":2,"max_wait_queue":100,"cpu_limit_seconds":60,"memory_limit_bytes":1073741824,
    "io_limit_iops":1000}}"#;

struct Factory;

impl ConnectionFactory<u32> for Factory {
    fn create(&self) -> Result<u32> {
        Ok(0)
    }
}

/// A pool of at most 8 named `name`, partitioned when `partitioned`.
fn pool(name: &str, partitioned: bool) -> ConnectionPool<u32> {
    let config = PoolConfig::builder()
        .name(name)
        .min_size(0)
        .initial_size(0)
        .max_size(8)
        .acquire_timeout(Duration::from_secs(5))
        .enable_partitioning(partitioned)
        .build()
        .unwrap();
    ConnectionPool::new(config, Arc::new(Factory)).unwrap()
}

/// `pool_tenants`, partitioned (TenantBased), served with a token.
struct Fixture {
    pool: ConnectionPool<u32>,
    server: AdminServer,
    registry: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        let pool = pool("tenants", true);
        pool.set_partition_manager(PartitionManager::new(RoutingStrategy::TenantBased)).unwrap();
        let registry = Registry::new();
        assert_eq!(registry.register(&pool).unwrap(), "pool_tenants");
        let server = AdminServer::builder().token(TOKEN).start(registry.clone()).unwrap();
        Fixture { pool, server, registry }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn post(&self, body: &str) -> Response {
        request(self.addr(), "POST", PARTITIONS, Some(TOKEN), Some(body.as_bytes()))
    }

    fn list(&self) -> Vec<Value> {
        let r = request(self.addr(), "GET", PARTITIONS, Some(TOKEN), None);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let json = r.json();
        assert_eq!(json["success"], true, "{json}");
        json["data"].as_array().expect("an array").clone()
    }

    fn partition_count(&self) -> usize {
        self.pool.partitions().unwrap().partitions().len()
    }
}

/// A body naming `name` with `max` and `min` connections.
fn body(name: &str, max: u64, min: u64) -> String {
    format!(r#"{{"name":"{name}","type":"TENANT","limits":{{"max_connections":{max},"min_connections":{min}}}}}"#)
}

/// Whether `text` is RFC 3339 UTC to the second (`2025-12-28T10:00:00Z`).
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
}

/// The full limits object the API answers for `ACME`.
fn acme_limits() -> Value {
    json!({
        "max_connections": 5,
        "min_connections": 2,
        "max_wait_queue": 100,
        "cpu_limit_seconds": 60,
        "memory_limit_bytes": 1_073_741_824u64,
        "io_limit_iops": 1000,
    })
}

#[test]
fn a_created_partition_is_answered_201_and_lives_in_the_pool() {
    let f = Fixture::new();
    let before = SystemTime::now();
    let r = f.post(ACME);
    let after = SystemTime::now();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let json = r.json();
    assert_eq!(json["success"], true, "{json}");
    let data = &json["data"];
    let mut keys: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_at", "id", "limits", "name", "type", "value"], "{data}");
    assert_eq!(data["name"], "tenant_acme");
    assert_eq!(data["type"], "TENANT");
    assert_eq!(data["value"], "ACME Corp");
    assert_eq!(data["limits"], acme_limits());
    let created_at = data["created_at"].as_str().unwrap();
    assert!(is_rfc3339(created_at), "{created_at}");

    // The pool has it, as asked for, created during the POST.
    let manager = f.pool.partitions().unwrap();
    let partition = manager.partition("tenant_acme").expect("created in the pool");
    assert!(before <= partition.created_at() && partition.created_at() <= after);
    assert_eq!(created_at, rfc3339(partition.created_at()));
    assert_eq!(data["id"], partition.id());
    assert!(partition.id().starts_with("partition_"), "{}", partition.id());
    assert_eq!(partition.partition_type(), &PartitionType::Tenant("ACME Corp".into()));
    assert_eq!(
        partition.limits(),
        &PartitionLimits {
            max_connections: 5,
            min_connections: 2,
            max_wait_queue: 100,
            cpu_limit: Some(Duration::from_secs(60)),
            memory_limit: Some(1_073_741_824),
            io_limit: Some(1000),
        }
    );
    // And routes the tenant named in "value" to it.
    assert_eq!(manager.route(&PartitionRequest::for_tenant("ACME Corp")).unwrap().name(), "tenant_acme");

    // Without "value", the partition serves its own name; left-out limits
    // take PartitionLimits' defaults, and unset quotas are null.
    let r = f.post(r#"{"name":"ops","type":"RESOURCE_GROUP","limits":{"max_connections":2,"cpu_limit_seconds":0.5}}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let data = &r.json()["data"];
    assert_eq!((data["type"].as_str(), data["value"].as_str()), (Some("RESOURCE_GROUP"), Some("ops")));
    let defaults = PartitionLimits::default();
    assert_eq!(
        data["limits"],
        json!({
            "max_connections": 2,
            "min_connections": defaults.min_connections,
            "max_wait_queue": defaults.max_wait_queue,
            "cpu_limit_seconds": 0.5,
            "memory_limit_bytes": null,
            "io_limit_iops": null,
        })
    );
    let ops = manager.partition("ops").unwrap();
    assert_eq!(ops.partition_type(), &PartitionType::ResourceGroup("ops".into()));
    assert_eq!(ops.limits().cpu_limit, Some(Duration::from_millis(500)));
    assert_ne!(data["id"], partition.id(), "ids are distinct");
    f.server.shutdown();
}

/// `time` as the API writes it (RFC 3339, UTC, to the second), by the
/// civil-date arithmetic of the server's own helper, which is private.
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[test]
fn the_list_shows_each_partition_with_its_limits_and_usage() {
    let f = Fixture::new();
    assert_eq!(f.list(), Vec::<Value>::new(), "no partitions yet");
    assert_eq!(f.post(ACME).status, 201);
    assert_eq!(f.post(&body("tenant_globex", 3, 0)).status, 201);

    let held = f.pool.acquire_for(&PartitionRequest::for_tenant("ACME Corp")).unwrap();
    // Maintenance opens connections for the reservations in the
    // background; read the pool's idle count when it holds still.
    assert!(eventually(|| f.pool.size() >= 2));
    let (list, idle) = loop {
        let idle = f.pool.idle();
        let list = f.list();
        if f.pool.idle() == idle {
            break (list, idle);
        }
    };
    assert_eq!(list.len(), 2, "{list:?}");
    let (acme, globex) = (&list[0], &list[1]);
    assert_eq!(acme["name"], "tenant_acme", "in creation order");
    assert_eq!(globex["name"], "tenant_globex");
    assert_eq!(acme["id"], f.pool.partitions().unwrap().partition("tenant_acme").unwrap().id());
    assert_eq!((acme["type"].as_str(), acme["value"].as_str()), (Some("TENANT"), Some("ACME Corp")));
    assert_eq!(acme["limits"], acme_limits());
    assert!(is_rfc3339(acme["created_at"].as_str().unwrap()), "{acme}");
    assert_eq!(globex["limits"]["max_connections"], 3);
    assert_eq!(globex["limits"]["min_connections"], 0);
    assert_eq!(globex["limits"]["cpu_limit_seconds"], Value::Null);

    let usage = &acme["usage"];
    assert_eq!(usage["active_connections"], 1, "the borrowed one: {usage}");
    assert_eq!(usage["acquired"], 1);
    for zero in
        ["waiting", "timeouts", "rejected", "violations", "cpu_violations", "memory_violations", "io_violations"]
    {
        assert_eq!(usage[zero], 0, "{zero}: {usage}");
    }
    assert_eq!(usage["memory_in_use_bytes"], 0);
    assert!(usage["cpu_seconds_in_window"].as_f64().is_some_and(|s| s >= 0.0), "{usage}");
    // Idle connections belong to no partition: each entry shows the pool's.
    assert_eq!(usage["idle_connections"], idle, "{usage}");
    assert_eq!(globex["usage"]["idle_connections"], idle);
    assert_eq!(globex["usage"]["active_connections"], 0);
    assert_eq!(globex["usage"]["acquired"], 0);

    // Returned: no longer active.
    drop(held);
    assert_eq!(f.list()[0]["usage"]["active_connections"], 0);
    assert_eq!(f.list()[0]["usage"]["acquired"], 1);
    f.server.shutdown();
}

#[test]
fn a_taken_name_gets_409_and_limits_the_pool_cannot_fit_get_422() {
    let f = Fixture::new();
    assert_eq!(f.post(ACME).status, 201);
    let error = |r: &Response| (r.status, r.error_code(), r.json()["error"]["message"].as_str().unwrap().to_string());

    // The same name again, whatever the limits.
    let (status, code, message) = error(&f.post(ACME));
    assert_eq!((status, code.as_str()), (409, "partition_exists"));
    assert!(message.contains("tenant_acme"), "{message}");
    assert_eq!(error(&f.post(&body("tenant_acme", 1, 0))).0, 409);

    // More than the pool's max_size (8).
    let (status, code, message) = error(&f.post(&body("big", 100, 0)));
    assert_eq!((status, code.as_str()), (422, "invalid_partition_limits"));
    assert!(message.contains("max_connections (100) exceeds the pool's max_size (8)"), "{message}");

    // A minimum that fits alone, but not beside tenant_acme's 2 reserved.
    let (status, code, message) = error(&f.post(&body("greedy", 8, 7)));
    assert_eq!((status, code.as_str()), (422, "invalid_partition_limits"));
    assert!(message.contains("min_connections (7)") && message.contains("(2)"), "{message}");
    assert!(message.contains("max_size (8)"), "{message}");
    // Exactly what is left fits.
    assert_eq!(f.post(&body("fits", 8, 6)).status, 201);

    // Limits that cannot work anywhere: 422 before the pool is asked.
    assert_eq!(error(&f.post(&body("upside_down", 2, 3))).1, "invalid_partition_limits");
    assert_eq!(error(&f.post(&body("none", 0, 0))).0, 422);

    // Bad JSON and bad shapes: 400.
    assert_eq!((f.post("{not json").status, f.post("{not json").error_code()), (400, "malformed_json".into()));
    let custom = r#"{"name":"c","type":"CUSTOM","limits":{"max_connections":1}}"#;
    assert_eq!((f.post(custom).status, f.post(custom).error_code()), (400, "malformed_json".into()));
    assert_eq!(f.post(r#"{"name":"v","type":"USER","value":1,"limits":{"max_connections":1}}"#).status, 400);

    // Nothing refused was created.
    let names: Vec<String> = f.pool.partitions().unwrap().partitions().iter().map(|p| p.name().to_string()).collect();
    assert_eq!(names, ["tenant_acme", "fits"]);
    assert_eq!(f.partition_count(), 2);
    f.server.shutdown();
}

#[test]
fn unpartitioned_and_unknown_pools_get_404_and_no_token_401() {
    let f = Fixture::new();
    let plain = pool("plain", false);
    let unattached = pool("unattached", true); // partitioning on, no manager attached
    f.registry.register(&plain).unwrap();
    f.registry.register(&unattached).unwrap();
    let addr = f.addr();
    let answer = |method: &str, path: &str, token: Option<&str>| {
        let body = (method == "POST").then_some(ACME.as_bytes());
        let r = request(addr, method, path, token, body);
        (r.status, r.error_code(), r.json()["error"]["message"].as_str().unwrap_or_default().to_string())
    };
    for method in ["GET", "POST"] {
        for pool in ["pool_plain", "pool_unattached"] {
            let path = format!("/api/v1/pools/{pool}/partitions");
            let (status, code, message) = answer(method, &path, Some(TOKEN));
            assert_eq!((status, code.as_str()), (404, "partitioning_not_enabled"), "{method} {path}");
            assert!(
                message.contains("enable_partitioning(true)") && message.contains("PartitionManager"),
                "{method} {path}: {message}"
            );
        }
        let (status, code, _) = answer(method, "/api/v1/pools/pool_nope/partitions", Some(TOKEN));
        assert_eq!((status, code.as_str()), (404, "pool_not_found"), "{method}");
        for token in [None, Some("wrong-token")] {
            let (status, code, _) = answer(method, PARTITIONS, token);
            assert_eq!((status, code.as_str()), (401, "unauthorized"), "{method} {token:?}");
        }
    }
    // Nothing reached the partitioned pool without the token.
    assert_eq!(f.partition_count(), 0);
    // A bad body is refused before the pool is looked up.
    let r =
        request(addr, "POST", "/api/v1/pools/pool_plain/partitions", Some(TOKEN), Some(&body("a", 2, 3).into_bytes()));
    assert_eq!((r.status, r.error_code()), (422, "invalid_partition_limits".into()));
    f.server.shutdown();
}
