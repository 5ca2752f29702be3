//! Shared pieces of the integration tests: a connection that knows whether
//! somebody is using it, a factory that counts everything and can be told
//! to fail, and a few helpers.
//!
//! The factory never panics to report a broken invariant (the pool catches
//! factory panics and would hide it): it records a violation instead, and
//! tests end with [`TrackingFactory::assert_no_violations`].
// Each test file includes this module and uses a different part of it.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod hostile;
pub mod http;
pub mod pg;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusty_db::pool::{
    CloseReason, ConnectionFactory, LeakInfo, PoolConfig, PoolConfigBuilder, PoolError, PoolEventListener,
    PooledConnectionGuard, Result,
};

/// What a factory hook does when it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeds (`validate` returns `Ok(true)`).
    Pass,
    /// `validate` returns `Ok(false)`; for the other hooks, like `Error`.
    Fail,
    /// Returns `Err(PoolError::factory(..))`.
    Error,
    /// Panics.
    Panic,
}

impl Outcome {
    fn from_u8(v: u8) -> Outcome {
        [Outcome::Pass, Outcome::Fail, Outcome::Error, Outcome::Panic][usize::from(v)]
    }
}

/// The fields of the reference's `GET /api/v1/pools/{pool_id}/stats`
/// `data`, in its order.
pub const REFERENCE_STATS_FIELDS: [&str; 12] = [
    "connections_created",
    "connections_closed",
    "active_connections",
    "idle_connections",
    "total_connections",
    "wait_queue_size",
    "connections_per_second",
    "avg_acquire_time_ms",
    "avg_wait_time_ms",
    "success_rate",
    "pool_utilization",
    "cache_hit_rate",
];

/// The message of every error the factory returns.
pub const FACTORY_ERROR: &str = "test factory: database unreachable";
/// The message of every panic the factory raises.
pub const FACTORY_PANIC: &str = "test factory: deliberate panic";

/// A fake connection with a unique serial and shared flags that expose
/// double use and use after close.
#[derive(Debug)]
pub struct TestConn {
    /// Unique per factory, in creation order, starting at 1.
    pub serial: u64,
    /// Set by [`Held`] while a test thread uses the connection.
    pub in_use: Arc<AtomicBool>,
    /// Set by the factory's `close`.
    pub closed: Arc<AtomicBool>,
    /// What `validate` does with this connection ("marks" it bad).
    pub validate: Outcome,
    /// Cleared by `reset`.
    pub dirty: bool,
    /// A counter for tests to change through the guard; `reset` keeps it.
    pub queries: u64,
}

/// Counts creates, closes, validations and resets; tracks open connections;
/// fails on demand.
#[derive(Debug)]
pub struct TrackingFactory {
    next_serial: AtomicU64,
    create_attempts: AtomicUsize,
    created: AtomicUsize,
    closed: AtomicUsize,
    validated: AtomicUsize,
    resets: AtomicUsize,
    /// Connections being created plus created and not yet closed.
    open: AtomicUsize,
    max_open: AtomicUsize,
    /// Creates that may still succeed before `create_failure` applies.
    create_budget: AtomicUsize,
    create_failure: AtomicU8,
    reset_outcome: AtomicU8,
    create_delay_micros: AtomicU64,
    closed_serials: Mutex<Vec<u64>>,
    violations: Mutex<Vec<String>>,
    validate_delay_micros: AtomicU64,
    /// Queries passed to `validate_query`, in call order.
    validation_queries: Mutex<Vec<String>>,
    /// Where creates and validations block on demand.
    create_hold: Hold,
    validate_hold: Hold,
    close_hold: Hold,
    close_delay_micros: AtomicU64,
    /// When each `create` was called.
    attempt_times: Mutex<Vec<Instant>>,
    /// When each `validate` (or `validate_query`) was called.
    validation_times: Mutex<Vec<Instant>>,
}

impl Default for TrackingFactory {
    fn default() -> Self {
        TrackingFactory {
            next_serial: AtomicU64::new(1),
            create_attempts: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            validated: AtomicUsize::new(0),
            resets: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            create_budget: AtomicUsize::new(usize::MAX),
            create_failure: AtomicU8::new(Outcome::Error as u8),
            reset_outcome: AtomicU8::new(Outcome::Pass as u8),
            create_delay_micros: AtomicU64::new(0),
            closed_serials: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            validate_delay_micros: AtomicU64::new(0),
            validation_queries: Mutex::new(Vec::new()),
            create_hold: Hold::default(),
            validate_hold: Hold::default(),
            close_hold: Hold::default(),
            close_delay_micros: AtomicU64::new(0),
            attempt_times: Mutex::new(Vec::new()),
            validation_times: Mutex::new(Vec::new()),
        }
    }
}

impl TrackingFactory {
    /// A factory that works, shared so the test keeps a handle.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Calls to `create`, successful or not.
    pub fn create_attempts(&self) -> usize {
        self.create_attempts.load(SeqCst)
    }
    /// Connections created.
    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }
    /// Connections closed.
    pub fn closed(&self) -> usize {
        self.closed.load(SeqCst)
    }
    /// Calls to `validate`.
    pub fn validated(&self) -> usize {
        self.validated.load(SeqCst)
    }
    /// Calls to `reset`.
    pub fn resets(&self) -> usize {
        self.resets.load(SeqCst)
    }
    /// Connections created and not closed.
    pub fn live(&self) -> usize {
        self.created() - self.closed()
    }
    /// The most connections open (or being opened) at any one instant.
    pub fn max_open(&self) -> usize {
        self.max_open.load(SeqCst)
    }
    /// Serials of closed connections, in closing order.
    pub fn closed_serials(&self) -> Vec<u64> {
        self.closed_serials.lock().unwrap().clone()
    }

    /// Every further `create` fails with `how` (`Error` or `Panic`).
    pub fn fail_creates(&self, how: Outcome) {
        self.fail_creates_after(0, how);
    }
    /// The next `n` creates succeed, later ones fail with `how`.
    pub fn fail_creates_after(&self, n: usize, how: Outcome) {
        self.create_failure.store(how as u8, SeqCst);
        self.create_budget.store(n, SeqCst);
    }
    /// `create` works again.
    pub fn heal_creates(&self) {
        self.create_budget.store(usize::MAX, SeqCst);
    }
    /// What `reset` does from now on (`Fail` behaves like `Error`).
    pub fn set_reset(&self, outcome: Outcome) {
        self.reset_outcome.store(outcome as u8, SeqCst);
    }
    /// Makes every `create` sleep this long first.
    pub fn set_create_delay(&self, delay: Duration) {
        self.create_delay_micros.store(delay.as_micros() as u64, SeqCst);
    }

    /// Makes every `validate` (and `validate_query`) sleep this long first.
    pub fn set_validate_delay(&self, delay: Duration) {
        self.validate_delay_micros.store(delay.as_micros() as u64, SeqCst);
    }
    /// The queries a `ConnectionValidator` sent through `validate_query`.
    pub fn validation_queries(&self) -> Vec<String> {
        self.validation_queries.lock().unwrap().clone()
    }

    /// The next `n` creates run; later ones block inside `create` until
    /// [`release_creates`](Self::release_creates).
    pub fn hold_creates_after(&self, n: usize) {
        self.create_hold.hold_after(n);
    }
    /// Lets held creates (and every later one) run.
    pub fn release_creates(&self) {
        self.create_hold.release();
    }
    /// Creates blocked at the hold right now.
    pub fn creates_held(&self) -> usize {
        self.create_hold.waiting()
    }
    /// Like [`hold_creates_after`](Self::hold_creates_after), for `validate`.
    pub fn hold_validations_after(&self, n: usize) {
        self.validate_hold.hold_after(n);
    }
    /// Lets held validations (and every later one) run.
    pub fn release_validations(&self) {
        self.validate_hold.release();
    }
    /// Validations blocked at the hold right now.
    pub fn validations_held(&self) -> usize {
        self.validate_hold.waiting()
    }
    /// Like [`hold_creates_after`](Self::hold_creates_after), for `close`.
    pub fn hold_closes_after(&self, n: usize) {
        self.close_hold.hold_after(n);
    }
    /// Lets held closes (and every later one) run.
    pub fn release_closes(&self) {
        self.close_hold.release();
    }
    /// Closes blocked at the hold right now.
    pub fn closes_held(&self) -> usize {
        self.close_hold.waiting()
    }
    /// Makes every `close` sleep this long first.
    pub fn set_close_delay(&self, delay: Duration) {
        self.close_delay_micros.store(delay.as_micros() as u64, SeqCst);
    }
    /// When each `validate` (or `validate_query`) was called, in call order.
    pub fn validation_times(&self) -> Vec<Instant> {
        self.validation_times.lock().unwrap().clone()
    }
    /// When each `create` was called, in call order.
    pub fn create_attempt_times(&self) -> Vec<Instant> {
        self.attempt_times.lock().unwrap().clone()
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// Fails the test if the factory saw a broken invariant.
    pub fn assert_no_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "the factory saw {} violation(s): {:?}", v.len(), &v[..v.len().min(10)]);
    }

    /// Records a violation if `conn` is borrowed or closed while the pool
    /// hands it to `hook`.
    fn check_owned_by_pool(&self, conn: &TestConn, hook: &str) {
        if conn.in_use.load(SeqCst) {
            self.violation(format!("{hook} on connection {} while a test thread uses it", conn.serial));
        }
        if conn.closed.load(SeqCst) {
            self.violation(format!("{hook} on connection {} after it was closed", conn.serial));
        }
    }
}

/// A point where calls block on demand: after `hold_after(n)`, the next `n`
/// calls pass and later ones wait for `release()`.
#[derive(Debug)]
struct Hold {
    budget: AtomicUsize,
    waiting: Mutex<usize>,
    released: Condvar,
}

impl Default for Hold {
    fn default() -> Self {
        Hold { budget: AtomicUsize::new(usize::MAX), waiting: Mutex::new(0), released: Condvar::new() }
    }
}

impl Hold {
    fn hold_after(&self, n: usize) {
        self.budget.store(n, SeqCst);
    }

    fn release(&self) {
        self.budget.store(usize::MAX, SeqCst);
        let _waiting = self.waiting.lock().unwrap();
        self.released.notify_all();
    }

    fn waiting(&self) -> usize {
        *self.waiting.lock().unwrap()
    }

    /// Passes if the budget allows (or nothing is held), else blocks until released.
    fn pass(&self) {
        if self
            .budget
            .fetch_update(SeqCst, SeqCst, |b| if b == usize::MAX { Some(b) } else { b.checked_sub(1) })
            .is_ok()
        {
            return;
        }
        let mut waiting = self.waiting.lock().unwrap();
        *waiting += 1;
        while self.budget.load(SeqCst) != usize::MAX {
            waiting = self.released.wait(waiting).unwrap();
        }
        *waiting -= 1;
    }
}

/// Undoes the `open` count of a create that fails or panics.
struct OpenSlot<'a>(&'a AtomicUsize, bool);

impl Drop for OpenSlot<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_sub(1, SeqCst);
        }
    }
}

impl ConnectionFactory<TestConn> for TrackingFactory {
    fn create(&self) -> Result<TestConn> {
        self.create_attempts.fetch_add(1, SeqCst);
        self.attempt_times.lock().unwrap().push(Instant::now());
        self.create_hold.pass();
        // Counted before the connection exists, so that "creating" counts too.
        let open = self.open.fetch_add(1, SeqCst) + 1;
        self.max_open.fetch_max(open, SeqCst);
        let mut slot = OpenSlot(&self.open, false);
        let delay = self.create_delay_micros.load(SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        let allowed = self.create_budget.fetch_update(SeqCst, SeqCst, |b| b.checked_sub(1)).is_ok();
        if !allowed {
            match Outcome::from_u8(self.create_failure.load(SeqCst)) {
                Outcome::Panic => panic!("{FACTORY_PANIC}"),
                _ => {
                    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, FACTORY_ERROR);
                    return Err(PoolError::factory(io));
                }
            }
        }
        slot.1 = true;
        self.created.fetch_add(1, SeqCst);
        Ok(TestConn {
            serial: self.next_serial.fetch_add(1, SeqCst),
            in_use: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(AtomicBool::new(false)),
            validate: Outcome::Pass,
            dirty: false,
            queries: 0,
        })
    }

    fn validate(&self, conn: &TestConn) -> Result<bool> {
        self.validated.fetch_add(1, SeqCst);
        self.validation_times.lock().unwrap().push(Instant::now());
        self.check_owned_by_pool(conn, "validate");
        self.validate_hold.pass();
        let delay = self.validate_delay_micros.load(SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        match conn.validate {
            Outcome::Pass => Ok(true),
            Outcome::Fail => Ok(false),
            Outcome::Error => Err(PoolError::factory(FACTORY_ERROR)),
            Outcome::Panic => panic!("{FACTORY_PANIC}"),
        }
    }

    /// Records the query, then answers like `validate`.
    fn validate_query(&self, conn: &mut TestConn, query: &str) -> Result<bool> {
        self.validation_queries.lock().unwrap().push(query.to_string());
        self.validate(conn)
    }

    fn reset(&self, conn: &mut TestConn) -> Result<()> {
        self.resets.fetch_add(1, SeqCst);
        self.check_owned_by_pool(conn, "reset");
        match Outcome::from_u8(self.reset_outcome.load(SeqCst)) {
            Outcome::Pass => {
                conn.dirty = false;
                Ok(())
            }
            Outcome::Panic => panic!("{FACTORY_PANIC}"),
            Outcome::Fail | Outcome::Error => Err(PoolError::factory(FACTORY_ERROR)),
        }
    }

    fn close(&self, conn: TestConn) -> Result<()> {
        self.check_owned_by_pool(&conn, "close");
        self.close_hold.pass();
        let delay = self.close_delay_micros.load(SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        conn.closed.store(true, SeqCst);
        self.closed_serials.lock().unwrap().push(conn.serial);
        self.closed.fetch_add(1, SeqCst);
        self.open.fetch_sub(1, SeqCst);
        Ok(())
    }
}

/// A guard whose connection is flagged as in use for as long as it is held:
/// taking a connection that is already flagged (two guards at once) or
/// closed panics. The flag is cleared before the guard returns it.
pub struct Held {
    guard: Option<PooledConnectionGuard<TestConn>>,
}

impl Held {
    /// Flags the guard's connection as used by this thread.
    pub fn new(guard: PooledConnectionGuard<TestConn>) -> Held {
        assert!(!guard.closed.load(SeqCst), "the pool handed out closed connection {}", guard.serial);
        assert!(!guard.in_use.swap(true, SeqCst), "connection {} is used by two guards at once", guard.serial);
        Held { guard: Some(guard) }
    }

    /// The guard.
    pub fn guard(&mut self) -> &mut PooledConnectionGuard<TestConn> {
        self.guard.as_mut().expect("present until dropped")
    }

    /// Unflags the connection and hands the guard back.
    pub fn into_guard(mut self) -> PooledConnectionGuard<TestConn> {
        let guard = self.guard.take().expect("present until dropped");
        guard.in_use.store(false, SeqCst);
        guard
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.in_use.store(false, SeqCst);
        }
    }
}

/// A checked configuration with small test defaults: no connections up
/// front, none kept (so nothing refills behind a test's back), a 10 s
/// acquire timeout (a hang fails instead of stalling), two shards.
pub fn config() -> PoolConfigBuilder {
    PoolConfig::builder()
        .name("test")
        .min_size(0)
        .initial_size(0)
        .max_size(4)
        .acquire_timeout(Duration::from_secs(10))
        .shards(2)
}

/// Polls `cond` every millisecond for up to 10 s; returns whether it held.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A small xorshift generator: reproducible, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One thing a pool reported to its [`EventLog`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Create(u64),
    Acquire(u64, Duration),
    Release(u64, Duration),
    Timeout(Duration),
    Close(u64, CloseReason),
    Leak(LeakInfo),
}

/// An event, when it happened, and the name of the thread it happened on.
#[derive(Debug, Clone)]
pub struct Logged {
    pub event: Event,
    pub at: Instant,
    pub thread: Option<String>,
}

/// A `PoolEventListener` that records everything.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Mutex<Vec<Logged>>,
}

impl EventLog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn push(&self, event: Event) {
        let thread = std::thread::current().name().map(str::to_owned);
        self.events.lock().unwrap().push(Logged { event, at: Instant::now(), thread });
    }

    /// Everything so far, in order.
    pub fn all(&self) -> Vec<Logged> {
        self.events.lock().unwrap().clone()
    }

    /// Ids of the connections closed for `reason`, in order.
    pub fn closed_for(&self, reason: CloseReason) -> Vec<u64> {
        self.all()
            .into_iter()
            .filter_map(|l| match l.event {
                Event::Close(id, r) if r == reason => Some(id),
                _ => None,
            })
            .collect()
    }

    /// The reason connection `id` was closed for, if it was.
    pub fn close_reason(&self, id: u64) -> Option<CloseReason> {
        self.all().into_iter().find_map(|l| match l.event {
            Event::Close(i, r) if i == id => Some(r),
            _ => None,
        })
    }

    /// When connection `id` was created and when it was closed.
    pub fn created_at(&self, id: u64) -> Option<Instant> {
        self.all().into_iter().find(|l| l.event == Event::Create(id)).map(|l| l.at)
    }
    pub fn closed_at(&self, id: u64) -> Option<Instant> {
        self.all().into_iter().find(|l| matches!(l.event, Event::Close(i, _) if i == id)).map(|l| l.at)
    }

    /// Ids of every connection created.
    pub fn created(&self) -> Vec<u64> {
        self.all()
            .into_iter()
            .filter_map(|l| match l.event {
                Event::Create(id) => Some(id),
                _ => None,
            })
            .collect()
    }

    /// Leaks reported, in order.
    pub fn leaks(&self) -> Vec<LeakInfo> {
        self.all()
            .into_iter()
            .filter_map(|l| match l.event {
                Event::Leak(info) => Some(info),
                _ => None,
            })
            .collect()
    }
}

impl PoolEventListener for EventLog {
    fn on_create(&self, connection_id: u64) {
        self.push(Event::Create(connection_id));
    }
    fn on_acquire(&self, connection_id: u64, wait_time: Duration) {
        self.push(Event::Acquire(connection_id, wait_time));
    }
    fn on_release(&self, connection_id: u64, held_for: Duration) {
        self.push(Event::Release(connection_id, held_for));
    }
    fn on_timeout(&self, waited: Duration) {
        self.push(Event::Timeout(waited));
    }
    fn on_close(&self, connection_id: u64, reason: CloseReason) {
        self.push(Event::Close(connection_id, reason));
    }
    fn on_leak(&self, leak: &LeakInfo) {
        self.push(Event::Leak(leak.clone()));
    }
}

/// Polls `cond` every millisecond for up to `limit`; returns whether it held.
pub fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

thread_local! {
    static EXIT_FLAGS: std::cell::RefCell<ExitFlags> = std::cell::RefCell::default();
}

/// Flags raised by a thread-local destructor, which runs as the thread exits
/// and before a `join` of it returns.
#[derive(Default)]
struct ExitFlags(Vec<Arc<AtomicBool>>);

impl Drop for ExitFlags {
    fn drop(&mut self) {
        for flag in &self.0 {
            flag.store(true, SeqCst);
        }
    }
}

/// What a test learns about the thread a callback runs on.
#[derive(Debug, Clone)]
pub struct ThreadWatch {
    /// The thread's name.
    pub name: Option<String>,
    /// Its kernel task id (Linux), to look it up in `/proc/self/task`.
    pub tid: Option<u32>,
    /// Set once the thread has exited (its thread-locals destroyed).
    pub exited: Arc<AtomicBool>,
}

impl ThreadWatch {
    /// Watches the calling thread.
    pub fn current() -> ThreadWatch {
        let exited = Arc::new(AtomicBool::new(false));
        EXIT_FLAGS.with(|f| f.borrow_mut().0.push(Arc::clone(&exited)));
        ThreadWatch { name: std::thread::current().name().map(str::to_owned), tid: current_tid(), exited }
    }

    /// Whether the thread has run its exit path.
    pub fn has_exited(&self) -> bool {
        self.exited.load(SeqCst)
    }

    /// Whether the kernel still runs the thread (`false` off Linux or once
    /// it is gone or a zombie).
    pub fn task_running(&self) -> bool {
        let Some(tid) = self.tid else { return false };
        match std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) {
            // The state follows the parenthesised name, which may hold spaces.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
            Err(_) => false,
        }
    }
}

/// The kernel task id of the calling thread, from `/proc/thread-self`.
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Names (`comm`, at most 15 bytes) of this process's running threads.
pub fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}
