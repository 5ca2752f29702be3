//! An operator force-kills a PostgreSQL connection through the admin API
//! while it runs `pg_sleep`: the server gets a real cancel request, the
//! borrower's query ends at once with "canceling statement due to user
//! request", the guard says it was killed, and the connection is closed
//! when it comes back (a fresh session takes its place). Without `force`
//! the API refuses a borrowed connection and the query goes on. Skips
//! without `RUSTY_DB_TEST_PG_URL`.
#![cfg(all(feature = "postgres", feature = "admin"))]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::http::request;
use common::pg::{pg_url, side_client, unique_name};
use rusty_db::adapters::postgres::postgres::error::SqlState;
use rusty_db::adapters::postgres::{PgConnection, PostgresConnectionFactory};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::{ConnectionPool, PoolConfig};

const TOKEN: &str = "kill-test-token";

/// Whether `pid` is running a `pg_sleep` right now.
fn sleeping(side: &mut rusty_db::adapters::postgres::postgres::Client, pid: i32) -> bool {
    side.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
        &[&pid],
    )
    .unwrap()
    .get::<_, i64>(0)
        == 1
}

#[test]
fn a_forced_kill_cancels_the_query_on_the_server() {
    let Some(url) = pg_url("a_forced_kill_cancels_the_query_on_the_server") else { return };
    let name = unique_name("kill");
    let config = PoolConfig::builder().name(&name).min_size(0).initial_size(1).max_size(2).build().unwrap();
    let pool: ConnectionPool<PgConnection> =
        ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(&url).unwrap())).unwrap();
    let registry = Registry::new();
    let pool_id = registry.register(&pool).unwrap();
    let server = AdminServer::builder().token(TOKEN).start(registry).unwrap();
    let addr = server.local_addr();
    let mut side = side_client(&url);

    let mut conn = pool.acquire().unwrap();
    let (id, pid) = (conn.id(), conn.backend_pid());
    conn.set_query("SELECT pg_sleep(30)");
    let sleeper = thread::spawn(move || {
        let started = Instant::now();
        let outcome = conn.simple_query("SELECT pg_sleep(30)").map(|_| ());
        (outcome, started.elapsed(), conn)
    });
    assert!(common::eventually(|| sleeping(&mut side, pid)), "the query is running on the server");

    // Without force: refused, and the query goes on.
    let path = format!("/api/v1/connections/conn_{id}");
    let refused = request(addr, "DELETE", &path, Some(TOKEN), None);
    assert_eq!((refused.status, refused.error_code()), (409, "connection_in_use".to_string()));
    assert!(sleeping(&mut side, pid), "a refused kill leaves the query alone");

    let listed = request(addr, "GET", &format!("/api/v1/connections?pool_id={pool_id}"), Some(TOKEN), None).json();
    let entry = listed["data"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|c| c["id"] == format!("conn_{id}"))
        .cloned()
        .unwrap_or_else(|| panic!("conn_{id} listed: {listed}"));
    assert_eq!(entry["query"], "SELECT pg_sleep(30)", "{entry}");
    let user: String = side.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    assert_eq!((entry["user"].as_str(), entry["state"].as_str()), (Some(user.as_str()), Some("active")), "{entry}");

    let killed = request(addr, "DELETE", &format!("{path}?force=true"), Some(TOKEN), None);
    assert_eq!(killed.status, 200, "{}", killed.text());
    let (outcome, took, conn) = sleeper.join().unwrap();
    let err = outcome.expect_err("the sleep was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(took < Duration::from_secs(20), "cancelled well before its 30 s: {took:?}");
    assert!(!sleeping(&mut side, pid));
    assert!(conn.is_killed(), "the guard knows");
    drop(conn);

    let closed_at = Instant::now();
    assert!(
        common::eventually(|| pool.connections().iter().all(|c| c.id != id)),
        "closed on return, {:?}",
        closed_at.elapsed()
    );
    let mut fresh = pool.acquire().unwrap();
    assert_ne!(fresh.backend_pid(), pid, "a new session took its place");
    fresh.simple_query("SELECT 1").unwrap();
    drop(fresh);
    server.shutdown();
    pool.close();
}
