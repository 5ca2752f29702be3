//! User code as a hostile user writes it: a factory and a listener that
//! panic in one chosen hook (always, or on one call in N), and a workload
//! that drives every hook from 8 threads. The pool must come out of it
//! with its capacity, its statistics and its `close()` intact.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rusty_db::pool::{
    CloseReason, ConnectionFactory, ConnectionPool, ConnectionValidator, Hook, LeakInfo, PoolConfig, PoolError,
    PoolEventListener, PooledConnectionGuard, Result,
};

use super::Rng;

/// The message of every panic raised here.
pub const HOSTILE_PANIC: &str = "hostile user code: deliberate panic";

/// Which calls of the chosen hook panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Every call.
    Call,
    /// Calls 1, 1 + n, 1 + 2n, ... (so the first always does).
    OneIn(u64),
}

/// Counts calls of one hook and decides which of them panic.
#[derive(Debug)]
pub struct Trigger {
    hook: Hook,
    every: Every,
    armed: AtomicBool,
    calls: AtomicU64,
    panics: AtomicU64,
}

impl Trigger {
    pub fn new(hook: Hook, every: Every) -> Self {
        Trigger { hook, every, armed: AtomicBool::new(true), calls: AtomicU64::new(0), panics: AtomicU64::new(0) }
    }

    /// Called at the top of every hook: panics if `hook` is the chosen one
    /// and this call is due.
    fn enter(&self, hook: Hook) {
        if hook != self.hook {
            return;
        }
        let n = self.calls.fetch_add(1, SeqCst);
        let due = match self.every {
            Every::Call => true,
            Every::OneIn(k) => n % k == 0,
        };
        if due && self.armed.load(SeqCst) {
            self.panics.fetch_add(1, SeqCst);
            panic!("{HOSTILE_PANIC} in {hook}");
        }
    }

    /// No more panics from now on.
    pub fn disarm(&self) {
        self.armed.store(false, SeqCst);
    }

    /// Calls of the chosen hook so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(SeqCst)
    }

    /// Panics raised so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(SeqCst)
    }
}

/// A connection that counts itself while it exists (so a connection lost
/// to a panic is still seen to be gone) and knows whether it is in use.
#[derive(Debug)]
pub struct HostileConn {
    pub serial: u64,
    in_use: AtomicBool,
    existing: Arc<AtomicUsize>,
}

impl Drop for HostileConn {
    fn drop(&mut self) {
        self.existing.fetch_sub(1, SeqCst);
    }
}

/// A factory that may panic in any of its methods.
#[derive(Debug)]
pub struct HostileFactory {
    pub trigger: Trigger,
    serials: AtomicU64,
    existing: Arc<AtomicUsize>,
    max_existing: AtomicUsize,
    created: AtomicUsize,
    closes: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl HostileFactory {
    /// Panics in `hook` if it is a factory method (else never).
    pub fn new(hook: Hook, every: Every) -> Arc<Self> {
        Arc::new(HostileFactory {
            trigger: Trigger::new(hook, every),
            serials: AtomicU64::new(0),
            existing: Arc::new(AtomicUsize::new(0)),
            max_existing: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            closes: AtomicUsize::new(0),
            violations: Mutex::new(Vec::new()),
        })
    }

    /// A factory that never panics (for its bookkeeping alone).
    pub fn well_behaved() -> Arc<Self> {
        let factory = Self::new(Hook::Create, Every::Call);
        factory.trigger.disarm();
        factory
    }

    /// Connections that exist right now (created and not yet dropped).
    pub fn existing(&self) -> usize {
        self.existing.load(SeqCst)
    }

    /// The most connections that existed at once.
    pub fn max_existing(&self) -> usize {
        self.max_existing.load(SeqCst)
    }

    /// Connections created.
    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    /// Calls of `close` (including ones that panicked).
    pub fn closes(&self) -> usize {
        self.closes.load(SeqCst)
    }

    /// Broken invariants seen from inside the factory.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    fn owned_by_pool(&self, conn: &HostileConn, method: &str) {
        if conn.in_use.load(SeqCst) {
            self.violations.lock().unwrap().push(format!("{method} on connection {} while in use", conn.serial));
        }
    }
}

impl ConnectionFactory<HostileConn> for HostileFactory {
    fn create(&self) -> Result<HostileConn> {
        // Counted first: a create that panics made nothing, and nothing to drop.
        self.trigger.enter(Hook::Create);
        let existing = self.existing.fetch_add(1, SeqCst) + 1;
        self.max_existing.fetch_max(existing, SeqCst);
        self.created.fetch_add(1, SeqCst);
        let serial = self.serials.fetch_add(1, SeqCst) + 1;
        Ok(HostileConn { serial, in_use: AtomicBool::new(false), existing: Arc::clone(&self.existing) })
    }

    fn validate(&self, conn: &HostileConn) -> Result<bool> {
        self.owned_by_pool(conn, "validate");
        self.trigger.enter(Hook::Validate);
        Ok(true)
    }

    fn validate_query(&self, conn: &mut HostileConn, _query: &str) -> Result<bool> {
        self.owned_by_pool(conn, "validate_query");
        self.trigger.enter(Hook::ValidateQuery);
        Ok(true)
    }

    fn reset(&self, conn: &mut HostileConn) -> Result<()> {
        self.owned_by_pool(conn, "reset");
        self.trigger.enter(Hook::Reset);
        Ok(())
    }

    fn close(&self, conn: HostileConn) -> Result<()> {
        self.owned_by_pool(&conn, "close");
        self.closes.fetch_add(1, SeqCst);
        self.trigger.enter(Hook::Close);
        drop(conn);
        Ok(())
    }

    fn attach(&self, _pool: &PoolConfig) {
        self.trigger.enter(Hook::Attach);
    }
}

/// A listener that may panic in any of its hooks.
#[derive(Debug)]
pub struct HostileListener {
    pub trigger: Trigger,
}

impl HostileListener {
    /// Panics in `hook` if it is a listener hook (else never).
    pub fn new(hook: Hook, every: Every) -> Arc<Self> {
        Arc::new(HostileListener { trigger: Trigger::new(hook, every) })
    }
}

impl PoolEventListener for HostileListener {
    fn on_create(&self, _: u64) {
        self.trigger.enter(Hook::OnCreate);
    }
    fn on_acquire(&self, _: u64, _: Duration) {
        self.trigger.enter(Hook::OnAcquire);
    }
    fn on_release(&self, _: u64, _: Duration) {
        self.trigger.enter(Hook::OnRelease);
    }
    fn on_timeout(&self, _: Duration) {
        self.trigger.enter(Hook::OnTimeout);
    }
    fn on_close(&self, _: u64, _: CloseReason) {
        self.trigger.enter(Hook::OnClose);
    }
    fn on_leak(&self, _: &LeakInfo) {
        self.trigger.enter(Hook::OnLeak);
    }
}

/// The pool's size in these tests.
pub const MAX: usize = 4;
/// Worker threads of the workload.
pub const THREADS: usize = 8;
/// Operations per worker.
pub const OPS: usize = 150;
/// The pools' `shutdown_timeout`.
pub const SHUTDOWN: Duration = Duration::from_secs(1);
/// How long `close()` may take: its configured bound plus a generous margin.
pub const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// A pool whose factory and listener panic in `hook` (whichever of them
/// has it), configured so that every hook is called: leak detection,
/// lifetimes that maintenance retires, validation on acquire and release
/// (through a query when `hook` is `ValidateQuery`), and a refill.
pub fn hostile_pool(
    hook: Hook,
    every: Every,
) -> (ConnectionPool<HostileConn>, Arc<HostileFactory>, Arc<HostileListener>) {
    let factory = HostileFactory::new(hook, every);
    let listener = HostileListener::new(hook, every);
    let mut config = super::config()
        .name(format!("hostile-{}", hook.as_str()))
        .max_size(MAX)
        .min_size(1)
        .acquire_timeout(Duration::from_secs(5))
        .validate_on_acquire(true)
        .validate_on_release(true)
        .max_lifetime(Duration::from_millis(60))
        .leak_detection_threshold(Duration::from_millis(25))
        .shutdown_timeout(SHUTDOWN)
        .event_listener(listener.clone());
    if hook == Hook::ValidateQuery {
        config = config.validator(ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 1".into()));
    }
    let pool = ConnectionPool::new(config.build().unwrap(), factory.clone()).unwrap();
    (pool, factory, listener)
}

/// Marks a borrowed connection as used by this thread for the guard's life.
struct Using(PooledConnectionGuard<HostileConn>);

impl Using {
    fn new(guard: PooledConnectionGuard<HostileConn>, errors: &Mutex<Vec<String>>) -> Using {
        if guard.in_use.swap(true, SeqCst) {
            errors.lock().unwrap().push(format!("connection {} handed to two borrowers", guard.serial));
        }
        Using(guard)
    }

    fn release(self) -> PooledConnectionGuard<HostileConn> {
        self.0.in_use.store(false, SeqCst);
        self.0
    }
}

/// Drives every hook: a scripted prelude (all connections held, a timeout,
/// a leak, a broken connection, a discard), then `THREADS` threads doing
/// `OPS` random acquires, holds, breaks and discards. Returns the errors
/// an acquire should never have returned, and the broken invariants seen.
pub fn drive(pool: &ConnectionPool<HostileConn>, hook: Hook) -> Vec<String> {
    let errors = Mutex::new(Vec::new());
    let expected = |e: &PoolError| match e {
        PoolError::ConnectionTimeout(_) | PoolError::PoolExhausted { .. } => true,
        // Creating is what fails while `create` panics.
        PoolError::Factory(_) => hook == Hook::Create,
        // Connections kept failing validation (panicking) until a short
        // timeout ran out.
        PoolError::ValidationFailed(_) => matches!(hook, Hook::Validate | Hook::ValidateQuery),
        _ => false,
    };
    let check = |r: Result<PooledConnectionGuard<HostileConn>>| match r {
        Ok(guard) => Some(Using::new(guard, &errors)),
        Err(e) if expected(&e) => None,
        Err(e) => {
            errors.lock().unwrap().push(format!("unexpected acquire error: {e:?}"));
            None
        }
    };

    // Prelude: fill the pool, time out once, leak one connection, break one.
    let held: Vec<_> = (0..MAX).filter_map(|_| check(pool.acquire_timeout(Duration::from_millis(200)))).collect();
    if held.len() == MAX {
        let _ = check(pool.acquire_timeout(Duration::from_millis(10)));
    }
    let mut held: Vec<_> = held.into_iter().map(Using::release).collect();
    if let Some(mut leaked) = held.pop() {
        // Held past the 25 ms threshold until a pass reports it.
        if !super::eventually(|| !pool.leaks().is_empty()) {
            errors.lock().unwrap().push("a connection held for 10 s was never reported leaked".into());
        }
        leaked.mark_broken();
    }
    if let Some(killed) = held.pop() {
        killed.discard();
    }
    drop(held);

    thread::scope(|s| {
        for t in 0..THREADS {
            let check = &check;
            s.spawn(move || {
                let mut rng = Rng::new(t as u64 + 1);
                for _ in 0..OPS {
                    let choice = rng.below(20);
                    let got = if choice == 0 {
                        check(pool.try_acquire())
                    } else {
                        check(pool.acquire_timeout(Duration::from_millis(20)))
                    };
                    let Some(using) = got else { continue };
                    match rng.below(10) {
                        0 => thread::sleep(Duration::from_millis(2)),
                        1 => thread::yield_now(),
                        _ => {}
                    }
                    let mut guard = using.release();
                    match choice {
                        1 => guard.mark_broken(),
                        2 => guard.discard(),
                        _ => drop(guard),
                    }
                }
            });
        }
    });
    errors.into_inner().unwrap()
}

/// After the workload: every connection can be held at once (and no more),
/// `close()` returns within its bound, every connection is gone, and the
/// statistics count exactly the panics raised.
pub fn assert_intact(pool: ConnectionPool<HostileConn>, factory: &HostileFactory, trigger: &Trigger, hook: Hook) {
    assert!(trigger.calls() > 0, "the workload never called {hook}");
    assert!(trigger.panics() > 0, "{hook} never panicked");
    if hook == Hook::Create {
        // Nothing can be created while every create panics.
        trigger.disarm();
    }
    let all: Vec<_> = (0..MAX)
        .map(|i| {
            pool.acquire_timeout(Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("capacity lost after {hook} panics: connection {i} of {MAX}: {e:?}"))
        })
        .collect();
    match pool.try_acquire() {
        Err(PoolError::PoolExhausted { active: MAX, max: MAX }) => {}
        other => panic!("expected the pool full at {MAX}, got {:?}", other.map(|g| g.id())),
    }
    drop(all);
    assert!(factory.max_existing() <= MAX, "{} connections existed at once", factory.max_existing());

    let started = Instant::now();
    pool.close();
    let took = started.elapsed();
    assert!(took < CLOSE_BOUND, "close() took {took:?} after {hook} panics");
    assert!(
        super::eventually(|| factory.existing() == 0),
        "{} connections outlived close() after {hook} panics",
        factory.existing()
    );
    if hook != Hook::Close {
        assert_eq!(factory.closes(), factory.created(), "every connection went through factory.close");
    }
    assert_eq!(factory.violations(), Vec::<String>::new());

    let stats = pool.statistics();
    assert_eq!(stats.hook_panics.get(hook), trigger.panics(), "panics of {hook} counted");
    assert_eq!(stats.hook_panics.total(), trigger.panics(), "and no other hook's: {:?}", stats.hook_panics);
    assert_eq!((stats.active_connections, stats.idle_connections), (0, 0));
    assert_eq!(stats.connections_created, factory.created() as u64);
    assert_eq!(stats.connections_created, stats.connections_closed, "created - closed == idle + active");
}

/// Runs the workload with `hook` panicking on `every` call and checks the
/// pool came out of it intact (see [`drive`] and [`assert_intact`]).
pub fn survives(hook: Hook, every: Every) {
    let (pool, factory, listener) = hostile_pool(hook, every);
    let errors = drive(&pool, hook);
    assert_eq!(errors, Vec::<String>::new(), "with {hook} panicking ({every:?})");
    let trigger = if hook.trait_name() == "ConnectionFactory" { &factory.trigger } else { &listener.trigger };
    assert_intact(pool, &factory, trigger, hook);
}

/// Two tests per hook, `always` and `sometimes` (one call in three):
/// `panicking_hooks! { on_create_always, on_create_one_call_in_three: Hook::OnCreate; }`.
#[macro_export]
macro_rules! panicking_hooks {
    ($($always:ident, $sometimes:ident: $hook:expr;)*) => {$(
        #[test]
        fn $always() {
            common::hostile::survives($hook, common::hostile::Every::Call);
        }

        #[test]
        fn $sometimes() {
            common::hostile::survives($hook, common::hostile::Every::OneIn(3));
        }
    )*};
}
