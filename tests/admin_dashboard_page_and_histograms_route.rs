//! `GET /dashboard` serves the page without a token, kept to this server
//! by its headers; `GET /api/v1/pools/{id}/histograms` counts every
//! acquire once, in the bucket its time falls in, and two reads subtract
//! into what happened between them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::request;
use common::{TrackingFactory, config};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::{Buckets, ConnectionPool};

const TOKEN: &str = "dashboard-token-0123";
const PAGE: &str = include_str!("../src/admin/dashboard.html");

#[test]
fn the_dashboard_page_needs_no_token_and_loads_nothing_from_elsewhere() {
    // Even with /health and /metrics closed, the page (which holds no
    // data) is served; everything it calls needs the token.
    let server = AdminServer::builder().token(TOKEN).public_health(false).start(Registry::new()).unwrap();
    let addr = server.local_addr();
    let page = request(addr, "GET", "/dashboard", None, None);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.text(), PAGE);
    let policy = page.header("Content-Security-Policy").expect("a content security policy");
    for directive in ["default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(page.header("Referrer-Policy"), Some("no-referrer"));
    assert_eq!(page.header("Cache-Control"), Some("no-store"));
    assert_eq!(request(addr, "GET", "/dashboard/", None, None).status, 200);
    let post = request(addr, "POST", "/dashboard", Some(TOKEN), None);
    assert_eq!((post.status, post.header("Allow")), (405, Some("GET")));
    assert_eq!(request(addr, "GET", "/health", None, None).status, 401);
    assert_eq!(request(addr, "GET", "/api/v1/pools", None, None).status, 401);
    // The page's own calls: all of them under /api/v1, each with the token.
    for path in ["/api/v1/pools\"", "/stats\"", "/histograms\"", "/leaks\"", "/partitions\"", "/api/v1/connections"] {
        assert!(PAGE.contains(path), "the page calls {path}");
    }
    assert!(PAGE.contains("\"Authorization\": \"Bearer \" + token"));
    for elsewhere in [" src=", " href=", "<link", "@import", "url(", "document.cookie", "localStorage"] {
        assert!(!PAGE.contains(elsewhere), "the page uses {elsewhere}");
    }
    server.shutdown();
}

#[test]
fn histograms_count_each_acquire_in_its_bucket_and_subtract_between_reads() {
    let factory = TrackingFactory::new();
    let pool =
        ConnectionPool::new(config().name("default").max_size(2).build().unwrap(), Arc::clone(&factory)).unwrap();
    let registry = Registry::new();
    registry.register(&pool).unwrap();
    let server = AdminServer::builder().token(TOKEN).start(registry).unwrap();
    let addr = server.local_addr();
    let read = || {
        let r = request(addr, "GET", "/api/v1/pools/pool_default/histograms", Some(TOKEN), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].clone()
    };

    // One acquire that waits for a slow creation, then ten served at once.
    factory.set_create_delay(Duration::from_millis(40));
    drop(pool.acquire().unwrap());
    factory.set_create_delay(Duration::ZERO);
    let first = read();
    for _ in 0..10 {
        drop(pool.acquire().unwrap());
    }
    let second = read();

    let bounds: Vec<f64> = second["upper_bounds_ms"].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).collect();
    let expected: Vec<f64> = Buckets::upper_bounds().map(|b| b.as_nanos() as f64 / 1e6).collect();
    assert_eq!(bounds, expected);
    assert_eq!((bounds.len(), bounds[0], bounds[90]), (91, 0.0001, 100_000.0));
    let counts = |data: &serde_json::Value, which: &str| -> Vec<u64> {
        data[which]["buckets"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect()
    };
    let wait_before = counts(&first, "wait_time");
    let wait_after = counts(&second, "wait_time");
    assert_eq!(wait_after.len(), 92);
    assert_eq!(first["wait_time"]["count"], 1);
    assert_eq!(second["wait_time"]["count"], 11);
    assert_eq!(wait_after.iter().sum::<u64>(), 11, "each acquire once: {wait_after:?}");
    // The waited one: 40 ms of creation and more, well under 100 ms.
    let waited = wait_before.iter().position(|&n| n == 1).expect("the waited acquire");
    assert!(bounds[waited] > 40.0 && bounds[waited] <= 100.0, "in the bucket up to {} ms", bounds[waited]);
    assert!(first["wait_time"]["sum_ms"].as_f64().unwrap() >= 40.0);
    // Between the reads: the ten served at once, as zero waits.
    let between: Vec<u64> = wait_after.iter().zip(&wait_before).map(|(a, b)| a - b).collect();
    assert_eq!(between[0], 10, "{between:?}");
    assert_eq!(between.iter().sum::<u64>(), 10);
    assert_eq!(second["acquire_time"]["count"], 11);
    assert!(second["uptime_seconds"].as_f64().unwrap() >= first["uptime_seconds"].as_f64().unwrap());

    let unknown = request(addr, "GET", "/api/v1/pools/pool_nope/histograms", Some(TOKEN), None);
    assert_eq!((unknown.status, unknown.error_code()), (404, "pool_not_found".to_string()));
    assert_eq!(request(addr, "GET", "/api/v1/pools/pool_default/histograms", None, None).status, 401);
    server.shutdown();
}
