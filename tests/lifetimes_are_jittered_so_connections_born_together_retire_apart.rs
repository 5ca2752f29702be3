//! Lifetime jitter: each connection's lifetime is `max_lifetime` shortened
//! by up to 5 %, different per connection, so connections created together
//! (at start-up, or after an outage) do not all retire in the same instant.
//!
//! Retirement is never early, so "lived at least 95 % of max_lifetime" is
//! exact; a stalled maintenance thread can only make retirements late, so
//! the test asks for evidence of jitter that survives stalls of tens of ms:
//! some connection retired before `max_lifetime`, and the retirements were
//! spread over a window.

mod common;

use std::time::Duration;

use common::{EventLog, TrackingFactory};
use rusty_db::pool::{CloseReason, ConnectionPool};

const LIFETIME: Duration = Duration::from_secs(2);
const BORN_TOGETHER: usize = 16;

#[test]
fn connections_created_together_retire_at_spread_times_within_five_percent_below_max_lifetime() {
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
    let lifetimes: Vec<Duration> =
        ids.iter().map(|&id| events.closed_at(id).unwrap() - events.created_at(id).unwrap()).collect();
    for (&id, lived) in ids.iter().zip(&lifetimes) {
        assert_eq!(events.close_reason(id), Some(CloseReason::Lifetime));
        // 1 ms for the gap between the pool's clock read and the event.
        assert!(*lived + Duration::from_millis(1) >= LIFETIME * 95 / 100, "connection {id} lived only {lived:?}");
    }
    let shortest = lifetimes.iter().min().unwrap();
    assert!(*shortest < LIFETIME, "no connection retired before max_lifetime: no jitter ({lifetimes:?})");
    let closes: Vec<_> = ids.iter().map(|&id| events.closed_at(id).unwrap()).collect();
    let spread = *closes.iter().max().unwrap() - *closes.iter().min().unwrap();
    assert!(spread >= LIFETIME / 100, "all {BORN_TOGETHER} retired within {spread:?} ({lifetimes:?})");
    drop(pool);
}
