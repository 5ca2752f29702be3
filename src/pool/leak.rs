//! Leak detection: connections borrowed for longer than a threshold.
//!
//! The maintenance thread compares each borrowed connection's acquire time
//! with the threshold and reports each leak once: it is logged (`warn`),
//! handed to the event listener, and listed by [`LeakDetector::get_leaks`]
//! until the connection comes back, which is logged too ("returned after
//! N s"). Recording who borrowed a connection (thread name, wall-clock
//! time, optionally a backtrace) costs a little on every acquire, so it
//! happens only while a detector is attached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::sync::{AtomicBool, Mutex, Ordering};

/// A borrowed connection held past the leak threshold.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LeakInfo {
    /// The connection's id (the guard's [`id()`](super::PooledConnectionGuard::id)).
    pub connection_id: u64,
    /// How long it has been borrowed, as of the call that returned this.
    pub active_duration: Duration,
    /// Name of the thread that acquired it, if that thread has a name.
    pub thread_name: Option<String>,
    /// Wall-clock time of the acquire.
    pub acquired_at: SystemTime,
    /// The last query the borrower recorded with
    /// [`set_query`](super::PooledConnectionGuard::set_query).
    pub last_query: Option<String>,
    /// Where it was acquired, if backtrace capture is on.
    pub backtrace: Option<String>,
}

/// Finds connections borrowed for longer than a threshold.
///
/// Cheap to clone; clones share the list. Attach it to a pool with
/// [`ConnectionPool::attach_leak_detector`](super::ConnectionPool::attach_leak_detector),
/// or let the pool make its own with
/// [`PoolConfigBuilder::leak_detection_threshold`](super::PoolConfigBuilder::leak_detection_threshold).
///
/// ```
/// use rusty_db::pool::LeakDetector;
/// use std::time::Duration;
///
/// let detector = LeakDetector::new(
///     Duration::from_secs(300), // Leak threshold
///     Duration::from_secs(60),  // Check interval
/// );
///
/// let leaks = detector.get_leaks();
/// for leak in leaks {
///     eprintln!("LEAK: Connection {} active for {:?}", leak.connection_id, leak.active_duration);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct LeakDetector {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    threshold: Duration,
    check_interval: Duration,
    backtraces: AtomicBool,
    /// Open leaks by connection id, with the instant each was acquired.
    leaks: Mutex<BTreeMap<u64, (Instant, LeakInfo)>>,
}

impl LeakDetector {
    /// A detector reporting borrows longer than `threshold`, checked every
    /// `check_interval` (zero values are raised to 1 ms).
    pub fn new(threshold: Duration, check_interval: Duration) -> Self {
        let floor = Duration::from_millis(1);
        LeakDetector {
            shared: Arc::new(Shared {
                threshold: threshold.max(floor),
                check_interval: check_interval.max(floor),
                backtraces: AtomicBool::new(false),
                leaks: Mutex::default(),
            }),
        }
    }

    /// Capture a backtrace at every acquire so leaks say where they came
    /// from. Off by default: it costs microseconds per acquire.
    pub fn with_backtraces(self, capture: bool) -> Self {
        self.shared.backtraces.store(capture, Ordering::Relaxed);
        self
    }

    /// Borrow time after which a connection counts as leaked.
    pub fn threshold(&self) -> Duration {
        self.shared.threshold
    }

    /// How often the pool checks for leaks.
    pub fn check_interval(&self) -> Duration {
        self.shared.check_interval
    }

    /// Connections currently leaked, by id, with durations as of now.
    pub fn get_leaks(&self) -> Vec<LeakInfo> {
        let now = Instant::now();
        self.shared
            .leaks
            .lock()
            .values()
            .map(|(acquired, info)| LeakInfo {
                active_duration: now.saturating_duration_since(*acquired),
                ..info.clone()
            })
            .collect()
    }

    pub(crate) fn captures_backtraces(&self) -> bool {
        self.shared.backtraces.load(Ordering::Relaxed)
    }

    /// Records a new leak; `false` if it was already listed.
    pub(crate) fn report(&self, acquired: Instant, info: LeakInfo) -> bool {
        let mut leaks = self.shared.leaks.lock();
        if leaks.contains_key(&info.connection_id) {
            return false;
        }
        leaks.insert(info.connection_id, (acquired, info));
        true
    }

    /// Updates the last query of a listed leak.
    pub(crate) fn update_query(&self, connection_id: u64, query: &str) {
        if let Some((_, info)) = self.shared.leaks.lock().get_mut(&connection_id) {
            info.last_query = Some(query.to_owned());
        }
    }

    /// Whether `other` is this detector (or a clone of it).
    pub(crate) fn is(&self, other: &LeakDetector) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Removes a leak whose connection came back; returns how long it was out.
    pub(crate) fn returned(&self, connection_id: u64) -> Option<Duration> {
        self.shared.leaks.lock().remove(&connection_id).map(|(acquired, _)| acquired.elapsed())
    }
}

/// Who borrowed a connection, recorded at acquire while leak detection is
/// on (and the last query, whenever the borrower sets one).
#[derive(Debug, Clone)]
pub(crate) struct BorrowTrace {
    pub(crate) acquired: Instant,
    pub(crate) acquired_wall: SystemTime,
    pub(crate) thread_name: Option<String>,
    pub(crate) query: Option<String>,
    /// When the borrower last set the query.
    pub(crate) query_at: Option<SystemTime>,
    pub(crate) backtrace: Option<String>,
    /// The detector this borrow was reported to as leaked, if any: it
    /// lists the leak until the connection comes back. Replacing the
    /// pool's detector moves the report to the new one.
    pub(crate) reported_to: Option<LeakDetector>,
}

impl BorrowTrace {
    pub(crate) fn capture(backtrace: bool) -> Self {
        BorrowTrace {
            acquired: Instant::now(),
            acquired_wall: SystemTime::now(),
            thread_name: std::thread::current().name().map(str::to_owned),
            query: None,
            query_at: None,
            backtrace: backtrace.then(|| std::backtrace::Backtrace::force_capture().to_string()),
            reported_to: None,
        }
    }

    pub(crate) fn to_info(&self, connection_id: u64, now: Instant) -> LeakInfo {
        LeakInfo {
            connection_id,
            active_duration: now.saturating_duration_since(self.acquired),
            thread_name: self.thread_name.clone(),
            acquired_at: self.acquired_wall,
            last_query: self.query.clone(),
            backtrace: self.backtrace.clone(),
        }
    }
}
