//! `QueueMode::Fair` (the default) is bounded-wait: while no waiter has
//! waited past `fairness_threshold`, a newcomer may take a connection that
//! comes back even though a thread waits (so a thread returning and taking
//! connections in a loop never sleeps); once a waiter starves, every
//! returned connection goes straight to it and newcomers queue behind it.
//! `Priority` gets the same treatment; `Unfair` never stops newcomers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, PoolError, QueueMode};

/// A one-connection pool in `mode` whose waiters starve after `threshold`.
fn pool(mode: QueueMode, threshold: Duration) -> ConnectionPool<common::TestConn> {
    let config =
        common::config().max_size(1).initial_size(1).queue_mode(mode).fairness_threshold(threshold).build().unwrap();
    ConnectionPool::new(config, TrackingFactory::new()).unwrap()
}

/// Holds the only connection while a waiter queues, lets the waiter wait
/// `for_at_least`, returns the connection and at once tries to take it
/// back as a newcomer. Returns whether the newcomer got it.
fn newcomer_takes_it_back(mode: QueueMode, threshold: Duration, for_at_least: Duration) -> bool {
    let pool = pool(mode, threshold);
    let held = pool.acquire().unwrap();
    thread::scope(|s| {
        // The waiter keeps what it gets until the check is done: a guard it
        // dropped at once would let the newcomer in legitimately.
        let waiter = s.spawn(|| pool.acquire());
        assert!(common::eventually(|| pool.waiting() == 1), "the waiter never registered");
        thread::sleep(for_at_least);
        drop(held);
        let barged = match pool.try_acquire() {
            Ok(conn) => {
                drop(conn);
                true
            }
            Err(PoolError::PoolExhausted { .. }) => false,
            Err(e) => panic!("unexpected {e:?}"),
        };
        drop(waiter.join().unwrap().expect("the waiter is served either way"));
        barged
    })
}

/// Of `rounds` tries, how many times a newcomer took the returned
/// connection. When the release hands the connection over, the newcomer
/// never can.
fn barged(rounds: usize, mode: QueueMode, threshold: Duration, for_at_least: Duration) -> usize {
    (0..rounds).filter(|_| newcomer_takes_it_back(mode, threshold, for_at_least)).count()
}

/// Whether, in up to 200 tries, a newcomer ever took the returned
/// connection. When the release only wakes the waiter to compete, the
/// newcomer, already running, usually wins; on a loaded machine the woken
/// waiter may preempt it many times in a row, hence the many tries.
fn ever_barged(mode: QueueMode, threshold: Duration) -> bool {
    (0..200).any(|_| newcomer_takes_it_back(mode, threshold, Duration::ZERO))
}

#[test]
fn a_newcomer_may_take_a_returned_connection_while_the_waiter_is_young() {
    // The threshold is far away: the waiter cannot be starving yet.
    for mode in [QueueMode::Fair, QueueMode::Priority, QueueMode::Unfair] {
        assert!(ever_barged(mode, Duration::from_secs(5)), "{mode:?}: the newcomer never got the connection back");
    }
}

#[test]
fn once_the_waiter_starves_the_returned_connection_is_handed_to_it() {
    for mode in [QueueMode::Fair, QueueMode::Priority] {
        // 200 times the threshold: the waiter's timer has fired and it has
        // marked itself starving, even on a loaded machine.
        let times = barged(5, mode, Duration::from_millis(1), Duration::from_millis(200));
        assert_eq!(times, 0, "{mode:?}: a newcomer overtook a waiter starving for 200 ms");
    }
    // Strict FIFO hands it over at once; unfair mode never does, whatever
    // the threshold.
    assert_eq!(barged(5, QueueMode::Fifo, Duration::from_secs(5), Duration::ZERO), 0);
    assert!(ever_barged(QueueMode::Unfair, Duration::from_millis(1)), "Unfair: the newcomer never got it back");
}

/// One thread takes and returns the only connection in a tight loop, as a
/// thread that never sleeps would; another then asks for it. In fair mode
/// the newcomer is served within the threshold plus scheduling delays,
/// however hard the loop barges.
#[test]
fn a_waiter_is_served_soon_after_its_threshold_however_hard_others_barge() {
    const THRESHOLD: Duration = Duration::from_millis(2);
    let pool = pool(QueueMode::Fair, THRESHOLD);
    let stop = AtomicBool::new(false);
    let loops = AtomicU64::new(0);
    thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(SeqCst) {
                drop(pool.acquire().unwrap());
                loops.fetch_add(1, SeqCst);
            }
        });
        assert!(common::eventually(|| loops.load(SeqCst) > 1000), "the loop runs");
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let started = Instant::now();
            let conn = pool.acquire().expect("served");
            worst = worst.max(started.elapsed());
            drop(conn);
        }
        stop.store(true, SeqCst);
        // Generous for a loaded machine: the bound is the threshold plus a
        // wake-up or two, not the acquire timeout.
        assert!(worst < Duration::from_secs(1), "a waiter waited {worst:?} with a {THRESHOLD:?} threshold");
    });
}

#[test]
fn the_threshold_is_checked_against_the_acquire_timeout() {
    let err = common::config()
        .acquire_timeout(Duration::from_millis(10))
        .fairness_threshold(Duration::from_millis(20))
        .build()
        .unwrap_err();
    assert!(matches!(err, PoolError::InvalidConfig(ref m) if m.contains("fairness_threshold")), "{err:?}");
    let config = common::config().build().unwrap();
    assert_eq!(config.fairness_threshold, Duration::from_micros(500), "the documented default");
    assert_eq!(config.queue_mode, QueueMode::Fair, "bounded wait is the default");
}
