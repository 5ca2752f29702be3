//! Invariants 1, 2 and 6 under load: 32 threads hammer a pool of 8 on two
//! shards with every way of taking a connection and every way of giving it
//! back. A connection held by two guards at once, a closed connection
//! handed out, more than `max_size` connections open at any instant, or a
//! connection lost or duplicated at the end (once background creations of
//! timed-out acquires have finished) fails the test.

mod common;

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::{Held, Outcome, Rng, TrackingFactory};
use rusty_db::pool::{ConnectionPool, PoolError, QueueMode};

const THREADS: usize = 32;
const MAX_SIZE: usize = 8;
const RUN_FOR: Duration = Duration::from_secs(3);

fn hammer(mode: QueueMode) {
    let factory = TrackingFactory::new();
    let config = common::config()
        .max_size(MAX_SIZE)
        .initial_size(4)
        .shards(2)
        .queue_mode(mode)
        // Far beyond the run: an `acquire` that times out means a lost wake-up.
        .acquire_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let start = Barrier::new(THREADS);
    let acquired = AtomicUsize::new(0);
    let deadline = Instant::now() + RUN_FOR;

    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, start, acquired) = (&pool, &start, &acquired);
            s.spawn(move || {
                let mut rng = Rng::new(t as u64 + 1);
                start.wait();
                while Instant::now() < deadline {
                    let got = match rng.below(100) {
                        0..60 => Some(pool.acquire().unwrap_or_else(|e| panic!("acquire failed: {e:?}"))),
                        60..75 => match pool.try_acquire() {
                            Ok(g) => Some(g),
                            Err(PoolError::PoolExhausted { active, max }) => {
                                assert_eq!(max, MAX_SIZE);
                                assert!(active <= MAX_SIZE, "{active} active in a pool of {MAX_SIZE}");
                                None
                            }
                            Err(e) => panic!("try_acquire failed: {e:?}"),
                        },
                        75..90 => {
                            let timeout = Duration::from_millis(1 + rng.below(5));
                            match pool.acquire_timeout(timeout) {
                                Ok(g) => Some(g),
                                Err(PoolError::ConnectionTimeout(d)) => {
                                    assert_eq!(d, timeout);
                                    None
                                }
                                // Connections marked to fail validation (arm 8 below)
                                // kept failing until this short timeout ran out.
                                Err(PoolError::ValidationFailed(_)) => None,
                                Err(e) => panic!("acquire_timeout failed: {e:?}"),
                            }
                        }
                        _ => {
                            let priority = rng.below(3) as i32;
                            Some(pool.acquire_with_priority(priority).unwrap_or_else(|e| panic!("{e:?}")))
                        }
                    };
                    let Some(guard) = got else {
                        thread::yield_now();
                        continue;
                    };
                    acquired.fetch_add(1, SeqCst);
                    let mut held = Held::new(guard);
                    held.guard().queries += 1;
                    match rng.below(10) {
                        0..4 => thread::yield_now(),
                        4 | 5 => {
                            for _ in 0..rng.below(2_000) {
                                std::hint::spin_loop();
                            }
                        }
                        6 => thread::sleep(Duration::from_micros(50)),
                        7 => {
                            // Hold two at once for a moment (never wait for the second).
                            if let Ok(second) = pool.try_acquire() {
                                let second = Held::new(second);
                                thread::yield_now();
                                drop(second);
                            }
                        }
                        // Fails validation on its next acquire, and is closed then.
                        8 => held.guard().validate = Outcome::Fail,
                        _ => {}
                    }
                    match rng.below(50) {
                        0 => held.into_guard().discard(),
                        1 => {
                            let mut guard = held.into_guard();
                            guard.mark_broken();
                            drop(guard);
                        }
                        _ => drop(held),
                    }
                }
            });
        }
    });

    assert!(acquired.load(SeqCst) > 0);
    // Quiescence: an acquire that timed out while its connection was being
    // created leaves that creation to finish in the background (and hand
    // the connection to the pool). Wait until the whole capacity can be
    // taken at once: then no slot is out with a creation, and a slot really
    // lost fails this after `eventually`'s 10 s. (Waiting for
    // `size() == idle()` once missed a creation whose thread had not reached
    // the factory yet: its reserved slot was not counted. It is now, as
    // `CREATING`, but holding every connection is the stronger check.)
    let mut all: Vec<Held> = Vec::with_capacity(MAX_SIZE);
    let whole = common::eventually(|| {
        all.clear();
        while all.len() < MAX_SIZE {
            match pool.try_acquire() {
                Ok(guard) => all.push(Held::new(guard)),
                Err(PoolError::PoolExhausted { .. }) => return false,
                Err(e) => panic!("connection {} of {MAX_SIZE}: {e:?}", all.len()),
            }
        }
        true
    });
    assert!(whole, "only {} of {MAX_SIZE} connections could be taken at once: {:?}", all.len(), pool.statistics());
    // No capacity was lost or made up: all of it is taken, and no more.
    match pool.try_acquire() {
        Err(PoolError::PoolExhausted { active, max }) => assert_eq!((active, max), (MAX_SIZE, MAX_SIZE)),
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    drop(all);

    assert_eq!(pool.size(), pool.idle(), "no slot may be left creating or closing");
    factory.assert_no_violations();
    assert!(factory.max_open() <= MAX_SIZE, "{} connections were open at once", factory.max_open());
    assert_eq!(pool.active(), 0);
    assert_eq!(pool.waiting(), 0);
    // Invariant 6.
    assert_eq!(factory.created() - factory.closed(), pool.idle() + pool.active());
}

#[test]
fn stress_32_threads_never_share_a_connection_or_exceed_max_fair() {
    hammer(QueueMode::Fair);
}

#[test]
fn stress_32_threads_never_share_a_connection_or_exceed_max_fifo() {
    hammer(QueueMode::Fifo);
}

#[test]
fn stress_32_threads_never_share_a_connection_or_exceed_max_priority() {
    hammer(QueueMode::Priority);
}

#[test]
fn stress_32_threads_never_share_a_connection_or_exceed_max_unfair() {
    hammer(QueueMode::Unfair);
}
