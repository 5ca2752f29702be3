//! With `validate_on_acquire`, and a factory whose full check makes a round
//! trip, a connection returned within the validation bypass window gets
//! only the factory's cheap check (`validate`); one idle for longer gets the
//! full one (`validate_mut`); a window of zero checks fully every time, and
//! so does a factory that says its full check costs nothing more. And a return the pool cannot trust (a
//! panic, or `mark_dirty`) runs the factory's full clean-up (`clean`)
//! instead of its `reset`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use rusty_db::pool::{ConnectionFactory, ConnectionPool, DEFAULT_VALIDATION_BYPASS_WINDOW, PoolConfig, Result};

/// Counts each kind of check and reset.
#[derive(Default)]
struct Counting {
    /// What `validation_round_trips` says.
    cheap_is_cheaper: bool,
    cheap: AtomicUsize,
    full: AtomicUsize,
    resets: AtomicUsize,
    cleans: AtomicUsize,
}

impl Counting {
    fn checks(&self) -> (usize, usize) {
        (self.cheap.load(SeqCst), self.full.load(SeqCst))
    }

    fn resets(&self) -> (usize, usize) {
        (self.resets.load(SeqCst), self.cleans.load(SeqCst))
    }
}

impl ConnectionFactory<u32> for Counting {
    fn create(&self) -> Result<u32> {
        Ok(0)
    }
    fn validate(&self, _: &u32) -> Result<bool> {
        self.cheap.fetch_add(1, SeqCst);
        Ok(true)
    }
    fn validate_mut(&self, _: &mut u32) -> Result<bool> {
        self.full.fetch_add(1, SeqCst);
        Ok(true)
    }
    fn validation_round_trips(&self) -> bool {
        self.cheap_is_cheaper
    }
    fn reset(&self, _: &mut u32) -> Result<()> {
        self.resets.fetch_add(1, SeqCst);
        Ok(())
    }
    fn clean(&self, _: &mut u32) -> Result<()> {
        self.cleans.fetch_add(1, SeqCst);
        Ok(())
    }
}

fn pool(window: Duration) -> (Arc<Counting>, ConnectionPool<u32>) {
    pool_of(Counting { cheap_is_cheaper: true, ..Counting::default() }, window)
}

fn pool_of(factory: Counting, window: Duration) -> (Arc<Counting>, ConnectionPool<u32>) {
    let factory = Arc::new(factory);
    let config =
        PoolConfig::builder().min_size(1).initial_size(1).max_size(1).validation_bypass_window(window).build().unwrap();
    (Arc::clone(&factory), ConnectionPool::new(config, factory).unwrap())
}

#[test]
fn the_default_window_is_500_ms() {
    assert_eq!(DEFAULT_VALIDATION_BYPASS_WINDOW, Duration::from_millis(500));
    assert_eq!(PoolConfig::default().validation_bypass_window, DEFAULT_VALIDATION_BYPASS_WINDOW);
    let config = PoolConfig::builder().validation_bypass_window(Duration::from_secs(2)).build().unwrap();
    assert!(
        config.effective_maintenance_interval() <= Duration::from_millis(500),
        "the coarse clock advances at least four times per window"
    );
}

#[test]
fn a_connection_returned_within_the_window_gets_the_cheap_check_only() {
    let (factory, pool) = pool(Duration::from_millis(200));
    for _ in 0..5 {
        drop(pool.acquire().unwrap());
    }
    assert_eq!(factory.checks(), (5, 0), "fresh and just returned: no round trip");

    thread::sleep(Duration::from_millis(450));
    drop(pool.acquire().unwrap());
    assert_eq!(factory.checks(), (5, 1), "idle past the window: the full check");
    drop(pool.acquire().unwrap());
    assert_eq!(factory.checks(), (6, 1), "and just returned again: the cheap one");
}

#[test]
fn a_window_of_zero_checks_fully_every_time() {
    let (factory, pool) = pool(Duration::ZERO);
    for _ in 0..5 {
        drop(pool.acquire().unwrap());
    }
    assert_eq!(factory.checks(), (0, 5));
}

#[test]
fn a_factory_whose_full_check_costs_no_round_trip_is_checked_fully_every_time() {
    let (factory, pool) = pool_of(Counting::default(), Duration::from_millis(200));
    for _ in 0..5 {
        drop(pool.acquire().unwrap());
    }
    assert_eq!(factory.checks(), (0, 5), "validate_mut every time, as before the window");
}

#[test]
fn without_validate_on_acquire_nothing_is_checked() {
    let factory = Arc::new(Counting::default());
    let config = PoolConfig::builder().min_size(1).initial_size(1).max_size(1).validate_on_acquire(false).build();
    let pool = ConnectionPool::new(config.unwrap(), Arc::clone(&factory)).unwrap();
    drop(pool.acquire().unwrap());
    assert_eq!(factory.checks(), (0, 0));
}

#[test]
fn a_return_after_a_panic_or_marked_dirty_is_cleaned_not_just_reset() {
    let (factory, pool) = pool(Duration::from_millis(200));
    drop(pool.acquire().unwrap());
    assert_eq!(factory.resets(), (1, 0), "a clean borrow: reset");

    let mut conn = pool.acquire().unwrap();
    conn.mark_dirty();
    drop(conn);
    assert_eq!(factory.resets(), (1, 1), "marked dirty: cleaned");

    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _conn = pool.acquire().unwrap();
        panic!("borrower bug");
    }));
    std::panic::set_hook(hook);
    assert!(unwound.is_err());
    assert_eq!(factory.resets(), (1, 2), "dropped during a panic: cleaned");
    assert_eq!(factory.checks().1, 1, "and validated fully after the panic");
    assert_eq!(pool.size(), 1, "the connection was kept");
}
