//! `pg_terminate_backend` on every pooled session while threads work (a
//! server restart, an operator's purge). With `validate_on_acquire`, no
//! caller is handed a session that was already dead when it asked: a query
//! may fail only if a termination was under way while it was borrowed.
//! Without it, a dead session goes out once: the caller that hits the
//! error marks it broken, and the pool replaces it. Either way the counts
//! add up, the server holds exactly the pool's sessions, and all
//! `max_size` can be held at once afterwards. Skips without
//! `RUSTY_DB_TEST_PG_URL`.
#![cfg(feature = "postgres")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::pg::{backends, pg_url, side_client, unique_name};
use rusty_db::adapters::postgres::{PgConnection, PostgresConnectionFactory, postgres};
use rusty_db::pool::{ConnectionPool, PoolConfig};

const MAX: usize = 4;
const THREADS: usize = 8;
const ROUNDS: usize = 4;

fn pool(url: &str, name: &str, validate_on_acquire: bool) -> ConnectionPool<PgConnection> {
    let config = PoolConfig::builder()
        .name(name)
        .min_size(MAX)
        .initial_size(MAX)
        .max_size(MAX)
        .validate_on_acquire(validate_on_acquire)
        // With validation, a full check (a round trip) on every acquire:
        // what "no caller gets a session that was already dead" relies on.
        .validation_bypass_window(Duration::ZERO)
        .acquire_timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    ConnectionPool::new(config, Arc::new(PostgresConnectionFactory::new(url).unwrap())).unwrap()
}

/// When each termination round ended (the server confirmed every session
/// gone: `pg_terminate_backend(pid, timeout)` waits), `None` while it runs.
#[derive(Default)]
struct Kills(Mutex<Vec<Option<Instant>>>);

impl Kills {
    /// A round begins: it explains any failure until it ends.
    fn begin(&self) {
        self.0.lock().unwrap().push(None);
    }

    fn end(&self) {
        *self.0.lock().unwrap().last_mut().expect("a round began") = Some(Instant::now());
    }

    /// Whether a round was still under way at or after `since`.
    fn any_ended_after(&self, since: Instant) -> bool {
        self.0.lock().unwrap().iter().any(|ended| ended.is_none_or(|at| at >= since))
    }
}

/// Terminates every session of `app`, waiting for each to be gone.
fn terminate_and_wait(side: &mut postgres::Client, app: &str) -> usize {
    side.query("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .unwrap()
        .len()
}

/// `THREADS` threads run `SELECT 1` on borrowed sessions while another
/// terminates all of the pool's sessions `ROUNDS` times. Returns how many
/// queries failed, and, if `validated`, the failures no termination under
/// way explains (without validation a session that died idle is handed
/// out once, by design).
fn work_through_terminations(
    url: &str,
    pool: &ConnectionPool<PgConnection>,
    app: &str,
    validated: bool,
) -> (Vec<String>, usize) {
    let kills = Kills::default();
    let stop = AtomicBool::new(false);
    let failed = AtomicUsize::new(0);
    let unexplained = Mutex::new(Vec::new());
    let ops = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    let asked = Instant::now();
                    let mut conn = match pool.acquire() {
                        Ok(conn) => conn,
                        Err(e) => {
                            unexplained.lock().unwrap().push(format!("acquire failed: {e}"));
                            continue;
                        }
                    };
                    ops.fetch_add(1, SeqCst);
                    if let Err(e) = conn.simple_query("SELECT 1") {
                        failed.fetch_add(1, SeqCst);
                        if validated && !kills.any_ended_after(asked) {
                            unexplained
                                .lock()
                                .unwrap()
                                .push(format!("session {} was dead before it was handed out: {e}", conn.backend_pid()));
                        }
                        // What a user does with a connection that failed.
                        conn.mark_broken();
                    }
                    drop(conn);
                    thread::sleep(Duration::from_micros(200));
                }
            });
        }
        let mut side = side_client(url);
        for _ in 0..ROUNDS {
            thread::sleep(Duration::from_millis(150));
            kills.begin();
            terminate_and_wait(&mut side, app);
            kills.end();
        }
        thread::sleep(Duration::from_millis(150));
        stop.store(true, SeqCst);
    });
    assert!(ops.load(SeqCst) > THREADS * ROUNDS, "the threads did work: {} ops", ops.load(SeqCst));
    (unexplained.into_inner().unwrap(), failed.load(SeqCst))
}

/// Counts add up, the server holds the pool's sessions and no more, and
/// every connection can be held at once.
fn assert_whole(url: &str, pool: &ConnectionPool<PgConnection>, app: &str) {
    let mut side = side_client(url);
    let stats = pool.statistics();
    assert_eq!(
        stats.connections_created - stats.connections_closed,
        (stats.idle_connections + stats.active_connections) as u64,
        "created - closed == open: {stats:?}"
    );
    let all: Vec<_> = (0..MAX).map(|_| pool.acquire().expect("no capacity lost")).collect();
    for mut conn in all {
        conn.simple_query("SELECT 1").expect("every held session works");
    }
    assert!(
        common::eventually(|| backends(&mut side, app) == pool.size() as i64),
        "the server sees the pool's sessions"
    );
    assert_eq!(pool.size(), MAX);
}

#[test]
fn with_validation_on_acquire_no_caller_gets_a_session_that_was_already_dead() {
    let Some(url) = pg_url("with_validation_on_acquire_no_caller_gets_a_session_that_was_already_dead") else {
        return;
    };
    let app = unique_name("term-validated");
    let pool = pool(&url, &app, true);
    let mut side = side_client(&url);

    // All idle: every session dies, and every acquire still works.
    assert_eq!(terminate_and_wait(&mut side, &app), MAX);
    let closed_before = pool.statistics().connections_closed;
    let held: Vec<_> = (0..MAX).map(|_| pool.acquire().expect("validation replaced the dead session")).collect();
    for mut conn in held {
        conn.simple_query("SELECT 1").expect("a live session");
    }
    assert_eq!(pool.statistics().connections_closed - closed_before, MAX as u64, "each dead one closed");

    let (unexplained, failed) = work_through_terminations(&url, &pool, &app, true);
    assert_eq!(unexplained, Vec::<String>::new(), "{failed} queries failed in all");
    assert_whole(&url, &pool, &app);
    pool.close();
}

#[test]
fn without_validation_the_one_caller_that_hits_the_error_marks_it_broken_and_it_is_replaced() {
    let Some(url) = pg_url("without_validation_the_one_caller_that_hits_the_error_marks_it_broken_and_it_is_replaced")
    else {
        return;
    };
    let app = unique_name("term-unvalidated");
    let pool = pool(&url, &app, false);
    let mut side = side_client(&url);

    assert_eq!(terminate_and_wait(&mut side, &app), MAX);
    let before = pool.statistics();
    // Each dead session is handed out once; its borrower's query fails.
    let mut held: Vec<_> = (0..MAX).map(|_| pool.acquire().unwrap()).collect();
    for conn in &mut held {
        assert!(conn.simple_query("SELECT 1").is_err(), "no validation: the dead session reaches the caller");
        conn.mark_broken();
    }
    drop(held);
    let after = pool.statistics();
    assert_eq!(after.connections_closed - before.connections_closed, MAX as u64, "each broken one closed on return");
    let mut fresh: Vec<_> = (0..MAX).map(|_| pool.acquire().unwrap()).collect();
    for conn in &mut fresh {
        conn.simple_query("SELECT 1").expect("replaced by a live session");
    }
    drop(fresh);
    assert_eq!(pool.statistics().connections_created - after.connections_created, MAX as u64, "and replaced");

    // Under load: at most one failure per terminated session.
    let closed_before = pool.statistics().connections_closed;
    let (unexplained, failed) = work_through_terminations(&url, &pool, &app, false);
    assert_eq!(unexplained, Vec::<String>::new(), "acquires never fail");
    let closed = pool.statistics().connections_closed - closed_before;
    assert!(failed as u64 <= closed, "{failed} failed queries but only {closed} sessions closed");
    assert!(closed <= (ROUNDS * MAX) as u64, "{closed} closed for {} terminated", ROUNDS * MAX);
    assert_whole(&url, &pool, &app);
    pool.close();
}
