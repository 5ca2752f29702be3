//! Striped event counters: one block of atomics per shard, each block on
//! its own cache lines, so threads on different shards never write the
//! same line. Increments are `Relaxed` read-modify-writes (exact, since
//! several threads may share a shard); a read adds the blocks up.
//!
//! ```text
//!  shard 0 ─► [ created │ create failed │ … │ failures[kind] … │ closed[reason] … │ panics[hook] … ]  (CachePadded)
//!  shard 1 ─► [ created │ create failed │ … │ failures[kind] … │ closed[reason] … │ panics[hook] … ]  (CachePadded)
//! ```
//!
//! `Relaxed` is enough everywhere: a counter pairs with no other access;
//! a reader gets, per counter, some value between the counts before and
//! after the increments that raced with it.

use crate::pool::{CloseReason, Hook};
use crate::sync::{AtomicU64, CachePadded, Ordering};

/// Something counted once per occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The factory created a connection.
    Created,
    /// The factory failed (or panicked) creating one.
    CreateFailed,
    /// A borrowed connection was reported as leaked.
    Leak,
    /// A statement was found in a connection's statement cache.
    CacheHit,
    /// A statement was not found and had to be prepared.
    CacheMiss,
    /// A borrow's connection was lent but the acquire failed before it was
    /// handed over (its partition's preparation failed): a loan that is
    /// not an acquire.
    Withdrawn,
}

impl Event {
    const COUNT: usize = 6;
}

/// Why an acquire failed, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `ConnectionTimeout`.
    Timeout,
    /// `WaitQueueFull`.
    WaitQueueFull,
    /// `PoolExhausted` (`try_acquire`).
    Exhausted,
    /// `Factory`: creating a connection failed.
    Factory,
    /// `PoolClosed`.
    Closed,
    /// Any other error.
    Other,
}

impl Failure {
    pub(crate) const COUNT: usize = 6;
}

const REASONS: usize = CloseReason::ALL.len();

/// One shard's counters.
#[derive(Debug)]
struct ShardCounters {
    events: [AtomicU64; Event::COUNT],
    failures: [AtomicU64; Failure::COUNT],
    closed: [AtomicU64; REASONS],
    panics: [AtomicU64; Hook::COUNT],
}

impl ShardCounters {
    fn new() -> Self {
        ShardCounters {
            events: std::array::from_fn(|_| AtomicU64::new(0)),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            closed: std::array::from_fn(|_| AtomicU64::new(0)),
            panics: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The counters of every shard.
#[derive(Debug)]
pub(crate) struct StripedCounters {
    shards: Box<[CachePadded<ShardCounters>]>,
}

/// All shards' counters added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CounterTotals {
    events: [u64; Event::COUNT],
    failures: [u64; Failure::COUNT],
    closed: [u64; REASONS],
    panics: [u64; Hook::COUNT],
}

impl StripedCounters {
    /// `shards` blocks of zeros (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        StripedCounters { shards: (0..shards.max(1)).map(|_| CachePadded::new(ShardCounters::new())).collect() }
    }

    /// How many shards the counters are striped over.
    pub(crate) fn shards(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    pub(crate) fn add(&self, shard: usize, event: Event) {
        // Relaxed: a statistic; see the module docs.
        self.shards[shard].events[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_failure(&self, shard: usize, failure: Failure) {
        // Relaxed: a statistic; see the module docs.
        self.shards[shard].failures[failure as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_closed(&self, shard: usize, reason: CloseReason) {
        // Relaxed: a statistic; see the module docs.
        self.shards[shard].closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_panic(&self, shard: usize, hook: Hook) {
        // Relaxed: a statistic; see the module docs.
        self.shards[shard].panics[hook.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter summed over the shards.
    pub(crate) fn totals(&self) -> CounterTotals {
        let mut totals = CounterTotals::default();
        // Relaxed: a statistic; see the module docs.
        let sum = |into: &mut [u64], from: &[AtomicU64]| {
            into.iter_mut().zip(from).for_each(|(t, c)| *t += c.load(Ordering::Relaxed));
        };
        for shard in self.shards.iter() {
            sum(&mut totals.events, &shard.events);
            sum(&mut totals.failures, &shard.failures);
            sum(&mut totals.closed, &shard.closed);
            sum(&mut totals.panics, &shard.panics);
        }
        totals
    }
}

impl CounterTotals {
    pub(crate) fn event(&self, event: Event) -> u64 {
        self.events[event as usize]
    }

    pub(crate) fn failure(&self, failure: Failure) -> u64 {
        self.failures[failure as usize]
    }

    pub(crate) fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()]
    }

    pub(crate) fn panics(&self, hook: Hook) -> u64 {
        self.panics[hook.index()]
    }

    /// Acquires that failed, whatever the reason.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.iter().sum()
    }

    /// Connections closed, whatever the reason.
    pub(crate) fn closes(&self) -> u64 {
        self.closed.iter().sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_every_shard() {
        let counters = StripedCounters::new(3);
        counters.add(0, Event::Created);
        counters.add(2, Event::Created);
        counters.add(1, Event::Leak);
        counters.add_failure(2, Failure::Timeout);
        counters.add_failure(0, Failure::Closed);
        counters.add_closed(1, CloseReason::Idle);
        counters.add_closed(1, CloseReason::Shutdown);
        counters.add_closed(0, CloseReason::Shutdown);
        counters.add_panic(0, Hook::OnRelease);
        counters.add_panic(1, Hook::OnRelease);
        let totals = counters.totals();
        assert_eq!(totals.event(Event::Created), 2);
        assert_eq!(totals.event(Event::Leak), 1);
        assert_eq!(totals.event(Event::CacheHit), 0);
        assert_eq!((totals.failure(Failure::Timeout), totals.failures()), (1, 2));
        assert_eq!((totals.closed(CloseReason::Shutdown), totals.closes()), (2, 3));
        assert_eq!((totals.panics(Hook::OnRelease), totals.panics(Hook::Create)), (2, 0));
    }

    #[test]
    fn each_shard_has_its_own_cache_lines() {
        let counters = StripedCounters::new(2);
        let a = &*counters.shards[0] as *const ShardCounters as usize;
        let b = &*counters.shards[1] as *const ShardCounters as usize;
        let line = std::mem::align_of::<CachePadded<ShardCounters>>();
        assert!(line >= 64 && a % line == 0 && b - a >= line, "{a:#x} {b:#x} {line}");
    }
}
