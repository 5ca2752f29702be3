//! A lock-free LIFO stack of slot indices (a Treiber stack).
//!
//! The pool keeps one per shard for idle connections and one for vacant
//! slots. Nodes are the slab's slots, so nothing is allocated or freed: a
//! push links the slot through its `next` word and swings the head with one
//! CAS. The head packs the top index with a generation tag, bumped on every
//! successful CAS, so a pop that read a stale head cannot succeed after the
//! same index was popped and pushed again (the ABA problem).
//!
//! ```text
//!   head (AtomicU64, own cache line)        links (one AtomicU32 per slot)
//!   +-----------+-----------+               [0] -> NIL
//!   | tag: u32  | top: u32  |  --top-->     [3] -> 0
//!   +-----------+-----------+               [5] -> 3      stack = 5, 3, 0
//! ```
//!
//! Algorithm: R. K. Treiber, *Systems Programming: Coping with Parallelism*,
//! IBM RJ 5118, 1986; tagged pointers after Michael & Scott, PODC 1996.

use crate::sync::{AtomicU32, AtomicU64, CachePadded, Ordering};

/// The index that marks the end of a stack.
pub const NIL: u32 = u32::MAX;

/// The largest slab a stack can index.
pub const MAX_INDEX: u32 = NIL - 1;

/// The `next` words a stack links its indices through: one per index, owned
/// by the caller (the pool keeps each in its slot's cache line).
pub trait Links {
    /// The link word of `index`.
    fn link(&self, index: u32) -> &AtomicU32;
}

impl Links for [AtomicU32] {
    #[inline]
    fn link(&self, index: u32) -> &AtomicU32 {
        &self[index as usize]
    }
}

/// A lock-free stack of indices linked through a caller-owned [`Links`].
///
/// Every index pushed must have a link, and an index must be on at most one
/// stack at a time (it owns a single link word); the pool guarantees both,
/// since whoever pops an index owns it until they push it.
#[derive(Debug)]
pub struct IndexStack {
    head: CachePadded<AtomicU64>,
}

#[inline]
fn pack(tag: u32, top: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(top)
}

#[inline]
fn top(head: u64) -> u32 {
    head as u32
}

#[inline]
fn tag(head: u64) -> u32 {
    (head >> 32) as u32
}

impl Default for IndexStack {
    fn default() -> Self {
        Self::new()
    }
}

impl IndexStack {
    /// An empty stack.
    pub fn new() -> Self {
        Self { head: CachePadded::new(AtomicU64::new(pack(0, NIL))) }
    }

    /// Pushes `index`, linking it through `links[index]`.
    ///
    /// The successful CAS is `SeqCst`: it is the store half of the pool's
    /// "push, then look for waiters" handshake, and the `Release` part
    /// publishes the connection stored in the slot before the push.
    #[inline]
    pub fn push<L: Links + ?Sized>(&self, links: &L, index: u32) {
        debug_assert!(index != NIL);
        let link = links.link(index);
        // Relaxed: the CAS below re-validates the head we link to.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release half of the CAS below.
            link.store(top(head), Ordering::Relaxed);
            let new = pack(tag(head).wrapping_add(1), index);
            match self.head.compare_exchange_weak(head, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Pops the most recently pushed index, if any.
    #[inline]
    pub fn pop<L: Links + ?Sized>(&self, links: &L) -> Option<u32> {
        // Acquire: pairs with the Release half of `push`, so the link and the
        // slot's contents written before that push are visible here.
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let index = top(head);
            if index == NIL {
                return None;
            }
            // Relaxed: may be stale if `index` was popped and re-pushed since
            // we read `head`; then the tag has moved on and the CAS fails.
            let next = links.link(index).load(Ordering::Relaxed);
            let new = pack(tag(head).wrapping_add(1), next);
            // Acquire on both outcomes: the retry reads a link published by
            // the push that produced `actual`.
            match self.head.compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(index),
                Err(actual) => head = actual,
            }
        }
    }

    /// Whether the stack looked empty at the moment of the load.
    #[inline]
    pub fn is_empty(&self) -> bool {
        // Acquire: a caller that sees an index will pop it next.
        top(self.head.load(Ordering::Acquire)) == NIL
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn links(n: usize) -> Box<[AtomicU32]> {
        (0..n).map(|_| AtomicU32::new(NIL)).collect()
    }

    #[test]
    fn pops_in_lifo_order_and_then_reports_empty() {
        let links = links(4);
        let stack = IndexStack::new();
        assert!(stack.is_empty());
        for i in [2, 0, 3] {
            stack.push(&*links, i);
        }
        assert_eq!(stack.pop(&*links), Some(3));
        assert_eq!(stack.pop(&*links), Some(0));
        stack.push(&*links, 1);
        assert_eq!(stack.pop(&*links), Some(1));
        assert_eq!(stack.pop(&*links), Some(2));
        assert_eq!(stack.pop(&*links), None);
        assert!(stack.is_empty());
    }

    #[test]
    fn concurrent_push_pop_keeps_every_index_exactly_once() {
        const N: u32 = 64;
        let links = links(N as usize);
        let stack = IndexStack::new();
        for i in 0..N {
            stack.push(&*links, i);
        }
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        if let Some(i) = stack.pop(&*links) {
                            stack.push(&*links, i);
                        }
                    }
                });
            }
        });
        let mut seen = vec![false; N as usize];
        while let Some(i) = stack.pop(&*links) {
            assert!(!seen[i as usize], "index {i} was on the stack twice");
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "an index was lost");
    }
}
