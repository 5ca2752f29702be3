//! Loom model: reserving vacant slots at capacity never opens more than
//! `max_size` connections, not even for an instant (invariant 2 of
//! `rusty_db::pool::invariants`).
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use loom::sync::atomic::Ordering::SeqCst;
use loom::thread;
use rusty_db::pool::{PoolError, QueueMode};

#[test]
fn vacant_reservation_at_capacity_never_exceeds_max() {
    common::model(|| {
        // Two slots, one already open, three threads racing for them.
        let (pool, factory) = common::pool(2, 1, QueueMode::Fair);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || match pool.try_acquire() {
                    Ok(guard) => {
                        assert!(guard.connection().serial < 3);
                        drop(guard);
                    }
                    Err(PoolError::PoolExhausted { max: 2, .. }) => {}
                    Err(e) => panic!("unexpected {e}"),
                })
            })
            .collect();
        let mine = pool.try_acquire();
        drop(mine);
        for t in threads {
            t.join().expect("model thread");
        }
        // CountingFactory::create asserts the cap on every creation.
        assert!(factory.created.load(SeqCst) <= 2);
        // Invariant 6 at quiescence.
        assert_eq!(factory.created.load(SeqCst) - factory.closed.load(SeqCst), pool.idle() + pool.active());
        assert_eq!(pool.active(), 0);
    });
}
