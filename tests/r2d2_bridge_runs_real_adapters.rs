//! Real r2d2 adapters through `R2d2ConnectionFactory`, against real servers:
//! `r2d2_postgres` on the PostgreSQL that `RUSTY_DB_TEST_PG_URL` names, and
//! `redis::Client` (redis' `r2d2` feature) on the Redis that
//! `RUSTY_DB_TEST_REDIS_URL` names. A test whose variable is unset says so
//! and passes without running.
//!
//! The sessions a pool opens carry a name of the test's own (PostgreSQL's
//! `application_name`; Redis' `CLIENT SETNAME`, set by an r2d2
//! `CustomizeConnection`), so a side connection counts and kills exactly
//! those, never another program's.
#![cfg(feature = "r2d2")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::postgres::{self, NoTls};
use rusty_db::adapters::r2d2::R2d2ConnectionFactory;
use rusty_db::adapters::r2d2::r2d2::CustomizeConnection;
use rusty_db::pool::{ConnectionPool, PoolConfig, PoolError, PoolStatistics};

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 100;

/// The variable's value, or `None` after saying why the test is skipped.
fn server_url(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {var} is not set (e.g. {var}={example})");
            None
        }
    }
}

/// A name no other test (or process) uses.
fn unique_name(test: &str) -> String {
    format!("r2d2-bridge-{}-{test}", std::process::id())
}

/// A pool of at most `max` connections, `initial` opened up front, none kept
/// open for `min_size` (so nothing is reopened behind a test's back),
/// generous timeouts, and `is_valid` on every check-out (as r2d2's
/// `test_on_check_out`), which the tests of dead connections rely on.
fn config(max: usize, initial: usize) -> rusty_db::pool::PoolConfigBuilder {
    PoolConfig::builder()
        .min_size(0)
        .max_size(max)
        .initial_size(initial)
        .acquire_timeout(Duration::from_secs(10))
        .validation_bypass_window(Duration::ZERO)
}

fn created_closed(stats: &PoolStatistics) -> (u64, u64) {
    (stats.connections_created, stats.connections_closed)
}

// ---------------------------------------------------------------- PostgreSQL

fn pg_url() -> Option<String> {
    server_url("RUSTY_DB_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
}

/// `url` with `application_name=name` added to its query string.
fn with_application_name(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

type PgPool = ConnectionPool<postgres::Client>;

/// `r2d2_postgres`' manager, unchanged, in a pool; its sessions named `name`.
fn pg_pool(url: &str, name: &str, config: rusty_db::pool::PoolConfigBuilder) -> PgPool {
    let pg_config: postgres::Config = with_application_name(url, name).parse().expect("a valid connection string");
    let manager = PostgresConnectionManager::new(pg_config, NoTls);
    ConnectionPool::new(config.build().unwrap(), Arc::new(R2d2ConnectionFactory::new(manager))).expect("a pool")
}

/// A plain client beside the pool, to watch and kill its sessions.
fn pg_side(url: &str) -> postgres::Client {
    postgres::Client::connect(url, NoTls).expect("a side connection to PostgreSQL")
}

/// Sessions named `name`, as the server lists them.
fn pg_sessions(side: &mut postgres::Client, name: &str) -> i64 {
    side.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&name])
        .expect("pg_stat_activity")
        .get(0)
}

fn backend_pid(conn: &mut postgres::Client) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[]).expect("a live session").get(0)
}

/// Terminates the session `pid` and waits (up to 5 s) until it is gone.
fn terminate(side: &mut postgres::Client, pid: i32) {
    let gone: bool =
        side.query_one("SELECT pg_terminate_backend($1, 5000)", &[&pid]).expect("pg_terminate_backend").get(0);
    assert!(gone, "session {pid} did not end within 5 s");
}

#[test]
fn r2d2_postgres_serves_eight_threads_on_at_most_four_sessions() {
    let Some(url) = pg_url() else { return };
    let name = unique_name("cap");
    let pool = pg_pool(&url, &name, config(4, 0));
    let mut side = pg_side(&url);

    // All four at once: four sessions on the server, and no fifth.
    let held: Vec<_> = (0..4).map(|_| pool.acquire().expect("a connection")).collect();
    assert_eq!(pg_sessions(&mut side, &name), 4);
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { active: 4, max: 4 })));
    drop(held);

    let done = AtomicBool::new(false);
    let (pids, (most_seen, samples)) = std::thread::scope(|s| {
        let monitor = s.spawn(|| {
            let (mut most, mut samples) = (0, 0u64);
            while !done.load(Ordering::SeqCst) {
                most = most.max(pg_sessions(&mut side, &name));
                samples += 1;
            }
            (most, samples)
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut pids = HashSet::new();
                    for op in 0..OPS_PER_THREAD {
                        let mut conn = pool.acquire().expect("a connection");
                        if op % 2 == 0 {
                            let one: i32 = conn.query_one("SELECT 1", &[]).expect("SELECT 1").get(0);
                            assert_eq!(one, 1);
                        } else {
                            // The server's own count, from inside a pooled session.
                            let row = conn
                                .query_one(
                                    "SELECT pg_backend_pid(), \
                                     (SELECT count(*) FROM pg_stat_activity WHERE application_name = $1)",
                                    &[&name],
                                )
                                .expect("pg_backend_pid");
                            let sessions: i64 = row.get(1);
                            assert!((1..=4).contains(&sessions), "{sessions} sessions named {name}");
                            pids.insert(row.get::<_, i32>(0));
                        }
                    }
                    pids
                })
            })
            .collect();
        let pids: HashSet<i32> = workers.into_iter().flat_map(|w| w.join().expect("a worker")).collect();
        done.store(true, Ordering::SeqCst);
        (pids, monitor.join().expect("the monitor"))
    });

    assert!(samples > 0 && (1..=4).contains(&most_seen), "{most_seen} sessions at most, in {samples} samples");
    assert!((1..=4).contains(&pids.len()), "{} backends served the pool: {pids:?}", pids.len());
    let stats = pool.statistics();
    assert_eq!(created_closed(&stats), (4, 0), "the four sessions opened up front served every operation");
    assert_eq!(stats.validation_failures, 0);
    assert_eq!((pool.size(), pool.active()), (4, 0));
}

#[test]
fn a_postgres_backend_terminated_while_idle_is_replaced_on_acquire() {
    let Some(url) = pg_url() else { return };
    let name = unique_name("idle-kill");
    let pool = pg_pool(&url, &name, config(2, 2));
    let mut side = pg_side(&url);

    let pids: Vec<i32> = {
        let mut both = [pool.acquire().unwrap(), pool.acquire().unwrap()];
        both.iter_mut().map(|conn| backend_pid(conn)).collect()
    };
    assert_eq!(pg_sessions(&mut side, &name), 2);
    terminate(&mut side, pids[0]);
    assert_eq!(pg_sessions(&mut side, &name), 1, "one session is gone, the pool does not know yet");
    assert_eq!(created_closed(&pool.statistics()), (2, 0));

    // is_valid finds the dead session on acquire; the pool hands out a new one.
    let got: HashSet<i32> = {
        let mut both = [pool.acquire().expect("a live connection"), pool.acquire().expect("a live connection")];
        both.iter_mut().map(|conn| backend_pid(conn)).collect()
    };
    assert!(got.contains(&pids[1]) && !got.contains(&pids[0]) && got.len() == 2, "{pids:?} then {got:?}");
    for _ in 0..10 {
        let one: i32 = pool.acquire().unwrap().query_one("SELECT 1", &[]).expect("every acquire is live").get(0);
        assert_eq!(one, 1);
    }
    let stats = pool.statistics();
    assert_eq!(created_closed(&stats), (3, 1));
    assert_eq!((stats.closed_by_reason.validation, stats.validation_failures), (1, 1));
    assert_eq!(pg_sessions(&mut side, &name), 2);
}

/// The premise of the test above: nothing but `is_valid` notices the dead
/// session, so without validation it is handed out, and the query fails.
#[test]
fn without_validation_a_terminated_postgres_backend_is_handed_out() {
    let Some(url) = pg_url() else { return };
    let name = unique_name("unvalidated");
    let pool = pg_pool(&url, &name, config(1, 1).validate_on_acquire(false));
    let mut side = pg_side(&url);

    let pid = backend_pid(&mut pool.acquire().unwrap());
    terminate(&mut side, pid);
    let mut conn = pool.acquire().expect("handed out unchecked");
    assert!(conn.simple_query("SELECT 1").is_err(), "the session was terminated");
    drop(conn);
    let stats = pool.statistics();
    assert_eq!((created_closed(&stats), stats.closed_by_reason.broken), ((1, 1), 1), "has_broken on return");
}

#[test]
fn a_postgres_backend_terminated_while_borrowed_is_closed_on_return() {
    let Some(url) = pg_url() else { return };
    let name = unique_name("borrowed-kill");
    let pool = pg_pool(&url, &name, config(1, 1));
    let mut side = pg_side(&url);

    let mut conn = pool.acquire().unwrap();
    let pid = backend_pid(&mut conn);
    terminate(&mut side, pid);
    let err = conn.query_one("SELECT 1", &[]).expect_err("the session was terminated under its borrower");
    assert!(conn.is_closed(), "the driver saw the session end: {err}");
    drop(conn);

    // has_broken on return: closed, not given back.
    let stats = pool.statistics();
    assert_eq!(created_closed(&stats), (1, 1));
    assert_eq!((stats.closed_by_reason.broken, stats.validation_failures), (1, 0));
    assert_eq!((pool.size(), pool.idle()), (0, 0));

    let mut conn = pool.acquire().expect("a new connection");
    let new_pid = backend_pid(&mut conn);
    assert_ne!(new_pid, pid);
    drop(conn);
    assert_eq!(created_closed(&pool.statistics()), (2, 1));
    assert_eq!(pg_sessions(&mut side, &name), 1);
}

// --------------------------------------------------------------------- Redis

fn redis_url() -> Option<String> {
    server_url("RUSTY_DB_TEST_REDIS_URL", "redis://127.0.0.1:6379/")
}

/// Names every new connection (`CLIENT SETNAME`), as an r2d2 user would.
#[derive(Debug)]
struct ClientName(String);

impl CustomizeConnection<redis::Connection, redis::RedisError> for ClientName {
    fn on_acquire(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        redis::cmd("CLIENT").arg("SETNAME").arg(&self.0).query(conn)
    }
}

type RedisPool = ConnectionPool<redis::Connection>;

/// `redis::Client`, unchanged, as the manager of a pool; connections named `name`.
fn redis_pool(url: &str, name: &str, config: rusty_db::pool::PoolConfigBuilder) -> RedisPool {
    let client = redis::Client::open(url).expect("a valid Redis URL");
    let factory = R2d2ConnectionFactory::new(client).with_customizer(Box::new(ClientName(name.to_string())));
    ConnectionPool::new(config.build().unwrap(), Arc::new(factory)).expect("a pool")
}

fn redis_side(url: &str) -> redis::Connection {
    redis::Client::open(url).and_then(|c| c.get_connection()).expect("a side connection to Redis")
}

/// The ids of the connections named `name`, from `CLIENT LIST`.
fn clients_named(side: &mut redis::Connection, name: &str) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(side).expect("CLIENT LIST");
    let wanted = format!("name={name}");
    list.lines()
        .filter(|line| line.split(' ').any(|field| field == wanted))
        .map(|line| {
            let id = line.split(' ').find_map(|field| field.strip_prefix("id=")).expect("an id field");
            id.parse().expect("a numeric id")
        })
        .collect()
}

fn kill_client(side: &mut redis::Connection, id: u64) {
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(side).expect("CLIENT KILL");
    assert_eq!(killed, 1, "client {id}");
}

fn incr(conn: &mut redis::Connection, key: &str) -> redis::RedisResult<i64> {
    redis::cmd("INCR").arg(key).query(conn)
}

#[test]
fn redis_set_get_and_incr_from_eight_threads_are_exact() {
    let Some(url) = redis_url() else { return };
    let name = unique_name("counter");
    let pool = redis_pool(&url, &name, config(4, 1));
    let (greeting, counter) = (format!("{name}:greeting"), format!("{name}:counter"));

    {
        let mut conn = pool.acquire().unwrap();
        redis::cmd("SET").arg(&greeting).arg("hello").query::<()>(&mut *conn).expect("SET");
        let got: String = redis::cmd("GET").arg(&greeting).query(&mut *conn).expect("GET");
        assert_eq!(got, "hello");
        redis::cmd("DEL").arg(&counter).query::<()>(&mut *conn).expect("DEL");
    }

    let mut replies: Vec<i64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    (0..OPS_PER_THREAD)
                        .map(|_| incr(&mut pool.acquire().expect("a connection"), &counter).expect("INCR"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a worker")).collect()
    });
    // Every INCR got its own reply: no connection was shared, none lost a reply.
    replies.sort_unstable();
    let total = (THREADS * OPS_PER_THREAD) as i64;
    assert_eq!(replies, (1..=total).collect::<Vec<_>>());

    let mut conn = pool.acquire().unwrap();
    let count: i64 = redis::cmd("GET").arg(&counter).query(&mut *conn).expect("GET");
    assert_eq!(count, total);
    redis::cmd("DEL").arg(&greeting).arg(&counter).query::<()>(&mut *conn).expect("DEL");
    drop(conn);

    let stats = pool.statistics();
    assert!((1..=4).contains(&stats.connections_created), "{stats:?}");
    assert_eq!((stats.connections_closed, stats.validation_failures), (0, 0));
    assert_eq!(clients_named(&mut redis_side(&url), &name).len(), pool.size(), "on_acquire named each one");
}

#[test]
fn redis_connections_killed_while_idle_are_replaced_on_acquire() {
    let Some(url) = redis_url() else { return };
    let name = unique_name("idle-kill");
    let pool = redis_pool(&url, &name, config(3, 3));
    let mut side = redis_side(&url);

    let before = clients_named(&mut side, &name);
    assert_eq!(before.len(), 3, "{before:?}");
    for &id in &before {
        kill_client(&mut side, id);
    }
    assert_eq!(clients_named(&mut side, &name), Vec::<u64>::new(), "all three are gone; the pool does not know yet");
    assert_eq!(created_closed(&pool.statistics()), (3, 0));

    // is_valid (a PING) finds each dead one on acquire; new ones are handed out.
    let key = format!("{name}:counter");
    {
        let mut held: Vec<_> = (0..3).map(|_| pool.acquire().expect("a live connection")).collect();
        for conn in &mut held {
            incr(conn, &key).expect("every connection handed out is live");
        }
    }
    let stats = pool.statistics();
    assert_eq!(created_closed(&stats), (6, 3));
    assert_eq!((stats.closed_by_reason.validation, stats.validation_failures), (3, 3));
    let after = clients_named(&mut side, &name);
    assert_eq!(after.len(), 3, "the replacements were named by on_acquire too: {after:?}");
    assert!(after.iter().all(|id| !before.contains(id)), "{before:?} then {after:?}");
    for _ in 0..10 {
        incr(&mut pool.acquire().unwrap(), &key).expect("INCR");
    }
    let count: i64 = redis::cmd("GET").arg(&key).query(&mut side).expect("GET");
    assert_eq!(count, 13);
    redis::cmd("DEL").arg(&key).query::<()>(&mut side).expect("DEL");
    assert_eq!(created_closed(&pool.statistics()), (6, 3));
}

#[test]
fn a_redis_connection_killed_while_borrowed_is_closed_on_return() {
    let Some(url) = redis_url() else { return };
    let name = unique_name("borrowed-kill");
    let pool = redis_pool(&url, &name, config(1, 1));
    let mut side = redis_side(&url);
    let key = format!("{name}:counter");

    let mut conn = pool.acquire().unwrap();
    let ids = clients_named(&mut side, &name);
    assert_eq!(ids.len(), 1, "{ids:?}");
    kill_client(&mut side, ids[0]);
    assert!(incr(&mut conn, &key).is_err(), "the connection was killed under its borrower");
    drop(conn);

    // has_broken (the driver saw it close) on return: closed, not given back.
    let stats = pool.statistics();
    assert_eq!(created_closed(&stats), (1, 1));
    assert_eq!((stats.closed_by_reason.broken, stats.validation_failures), (1, 0));
    assert_eq!(pool.size(), 0);

    assert_eq!(incr(&mut pool.acquire().expect("a new connection"), &key).expect("INCR"), 1);
    assert_eq!(created_closed(&pool.statistics()), (2, 1));
    redis::cmd("DEL").arg(&key).query::<()>(&mut side).expect("DEL");
}
