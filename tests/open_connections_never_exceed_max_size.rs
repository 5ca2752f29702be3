//! Invariant 2: connections open plus being opened never exceed
//! `max_size`, not even for an instant, however many threads find the pool
//! empty at once and however slow the factory is.

mod common;

use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use common::{Held, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError, QueueMode};

#[test]
fn a_burst_of_acquires_on_an_empty_pool_creates_at_most_max_size() {
    const MAX: usize = 4;
    const THREADS: usize = 16;
    for mode in [QueueMode::Fair, QueueMode::Fifo, QueueMode::Priority, QueueMode::Unfair] {
        let factory = TrackingFactory::new();
        // A slow factory keeps several creations in flight at once.
        factory.set_create_delay(Duration::from_millis(20));
        let config = common::config().max_size(MAX).shards(2).queue_mode(mode).build().unwrap();
        let pool = ConnectionPool::new(config, factory.clone()).unwrap();
        let start = Barrier::new(THREADS);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (pool, start) = (&pool, &start);
                s.spawn(move || {
                    start.wait();
                    let result = if t % 4 == 0 { pool.try_acquire() } else { pool.acquire() };
                    match result {
                        Ok(conn) => {
                            let conn = Held::new(conn);
                            thread::sleep(Duration::from_millis(5));
                            drop(conn);
                        }
                        Err(PoolError::PoolExhausted { active, max }) => assert!(active <= max && max == MAX),
                        Err(e) => panic!("{e:?}"),
                    }
                });
            }
        });
        factory.assert_no_violations();
        assert!(factory.max_open() <= MAX, "{mode:?}: {} open at once", factory.max_open());
        assert!(factory.created() <= MAX, "{mode:?}: {} created without any close", factory.created());
        assert_eq!(factory.closed(), 0);
        assert_eq!((pool.idle(), pool.size()), (factory.created(), factory.created()));
    }
}
