//! Leak detection: a connection borrowed for longer than the threshold is
//! listed by `pool.leaks()` with its id (the guard's `id()`), how long it
//! has been out, the borrowing thread's name, the wall-clock time of the
//! acquire, the last query set on the guard, and a backtrace only when
//! capture is on. Each leak is logged once (`warn`) and reported once to
//! the event listener; when the connection comes back it leaves the list
//! and a "returned after" line is logged.

mod common;

use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::{EventLog, Rng, TrackingFactory};
use rusty_db::pool::{ConnectionPool, LeakDetector, PooledConnectionGuard};

// === A logger that keeps every record ===

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        RECORDS.lock().unwrap().push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

/// Lines logged at `level` that mention pool `name` and contain `text`.
fn logged(level: log::Level, name: &str, text: &str) -> usize {
    let _ = log::set_logger(&Capture).map(|()| log::set_max_level(log::LevelFilter::Trace));
    let pool = format!("pool {name:?}");
    RECORDS.lock().unwrap().iter().filter(|(l, m)| *l == level && m.contains(&pool) && m.contains(text)).count()
}

/// Holds a connection on a thread named `thread_name` until told to return it.
struct Borrower {
    id: u64,
    give_back: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Borrower {
    fn start(pool: &ConnectionPool<common::TestConn>, thread_name: &str, query: Option<&str>) -> Borrower {
        let (pool, query) = (pool.clone(), query.map(str::to_owned));
        let (id_tx, id_rx) = mpsc::channel();
        let (give_back, told) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                let conn: PooledConnectionGuard<_> = pool.acquire().unwrap();
                if let Some(query) = query {
                    conn.set_query(query);
                }
                id_tx.send(conn.id()).unwrap();
                let _ = told.recv();
                drop(conn);
            })
            .unwrap();
        Borrower { id: id_rx.recv().unwrap(), give_back, thread }
    }

    /// Returns the connection and waits until it is back.
    fn finish(self) {
        self.give_back.send(()).unwrap();
        self.thread.join().unwrap();
    }
}

fn pool_named(name: &str, threshold: Option<Duration>) -> (ConnectionPool<common::TestConn>, Arc<EventLog>) {
    logged(log::Level::Warn, name, ""); // installs the logger
    let events = EventLog::new();
    let mut config = common::config().name(name).event_listener(events.clone());
    if let Some(threshold) = threshold {
        config = config.leak_detection_threshold(threshold);
    }
    (ConnectionPool::new(config.build().unwrap(), TrackingFactory::new()).unwrap(), events)
}

#[test]
fn a_leak_names_the_connection_its_thread_its_acquire_time_and_last_query() {
    const THRESHOLD: Duration = Duration::from_millis(30);
    let (pool, events) = pool_named("leaky", Some(THRESHOLD));
    let before = SystemTime::now();
    let borrower = Borrower::start(&pool, "report-writer", Some("SELECT * FROM large_table"));

    assert!(common::eventually(|| !pool.leaks().is_empty()), "the leak was found");
    let leaks = pool.leaks();
    assert_eq!(leaks.len(), 1);
    let leak = &leaks[0];
    assert_eq!(leak.connection_id, borrower.id, "the guard's id()");
    assert_eq!(leak.thread_name.as_deref(), Some("report-writer"));
    assert_eq!(leak.last_query.as_deref(), Some("SELECT * FROM large_table"));
    assert_eq!(leak.backtrace, None, "backtraces are off by default");
    assert!(leak.active_duration >= THRESHOLD);
    let skew = Duration::from_secs(1);
    assert!(leak.acquired_at + skew >= before && leak.acquired_at <= SystemTime::now() + skew, "{leak:?}");
    thread::sleep(Duration::from_millis(20));
    assert!(pool.leaks()[0].active_duration > leak.active_duration, "the duration is as of each call");

    // Listed first, then logged and reported to the listener: wait for
    // those, then let many more passes run; they report nothing new.
    assert!(common::eventually(|| !events.leaks().is_empty()), "reported to the listener");
    thread::sleep(THRESHOLD * 5);
    assert_eq!(events.leaks().len(), 1, "reported to the listener once");
    assert_eq!(events.leaks()[0].connection_id, borrower.id);
    assert_eq!(logged(log::Level::Warn, "leaky", "leaked"), 1, "logged once");

    borrower.finish();
    assert!(pool.leaks().is_empty(), "a returned connection leaves the list at once");
    assert_eq!(logged(log::Level::Info, "leaky", "returned after"), 1);
}

#[test]
fn a_connection_returned_before_the_threshold_is_never_reported() {
    let (pool, events) = pool_named("prompt", Some(Duration::from_millis(200)));
    for _ in 0..5 {
        let conn = pool.acquire().unwrap();
        thread::sleep(Duration::from_millis(20));
        drop(conn);
    }
    thread::sleep(Duration::from_millis(100));
    assert!(pool.leaks().is_empty());
    assert!(events.leaks().is_empty());
    assert_eq!(logged(log::Level::Warn, "prompt", "leaked"), 0);
}

#[test]
fn each_borrow_that_leaks_is_reported_once() {
    let (pool, events) = pool_named("twice", Some(Duration::from_millis(20)));
    for round in 1..=2 {
        let borrower = Borrower::start(&pool, "twice-borrower", None);
        assert!(common::eventually(|| events.leaks().len() == round), "round {round}");
        assert_eq!(pool.leaks().len(), 1);
        borrower.finish();
        assert!(pool.leaks().is_empty());
    }
    assert_eq!(events.leaks().len(), 2);
}

#[test]
fn an_attached_detector_reports_with_backtraces_when_asked() {
    let (pool, events) = pool_named("attached", None);
    let detector = LeakDetector::new(Duration::from_millis(20), Duration::from_millis(5)).with_backtraces(true);
    pool.attach_leak_detector(detector.clone());
    let borrower = Borrower::start(&pool, "traced-borrower", Some("UPDATE t SET x = 1"));

    assert!(common::eventually(|| !detector.get_leaks().is_empty()), "the attached detector found it");
    let leak = detector.get_leaks().remove(0);
    assert_eq!(leak.connection_id, borrower.id);
    assert_eq!(pool.leaks().len(), 1, "pool.leaks() reads the attached detector");
    assert_eq!(pool.leaks()[0].connection_id, borrower.id);
    let backtrace = leak.backtrace.as_deref().expect("capture was on");
    assert!(backtrace.contains("acquire"), "the backtrace shows the acquire: {backtrace}");
    // The scan lists a leak, then tells the listener (outside the slot's lock).
    assert!(common::eventually(|| !events.leaks().is_empty()), "reported to the listener");
    let reported = events.leaks();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].connection_id, borrower.id);
    assert_eq!(reported[0].backtrace, leak.backtrace, "the listener gets the backtrace too");
    borrower.finish();
    assert!(detector.get_leaks().is_empty());
}

#[test]
fn without_a_detector_nothing_is_reported() {
    let (pool, events) = pool_named("untracked", None);
    let borrower = Borrower::start(&pool, "untracked-borrower", None);
    thread::sleep(Duration::from_millis(100));
    assert!(pool.leaks().is_empty());
    assert!(events.leaks().is_empty());
    borrower.finish();
}

#[test]
fn leaks_returned_while_being_reported_never_stay_listed() {
    // Borrows straddling the threshold, scanned every millisecond while
    // another thread reads the list, so that reports and returns race.
    let (pool, events) = pool_named("racy", None);
    pool.attach_leak_detector(LeakDetector::new(Duration::from_millis(1), Duration::from_millis(1)));
    let deadline = Instant::now() + Duration::from_millis(500);
    thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            while Instant::now() < deadline {
                std::hint::black_box(pool.leaks());
                thread::yield_now();
            }
        });
        for seed in 0..3 {
            s.spawn(move || {
                let mut rng = Rng::new(seed);
                while Instant::now() < deadline {
                    let conn = pool.acquire().unwrap();
                    thread::sleep(Duration::from_micros(500 + rng.below(2000)));
                    drop(conn);
                }
            });
        }
    });
    assert!(!events.leaks().is_empty(), "leaks were reported");
    assert_eq!(pool.leaks(), vec![], "every connection came back");
}
