//! The PostgreSQL adapter against the real server: sessions carry the
//! pool's name in `pg_stat_activity`, the admin list describes them as the
//! server sees them, a full reset (every return under `ResetPolicy::Full`,
//! a return marked dirty under the default) discards what the borrower
//! changed, and a transaction left open by a borrower that panicked is
//! rolled back before anyone else gets the connection. Skips, saying why, without
//! `RUSTY_DB_TEST_PG_URL`.
#![cfg(feature = "postgres")]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use common::pg::{backends, pg_url, side_client, unique_name};
use rusty_db::adapters::postgres::{PostgresConnectionFactory, ResetPolicy, postgres};
use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError};

fn pool(
    factory: PostgresConnectionFactory,
    name: &str,
    size: usize,
) -> ConnectionPool<rusty_db::adapters::postgres::PgConnection> {
    let config = PoolConfig::builder()
        .name(name)
        .min_size(0)
        .initial_size(size)
        .max_size(size)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    ConnectionPool::new(config, Arc::new(factory)).unwrap()
}

#[test]
fn sessions_are_named_after_the_pool_unless_told_otherwise() {
    let Some(url) = pg_url("sessions_are_named_after_the_pool_unless_told_otherwise") else { return };
    let mut side = side_client(&url);

    let name = unique_name("named");
    let named = pool(PostgresConnectionFactory::new(&url).unwrap(), &name, 2);
    assert_eq!(backends(&mut side, &name), 2, "both sessions show the pool's name in pg_stat_activity");
    let shown: String = named.acquire().unwrap().query_one("SHOW application_name", &[]).unwrap().get(0);
    assert_eq!(shown, name);

    let explicit = unique_name("explicit");
    let other =
        pool(PostgresConnectionFactory::new(&url).unwrap().with_application_name(&explicit), &unique_name("p"), 1);
    assert_eq!(backends(&mut side, &explicit), 1, "with_application_name wins over the pool's name");

    let in_url = unique_name("in-url");
    let sep = if url.contains('?') { '&' } else { '?' };
    let from_url = pool(
        PostgresConnectionFactory::new(&format!("{url}{sep}application_name={in_url}")).unwrap(),
        &unique_name("p"),
        1,
    );
    assert_eq!(backends(&mut side, &in_url), 1, "so does the connection string's");

    for p in [named, other, from_url] {
        p.close();
    }
    assert!(common::eventually(|| backends(&mut side, &name) == 0), "close() ended the sessions");
}

#[test]
fn the_admin_list_describes_each_session_as_the_server_sees_it() {
    let Some(url) = pg_url("the_admin_list_describes_each_session_as_the_server_sees_it") else { return };
    let mut side = side_client(&url);
    let name = unique_name("described");
    let pool = pool(PostgresConnectionFactory::new(&url).unwrap(), &name, 2);

    let mut from_server: Vec<String> = side
        .query(
            "SELECT usename || '|' || datname || '|' || host(client_addr) || ':' || client_port \
             FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut from_pool: Vec<String> = pool
        .connections()
        .iter()
        .map(|info| {
            let d = info.description.as_ref().expect("the adapter describes its connections");
            assert!(d.canceller.is_some(), "with a cancel hook");
            format!(
                "{}|{}|{}",
                d.user.as_deref().unwrap(),
                d.database.as_deref().unwrap(),
                d.client_addr.as_deref().unwrap()
            )
        })
        .collect();
    from_server.sort();
    from_pool.sort();
    assert_eq!(from_pool.len(), 2);
    assert_eq!(from_pool, from_server);

    let conn = pool.acquire().unwrap();
    let pid: i32 = side
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND client_port = $2",
            &[&name, &conn.client_addr().unwrap().rsplit(':').next().unwrap().parse::<i32>().unwrap()],
        )
        .unwrap()
        .get(0);
    assert_eq!(conn.backend_pid(), pid);
    drop(conn);
    pool.close();
}

#[test]
fn a_full_reset_discards_what_the_borrower_changed_in_the_session() {
    let Some(url) = pg_url("a_full_reset_discards_what_the_borrower_changed_in_the_session") else { return };
    let factory = PostgresConnectionFactory::new(&url).unwrap().with_reset_policy(ResetPolicy::Full);
    discards_session_state(factory, false);
}

#[test]
fn a_borrow_marked_dirty_is_cleaned_under_the_default_policy() {
    let Some(url) = pg_url("a_borrow_marked_dirty_is_cleaned_under_the_default_policy") else { return };
    discards_session_state(PostgresConnectionFactory::new(&url).unwrap(), true);
}

/// A borrower changes its session; the next borrower finds it clean, but
/// for the prepared statements (kept for statement caches).
fn discards_session_state(factory: PostgresConnectionFactory, mark_dirty: bool) {
    let pool = pool(factory, &unique_name("reset"), 1);

    let mut conn = pool.acquire().unwrap();
    conn.batch_execute(
        "SET statement_timeout = '1234s'; CREATE TEMP TABLE scratch (x int); SELECT pg_advisory_lock(4242); \
         LISTEN rdb_test_channel; PREPARE kept AS SELECT 41 + 1",
    )
    .unwrap();
    if mark_dirty {
        conn.mark_dirty();
    }
    drop(conn);

    let mut conn = pool.acquire().unwrap();
    let timeout: String = conn.query_one("SHOW statement_timeout", &[]).unwrap().get(0);
    assert_eq!(timeout, "0", "settings are reset");
    let temp: i64 = conn
        // This session's own (another test's session may have one too).
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't' \
             AND pg_table_is_visible(oid)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(temp, 0, "temporary tables are dropped");
    let locks: i64 = conn
        .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert_eq!(locks, 0, "advisory locks are released");
    let listening: i64 = conn.query_one("SELECT count(*) FROM pg_listening_channels()", &[]).unwrap().get(0);
    assert_eq!(listening, 0, "LISTENs are dropped");
    let kept: i32 = conn.query_one("EXECUTE kept", &[]).unwrap().get(0);
    assert_eq!(kept, 42, "prepared statements survive, for statement caches");
    drop(conn);
    pool.close();
}

#[test]
fn a_transaction_left_open_by_a_panicking_borrower_is_rolled_back_before_reuse() {
    let Some(url) = pg_url("a_transaction_left_open_by_a_panicking_borrower_is_rolled_back_before_reuse") else {
        return;
    };
    let table = unique_name("tx").replace('-', "_");
    let mut side = side_client(&url);
    side.batch_execute(&format!("CREATE TABLE {table} (note text)")).unwrap();
    // Validation on return is off: only `reset` stands between the open
    // transaction and the next borrower.
    let config = PoolConfig::builder()
        .name(unique_name("tx"))
        .min_size(0)
        .initial_size(1)
        .max_size(1)
        .validate_on_release(false)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(&url).unwrap())).unwrap();
    let first_pid = pool.acquire().unwrap().backend_pid();

    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let mut conn = pool.acquire().unwrap();
        conn.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES ('uncommitted')")).unwrap();
        panic!("the borrower dies mid-transaction");
    }));
    assert!(panicked.is_err());

    let mut conn = pool.acquire().unwrap();
    assert_eq!(conn.backend_pid(), first_pid, "the same session, reused");
    let rows: i64 = conn.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0);
    assert_eq!(rows, 0, "the insert was rolled back");
    // Not inside the old transaction any more: this commits on its own.
    conn.batch_execute(&format!("INSERT INTO {table} VALUES ('committed')")).unwrap();
    let seen: i64 = side.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0);
    assert_eq!(seen, 1, "autocommit again");
    drop(conn);
    pool.close();
    side.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

#[test]
fn validation_makes_a_round_trip_and_sees_a_terminated_session() {
    let Some(url) = pg_url("validation_makes_a_round_trip_and_sees_a_terminated_session") else { return };
    let mut side = side_client(&url);
    let factory = PostgresConnectionFactory::new(&url).unwrap().with_application_name(&unique_name("validate"));
    let mut conn = factory.create().unwrap();
    assert!(factory.validate(&conn).unwrap());
    assert!(factory.validate_mut(&mut conn).unwrap());
    assert!(factory.validate_query(&mut conn, "SELECT 1").unwrap());
    assert!(!factory.validate_query(&mut conn, "SELECT 1 WHERE false").unwrap());
    assert!(matches!(factory.validate_query(&mut conn, "SELECT * FROM no_such_table"), Err(PoolError::Factory(_))));

    side.query_one("SELECT pg_terminate_backend($1, 5000)", &[&conn.backend_pid()]).unwrap();
    // `validate` makes no round trip: it sees the end on the socket, where
    // the server's FATAL error and end of stream arrive (behind the answer
    // the failed query above left unread).
    assert!(common::eventually(|| !factory.validate(&conn).unwrap()), "the peek at the socket sees the session gone");
    assert!(!matches!(factory.validate_mut(&mut conn), Ok(true)), "and so does the full check");
    let _ = factory.close(conn);

    // Without the peek, `validate` cannot know until the driver does.
    let factory = factory.with_socket_probe(false);
    let mut conn = factory.create().unwrap();
    side.query_one("SELECT pg_terminate_backend($1, 5000)", &[&conn.backend_pid()]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(factory.validate(&conn).unwrap(), "no round trip and no peek: it cannot know yet");
    assert!(!matches!(factory.validate_mut(&mut conn), Ok(true)), "the round trip finds the session gone");
    assert!(!factory.validate(&conn).unwrap(), "and now the driver knows");
    assert!(factory.reset(&mut conn).is_err(), "reset refuses a dead session");
    let _ = factory.close(conn);
}

#[test]
fn a_bad_connection_string_is_a_typed_error_that_keeps_the_password_out() {
    // Needs no server.
    let err = PostgresConnectionFactory::new("postgres://user:s3cret@host:notaport/db").unwrap_err();
    let PoolError::InvalidConfig(message) = &err else { panic!("expected InvalidConfig, got {err:?}") };
    assert!(message.contains("PostgreSQL connection string"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let factory = PostgresConnectionFactory::new("host=127.0.0.1 user=u password=s3cret dbname=d").unwrap();
    assert!(!format!("{factory:?}").contains("s3cret"));
}

#[test]
fn cached_statements_are_real_server_statements_that_outlive_the_borrow() {
    let Some(url) = pg_url("cached_statements_are_real_server_statements_that_outlive_the_borrow") else { return };
    let config = PoolConfig::builder()
        .name(unique_name("stmts"))
        .min_size(0)
        .initial_size(1)
        .max_size(1)
        .statement_cache_size(2)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(&url).unwrap())).unwrap();
    let server_side = |conn: &mut rusty_db::adapters::postgres::PgConnection| -> Vec<String> {
        // A simple query: it prepares no statement of its own.
        conn.simple_query("SELECT statement FROM pg_prepared_statements ORDER BY statement")
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect()
    };
    for n in 0..3i32 {
        let mut conn = pool.acquire().unwrap();
        let statement = conn.prepare_cached("SELECT $1::int4 + 1").unwrap();
        let got: i32 = conn.query_one(&statement, &[&n]).unwrap().get(0);
        assert_eq!(got, n + 1);
    }
    let stats = pool.statistics();
    assert_eq!((stats.cache_hits, stats.cache_misses), (2, 1), "prepared once for three borrows");
    let mut conn = pool.acquire().unwrap();
    assert_eq!(server_side(&mut conn), ["SELECT $1::int4 + 1"], "one named statement on the server, kept by reset");

    conn.prepare_cached("SELECT 2").unwrap();
    conn.prepare_cached("SELECT 3").unwrap(); // the first is evicted and closed on the server
    assert_eq!(server_side(&mut conn), ["SELECT 2", "SELECT 3"]);
    drop(conn);
    pool.close();
}
