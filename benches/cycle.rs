//! Micro-benchmarks of single operations: one thread acquiring and
//! releasing from a warm pool (with and without validation, with and
//! without statistics, with either home-shard policy, with adaptive aging
//! over 100 connections), `try_acquire` on an
//! exhausted pool, a release that hands the connection to a waiter, and
//! the SQLite adapter's `validate` beside r2d2_sqlite's `is_valid`.
//!
//! `cargo bench --bench cycle`. Contention and peer comparisons live in
//! `benches/contention`; this one isolates the per-operation cost.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rusty_db::pool::{AgingPolicy, ConnectionFactory, ConnectionPool, PoolConfig, PoolConfigBuilder, Result};
use rusty_db::runtime::{ShardPolicy, set_shard_policy};

/// A connection that costs nothing, so the pool's own work is measured.
struct NullConn(u64);

struct NullFactory;

impl ConnectionFactory<NullConn> for NullFactory {
    fn create(&self) -> Result<NullConn> {
        Ok(NullConn(0))
    }
}

const ADAPTIVE: AgingPolicy = AgingPolicy::Adaptive { base_lifetime: Duration::from_secs(3600), error_threshold: 0.1 };

fn config(size: usize) -> PoolConfigBuilder {
    PoolConfig::builder().min_size(size).max_size(size).initial_size(size)
}

fn pool(config: PoolConfigBuilder) -> ConnectionPool<NullConn> {
    ConnectionPool::new(config.build().expect("valid config"), Arc::new(NullFactory)).expect("pool")
}

fn cycle(pool: &ConnectionPool<NullConn>) {
    let mut conn = pool.acquire().expect("idle connection");
    conn.0 += 1;
    black_box(&conn);
}

fn single_thread_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("single_thread");
    let cases = [
        ("acquire_release", config(8)),
        ("acquire_release_no_validation", config(8).validate_on_acquire(false)),
        ("acquire_release_statistics_on", config(8).enable_statistics(true)),
        ("acquire_release_statistics_off", config(8).enable_statistics(false)),
        // Every release checks the connection's scaled lifetime; a pool of
        // 100 shows whether that costs a pass over the slots.
        ("acquire_release_adaptive_aging_100", config(100).aging_policy(ADAPTIVE)),
    ];
    for (name, config) in cases {
        let pool = pool(config);
        group.bench_function(name, |b| b.iter(|| cycle(&pool)));
    }
    // The home shard by round-robin instead of by CPU (see `home_shard.rs`).
    set_shard_policy(ShardPolicy::RoundRobin);
    let rr = pool(config(8));
    group.bench_function("acquire_release_round_robin_shard", |b| b.iter(|| cycle(&rr)));
    set_shard_policy(ShardPolicy::Cpu);

    let pool = pool(config(8));
    let held: Vec<_> = (0..8).map(|_| pool.acquire().expect("connection")).collect();
    group.bench_function("try_acquire_exhausted", |b| b.iter(|| black_box(pool.try_acquire().is_err())));
    drop(held);
    group.finish();
}

/// Times only the drop of a guard while another thread waits for it (the
/// direct handoff: queue lock, grant, wake-up).
fn release_with_waiter(c: &mut Criterion) {
    let pool = pool(config(1).acquire_timeout(Duration::from_secs(60)));
    let (got_tx, got_rx) = mpsc::channel::<()>();
    let (give_back_tx, give_back_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let waiter_pool = &pool;
        s.spawn(move || {
            // Each round: wait for the connection, say so, hold it until told.
            while give_back_rx.recv().is_ok() {
                let conn = waiter_pool.acquire().expect("handed over");
                got_tx.send(()).expect("bench alive");
                let _ = give_back_rx.recv();
                drop(conn);
            }
        });
        c.bench_function("release_with_waiter", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let conn = pool.acquire().expect("the waiter gave it back");
                    give_back_tx.send(()).expect("waiter alive");
                    while pool.waiting() == 0 {
                        std::thread::yield_now();
                    }
                    let start = Instant::now();
                    drop(conn);
                    total += start.elapsed();
                    got_rx.recv().expect("waiter served");
                    give_back_tx.send(()).expect("waiter alive");
                }
                total
            })
        });
        drop(give_back_tx);
    });
}

/// The check each acquire pays with `validate_on_acquire` (our default, and
/// r2d2's `test_on_check_out`): the SQLite adapter's against
/// r2d2_sqlite's `is_valid` (`execute_batch("")`), on the same in-memory
/// connection type.
#[cfg(feature = "sqlite")]
fn sqlite_validate(c: &mut Criterion) {
    use r2d2::ManageConnection;
    use rusty_db::adapters::sqlite::SqliteConnectionFactory;

    let mut group = c.benchmark_group("sqlite_validate");
    let ours = SqliteConnectionFactory::new(":memory:");
    let mut conn = ours.create().expect("sqlite");
    group.bench_function("rusty_db", |b| b.iter(|| black_box(ours.validate_mut(&mut conn).expect("valid"))));
    let theirs = r2d2_sqlite::SqliteConnectionManager::memory();
    let mut conn = theirs.connect().expect("sqlite");
    group.bench_function("r2d2_sqlite", |b| b.iter(|| black_box(theirs.is_valid(&mut conn).is_ok())));
    group.finish();
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_validate(_: &mut Criterion) {}

/// What the PostgreSQL adapter's checks cost per acquire and per return,
/// one round trip each, beside r2d2_postgres's `is_valid`: runs when
/// `RUSTY_DB_TEST_PG_URL` names a server (and the `postgres` feature is on).
#[cfg(feature = "postgres")]
fn postgres_round_trips(c: &mut Criterion) {
    use r2d2::ManageConnection;
    use rusty_db::adapters::postgres::{PostgresConnectionFactory, postgres};

    let Ok(url) = std::env::var("RUSTY_DB_TEST_PG_URL") else {
        eprintln!("postgres_round_trips skipped: RUSTY_DB_TEST_PG_URL is not set");
        return;
    };
    let mut group = c.benchmark_group("postgres");
    let ours = PostgresConnectionFactory::new(&url).expect("a valid URL");
    let mut conn = ours.create().expect("the server answers");
    group.bench_function("validate_mut", |b| b.iter(|| black_box(ours.validate_mut(&mut conn).expect("valid"))));
    group.bench_function("reset_default_query", |b| b.iter(|| ours.reset(&mut conn).expect("reset")));
    let theirs = r2d2_postgres::PostgresConnectionManager::new(url.parse().expect("a valid URL"), postgres::NoTls);
    let mut client = theirs.connect().expect("the server answers");
    group.bench_function("r2d2_postgres_is_valid", |b| b.iter(|| black_box(theirs.is_valid(&mut client).is_ok())));
    group.finish();
}

#[cfg(not(feature = "postgres"))]
fn postgres_round_trips(_: &mut Criterion) {}

criterion_group!(benches, single_thread_cycle, release_with_waiter, sqlite_validate, postgres_round_trips);
criterion_main!(benches);
