//! Keeps the pool's memory alive for outstanding guards without a shared
//! reference count, and with one read-modify-write per guard.
//!
//! A guard must outlive every `ConnectionPool` handle (it is `'static`), but
//! an `Arc` clone per acquire would make every thread write one shared cache
//! line. Instead guards are counted in two halves:
//!
//! - **made**: every guard is made from a slot's loan, which the slot's
//!   owner counts with a plain store (`Slot::lend`). No guard is made once
//!   the last handle is gone, so at teardown the sum over the slots is
//!   exact. (Other holders, such as the maintenance job, count themselves
//!   with [`GuardRefs::hold`], which is rare.)
//! - **ended**: a guard that is done with the pool adds one to a counter of
//!   the shard it runs on, touching only a line its core already owns.
//!
//! When the last handle drops, [`GuardRefs::teardown`] *collapses* the
//! stripes: it swaps each for [`DEAD`] and takes the ends it held; the
//! guards still out are the made ones minus those. It keeps them in
//! `central`, which starts biased by [`BIAS`] so it cannot reach zero while
//! stripes are still being collapsed. A guard whose increment finds its
//! stripe dead was counted in `central` and decrements that instead.
//! Whoever takes `central` to zero frees the pool. A guard that increments
//! a live stripe touches the pool no more after that increment.

use crate::sync::{AtomicUsize, CachePadded, Ordering};

/// What a collapsed stripe holds; counts below [`DEAD_THRESHOLD`] are live.
const DEAD: usize = 1 << (usize::BITS - 2);
/// Ends counted on a live stripe stay below this (2^61 on 64 bits), and
/// increments of a dead stripe keep it above.
const DEAD_THRESHOLD: usize = 1 << (usize::BITS - 3);
/// Keeps `central` above zero while teardown runs.
const BIAS: usize = 1 << (usize::BITS - 3);

/// Striped counts of guards that ended, plus the holders that are not guards.
#[derive(Debug)]
pub struct GuardRefs {
    stripes: Box<[CachePadded<AtomicUsize>]>,
    /// References taken with [`hold`](Self::hold).
    held: AtomicUsize,
    central: AtomicUsize,
}

impl GuardRefs {
    /// `stripes` counters, all zero.
    pub fn new(stripes: usize) -> Self {
        GuardRefs {
            stripes: (0..stripes.max(1)).map(|_| CachePadded::new(AtomicUsize::new(0))).collect(),
            held: AtomicUsize::new(0),
            central: AtomicUsize::new(0),
        }
    }

    /// Counts a reference that is not a slot's loan (the maintenance job's).
    /// The caller holds a pool handle, so teardown cannot run concurrently.
    pub fn hold(&self) {
        // Relaxed: the caller's handle keeps the pool alive during this call;
        // teardown, which starts after that handle is gone, reads it.
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends a reference (a guard, or a [`hold`](Self::hold)), counted on
    /// `stripe`. Returns `true` if it was the last and the caller must free
    /// the pool. After a `false` the caller must not touch the pool again.
    #[inline]
    pub fn release(&self, stripe: usize) -> bool {
        // Release: everything this reference did to the pool happens before
        // the teardown that reads this stripe (its Acquire swap).
        let old = self.stripes[stripe].fetch_add(1, Ordering::Release);
        if old < DEAD_THRESHOLD {
            return false;
        }
        // AcqRel: the one who reaches zero must see every other release.
        self.central.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Collapses every stripe after the last handle dropped; `loans` is the
    /// number of guards ever made (the slots' loans, all of which happen
    /// before the last handle's drop). Returns `true` if no reference is
    /// outstanding and the caller must free the pool.
    pub fn teardown(&self, loans: u64) -> bool {
        // AcqRel: the bias is in place before any stripe reads as dead.
        self.central.fetch_add(BIAS, Ordering::AcqRel);
        let mut ended = 0usize;
        for stripe in self.stripes.iter() {
            // AcqRel: Acquire pairs with the Release increments; Release
            // publishes the bias to references that find the stripe dead.
            ended += stripe.swap(DEAD, Ordering::AcqRel);
        }
        let made = usize::try_from(loans).unwrap_or(usize::MAX) + self.held.load(Ordering::Relaxed);
        let outstanding = made.checked_sub(ended).expect("more references ended than were made");
        let unbias = BIAS - outstanding;
        self.central.fetch_sub(unbias, Ordering::AcqRel) == unbias
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn teardown_with_no_guards_frees_at_once() {
        let refs = GuardRefs::new(2);
        // One guard made and ended before teardown.
        assert!(!refs.release(0));
        assert!(refs.teardown(1));
    }

    #[test]
    fn last_guard_after_teardown_frees() {
        let refs = GuardRefs::new(3);
        // Three guards made; they end on other stripes than they began.
        assert!(!refs.teardown(3));
        assert!(!refs.release(2));
        assert!(!refs.release(0));
        assert!(refs.release(1));
    }

    #[test]
    fn a_hold_keeps_the_pool_until_it_ends() {
        let refs = GuardRefs::new(2);
        refs.hold();
        assert!(!refs.release(1)); // a guard
        assert!(!refs.teardown(1));
        assert!(refs.release(0)); // the hold
    }
}
