//! Lifetime jitter: each connection's lifetime is `max_lifetime` shortened
//! by up to 5 %, different per connection, so connections created together
//! (at start-up, or after an outage) do not all retire in the same instant.
//!
//! Retirement is never early, so "lived at least 95 % of max_lifetime" is
//! checked exactly. A stalled maintenance thread only makes retirements
//! late, and a long enough stall (hundreds of ms have been seen on a
//! loaded 2-core machine) retires a whole cohort in one pass, which looks
//! like no jitter at all. So the evidence of jitter (some connection
//! retired before `max_lifetime`, and the retirements spread over a
//! window) is asked of up to four cohorts, and one is enough: without
//! jitter, none can show it.

mod common;

use std::time::Duration;

use common::{EventLog, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool};

const LIFETIME: Duration = Duration::from_millis(1500);
const BORN_TOGETHER: usize = 16;
const COHORTS: usize = 4;

/// Creates a cohort, waits for all of it to retire and returns each
/// connection's lifetime and the spread of their retirement times.
fn retire_a_cohort() -> (Vec<Duration>, Duration) {
    let factory = TrackingFactory::new();
    let events = EventLog::new();
    let config = common::config()
        .max_size(BORN_TOGETHER)
        .initial_size(BORN_TOGETHER)
        .max_lifetime(LIFETIME)
        .maintenance_interval(Duration::from_millis(2))
        .event_listener(events.clone())
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let ids = events.created();
    assert_eq!(ids.len(), BORN_TOGETHER);

    let all_retired = || ids.iter().all(|&id| events.close_reason(id).is_some());
    assert!(common::eventually(all_retired), "every connection retires");
    let mut lifetimes = Vec::new();
    for &id in &ids {
        assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
        let lived = events.closed_at(id).unwrap() - events.created_at(id).unwrap();
        // 1 ms for the gap between the pool's clock read and the event.
        assert!(lived + Duration::from_millis(1) >= LIFETIME * 95 / 100, "connection {id} lived only {lived:?}");
        lifetimes.push(lived);
    }
    let closes: Vec<_> = ids.iter().map(|&id| events.closed_at(id).unwrap()).collect();
    let spread = *closes.iter().max().unwrap() - *closes.iter().min().unwrap();
    drop(pool);
    (lifetimes, spread)
}

#[test]
fn connections_created_together_retire_at_spread_times_within_five_percent_below_max_lifetime() {
    let mut seen = Vec::new();
    for _ in 0..COHORTS {
        let (lifetimes, spread) = retire_a_cohort();
        let shortest = *lifetimes.iter().min().unwrap();
        if shortest < LIFETIME && spread >= LIFETIME / 100 {
            return;
        }
        seen.push((shortest, spread));
    }
    panic!("no cohort of {COHORTS} retired apart or before max_lifetime (shortest lifetime, spread): {seen:?}");
}
