//! `AgingPolicy`, one test per variant: `TimeBased` retires at
//! `max_lifetime` (idle, or on return), `UsageBased` after `max_borrows`
//! borrows, `Combined` at whichever comes first, and `Adaptive` retires a
//! connection whose error rate (errors recorded through the guard over its
//! borrows) exceeds `error_threshold` once it has had 10 borrows, and
//! scales every lifetime by `threshold / pool error rate` (0.25 to 2).
//! Retired connections close with reason `Lifetime`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{EventLog, Held, TrackingFactory};
use rusty_db::pool::{AgingPolicy, CloseReason, ConnectionPool};

fn pool_with(policy: AgingPolicy, max_size: usize) -> (ConnectionPool<common::TestConn>, Arc<EventLog>) {
    let events = EventLog::new();
    let config = common::config()
        .max_size(max_size)
        .shards(1)
        .aging_policy(policy)
        .event_listener(events.clone())
        .build()
        .unwrap();
    (ConnectionPool::new(config, TrackingFactory::new()).unwrap(), events)
}

/// Borrows the single connection of a `max_size(1)` pool, runs `use_it`,
/// returns it; its id.
fn borrow_once(
    pool: &ConnectionPool<common::TestConn>,
    use_it: impl FnOnce(&rusty_db::pool::PooledConnectionGuard<common::TestConn>),
) -> u64 {
    let conn = pool.acquire().unwrap();
    use_it(&conn);
    conn.id()
}

#[test]
fn time_based_retires_idle_connections_at_max_lifetime_and_borrowed_ones_on_return() {
    const LIFETIME: Duration = Duration::from_millis(100);
    let (pool, events) = pool_with(AgingPolicy::TimeBased { max_lifetime: LIFETIME }, 2);
    let idle = pool.acquire().unwrap();
    let borrowed = Held::new(pool.acquire().unwrap());
    let idle_id = idle.id();
    drop(idle);

    assert!(common::eventually(|| events.close_reason(idle_id).is_some()), "the idle one retires");
    assert_eq!(events.close_reason(idle_id), Some(CloseReason::Lifetime));
    let lived = events.closed_at(idle_id).unwrap() - events.created_at(idle_id).unwrap();
    assert!(lived >= LIFETIME * 95 / 100, "retired after {lived:?}");

    std::thread::sleep(LIFETIME * 2);
    let mut borrowed = borrowed;
    let borrowed_id = borrowed.guard().id();
    assert_eq!(events.close_reason(borrowed_id), None, "never while borrowed");
    drop(borrowed);
    assert!(common::eventually(|| events.close_reason(borrowed_id) == Some(CloseReason::Lifetime)));
}

#[test]
fn usage_based_retires_a_connection_after_max_borrows() {
    let (pool, events) = pool_with(AgingPolicy::UsageBased { max_borrows: 3 }, 1);
    let ids: Vec<u64> = (0..7).map(|_| borrow_once(&pool, |_| {})).collect();
    assert_eq!(ids[..3], [ids[0]; 3], "three borrows of the first connection");
    assert_eq!(ids[3..6], [ids[3]; 3], "then three of the second");
    assert_ne!(ids[0], ids[3]);
    assert_ne!(ids[3], ids[6]);
    // Retired as the third borrow returned it, before the next acquire.
    assert_eq!(events.closed_for(CloseReason::Lifetime), vec![ids[0], ids[3]]);
}

#[test]
fn combined_retires_at_whichever_limit_comes_first() {
    let policy = AgingPolicy::Combined { max_lifetime: Duration::from_secs(3600), max_borrows: 2 };
    let (pool, events) = pool_with(policy, 1);
    let ids: Vec<u64> = (0..3).map(|_| borrow_once(&pool, |_| {})).collect();
    assert_eq!((ids[0] == ids[1], ids[1] == ids[2]), (true, false), "borrows came first: {ids:?}");
    assert_eq!(events.closed_for(CloseReason::Lifetime), vec![ids[0]]);

    let policy = AgingPolicy::Combined { max_lifetime: Duration::from_millis(80), max_borrows: 1_000_000 };
    let (pool, events) = pool_with(policy, 1);
    let id = borrow_once(&pool, |_| {});
    assert!(common::eventually(|| events.close_reason(id).is_some()), "age came first");
    assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
    let lived = events.closed_at(id).unwrap() - events.created_at(id).unwrap();
    assert!(lived >= Duration::from_millis(76), "retired after {lived:?}");
}

#[test]
fn adaptive_retires_a_connection_whose_error_rate_exceeds_the_threshold_after_ten_borrows() {
    let policy = AgingPolicy::Adaptive { base_lifetime: Duration::from_secs(3600), error_threshold: 0.2 };
    let (pool, events) = pool_with(policy, 1);
    // Three errors in the first three borrows: a rate of 1.0, then 0.3 at ten.
    let ids: Vec<u64> = (0..11)
        .map(|i| {
            borrow_once(&pool, |c| {
                if i < 3 {
                    c.record_error()
                }
            })
        })
        .collect();
    assert_eq!(ids[..10], [ids[0]; 10], "kept for its first ten borrows, whatever its rate");
    assert_ne!(ids[10], ids[0], "retired as the tenth borrow returned it (3 / 10 > 0.2)");
    assert_eq!(events.closed_for(CloseReason::Lifetime), vec![ids[0]]);
}

#[test]
fn adaptive_keeps_a_connection_at_or_below_the_threshold() {
    let policy = AgingPolicy::Adaptive { base_lifetime: Duration::from_secs(3600), error_threshold: 0.2 };
    let (pool, events) = pool_with(policy, 1);
    // Two errors in ten borrows is 0.2: not above the threshold; later
    // clean borrows only lower the rate.
    let ids: Vec<u64> = (0..30)
        .map(|i| {
            borrow_once(&pool, |c| {
                if i % 5 == 0 && i < 10 {
                    c.record_error()
                }
            })
        })
        .collect();
    assert_eq!(ids, vec![ids[0]; 30]);
    assert!(events.closed_for(CloseReason::Lifetime).is_empty());
}

#[test]
fn adaptive_lengthens_lifetimes_while_the_pool_sees_no_errors() {
    const BASE: Duration = Duration::from_millis(300);
    let (pool, events) = pool_with(AgingPolicy::Adaptive { base_lifetime: BASE, error_threshold: 0.5 }, 1);
    let ids: Vec<u64> = (0..10).map(|_| borrow_once(&pool, |_| {})).collect();
    let id = ids[9];
    assert_eq!(ids, vec![id; 10]);
    assert!(common::eventually(|| events.close_reason(id).is_some()), "it still retires");
    assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
    let lived = events.closed_at(id).unwrap() - events.created_at(id).unwrap();
    // No errors in ten borrows: twice the base lifetime, less the jitter.
    assert!(lived >= BASE * 2 * 95 / 100, "retired after {lived:?}, base {BASE:?}");
}

#[test]
fn adaptive_shortens_lifetimes_while_the_pool_sees_many_errors() {
    const BASE: Duration = Duration::from_secs(4);
    let (pool, events) = pool_with(AgingPolicy::Adaptive { base_lifetime: BASE, error_threshold: 0.1 }, 2);
    // Two connections, five borrows each; every borrow of the first records
    // an error. Neither has ten borrows, so neither is retired for its own
    // rate, but the pool's rate is 0.5: lifetimes shrink to a quarter.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (a, b) = (pool.acquire().unwrap(), pool.acquire().unwrap());
        a.record_error();
        ids = vec![a.id(), b.id()];
    }
    assert!(common::eventually(|| ids.iter().all(|&id| events.close_reason(id).is_some())), "both retire");
    for id in ids {
        assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
        let lived = events.closed_at(id).unwrap() - events.created_at(id).unwrap();
        assert!(lived >= BASE / 4 * 95 / 100, "connection {id} retired after {lived:?}");
        // Unshortened, it would live at least 95 % of BASE.
        assert!(lived < BASE * 95 / 100, "connection {id} lived {lived:?}: not shortened");
    }
}

#[test]
fn adaptive_forgets_the_errors_of_connections_already_closed() {
    const BASE: Duration = Duration::from_millis(400);
    let (pool, events) = pool_with(AgingPolicy::Adaptive { base_lifetime: BASE, error_threshold: 0.1 }, 2);
    // Two connections, ten borrows each; every borrow of the first records
    // an error, so it is retired as its tenth borrow returns it.
    let (mut bad, mut good) = (0, 0);
    for _ in 0..10 {
        let (a, b) = (pool.acquire().unwrap(), pool.acquire().unwrap());
        a.record_error();
        (bad, good) = (a.id(), b.id());
    }
    assert_eq!(events.close_reason(bad), Some(CloseReason::Lifetime));
    // The pool's live connections now have no errors: lifetimes double.
    assert!(common::eventually(|| events.close_reason(good).is_some()), "the good one retires in time");
    let lived = events.closed_at(good).unwrap() - events.created_at(good).unwrap();
    assert!(lived >= BASE * 2 * 95 / 100, "retired after {lived:?}: the closed connection's errors still counted");
}
