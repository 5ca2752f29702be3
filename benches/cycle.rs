//! Micro-benchmarks of the uncontended fast path: one thread acquiring and
//! releasing a connection from a warm pool.
//!
//! `cargo bench --bench cycle`. Contention and peer comparisons live in
//! their own harness; this one isolates the per-operation cost.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};

/// A connection that costs nothing, so the pool's own work is measured.
struct NullConn(u64);

struct NullFactory;

impl ConnectionFactory<NullConn> for NullFactory {
    fn create(&self) -> Result<NullConn> {
        Ok(NullConn(0))
    }
}

fn pool(validate_on_acquire: bool) -> ConnectionPool<NullConn> {
    let config = PoolConfig::builder()
        .min_size(8)
        .max_size(8)
        .initial_size(8)
        .validate_on_acquire(validate_on_acquire)
        .build()
        .expect("valid config");
    ConnectionPool::new(config, Arc::new(NullFactory)).expect("pool")
}

fn single_thread_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("single_thread");
    for (name, validate) in [("acquire_release", true), ("acquire_release_no_validation", false)] {
        let pool = pool(validate);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut conn = pool.acquire().expect("idle connection");
                conn.0 += 1;
                black_box(&conn);
            })
        });
    }
    let pool = pool(true);
    let held: Vec<_> = (0..8).map(|_| pool.acquire().expect("connection")).collect();
    group.bench_function("try_acquire_exhausted", |b| b.iter(|| black_box(pool.try_acquire().is_err())));
    drop(held);
    group.finish();
}

criterion_group!(benches, single_thread_cycle);
criterion_main!(benches);
