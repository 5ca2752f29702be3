//! `docs/openapi.yaml` against a live server: every documented operation
//! answers, with and without the token, with a status the spec lists for
//! it, and the spec documents exactly the routes the server serves. The
//! partition routes answer both a pool without partitions (404) and a
//! partitioned one (200, 201, 409, 422) with documented statuses.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::http::request;
use common::{TrackingFactory, config};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::{ConnectionPool, ConnectionState, PartitionManager, RoutingStrategy};

const TOKEN: &str = "openapi-token-0123";

/// The reference's create-partition body.
const PARTITION: &str = r#"{"name":"tenant_acme","type":"TENANT","limits":{"max_connections":50,"min_connections":5,
    "max_wait_queue":100,"cpu_limit_seconds":60,"memory_limit_bytes":1073741824,"io_limit_iops":1000}}"#;

/// (path template, method) -> documented status codes, read from the
/// spec's layout: paths at two spaces, methods at four, codes at eight.
fn operations(spec: &str) -> BTreeMap<(String, String), Vec<u16>> {
    let mut ops = BTreeMap::new();
    let (mut path, mut method) = (None::<String>, None::<String>);
    for line in spec.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 0 && !trimmed.is_empty() && trimmed != "paths:" {
            path = None;
        }
        if indent == 2 && trimmed.starts_with('/') && trimmed.ends_with(':') {
            path = Some(trimmed.trim_end_matches(':').to_string());
            method = None;
        } else if indent == 4 && path.is_some() {
            let name = trimmed.trim_end_matches(':');
            method = ["get", "post", "delete", "put", "patch"].contains(&name).then(|| name.to_uppercase());
            if let (Some(p), Some(m)) = (&path, &method) {
                ops.insert((p.clone(), m.clone()), Vec::new());
            }
        } else if indent == 8 {
            if let (Some(p), Some(m)) = (&path, &method) {
                let code = trimmed.trim_end_matches(':').trim_matches('\'').trim_matches('"');
                if let Ok(code) = code.parse::<u16>() {
                    ops.get_mut(&(p.clone(), m.clone())).expect("inserted above").push(code);
                }
            }
        }
    }
    ops
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml")).unwrap();
    let ops = operations(&spec);
    let served: Vec<(&str, &str)> = vec![
        ("/api/v1/pools", "GET"),
        ("/api/v1/pools/{pool_id}/stats", "GET"),
        ("/api/v1/connections", "GET"),
        ("/api/v1/connections/{connection_id}", "DELETE"),
        ("/api/v1/pools/{pool_id}/partitions", "GET"),
        ("/api/v1/pools/{pool_id}/partitions", "POST"),
        ("/api/v1/pools/{pool_id}/leaks", "GET"),
        ("/api/v1/pools/{pool_id}/histograms", "GET"),
        ("/api/v1/pools/{pool_id}/metrics", "GET"),
        ("/metrics", "GET"),
        ("/health", "GET"),
        ("/dashboard", "GET"),
    ];
    let documented: Vec<(&str, &str)> = ops.keys().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    let mut expected = served.clone();
    expected.sort();
    assert_eq!(documented, expected, "the spec documents exactly the served routes");

    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(
        config().name("default").min_size(3).initial_size(3).max_size(4).build().unwrap(),
        Arc::clone(&factory),
    )
    .unwrap();
    // Partitioned, and large enough for the reference's body (max 50).
    let partitioned = ConnectionPool::new(
        config().name("tenants").max_size(64).enable_partitioning(true).build().unwrap(),
        TrackingFactory::new(),
    )
    .unwrap();
    partitioned.set_partition_manager(PartitionManager::new(RoutingStrategy::TenantBased)).unwrap();
    let registry = Registry::new();
    registry.register(&pool).unwrap();
    registry.register(&partitioned).unwrap();
    let server = AdminServer::builder().token(TOKEN).start(registry).unwrap();
    let addr = server.local_addr();
    let _borrowed = pool.acquire().unwrap();

    for ((template, method), codes) in &ops {
        assert!(!codes.is_empty(), "{method} {template} documents its responses");
        let idle = pool.connections().into_iter().find(|c| c.state == ConnectionState::Idle).expect("an idle one");
        let path =
            template.replace("{pool_id}", "pool_default").replace("{connection_id}", &format!("conn_{}", idle.id));
        let body = (method == "POST").then_some(PARTITION.as_bytes());
        let r = request(addr, method, &path, Some(TOKEN), body);
        assert!(codes.contains(&r.status), "{method} {path}: {} is not documented ({codes:?}): {}", r.status, r.text());
        let wanted = if template.ends_with("/partitions") { 404 } else { 200 };
        assert_eq!(r.status, wanted, "{method} {path}: {}", r.text());
        if r.header("Content-Type") == Some("application/json") {
            assert!(r.json()["success"].is_boolean(), "{method} {path}: an envelope");
        }
        // Without the token: 401 where the spec says so, else as with it.
        let bare = request(addr, method, &path, None, body);
        if template == "/health" || template == "/dashboard" {
            assert_eq!(bare.status, 200);
        } else {
            assert_eq!(bare.status, 401, "{method} {path} without the token");
            assert!(codes.contains(&401), "{method} {template} documents its 401");
        }
        // Unknown pools and connections: a documented 404.
        if template.contains('{') {
            let unknown = template.replace("{pool_id}", "pool_nope").replace("{connection_id}", "conn_999999999");
            let r = request(addr, method, &unknown, Some(TOKEN), body);
            assert_eq!(r.status, 404, "{method} {unknown}");
            assert!(codes.contains(&404), "{method} {template} documents its 404");
        }
    }

    // A partitioned pool: created (201), listed (200), the name again
    // (409), more than its max_size (422); each documented.
    let path = "/api/v1/pools/pool_tenants/partitions";
    let too_big =
        PARTITION.replace("tenant_acme", "tenant_big").replace("\"max_connections\":50", "\"max_connections\":65");
    let calls = [
        ("POST", Some(PARTITION), 201),
        ("GET", None, 200),
        ("POST", Some(PARTITION), 409),
        ("POST", Some(too_big.as_str()), 422),
    ];
    for (method, body, wanted) in calls {
        let codes = &ops[&("/api/v1/pools/{pool_id}/partitions".to_string(), method.to_string())];
        let r = request(addr, method, path, Some(TOKEN), body.map(str::as_bytes));
        assert_eq!(r.status, wanted, "{method} {path}: {}", r.text());
        assert!(codes.contains(&r.status), "{method} {path}: {} is not documented ({codes:?})", r.status);
        assert!(r.json()["success"].is_boolean(), "{method} {path}: an envelope");
    }
    server.shutdown();
}
