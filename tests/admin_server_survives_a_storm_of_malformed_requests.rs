//! A fuzz-style storm against the admin server: thousands of random and
//! malformed requests (paths, methods, headers, bodies, slow senders and
//! half-sent requests) from several threads, beside a pool under load.
//! Afterwards the server still answers `/health`, no request got a 500,
//! and the pool's books balance.

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::http::{read_response, request};
use common::{Rng, TrackingFactory, config, eventually};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::ConnectionPool;

const TOKEN: &str = "storm-token-abcdef";
const REQUESTS_PER_THREAD: usize = 500;
const THREADS: usize = 6;

const METHODS: &[&str] =
    &["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "G\x00T", "", "GETT", "get"];
const PATHS: &[&str] = &[
    "/api/v1/pools",
    "/api/v1/pools/pool_storm/stats",
    "/api/v1/pools/pool_storm/partitions",
    "/api/v1/pools/pool_storm/leaks",
    "/api/v1/pools/pool_storm/metrics?format=csv",
    "/api/v1/pools/pool_storm/metrics?format=%ZZ",
    "/api/v1/connections?status=idle&pool_id=pool_storm",
    "/api/v1/connections/conn_1?force=true",
    "/api/v1/connections/conn_18446744073709551615",
    "/api/v1/connections/%2e%2e%2f%2e%2e",
    "/metrics",
    "/health",
    "/api/v1/pools/%ff%fe/stats",
    "/../../etc/passwd",
    "*",
    "http://evil/api/v1/pools",
    "/api/v1//pools",
    "/api/v1/pools/pool_storm/stats/extra/segments/here",
];

/// A random request, as raw bytes; whether it is sent slowly.
fn random_request(rng: &mut Rng) -> (Vec<u8>, bool) {
    let pick = |rng: &mut Rng, from: &[&'static str]| from[rng.below(from.len() as u64) as usize];
    let method = pick(rng, METHODS);
    let mut path = pick(rng, PATHS).to_string();
    if rng.below(4) == 0 {
        // Random bytes in the path.
        for _ in 0..rng.below(40) {
            path.push(char::from(rng.below(128) as u8));
        }
    }
    if rng.below(10) == 0 {
        path = "/".to_string() + &"a".repeat(rng.below(20_000) as usize);
    }
    // (tiny_http answers HTTP/2 with 505 and keeps the connection open, so
    // such a client waits for its own timeout: kept rare, for speed.)
    let version = match rng.below(40) {
        0 => "HTTP/2.0",
        1..=4 => "HTTP/1.0",
        5..=6 => "HTTP/9",
        7..=8 => "",
        _ => "HTTP/1.1",
    };
    let mut raw = format!("{method} {path} {version}\r\nHost: storm\r\n");
    match rng.below(5) {
        0 => {}
        1 => raw.push_str("Authorization: Bearer wrong\r\n"),
        2 => raw.push_str(&format!("Authorization: Bearer {TOKEN}\r\nAuthorization: Basic x\r\n")),
        _ => raw.push_str(&format!("Authorization: Bearer {TOKEN}\r\n")),
    }
    let body: Vec<u8> = match rng.below(6) {
        0 => Vec::new(),
        1 => br#"{"name":"tenant_acme","type":"TENANT","limits":{"max_connections":3}}"#.to_vec(),
        2 => br#"{"name":"#.to_vec(),
        3 => (0..rng.below(3000)).map(|_| rng.below(256) as u8).collect(),
        4 => vec![b'{'; 70_000],
        _ => br#"{"name":1e999999,"type":null,"limits":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}"#.to_vec(),
    };
    match rng.below(6) {
        0 => raw.push_str("Content-Length: 99999999999999999999999\r\n"),
        1 => raw.push_str("Content-Length: -5\r\n"),
        2 => raw.push_str("Transfer-Encoding: chunked\r\n"),
        3 => raw.push_str(&format!("Content-Length: {}\r\nExpect: 100-continue\r\n", body.len())),
        _ => raw.push_str(&format!("Content-Length: {}\r\n", body.len())),
    }
    if rng.below(8) == 0 {
        raw.push_str(&format!("X-Big: {}\r\n", "b".repeat(rng.below(50_000) as usize)));
    }
    if rng.below(10) == 0 {
        raw.push_str("Broken header line without colon\r\n");
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(&body);
    if rng.below(8) == 0 {
        // Half-sent: cut anywhere.
        let cut = rng.below(raw.len() as u64) as usize;
        raw.truncate(cut);
    }
    (raw, rng.below(25) == 0)
}

/// Sends one request; the status if a response came.
fn fire(addr: SocketAddr, raw: &[u8], slow: bool) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    if slow {
        for chunk in raw.chunks(raw.len().div_ceil(8).max(1)) {
            stream.write_all(chunk).ok()?;
            thread::sleep(Duration::from_millis(20));
        }
    } else {
        stream.write_all(raw).ok()?;
    }
    let _ = stream.shutdown(Shutdown::Write);
    read_response(&mut stream).ok().map(|r| r.status)
}

#[test]
fn thousands_of_malformed_requests_leave_the_server_and_the_pool_working() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(
        config().name("storm").min_size(2).initial_size(2).max_size(4).build().unwrap(),
        Arc::clone(&factory),
    )
    .unwrap();
    let registry = Registry::new();
    registry.register(&pool).unwrap();
    let server = AdminServer::builder()
        .token(TOKEN)
        .read_timeout(Duration::from_millis(500))
        .write_timeout(Duration::from_millis(500))
        .workers(2)
        .start(registry)
        .unwrap();
    let addr = server.local_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let borrower = {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let conn = pool.acquire_timeout(Duration::from_secs(5)).expect("the pool serves throughout");
                conn.set_query("SELECT 1");
                // Held a while, so the load leaves the server a core.
                thread::sleep(Duration::from_micros(100));
                n += 1;
            }
            n
        })
    };
    let errors_500 = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let (errors_500, answered) = (Arc::clone(&errors_500), Arc::clone(&answered));
            thread::spawn(move || {
                let mut rng = Rng::new(0x5eed + t as u64);
                for _ in 0..REQUESTS_PER_THREAD {
                    let (raw, slow) = random_request(&mut rng);
                    if let Some(status) = fire(addr, &raw, slow) {
                        answered.fetch_add(1, Ordering::Relaxed);
                        if status >= 500 && status != 505 {
                            eprintln!("{status} for {:?}", String::from_utf8_lossy(&raw[..raw.len().min(300)]));
                            errors_500.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(borrower.join().unwrap() > 0);

    let answered = answered.load(Ordering::Relaxed);
    assert!(answered > THREADS * REQUESTS_PER_THREAD / 2, "most requests got an answer: {answered}");
    assert_eq!(
        errors_500.load(Ordering::Relaxed),
        0,
        "no request made the server fail (505 is tiny_http's HTTP/2 refusal)"
    );
    let health = request(addr, "GET", "/health", None, None);
    assert_eq!(health.status, 200, "{}", health.text());
    let stats = request(addr, "GET", "/api/v1/pools/pool_storm/stats", Some(TOKEN), None);
    assert_eq!(stats.status, 200);
    drop(pool.acquire_timeout(Duration::from_secs(5)).unwrap());
    assert!(eventually(|| pool.active() == 0));
    assert_eq!(factory.live(), pool.size(), "the pool's count matches the factory's");
    factory.assert_no_violations();
    server.shutdown();
}
