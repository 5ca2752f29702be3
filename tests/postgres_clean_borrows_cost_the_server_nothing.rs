//! With its defaults, the pool sends PostgreSQL nothing of its own on a
//! healthy borrow: a clean borrow adds exactly its own transactions to
//! `pg_stat_database` and no rollback. A session left in a transaction
//! (a raw `BEGIN` sent as text, a failed transaction, a borrower that
//! panicked mid-transaction) is rolled back before the next borrower gets
//! it. A backend terminated while its connection sat idle past the bypass
//! window is never handed out; nor is one terminated within it (a peek at
//! its socket finds the server's goodbye); without that peek (as behind a
//! proxy, where the socket cannot be found) it costs the one statement that
//! finds it, and the connection is replaced without `mark_broken`. Skips, saying why, without `RUSTY_DB_TEST_PG_URL`.
#![cfg(feature = "postgres")]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::pg::{backends, pg_url, side_client, unique_name};
use rusty_db::adapters::postgres::postgres::{Client, Config, SimpleQueryMessage};
use rusty_db::adapters::postgres::{PgConnection, PostgresConnectionFactory, TransactionStatus};
use rusty_db::pool::{ConnectionPool, PoolConfig};

/// The database the counting test's pool alone uses, so that nobody else's
/// transactions are counted.
const COUNTED_DB: &str = "rustydb_xact_count";

fn pool(url: &str, name: &str, size: usize, window: Duration) -> ConnectionPool<PgConnection> {
    let config = PoolConfig::builder()
        .name(name)
        .min_size(0)
        .initial_size(size)
        .max_size(size)
        .validation_bypass_window(window)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(url).unwrap())).unwrap()
}

/// `url` pointed at database `db`.
fn url_for(url: &str, db: &str) -> String {
    let mut config: Config = url.parse().unwrap();
    config.dbname(db);
    let host = match config.get_hosts().first() {
        Some(rusty_db::adapters::postgres::postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_string();
    let password =
        config.get_password().map(|p| format!(" password='{}'", String::from_utf8_lossy(p))).unwrap_or_default();
    format!("host={host} port={port} user={user} dbname={db}{password}")
}

/// `(commits, rollbacks)` of database `db`, once every session of it has
/// ended (a backend reports its counts at the latest when it exits).
fn settled_counts(side: &mut Client, db: &str) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sessions: i64 =
            side.query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&db]).unwrap().get(0);
        if sessions == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "sessions of {db} did not end");
        thread::sleep(Duration::from_millis(20));
    }
    side.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
    let row =
        side.query_one("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", &[&db]).unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn a_clean_borrow_adds_exactly_its_own_transactions_and_no_rollback() {
    let Some(url) = pg_url("a_clean_borrow_adds_exactly_its_own_transactions_and_no_rollback") else { return };
    let mut side = side_client(&url);
    let exists: i64 =
        side.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&COUNTED_DB]).unwrap().get(0);
    if exists == 0 {
        side.batch_execute(&format!("CREATE DATABASE {COUNTED_DB}")).unwrap();
    }
    let counted = url_for(&url, COUNTED_DB);

    const SESSIONS: usize = 2;
    const BORROWS: i64 = 60;
    // The defaults, but for the sizes.
    let run = |borrows: i64| {
        let config =
            PoolConfig::builder().min_size(SESSIONS).initial_size(SESSIONS).max_size(SESSIONS).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(&counted).unwrap())).unwrap();
        for n in 0..borrows {
            let mut conn = pool.acquire().unwrap();
            // One simple query: one transaction of the borrower's (a query
            // with parameters would add its prepare's implicit transaction).
            let rows = conn.simple_query("SELECT 1").unwrap();
            assert!(rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("1"))));
            assert_eq!(conn.transaction_status(), Some(TransactionStatus::Idle), "borrow {n}");
        }
        assert_eq!(pool.statistics().connections_created, SESSIONS as u64);
    };
    // What opening and closing the pool's sessions costs, left out below.
    let start = settled_counts(&mut side, COUNTED_DB);
    run(0);
    let opened = settled_counts(&mut side, COUNTED_DB);
    run(BORROWS);
    let after = settled_counts(&mut side, COUNTED_DB);

    let own = (opened.0 - start.0, opened.1 - start.1);
    let commits = after.0 - opened.0 - own.0;
    assert_eq!(commits, BORROWS, "exactly the borrowers' own transactions (opening and closing: {own:?})");
    assert_eq!(after.1 - opened.1 - own.1, 0, "and no rollback");
    assert_eq!(own.1, 0, "nor on opening and closing");
}

#[test]
fn sessions_left_in_a_transaction_are_rolled_back_before_the_next_borrower() {
    let Some(url) = pg_url("sessions_left_in_a_transaction_are_rolled_back_before_the_next_borrower") else {
        return;
    };
    let table = unique_name("left-open").replace('-', "_");
    let mut side = side_client(&url);
    side.batch_execute(&format!("CREATE TABLE {table} (note text)")).unwrap();
    let pool = pool(&url, &unique_name("left-open"), 1, Duration::from_secs(60));
    let count =
        |side: &mut Client| -> i64 { side.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0) };

    // A raw BEGIN sent as text: the driver knows nothing of it.
    let mut conn = pool.acquire().unwrap();
    conn.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES ('raw begin')")).unwrap();
    assert_eq!(conn.transaction_status(), Some(TransactionStatus::InTransaction));
    drop(conn);
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.transaction_status(), Some(TransactionStatus::Idle), "rolled back on return");
    conn.batch_execute("SELECT 1").unwrap();
    drop(conn);
    assert_eq!(count(&mut side), 0, "rolled back, not committed");

    // A failed transaction.
    let mut conn = pool.acquire().unwrap();
    conn.batch_execute("BEGIN").unwrap();
    assert!(conn.batch_execute("SELECT 1 / 0").is_err());
    // The driver returns at the error; the status that follows it may
    // still be in the socket (then it is unknown until read).
    let status = conn.transaction_status();
    assert!(matches!(status, None | Some(TransactionStatus::Failed)), "{status:?}");
    drop(conn);
    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.transaction_status(), Some(TransactionStatus::Idle));
    let one: i32 = conn.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1, "the next borrower's statements run");
    drop(conn);

    // A borrower that panics mid-transaction.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let mut conn = pool.acquire().unwrap();
        conn.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES ('panicked')")).unwrap();
        panic!("the borrower dies mid-transaction");
    }));
    std::panic::set_hook(hook);
    assert!(panicked.is_err());
    let conn = pool.acquire().unwrap();
    assert_eq!(conn.transaction_status(), Some(TransactionStatus::Idle));
    drop(conn);
    assert_eq!(count(&mut side), 0);
    assert_eq!(pool.statistics().connections_created, 1, "one session throughout");
    pool.close();
    side.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

/// Terminates every session named `app` and waits until they are gone.
fn terminate(side: &mut Client, app: &str) -> usize {
    let killed = side
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(side, app) > 0 {
        assert!(Instant::now() < deadline, "terminated sessions did not end");
        thread::sleep(Duration::from_millis(5));
    }
    killed
}

#[test]
fn a_backend_terminated_while_idle_past_the_window_is_never_handed_out() {
    let Some(url) = pg_url("a_backend_terminated_while_idle_past_the_window_is_never_handed_out") else { return };
    let app = unique_name("idle-past-window");
    let window = Duration::from_millis(100);
    let pool = pool(&url, &app, 2, window);
    let mut side = side_client(&url);
    assert_eq!(terminate(&mut side, &app), 2);
    // Past the window (the coarse clock advances four times per window).
    thread::sleep(window * 3);

    let held: Vec<_> = (0..2).map(|_| pool.acquire().expect("a live session")).collect();
    for mut conn in held {
        let one: i32 = conn.query_one("SELECT 1", &[]).expect("never a dead session").get(0);
        assert_eq!(one, 1);
    }
    let stats = pool.statistics();
    assert_eq!((stats.connections_created, stats.connections_closed), (4, 2), "both dead ones replaced");
    pool.close();
}

#[test]
fn a_backend_terminated_within_the_window_is_seen_on_its_socket_and_never_handed_out() {
    let Some(url) = pg_url("a_backend_terminated_within_the_window_is_seen_on_its_socket_and_never_handed_out") else {
        return;
    };
    let app = unique_name("within-window");
    let pool = pool(&url, &app, 1, Duration::from_secs(60));
    let mut side = side_client(&url);
    drop(pool.acquire().unwrap());
    assert_eq!(terminate(&mut side, &app), 1);
    // The server's FATAL error and end of stream reach the socket.
    thread::sleep(Duration::from_millis(50));

    // No round trip (within the window): a peek at the socket finds them.
    let mut conn = pool.acquire().unwrap();
    let one: i32 = conn.query_one("SELECT 1", &[]).expect("never the dead session").get(0);
    assert_eq!(one, 1);
    drop(conn);
    let stats = pool.statistics();
    assert_eq!((stats.connections_created, stats.connections_closed), (2, 1), "replaced before it was handed out");
    assert_eq!(stats.closed_by_reason.validation, 1);
    pool.close();
}

#[test]
fn without_the_socket_probe_a_backend_terminated_within_the_window_costs_one_statement() {
    let name = "without_the_socket_probe_a_backend_terminated_within_the_window_costs_one_statement";
    let Some(url) = pg_url(name) else { return };
    // As behind a proxy, where the session's socket cannot be found: only
    // the driver's own view is left before a round trip.
    let app = unique_name("no-probe");
    let config = PoolConfig::builder()
        .name(&app)
        .min_size(0)
        .initial_size(1)
        .max_size(1)
        .validation_bypass_window(Duration::from_secs(60))
        .build()
        .unwrap();
    let factory = PostgresConnectionFactory::new(&url).unwrap().with_socket_probe(false);
    let pool = ConnectionPool::new(config, Arc::new(factory)).unwrap();
    let mut side = side_client(&url);
    drop(pool.acquire().unwrap());
    assert_eq!(terminate(&mut side, &app), 1);

    // Handed out without a round trip: the borrower's statement finds it.
    let mut conn = pool.acquire().unwrap();
    assert!(conn.query_one("SELECT 1", &[]).is_err(), "the one statement that finds the session dead");
    assert!(conn.is_closed(), "the driver saw the session end");
    drop(conn); // no mark_broken

    let mut conn = pool.acquire().unwrap();
    let one: i32 = conn.query_one("SELECT 1", &[]).expect("a new session").get(0);
    assert_eq!(one, 1);
    drop(conn);
    let stats = pool.statistics();
    assert_eq!((stats.connections_created, stats.connections_closed), (2, 1), "closed on return, replaced");
    assert_eq!(stats.closed_by_reason.broken, 1);
    pool.close();
}
