//! Striped counters lose nothing under contention: every acquire is
//! counted once, on the fast path or the slow one, and the books balance.

mod common;

use common::{Held, TrackingFactory, config};
use rusty_db::pool::ConnectionPool;

const THREADS: u64 = 8;
const ROUNDS: u64 = 2_000;

#[test]
fn every_acquire_is_counted_exactly_once() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(config().max_size(3).build().unwrap(), factory.clone()).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pool = &pool;
            s.spawn(move || {
                for n in 0..ROUNDS {
                    let mut held = Held::new(pool.acquire().expect("a connection within 10 s"));
                    if (n + t) % 211 == 0 {
                        held.guard().mark_broken();
                    }
                }
            });
        }
    });
    let s = pool.statistics();
    assert_eq!(s.acquires, THREADS * ROUNDS);
    assert_eq!(s.immediate_acquires + s.waited_acquires, s.acquires);
    assert_eq!((s.failed_acquires, s.success_rate), (0, 1.0));
    assert_eq!((s.wait_time_histogram.count, s.acquire_time_histogram.count), (s.acquires, s.acquires));
    assert!(s.waited_acquires > 0, "8 threads on 3 connections must have queued");
    assert!(s.immediate_acquires > 0);
    // Broken ones: one per thread per 211 rounds, give or take the offset.
    let broken = (0..THREADS).map(|t| (0..ROUNDS).filter(|n| (n + t) % 211 == 0).count() as u64).sum::<u64>();
    assert_eq!(s.closed_by_reason.broken, broken);
    assert_eq!(s.new_connection_acquires, s.connections_created);
    assert_eq!(s.connections_created, factory.created() as u64);
    assert_eq!(s.connections_closed, factory.closed() as u64);
    assert_eq!(s.connections_created - s.connections_closed, (s.idle_connections + s.active_connections) as u64);
    assert!(s.wait_time_histogram.percentiles.max <= s.uptime);
    factory.assert_no_violations();
}
