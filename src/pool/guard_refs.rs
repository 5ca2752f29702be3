//! Keeps the pool's memory alive for outstanding guards without a shared
//! reference count on the fast path.
//!
//! A guard must outlive every `ConnectionPool` handle (it is `'static`), but
//! an `Arc` clone per acquire would make every thread write one shared cache
//! line. Instead each shard has its own counter: a guard increments the
//! counter of the shard it was acquired on and decrements the same one when
//! it returns, touching only a line its core already owns.
//!
//! When the last handle drops, [`GuardRefs::teardown`] *collapses* the
//! stripes: it swaps each for [`DEAD`] and moves the count it held into
//! `central`, which starts biased by [`BIAS`] so it cannot reach zero while
//! stripes are still being collapsed. A guard whose decrement finds its
//! stripe dead was counted in `central` and decrements that instead.
//! Whoever takes `central` to zero frees the pool. A guard that decrements a
//! live stripe touches the pool no more after that decrement.

use crate::sync::{AtomicUsize, CachePadded, Ordering};

/// What a collapsed stripe holds; counts below [`DEAD_THRESHOLD`] are live.
const DEAD: usize = 1 << (usize::BITS - 2);
/// Decrements of a dead stripe keep it far above this.
const DEAD_THRESHOLD: usize = 1 << (usize::BITS - 3);
/// Keeps `central` above zero while teardown runs.
const BIAS: usize = 1 << (usize::BITS - 3);

/// Striped counts of outstanding guards.
#[derive(Debug)]
pub struct GuardRefs {
    stripes: Box<[CachePadded<AtomicUsize>]>,
    central: AtomicUsize,
}

impl GuardRefs {
    /// `stripes` counters, all zero.
    pub fn new(stripes: usize) -> Self {
        GuardRefs {
            stripes: (0..stripes.max(1)).map(|_| CachePadded::new(AtomicUsize::new(0))).collect(),
            central: AtomicUsize::new(0),
        }
    }

    /// Counts a new guard on `stripe`. The caller holds a pool handle, so
    /// teardown cannot run concurrently.
    #[inline]
    pub fn acquire(&self, stripe: usize) {
        // Relaxed: the caller's handle keeps the pool alive during this call;
        // the count only has to be seen by teardown, which starts after the
        // last handle (and so this call) is gone.
        self.stripes[stripe].fetch_add(1, Ordering::Relaxed);
    }

    /// Uncounts a guard from `stripe`. Returns `true` if the caller held the
    /// last reference and must free the pool. After a `false` the caller
    /// must not touch the pool again.
    #[inline]
    pub fn release(&self, stripe: usize) -> bool {
        // Release: everything this guard did to the pool happens before the
        // teardown that reads this stripe (its Acquire swap).
        let old = self.stripes[stripe].fetch_sub(1, Ordering::Release);
        if old < DEAD_THRESHOLD {
            return false;
        }
        // AcqRel: the one who reaches zero must see every other release.
        self.central.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Collapses every stripe after the last handle dropped. Returns `true`
    /// if no guard is outstanding and the caller must free the pool.
    pub fn teardown(&self) -> bool {
        // AcqRel: the bias is in place before any stripe reads as dead.
        self.central.fetch_add(BIAS, Ordering::AcqRel);
        let mut live = 0;
        for stripe in self.stripes.iter() {
            // AcqRel: Acquire pairs with guards' Release decrements; Release
            // publishes the bias to guards that find the stripe dead.
            live += stripe.swap(DEAD, Ordering::AcqRel);
        }
        let unbias = BIAS - live;
        self.central.fetch_sub(unbias, Ordering::AcqRel) == unbias
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn teardown_with_no_guards_frees_at_once() {
        let refs = GuardRefs::new(2);
        refs.acquire(0);
        assert!(!refs.release(0));
        assert!(refs.teardown());
    }

    #[test]
    fn last_guard_after_teardown_frees() {
        let refs = GuardRefs::new(3);
        refs.acquire(0);
        refs.acquire(2);
        refs.acquire(2);
        assert!(!refs.teardown());
        assert!(!refs.release(2));
        assert!(!refs.release(0));
        assert!(refs.release(2));
    }
}
