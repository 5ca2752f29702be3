//! Shared pieces of the loom models: a bounded `model` runner and a
//! factory whose counters are loom atomics, so every interleaving of its
//! bookkeeping is explored too.
// Each model file includes this module and uses a different part of it.
#![allow(dead_code)]

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, QueueMode, Result};
use std::sync::Arc;
use std::time::Duration;

/// Runs `f` under loom with the preemption bound CI uses (override with
/// `LOOM_MAX_PREEMPTIONS`).
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// A connection that knows whether somebody is using it.
pub struct Conn {
    pub serial: usize,
}

/// Counts creates and closes, and checks the `max` cap inside `create`.
pub struct CountingFactory {
    pub max: usize,
    pub live: AtomicUsize,
    pub created: AtomicUsize,
    pub closed: AtomicUsize,
}

impl CountingFactory {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(CountingFactory {
            max,
            live: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
        })
    }
}

impl ConnectionFactory<Conn> for CountingFactory {
    fn create(&self) -> Result<Conn> {
        let live = self.live.fetch_add(1, SeqCst) + 1;
        assert!(live <= self.max, "{live} connections alive, max_size is {}", self.max);
        Ok(Conn { serial: self.created.fetch_add(1, SeqCst) })
    }

    fn close(&self, _connection: Conn) -> Result<()> {
        self.live.fetch_sub(1, SeqCst);
        self.closed.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// Loom has no clock: a waiter starves at once (threshold zero) or never
/// (this long), so that no execution depends on how long the last one took.
pub const NEVER: Duration = Duration::from_secs(3600);

/// A pool of `max` slots with `initial` connections, one shard, no
/// validation, whose waiters never starve.
pub fn pool(max: usize, initial: usize, mode: QueueMode) -> (ConnectionPool<Conn>, Arc<CountingFactory>) {
    pool_starving_after(max, initial, mode, NEVER)
}

/// Like [`pool`], with waiters starving after `threshold` (zero or [`NEVER`]).
pub fn pool_starving_after(
    max: usize,
    initial: usize,
    mode: QueueMode,
    threshold: Duration,
) -> (ConnectionPool<Conn>, Arc<CountingFactory>) {
    let config = PoolConfig::builder()
        .min_size(0)
        .max_size(max)
        .initial_size(initial)
        .shards(1)
        .validate_on_acquire(false)
        .queue_mode(mode)
        // Loom has no clock: waits end by notification only, so a lost
        // wake-up is reported as a deadlock rather than a timeout.
        .acquire_timeout(NEVER)
        .fairness_threshold(threshold)
        .build()
        .expect("valid model config");
    let factory = CountingFactory::new(max);
    let pool = ConnectionPool::new(config, Arc::clone(&factory)).expect("model pool");
    (pool, factory)
}
