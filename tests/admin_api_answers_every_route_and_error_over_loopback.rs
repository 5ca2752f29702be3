//! The admin REST API over real HTTP on loopback, beside a pool under load:
//! every route, every error status, auth on and off, killing idle and
//! borrowed connections with the pool's counts kept consistent, registry
//! changes while serving, and a stuck client that delays no acquire.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::http::{Response, request, send_raw};
use common::{REFERENCE_STATS_FIELDS, TestConn, TrackingFactory, config, eventually};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::{ConnectionPool, LeakDetector};
use serde_json::Value;

const TOKEN: &str = "test-token-0123456789";

/// A pool with a background load of borrowers, served by an admin server.
struct Fixture {
    pool: ConnectionPool<TestConn>,
    factory: Arc<TrackingFactory>,
    server: AdminServer,
    registry: Registry,
    stop: Arc<AtomicBool>,
    load: Vec<thread::JoinHandle<()>>,
    ops: Arc<AtomicU64>,
}

impl Fixture {
    fn new(build: impl FnOnce(rusty_db::admin::AdminServerBuilder) -> rusty_db::admin::AdminServerBuilder) -> Fixture {
        let factory = TrackingFactory::new();
        let pool = ConnectionPool::new(
            config().name("orders").min_size(2).initial_size(2).max_size(6).build().unwrap(),
            Arc::clone(&factory),
        )
        .unwrap();
        let registry = Registry::new();
        assert_eq!(registry.register(&pool).unwrap(), "pool_orders");
        let server = build(AdminServer::builder().token(TOKEN)).start(registry.clone()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let load = (0..3)
            .map(|n| {
                let (pool, stop, ops) = (pool.clone(), Arc::clone(&stop), Arc::clone(&ops));
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(conn) = pool.acquire_timeout(Duration::from_secs(5)) {
                            conn.set_query(format!("SELECT {n}"));
                            thread::sleep(Duration::from_micros(200));
                            ops.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Fixture { pool, factory, server, registry, stop, load, ops }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn get(&self, path: &str) -> Response {
        request(self.addr(), "GET", path, Some(TOKEN), None)
    }

    /// Stops the load and checks the pool's books: every connection the
    /// factory opened and did not close is one the pool counts.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.load.drain(..) {
            t.join().unwrap();
        }
        assert!(eventually(|| self.pool.active() == 0));
        assert_eq!(self.factory.live(), self.pool.size(), "the pool's count matches the factory's");
        assert!(self.ops.load(Ordering::Relaxed) > 0, "the load ran");
        self.factory.assert_no_violations();
    }
}

fn data(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let json = response.json();
    assert_eq!(json["success"], true, "{json}");
    json["data"].clone()
}

#[test]
fn every_route_answers_in_the_reference_shapes() {
    let f = Fixture::new(|b| b);
    let pools = data(&f.get("/api/v1/pools"));
    let pool = &pools.as_array().unwrap()[0];
    for key in [
        "id",
        "name",
        "min_connections",
        "max_connections",
        "active_connections",
        "idle_connections",
        "wait_queue_size",
    ] {
        assert!(pool.get(key).is_some(), "{key} in {pool}");
    }
    assert_eq!((pool["id"].as_str(), pool["name"].as_str()), (Some("pool_orders"), Some("orders")));
    assert_eq!((pool["min_connections"].as_u64(), pool["max_connections"].as_u64()), (Some(2), Some(6)));

    let stats = data(&f.get("/api/v1/pools/pool_orders/stats"));
    let keys: Vec<&str> = stats.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(&keys[..12], REFERENCE_STATS_FIELDS, "the reference's fields first, in its order");
    for key in ["acquire_time_p99_ms", "wait_time_p99_ms", "wait_time_p50_ms"] {
        assert!(stats[key].is_number(), "{key}: {stats}");
    }

    let listed = data(&f.get("/api/v1/connections"));
    let listed = listed.as_array().unwrap();
    assert!(!listed.is_empty());
    for conn in listed {
        let id = conn["id"].as_str().unwrap();
        assert!(id.starts_with("conn_") && id[5..].parse::<u64>().is_ok(), "{id}");
        assert_eq!(conn["pool_id"], "pool_orders");
        assert!(["active", "idle"].contains(&conn["state"].as_str().unwrap()));
        for key in ["connected_at", "last_activity"] {
            let at = conn[key].as_str().unwrap();
            assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "{key}: {at}");
        }
        assert!(conn["age_seconds"].is_u64());
        for key in ["user", "database", "client_addr", "query"] {
            assert!(conn.get(key).is_some(), "{key} present, maybe null");
        }
    }
    for (status, state) in [("active", "active"), ("idle", "idle")] {
        let filtered = data(&f.get(&format!("/api/v1/connections?status={status}&pool_id=pool_orders")));
        assert!(filtered.as_array().unwrap().iter().all(|c| c["state"] == state), "{filtered}");
    }

    let leaks = data(&f.get("/api/v1/pools/pool_orders/leaks"));
    assert_eq!(leaks["total_leaks"], 0);
    assert!(leaks["detected_leaks"].as_array().unwrap().is_empty());

    let prom = f.get("/api/v1/pools/pool_orders/metrics?format=prometheus");
    assert_eq!(prom.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert!(prom.text().contains("rustydb_pool_connections{pool=\"orders\"}"), "{}", prom.text());
    assert_eq!(f.get("/api/v1/pools/pool_orders/metrics").text().lines().next(), prom.text().lines().next());
    let json = data(&f.get("/api/v1/pools/pool_orders/metrics?format=json"));
    assert_eq!(json["pool"], "pool_orders");
    let csv = f.get("/api/v1/pools/pool_orders/metrics?format=csv");
    assert_eq!(csv.header("Content-Type"), Some("text/csv; charset=utf-8"));
    let rows: Vec<String> = csv.text().lines().map(str::to_string).collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].starts_with("pool,connections_created") && rows[1].starts_with("\"orders\","), "{rows:?}");

    let all = f.get("/metrics");
    assert_eq!(all.status, 200);
    assert!(all.text().contains("rustydb_pool_active_connections{pool=\"orders\"}"));
    let health = request(f.addr(), "GET", "/health", None, None);
    assert_eq!(data(&health), serde_json::json!({"status": "ok", "pools": 1}));
    f.finish();
}

#[test]
fn leaks_are_listed_with_their_query_and_borrower() {
    let f = Fixture::new(|b| b);
    let detector = LeakDetector::new(Duration::from_millis(50), Duration::from_millis(20));
    f.pool.attach_leak_detector(detector.clone());
    let held = f.pool.acquire().unwrap();
    held.set_query("SELECT * FROM large_table");
    assert!(eventually(|| !detector.get_leaks().is_empty()));
    let leaks = data(&f.get("/api/v1/pools/pool_orders/leaks"));
    assert_eq!(leaks["total_leaks"], 1, "{leaks}");
    let leak = &leaks["detected_leaks"][0];
    assert_eq!(leak["connection_id"], format!("conn_{}", held.id()));
    assert_eq!(leak["query"], "SELECT * FROM large_table");
    assert!(leak["allocated_at"].as_str().unwrap().ends_with('Z'));
    assert!(leak.get("user").is_some() && leak["age_seconds"].is_u64());
    drop(held);
    f.finish();
}

#[test]
fn every_error_status_has_its_code_and_headers() {
    let f = Fixture::new(|b| b.body_limit(1024));
    let addr = f.addr();
    // 401, with WWW-Authenticate, on every protected route, and for a wrong token.
    for path in
        ["/api/v1/pools", "/api/v1/pools/pool_orders/stats", "/api/v1/connections", "/api/v1/nowhere", "/metrics"]
    {
        for token in [None, Some("wrong-token")] {
            let r = request(addr, "GET", path, token, None);
            assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"), "{path} {token:?}");
            assert_eq!(r.header("WWW-Authenticate"), Some("Bearer realm=\"rusty-db\""));
        }
    }
    let status = |method: &str, path: &str, body: Option<&[u8]>| {
        let r = request(addr, method, path, Some(TOKEN), body);
        (r.status, r.error_code())
    };
    // 404: unknown route, pool, connection (and a name that is no connection id).
    assert_eq!(status("GET", "/api/v1/nowhere", None), (404, "not_found".into()));
    assert_eq!(status("GET", "/nowhere", None), (404, "not_found".into()));
    assert_eq!(status("GET", "/api/v1/pools/pool_nope/stats", None), (404, "pool_not_found".into()));
    assert_eq!(status("GET", "/api/v1/connections?pool_id=pool_nope", None), (404, "pool_not_found".into()));
    assert_eq!(status("DELETE", "/api/v1/connections/conn_999999999", None), (404, "connection_not_found".into()));
    assert_eq!(status("DELETE", "/api/v1/connections/banana", None), (404, "connection_not_found".into()));
    assert_eq!(status("GET", "/api/v1/pools/pool_orders/partitions", None), (404, "partitioning_not_enabled".into()));
    // 405 with Allow.
    let r = request(addr, "PUT", "/api/v1/pools", Some(TOKEN), None);
    assert_eq!((r.status, r.error_code().as_str(), r.header("Allow")), (405, "method_not_allowed", Some("GET")));
    let r = request(addr, "GET", "/api/v1/connections/conn_1", Some(TOKEN), None);
    assert_eq!((r.status, r.header("Allow")), (405, Some("DELETE")));
    let r = request(addr, "DELETE", "/api/v1/pools/pool_orders/partitions", Some(TOKEN), None);
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, POST")));
    // 400: bad query parameters, bad JSON.
    assert_eq!(status("GET", "/api/v1/connections?status=sleeping", None), (400, "invalid_parameter".into()));
    assert_eq!(status("GET", "/api/v1/pools/pool_orders/metrics?format=xml", None), (400, "invalid_parameter".into()));
    assert_eq!(status("DELETE", "/api/v1/connections/conn_1?force=yes", None), (400, "invalid_parameter".into()));
    assert_eq!(status("GET", "/api/v1/connections?status=%zz", None), (400, "invalid_parameter".into()));
    let partitions = "/api/v1/pools/pool_orders/partitions";
    assert_eq!(status("POST", partitions, Some(b"{not json")), (400, "malformed_json".into()));
    assert_eq!(status("POST", partitions, Some(br#"{"name":"a"}"#)), (400, "malformed_json".into()));
    // 422: contradictory limits; a valid body then meets a pool without partitions.
    let body = |min: u32, max: u32| {
        format!(
            r#"{{"name":"tenant_acme","type":"TENANT","limits":{{"max_connections":{max},"min_connections":{min}}}}}"#
        )
    };
    assert_eq!(status("POST", partitions, Some(body(5, 2).as_bytes())), (422, "invalid_partition_limits".into()));
    assert_eq!(status("POST", partitions, Some(body(0, 0).as_bytes())), (422, "invalid_partition_limits".into()));
    assert_eq!(status("POST", partitions, Some(body(1, 5).as_bytes())), (404, "partitioning_not_enabled".into()));
    // 413: over the body limit, by its Content-Length and by its bytes (chunked).
    assert_eq!(status("POST", partitions, Some(&[b' '; 2048])), (413, "payload_too_large".into()));
    assert_eq!(status("GET", "/api/v1/pools", Some(&[b' '; 2048])), (413, "payload_too_large".into()));
    let chunked = format!(
        "POST {partitions} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        " ".repeat(0x800)
    );
    let r = send_raw(addr, chunked.as_bytes()).unwrap();
    assert_eq!((r.status, r.error_code().as_str()), (413, "payload_too_large"));
    // 409: a borrowed connection, killed without force.
    let held = f.pool.acquire().unwrap();
    let path = format!("/api/v1/connections/conn_{}", held.id());
    assert_eq!(status("DELETE", &path, None), (409, "connection_in_use".into()));
    assert!(!held.is_killed());
    drop(held);
    f.finish();
}

/// Sends a POST head promising `length` bytes and `sent` of them, then stalls.
fn stalled_post(addr: SocketAddr, length: usize, sent: usize) -> TcpStream {
    let head = format!(
        "POST /api/v1/pools/pool_orders/partitions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: {length}\r\n\r\n{}",
        " ".repeat(sent)
    );
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

#[test]
fn a_body_sent_too_slowly_times_out_and_delays_no_acquire() {
    let f = Fixture::new(|b| b.read_timeout(Duration::from_millis(300)));
    // Over 1 KiB the admin thread reads the body itself: 408.
    let mut stream = stalled_post(f.addr(), 5000, 100);
    // While the admin thread waits for the rest, the pool serves as ever.
    let started = Instant::now();
    drop(f.pool.acquire_timeout(Duration::from_secs(5)).unwrap());
    assert!(started.elapsed() < Duration::from_secs(2));
    let r = common::http::read_response(&mut stream).unwrap();
    assert_eq!((r.status, r.error_code().as_str()), (408, "request_timeout"));
    // Up to 1 KiB tiny_http reads it before the request reaches us, and
    // drops a stalled one: the connection closes within the timeout.
    let mut small = stalled_post(f.addr(), 500, 10);
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut small, &mut rest);
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    // And the server goes on answering.
    assert_eq!(f.get("/api/v1/pools").status, 200);
    f.finish();
}

#[test]
fn a_stuck_client_blocks_no_acquire_and_no_other_request() {
    let f = Fixture::new(|b| b);
    // Half a request line, then nothing: tiny_http's connection thread waits.
    let mut stuck = TcpStream::connect(f.addr()).unwrap();
    stuck.write_all(b"GET /api/v1/po").unwrap();
    let mut silent = TcpStream::connect(f.addr()).unwrap();
    silent.write_all(b"").unwrap();
    for _ in 0..20 {
        let started = Instant::now();
        drop(f.pool.acquire_timeout(Duration::from_secs(5)).unwrap());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(f.get("/api/v1/pools").status, 200);
    }
    drop((stuck, silent));
    f.finish();
}

#[test]
fn auth_can_be_turned_off_and_metrics_opened() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(config().name("open").build().unwrap(), Arc::clone(&factory)).unwrap();
    let registry = Registry::new();
    registry.register(&pool).unwrap();
    let server = AdminServer::builder().without_auth().start(registry.clone()).unwrap();
    assert_eq!(request(server.local_addr(), "GET", "/api/v1/pools", None, None).status, 200);
    assert_eq!(request(server.local_addr(), "GET", "/metrics", None, None).status, 200);
    server.shutdown();

    let server = AdminServer::builder().token(TOKEN).public_metrics(true).public_health(false).start(registry).unwrap();
    assert_eq!(request(server.local_addr(), "GET", "/metrics", None, None).status, 200);
    assert_eq!(request(server.local_addr(), "GET", "/health", None, None).status, 401);
    assert_eq!(request(server.local_addr(), "GET", "/health", Some(TOKEN), None).status, 200);
    assert_eq!(request(server.local_addr(), "GET", "/api/v1/pools", None, None).status, 401);
}

#[test]
fn the_builder_refuses_unsafe_or_contradictory_settings() {
    let refused = |b: rusty_db::admin::AdminServerBuilder, says: &str| match b.start(Registry::new()) {
        Err(rusty_db::admin::AdminError::InvalidConfig(m)) => assert!(m.contains(says), "{m:?} should say {says:?}"),
        other => panic!("expected InvalidConfig mentioning {says:?}, got {other:?}"),
    };
    refused(AdminServer::builder(), "token");
    refused(AdminServer::builder().token(""), "token");
    refused(AdminServer::builder().token("has space"), "token");
    refused(AdminServer::builder().token(TOKEN).bind("0.0.0.0:0".parse().unwrap()), "TLS");
    refused(AdminServer::builder().token(TOKEN).body_limit(0), "body_limit");
    refused(AdminServer::builder().token(TOKEN).read_timeout(Duration::ZERO), "timeout");
    refused(AdminServer::builder().token(TOKEN).workers(0), "workers");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = AdminServer::builder().token(TOKEN).bind(taken.local_addr().unwrap()).start(Registry::new());
    assert!(matches!(busy, Err(rusty_db::admin::AdminError::Bind { .. })), "{busy:?}");
    // Explicit opt-ins are honoured.
    let remote = AdminServer::builder().token(TOKEN).bind("0.0.0.0:0".parse().unwrap()).allow_plaintext_remote();
    remote.start(Registry::new()).unwrap().shutdown();
}

#[test]
fn killing_idle_and_borrowed_connections_loses_nothing() {
    let f = Fixture::new(|b| b.workers(2));
    let kill = |id: u64, force: bool| {
        let path = format!("/api/v1/connections/conn_{id}{}", if force { "?force=true" } else { "" });
        request(f.addr(), "DELETE", &path, Some(TOKEN), None)
    };
    // Borrowed, with force: marked, then closed when it comes back.
    let held = f.pool.acquire().unwrap();
    let id = held.id();
    let closed_before = f.factory.closed();
    let r = data(&kill(id, true));
    assert_eq!(r, serde_json::json!({"connection_id": format!("conn_{id}"), "killed": true, "closed": false}));
    assert!(held.is_killed());
    let listed = data(&f.get("/api/v1/connections?status=active"));
    assert!(listed.as_array().unwrap().iter().any(|c| c["id"] == format!("conn_{id}") && c["killed"] == true));
    drop(held);
    assert!(eventually(|| f.factory.closed_serials().len() > closed_before));
    assert!(data(&f.get("/api/v1/connections")).as_array().unwrap().iter().all(|c| c["id"] != format!("conn_{id}")));
    // Idle: closed at once (the load stopped, so every connection is idle).
    f.stop.store(true, Ordering::Relaxed);
    assert!(eventually(|| f.pool.active() == 0));
    let idle_id = f.pool.connections()[0].id;
    let r = data(&kill(idle_id, false));
    assert_eq!(r["closed"], true, "{r}");
    assert!(f.pool.connections().iter().all(|c| c.id != idle_id));
    assert_eq!(kill(idle_id, false).status, 404, "gone");
    let stats = f.pool.statistics();
    assert_eq!(stats.closed_by_reason.killed, 2, "both counted as killed");
    // The pool still works, and refills to min_size.
    drop(f.pool.acquire().unwrap());
    assert!(eventually(|| f.pool.size() >= 2));
    f.finish();
}

#[test]
fn pools_come_and_go_while_the_server_serves() {
    let f = Fixture::new(|b| b.workers(2));
    let registry = f.registry.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let factory = TrackingFactory::new();
                let pool = ConnectionPool::new(
                    config().name(format!("t{}", rounds % 3)).min_size(1).initial_size(1).build().unwrap(),
                    factory,
                )
                .unwrap();
                let id = registry.register(&pool).unwrap();
                thread::sleep(Duration::from_millis(2));
                if rounds % 2 == 0 {
                    assert!(registry.unregister(&id));
                } // else: dropped while registered, which closes it
                drop(pool);
                rounds += 1;
            }
            rounds
        })
    };
    let deadline = Instant::now() + Duration::from_millis(800);
    let mut answered = 0;
    while Instant::now() < deadline {
        for path in ["/api/v1/pools", "/metrics", "/api/v1/connections"] {
            let r = f.get(path);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            answered += 1;
        }
        let r = f.get("/api/v1/pools/pool_t1/stats");
        assert!(r.status == 200 || (r.status == 404 && r.error_code() == "pool_not_found"), "{}", r.text());
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().unwrap() > 10 && answered > 10);
    let ids: Vec<Value> = data(&f.get("/api/v1/pools")).as_array().unwrap().iter().map(|p| p["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from("pool_orders")], "dropped pools are not listed, nor kept open");
    f.finish();
}

#[test]
fn shutdown_joins_the_server_and_frees_its_port() {
    let server = AdminServer::builder().token(TOKEN).start(Registry::new()).unwrap();
    let addr = server.local_addr();
    assert_eq!(request(addr, "GET", "/health", None, None).status, 200);
    server.shutdown();
    TcpListener::bind(addr).expect("the port is free again");
}

#[test]
fn the_server_outlives_its_accept_timeout() {
    // Accept times out with the read timeout; the server listens again.
    let server =
        AdminServer::builder().token(TOKEN).read_timeout(Duration::from_millis(100)).start(Registry::new()).unwrap();
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(250));
        assert_eq!(request(server.local_addr(), "GET", "/health", None, None).status, 200);
    }
}
