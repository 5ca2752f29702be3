//! What `acquire_timeout` covers when connections are validated on
//! acquire: the validation runs on the caller's thread and is never cut
//! short (a slow one that passes returns its connection, late), but once
//! connections have failed validation for longer than the timeout the
//! acquire tries no further one and fails with `ValidationFailed`, instead
//! of validating every idle connection in turn.

mod common;

use std::time::{Duration, Instant};

use common::{Outcome, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError};

const VALIDATE: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(100);

#[test]
fn idle_connections_failing_validation_slowly_are_tried_only_until_the_timeout() {
    const IDLE: usize = 5;
    let factory = TrackingFactory::new();
    let config = common::config().max_size(IDLE).initial_size(IDLE).shards(1).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    // Every idle connection will fail its next validation, slowly.
    let all: Vec<_> = (0..IDLE).map(|_| pool.acquire().unwrap()).collect();
    for mut conn in all {
        conn.validate = Outcome::Fail;
    }
    factory.set_validate_delay(VALIDATE);
    let validated_before = factory.validated();

    let started = Instant::now();
    let result = pool.acquire_timeout(TIMEOUT);
    let took = started.elapsed();
    let tried = factory.validated() - validated_before;
    match result {
        Err(PoolError::ValidationFailed(message)) => assert!(message.contains("acquire_timeout"), "{message}"),
        other => panic!("expected ValidationFailed after {tried} validations, got {:?}", other.map(|g| g.serial)),
    }
    // The first failure starts the clock; the one after the timeout ends it.
    assert!((1..=2).contains(&tried), "{tried} of {IDLE} idle connections validated in {took:?}");
    assert!(took < VALIDATE * IDLE as u32, "took {took:?}: as long as validating all {IDLE}");
    assert_eq!(pool.idle(), IDLE - tried, "the untried connections are still idle");
    assert_eq!(factory.created(), IDLE, "no connection was created after the timeout");
    assert_eq!(pool.statistics().validation_failures, tried as u64);
    factory.assert_no_violations();
}

#[test]
fn a_slow_validation_that_passes_is_waited_out_and_its_connection_returned() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).initial_size(1).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    factory.set_validate_delay(VALIDATE);
    let started = Instant::now();
    let conn = pool.acquire_timeout(TIMEOUT).expect("a validation is never cut short");
    assert!(started.elapsed() >= VALIDATE);
    assert_eq!(conn.serial, 1);
    factory.assert_no_violations();
}
