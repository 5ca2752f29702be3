//! What a database restart, a failover and a dead network do to the pool,
//! through a fault-injecting proxy in front of the real server: refused,
//! then every session reset, then black-holed (connects accepted, never
//! answered), then healthy again. While down, `acquire` fails by its
//! timeout carrying the real connect error, and a black-holed connect never
//! holds it past that; afterwards the same pool recovers by itself and is
//! back at `min_size` within a few maintenance intervals. Skips without
//! `RUSTY_DB_TEST_PG_URL`.
#![cfg(all(feature = "postgres", unix))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Mode};
use common::pg::{backends, pg_url, server_addr, side_client, unique_name, via};
use rusty_db::adapters::postgres::{PgConnection, PostgresConnectionFactory};
use rusty_db::pool::{ConnectionPool, PoolConfig, PoolError};

const MIN: usize = 2;
const MAX: usize = 4;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const MAINTENANCE: Duration = Duration::from_millis(250);
/// Slack on top of a timeout before a test calls it a hang (a loaded CI
/// machine): generous, and still far below "forever".
const SLACK: Duration = Duration::from_secs(3);

/// Acquires, expecting a failure by the acquire timeout; returns its message.
fn fails_in_time(pool: &ConnectionPool<PgConnection>, phase: &str) -> String {
    let started = Instant::now();
    let err = match pool.acquire() {
        Ok(conn) => panic!("{phase}: acquire succeeded with session {}", conn.backend_pid()),
        Err(e) => e,
    };
    let took = started.elapsed();
    assert!(took + Duration::from_millis(50) >= ACQUIRE_TIMEOUT, "{phase}: gave up early, after {took:?}: {err}");
    assert!(took <= ACQUIRE_TIMEOUT + SLACK, "{phase}: held past its timeout: {took:?}");
    match &err {
        PoolError::Factory(_) => {}
        other => panic!("{phase}: expected the factory's error, got {other:?}"),
    }
    err.to_string()
}

#[test]
fn refused_then_reset_then_black_holed_then_healthy_again() {
    let Some(url) = pg_url("refused_then_reset_then_black_holed_then_healthy_again") else { return };
    let proxy = FaultProxy::start(server_addr(&url)).expect("proxy");
    let app = unique_name("outage");
    let factory =
        PostgresConnectionFactory::new(&via(&url, proxy.addr(), &[])).unwrap().with_connect_timeout(CONNECT_TIMEOUT);
    let config = PoolConfig::builder()
        .name(&app)
        .min_size(MIN)
        .initial_size(MIN)
        .max_size(MAX)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .maintenance_interval(MAINTENANCE)
        // A round trip on every acquire: a session the proxy reset is found
        // before it is handed out.
        .validation_bypass_window(Duration::ZERO)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::new(factory)).unwrap();
    let mut side = side_client(&url);
    assert_eq!(backends(&mut side, &app), MIN as i64);
    pool.acquire().unwrap().simple_query("SELECT 1").unwrap();

    // The server stops: new connects are refused, open sessions reset.
    proxy.set_mode(Mode::Refuse);
    assert_eq!(proxy.reset_all(), MIN, "the pool's sessions went through the proxy");
    let refused = fails_in_time(&pool, "refused");
    assert!(refused.to_lowercase().contains("refused"), "carries the real connect error: {refused}");
    assert!(refused.contains(&proxy.addr().to_string()), "names the server: {refused}");

    // Failover: the port answers again but the sessions are cut at once.
    proxy.set_mode(Mode::Pass);
    let mut conn = pool.acquire().expect("the proxy passes again");
    conn.simple_query("SELECT 1").unwrap();
    assert!(proxy.reset_all() >= 1);
    assert!(conn.simple_query("SELECT 1").is_err(), "the borrowed session was reset");
    drop(conn);

    // A hung server: connects are accepted and never answered. First let
    // the refill finish, so that no connect is half-way through the proxy
    // (a session set up before the server hung is a healthy one).
    assert!(common::eventually(|| pool.size() >= MIN && proxy.open_connections() == pool.size()));
    proxy.set_mode(Mode::BlackHole);
    proxy.reset_all();
    let black_holed = fails_in_time(&pool, "black-holed");
    assert!(black_holed.contains("no answer within the connect timeout"), "{black_holed}");
    let again = fails_in_time(&pool, "still black-holed");
    assert!(again.contains("PostgreSQL"), "{again}");
    assert_eq!(pool.size(), 0, "nothing is counted open that is not");

    // Healthy again: the same pool recovers by itself.
    proxy.set_mode(Mode::Pass);
    let healed = Instant::now();
    let mut conn = pool.acquire().expect("the pool recovers with no restart");
    conn.simple_query("SELECT 1").unwrap();
    drop(conn);
    let deadline = healed + 12 * MAINTENANCE + 2 * MAX as u32 * CONNECT_TIMEOUT + SLACK;
    while pool.size() < MIN {
        assert!(Instant::now() < deadline, "min_size not back after {:?}: {}", healed.elapsed(), pool.size());
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("back at min_size {MIN} {:?} after the server healed", healed.elapsed());
    assert!(common::eventually(|| backends(&mut side, &app) == pool.size() as i64));
    let stats = pool.statistics();
    assert_eq!(
        stats.connections_created - stats.connections_closed,
        (stats.idle_connections + stats.active_connections) as u64,
        "{stats:?}"
    );
    pool.close();
}
