//! `ConnectionValidator` in a pool: a validation slower than the timeout
//! fails and closes the connection; the query goes to the database through
//! `ConnectionFactory::validate_query`; fast validation skips connections
//! used within the bypass window (and only those); keep-alive validates
//! idle connections at its interval and closes those that fail; and
//! `pool.validator_statistics()` reports it all.

mod common;

use std::thread;
use std::time::Duration;

use common::{EventLog, Outcome, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool, ConnectionValidator};

fn pool_with(
    validator: ConnectionValidator,
    validate_on_acquire: bool,
) -> (ConnectionPool<common::TestConn>, std::sync::Arc<TrackingFactory>, std::sync::Arc<EventLog>) {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    // One connection: a pass that has it out makes an acquire wait for it
    // rather than create another.
    let config = common::config()
        .max_size(1)
        .validator(validator)
        .validate_on_acquire(validate_on_acquire)
        .event_listener(events.clone())
        .build()
        .unwrap();
    (ConnectionPool::new(config, factory.clone()).unwrap(), factory, events)
}

#[test]
fn a_validation_slower_than_the_timeout_fails_and_closes_the_connection() {
    let validator = ConnectionValidator::new(Duration::from_millis(20));
    let (pool, factory, events) = pool_with(validator.clone(), true);
    let first = pool.acquire().unwrap().id();
    factory.set_validate_delay(Duration::from_millis(100));

    let conn = pool.acquire().unwrap();
    assert_ne!(conn.id(), first, "the slow one was closed and a new one made");
    assert_eq!(events.close_reason(first), Some(CloseReason::Validation));
    let stats = pool.validator_statistics().expect("the pool has a validator");
    assert_eq!((stats.total_validations, stats.failed_validations, stats.successful_validations), (1, 1, 0));
    assert_eq!(stats.success_rate, 0.0);
    assert!(stats.max_latency >= Duration::from_millis(100), "{stats:?}");
    assert_eq!(stats, validator.statistics(), "the pool's validator shares the caller's counters");
}

#[test]
fn validations_within_the_timeout_pass_and_are_counted() {
    let (pool, factory, _) = pool_with(ConnectionValidator::new(Duration::from_secs(5)), true);
    let id = pool.acquire().unwrap().id();
    for _ in 0..4 {
        assert_eq!(pool.acquire().unwrap().id(), id);
    }
    let stats = pool.validator_statistics().unwrap();
    assert_eq!((stats.total_validations, stats.successful_validations, stats.skipped_validations), (4, 4, 0));
    assert_eq!(stats.success_rate, 1.0);
    assert!(stats.average_latency <= stats.max_latency);
    assert_eq!(factory.validated(), 4);
}

#[test]
fn the_validator_s_query_reaches_the_factory_s_validate_query() {
    let validator = ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 42".to_string());
    let (pool, factory, _) = pool_with(validator, true);
    drop(pool.acquire().unwrap());
    drop(pool.acquire().unwrap());
    assert_eq!(factory.validation_queries(), vec!["SELECT 42"]);

    let (pool, factory, _) = pool_with(ConnectionValidator::new(Duration::from_secs(5)), true);
    drop(pool.acquire().unwrap());
    drop(pool.acquire().unwrap());
    assert_eq!(factory.validated(), 1, "without a query, the factory's own check");
    assert!(factory.validation_queries().is_empty());
}

#[test]
fn fast_validation_skips_a_connection_used_within_the_bypass_window() {
    let validator = ConnectionValidator::new(Duration::from_secs(5))
        .with_fast_validation(true)
        .with_bypass_window(Duration::from_secs(30));
    let (pool, factory, _) = pool_with(validator, true);
    for _ in 0..10 {
        drop(pool.acquire().unwrap());
    }
    let stats = pool.validator_statistics().unwrap();
    assert_eq!((stats.skipped_validations, stats.total_validations), (9, 0), "{stats:?}");
    assert_eq!(factory.validated(), 0);
}

#[test]
fn fast_validation_checks_a_connection_idle_for_longer_than_the_bypass_window() {
    let validator = ConnectionValidator::new(Duration::from_secs(5))
        .with_fast_validation(true)
        .with_bypass_window(Duration::from_millis(50));
    let (pool, factory, _) = pool_with(validator, true);
    drop(pool.acquire().unwrap());
    thread::sleep(Duration::from_millis(200));
    drop(pool.acquire().unwrap());
    let stats = pool.validator_statistics().unwrap();
    assert_eq!((stats.total_validations, stats.skipped_validations), (1, 0), "idle 200 ms > 50 ms: {stats:?}");
    assert_eq!(factory.validated(), 1);
}

#[test]
fn keep_alive_validates_idle_connections_at_its_interval_with_the_query() {
    let validator = ConnectionValidator::new(Duration::from_secs(5))
        .with_query("SELECT 1".to_string())
        .with_keepalive_interval(Duration::from_millis(20));
    let (pool, factory, events) = pool_with(validator, false);
    let id = pool.acquire().unwrap().id();

    assert!(common::eventually(|| factory.validated() >= 3), "validated again and again while idle");
    assert!(factory.validation_queries().iter().all(|q| q == "SELECT 1"));
    assert_eq!(events.close_reason(id), None, "a healthy connection stays");
    assert_eq!(pool.idle(), 1);
    assert!(pool.validator_statistics().unwrap().successful_validations >= 3);
}

#[test]
fn keep_alive_closes_an_idle_connection_that_fails() {
    let validator = ConnectionValidator::new(Duration::from_secs(5)).with_keepalive_interval(Duration::from_millis(20));
    let (pool, factory, events) = pool_with(validator, false);
    let mut conn = pool.acquire().unwrap();
    conn.validate = Outcome::Fail;
    let id = conn.id();
    drop(conn);

    assert!(common::eventually(|| events.close_reason(id).is_some()), "keep-alive found it broken");
    assert_eq!(events.close_reason(id), Some(CloseReason::Validation));
    assert_eq!(pool.size(), 0);
    assert!(pool.validator_statistics().unwrap().failed_validations >= 1);
    factory.assert_no_violations();
}

#[test]
fn a_pool_without_a_validator_has_no_validator_statistics() {
    let pool = ConnectionPool::new(common::config().build().unwrap(), TrackingFactory::new()).unwrap();
    assert_eq!(pool.validator_statistics(), None);
}
