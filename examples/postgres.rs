//! A rusty-db pool on PostgreSQL: the quick start.
//!
//! Reads the server's URL from `DATABASE_URL`, opens a pool named
//! `quickstart`, and shows what the pool gives an application and an
//! operator: threads sharing a few sessions, a transaction, the sessions as
//! `pg_stat_activity` sees them (named after the pool), and the pool's own
//! statistics.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres --features postgres
//! ```

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rusty_db::adapters::postgres::{PgConnection, PostgresConnectionFactory};
use rusty_db::pool::{ConnectionPool, PoolConfig, PoolError};

const URL_VAR: &str = "DATABASE_URL";

fn main() -> ExitCode {
    let Ok(url) = std::env::var(URL_VAR) else {
        eprintln!(
            "postgres example: set {URL_VAR} to the server's URL, e.g.\n  \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres --features postgres"
        );
        return ExitCode::from(2);
    };
    match run(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("postgres example: {error}");
            if let Some(PoolError::Factory(_) | PoolError::ConnectionTimeout(_)) = error.downcast_ref::<PoolError>() {
                eprintln!("is the server at {URL_VAR} running and accepting connections?");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(url: &str) -> Result<(), Box<dyn Error>> {
    let factory = PostgresConnectionFactory::new(url)?.with_connect_timeout(Duration::from_secs(5));
    let config = PoolConfig::builder()
        .name("quickstart")
        .min_size(2)
        .initial_size(2)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(10))
        .build()?;
    let pool = ConnectionPool::new(config, Arc::new(factory))?;

    // Eight threads share at most four sessions.
    let answers: Vec<i64> = thread::scope(|s| {
        let workers: Vec<_> = (0..8i64)
            .map(|n| {
                let pool = &pool;
                s.spawn(move || -> Result<i64, Box<dyn Error + Send + Sync>> {
                    let mut conn = pool.acquire()?;
                    Ok(conn.query_one("SELECT $1::int8 * 2", &[&n])?.get(0))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker").map_err(|e| e.to_string())).collect::<Result<_, _>>()
    })?;
    println!("8 threads, answers {answers:?}");

    // A transaction: committed explicitly, rolled back if dropped (or if the
    // thread panics, by the pool's reset before the session is reused).
    let mut conn = pool.acquire()?;
    let mut tx = conn.transaction()?;
    tx.batch_execute("CREATE TEMP TABLE notes (body text); INSERT INTO notes VALUES ('hello')")?;
    let count: i64 = tx.query_one("SELECT count(*) FROM notes", &[])?.get(0);
    tx.commit()?;
    println!("a transaction on session {}: {count} note", conn.backend_pid());
    drop(conn);

    show_sessions(&pool)?;
    let stats = pool.statistics();
    println!(
        "pool: {} open ({} idle), {} created, {} acquires",
        stats.total_connections, stats.idle_connections, stats.connections_created, stats.acquires
    );
    pool.close();
    Ok(())
}

/// The pool's sessions, as the server lists them.
fn show_sessions(pool: &ConnectionPool<PgConnection>) -> Result<(), Box<dyn Error>> {
    let mut conn = pool.acquire()?;
    let rows = conn.query(
        "SELECT pid, application_name, state FROM pg_stat_activity WHERE application_name = 'quickstart' ORDER BY pid",
        &[],
    )?;
    for row in rows {
        let (pid, name, state): (i32, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
        println!("pg_stat_activity: pid {pid}  application_name {name}  state {}", state.unwrap_or_default());
    }
    Ok(())
}
