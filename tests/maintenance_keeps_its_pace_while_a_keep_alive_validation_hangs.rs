//! The maintenance pass runs its factory calls (here: keep-alive
//! validations) on a thread of their own, so a validation that hangs holds
//! up neither the leak scan nor the next pass; and a kept-alive connection
//! is stamped when its check ends, so a check slower than the keep-alive
//! interval does not come due again at once, back to back.

mod common;

use std::time::{Duration, Instant};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, ConnectionValidator};

#[test]
fn a_leak_is_reported_on_time_while_a_keep_alive_validation_hangs() {
    const THRESHOLD: Duration = Duration::from_millis(100);
    let factory = TrackingFactory::new();
    let config = common::config()
        .max_size(2)
        .initial_size(2)
        .validate_on_acquire(false)
        .validator(ConnectionValidator::new(Duration::from_secs(30)).with_keepalive_interval(Duration::from_millis(50)))
        .leak_detection_threshold(THRESHOLD)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    factory.hold_validations_after(0);
    let leaked = pool.acquire().unwrap();
    let borrowed = Instant::now();
    assert!(common::eventually(|| factory.validations_held() == 1), "the idle connection's keep-alive hangs");

    assert!(
        common::within(THRESHOLD + Duration::from_secs(2), || !pool.leaks().is_empty()),
        "no leak reported {:?} after the borrow, while the keep-alive hung",
        borrowed.elapsed()
    );
    assert_eq!(factory.validations_held(), 1, "the keep-alive was still stuck when the leak was reported");
    assert_eq!(pool.statistics().leaks_detected, 1);

    factory.release_validations();
    drop(leaked);
    assert!(common::eventually(|| pool.idle() == 2), "the validated connection came back");
    factory.assert_no_violations();
}

#[test]
fn a_keep_alive_slower_than_its_interval_waits_a_full_interval_before_the_next() {
    const VALIDATE: Duration = Duration::from_millis(300);
    const INTERVAL: Duration = Duration::from_millis(200);
    let factory = TrackingFactory::new();
    let config = common::config()
        .max_size(1)
        .initial_size(1)
        .validate_on_acquire(false)
        .validator(ConnectionValidator::new(Duration::from_secs(30)).with_keepalive_interval(INTERVAL))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    factory.set_validate_delay(VALIDATE);
    assert!(
        common::eventually(|| factory.validation_times().len() >= 4),
        "keep-alive ran {} times",
        factory.validation_times().len()
    );
    let starts = factory.validation_times();
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        // Stamped at the end of a check, the next is due an interval later:
        // at least VALIDATE + INTERVAL apart. Stamped with the pass's start
        // time, checks ran back to back, VALIDATE apart.
        assert!(gap >= VALIDATE + INTERVAL / 2, "checks {gap:?} apart: {starts:?}");
    }
    assert_eq!(pool.idle(), 1);
    factory.assert_no_violations();
}
