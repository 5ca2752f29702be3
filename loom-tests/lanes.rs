//! Loom models of the runtime's job lanes (`src/runtime/lanes.rs`): its
//! three handshakes never strand a job. *Sleep*: a job pushed while its
//! worker goes to sleep wakes it. *Room*: a submitter waiting for room in a
//! full lane is woken when a worker takes a job. *Shutdown*: a job is
//! either refused or run, never left in a lane after the workers exit.
//!
//! Loom has no clock, so the room wait's periodic re-check never fires: a
//! lost notification shows up as a deadlock.
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use rusty_db::loom_internals::{Job, Lanes, Parker};

/// A job that does nothing (the models only count jobs).
fn job() -> Job<u8> {
    Box::new(|_| {})
}

/// One lane of `capacity`, and its worker's parker.
fn one_lane(capacity: usize) -> (Arc<Lanes<u8>>, Parker) {
    let parker = Parker::new();
    let lanes = Arc::new(Lanes::new(vec![parker.unparker().clone()], capacity));
    (lanes, parker)
}

#[test]
fn a_job_pushed_while_its_worker_goes_to_sleep_wakes_it() {
    common::model(|| {
        let (lanes, parker) = one_lane(2);
        let worker = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || lanes.next(0, &parker).is_some())
        };
        lanes.push(0, job(), false).expect("room in the lane");
        assert!(worker.join().expect("worker"), "the worker got the job");
    });
}

#[test]
fn a_submitter_waiting_for_room_is_woken_when_a_job_is_taken() {
    common::model(|| {
        let (lanes, parker) = one_lane(1);
        lanes.push(0, job(), false).expect("room for the first job");
        let submitter = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || lanes.push(0, job(), true).expect("room, once the worker takes the first"))
        };
        // The worker takes both jobs: the second only gets in after the first is taken.
        let worker = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || (0..2).filter(|_| lanes.next(0, &parker).is_some()).count())
        };
        submitter.join().expect("submitter");
        assert_eq!(worker.join().expect("worker"), 2);
    });
}

#[test]
fn shutdown_racing_a_push_strands_no_job() {
    common::model(|| {
        let (lanes, parker) = one_lane(2);
        let accepted = Arc::new(AtomicUsize::new(0));
        let worker = {
            let lanes = Arc::clone(&lanes);
            thread::spawn(move || {
                let mut ran = 0;
                while lanes.next(0, &parker).is_some() {
                    ran += 1;
                }
                ran
            })
        };
        let submitter = {
            let (lanes, accepted) = (Arc::clone(&lanes), Arc::clone(&accepted));
            thread::spawn(move || {
                if lanes.push(0, job(), false).is_ok() {
                    accepted.fetch_add(1, SeqCst);
                }
            })
        };
        lanes.shut_down();
        submitter.join().expect("submitter");
        let ran = worker.join().expect("worker");
        assert_eq!(ran, accepted.load(SeqCst), "every accepted job ran, and only those");
    });
}
