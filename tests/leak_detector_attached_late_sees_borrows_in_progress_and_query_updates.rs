//! A leak detector attached while a connection is already borrowed still
//! reports that borrow (thread unknown, counted from the attach), and a
//! query set on a connection after it was reported as leaked shows in the
//! listed report.

mod common;

use std::time::Duration;

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, LeakDetector};

const THRESHOLD: Duration = Duration::from_millis(50);

#[test]
fn a_borrow_made_before_the_detector_is_reported() {
    let pool = ConnectionPool::new(common::config().build().unwrap(), TrackingFactory::new()).unwrap();
    let conn = pool.acquire().unwrap();
    let untraced = pool.acquire().unwrap();
    drop(untraced); // returned before the attach: never a leak

    pool.attach_leak_detector(LeakDetector::new(THRESHOLD, Duration::from_millis(5)));
    assert!(common::eventually(|| pool.leaks().len() == 1), "the borrow in progress was reported");
    let leak = &pool.leaks()[0];
    assert_eq!(leak.connection_id, conn.id());
    assert_eq!(leak.thread_name, None, "the borrower is unknown");
    assert!(leak.active_duration >= THRESHOLD);

    drop(conn);
    assert!(pool.leaks().is_empty(), "it came back");
}

#[test]
fn a_query_set_after_the_report_updates_it() {
    let config = common::config().leak_detection_threshold(THRESHOLD).maintenance_interval(Duration::from_millis(5));
    let pool = ConnectionPool::new(config.build().unwrap(), TrackingFactory::new()).unwrap();
    let conn = pool.acquire().unwrap();
    conn.set_query("SELECT 1");
    assert!(common::eventually(|| pool.leaks().len() == 1));
    assert_eq!(pool.leaks()[0].last_query.as_deref(), Some("SELECT 1"));

    conn.set_query("SELECT 2");
    assert_eq!(pool.leaks()[0].last_query.as_deref(), Some("SELECT 2"));
    drop(conn);
    assert!(pool.leaks().is_empty());
}

#[test]
fn a_leak_reported_to_a_replaced_detector_is_reported_to_its_replacement() {
    let config = common::config()
        .leak_detection_threshold(Duration::from_millis(100))
        .maintenance_interval(Duration::from_millis(5));
    let pool = ConnectionPool::new(config.build().unwrap(), TrackingFactory::new()).unwrap();
    let conn = pool.acquire().unwrap();
    assert!(common::eventually(|| pool.leaks().len() == 1), "reported to the pool's own detector");

    let replacement = LeakDetector::new(THRESHOLD, Duration::from_millis(10));
    pool.attach_leak_detector(replacement.clone());
    assert!(common::eventually(|| replacement.get_leaks().len() == 1), "the replacement lists the leak in progress");
    let leaks = pool.leaks();
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].connection_id, conn.id());
    assert!(leaks[0].active_duration >= Duration::from_millis(100), "counted from the acquire");
    assert_eq!(pool.statistics().leaks_detected, 1, "one borrow, one leak");

    drop(conn);
    assert!(pool.leaks().is_empty() && replacement.get_leaks().is_empty(), "it came back");
}
