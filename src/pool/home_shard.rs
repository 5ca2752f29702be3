//! Which shard a thread prefers.
//!
//! Each thread gets a home shard the first time it touches a pool, spread
//! round-robin over threads and cached in a thread-local, so threads start
//! from different idle stacks and rarely share their hot cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SEQ: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's home shard among `shards`.
#[inline]
pub(crate) fn home_shard(shards: usize) -> usize {
    if shards == 1 {
        return 0;
    }
    let seq = THREAD_SEQ
        .try_with(|seq| {
            let mut s = seq.get();
            if s == usize::MAX {
                // Relaxed: any distinct-enough number will do.
                s = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
                seq.set(s);
            }
            s
        })
        .unwrap_or(0);
    seq % shards
}
