//! The maintenance thread never closes, validates or resets a connection
//! that a guard holds, however aggressive its settings: idle timeout,
//! lifetime, keep-alive, leak detection and adaptive sizing all fire many
//! times a second here while threads hold connections across many passes.
//!
//! The factory records a violation whenever `close`, `validate` or `reset`
//! gets a connection marked in use (the pool catches panics, so a panicking
//! factory could hide one); the test ends by asserting there were none.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::{Duration, Instant};

use common::{EventLog, Held, Rng, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool, ConnectionValidator};

const RUN: Duration = Duration::from_millis(600);

#[test]
fn connections_held_across_many_aggressive_passes_are_left_alone() {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let validator = ConnectionValidator::new(Duration::from_secs(5))
        .with_keepalive_interval(Duration::from_millis(2))
        .with_fast_validation(true)
        .with_bypass_window(Duration::from_millis(1));
    let config = common::config()
        .min_size(2)
        .initial_size(2)
        .max_size(6)
        .idle_timeout(Duration::from_millis(5))
        .max_lifetime(Duration::from_millis(30))
        .leak_detection_threshold(Duration::from_millis(3))
        .validator(validator)
        .validate_on_release(true)
        .adaptive_sizing(true)
        .maintenance_interval(Duration::from_millis(1))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();

    let deadline = Instant::now() + RUN;
    thread::scope(|s| {
        // Borrowers that hold their connection for 0-20 ms, past every limit above.
        for seed in 0..3 {
            let pool = &pool;
            s.spawn(move || {
                let mut rng = Rng::new(seed);
                while Instant::now() < deadline {
                    let mut held = Held::new(pool.acquire().unwrap());
                    let closed = Arc::clone(&held.guard().closed);
                    let until = Instant::now() + Duration::from_millis(rng.below(20));
                    while Instant::now() < until {
                        assert!(!closed.load(SeqCst), "closed while borrowed");
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
        // One borrower that keeps its connection for the whole run.
        let pool = &pool;
        s.spawn(move || {
            let mut held = Held::new(pool.acquire().unwrap());
            let closed = Arc::clone(&held.guard().closed);
            while Instant::now() < deadline {
                assert!(!closed.load(SeqCst), "closed while borrowed");
                thread::sleep(Duration::from_millis(1));
            }
        });
    });
    factory.assert_no_violations();

    // The settings do fire: leaks were reported, connections get retired and validated.
    assert!(!events.leaks().is_empty(), "no leak was reported");
    let retired = || events.closed_for(CloseReason::Lifetime).len() + events.closed_for(CloseReason::Idle).len();
    assert!(common::eventually(|| retired() > 0), "nothing was retired");
    let validated = || pool.validator_statistics().unwrap().total_validations > 0;
    assert!(common::eventually(validated), "nothing was validated");
    drop(pool);
    assert_eq!(factory.created(), factory.closed());
    factory.assert_no_violations();
}
