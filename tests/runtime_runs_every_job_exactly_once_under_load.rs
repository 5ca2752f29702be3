//! A `CoreRuntime` runs every job it accepted exactly once, each with a
//! connection nobody else holds at the same time, and hands back each
//! job's own result, even when many threads submit into small queues (so
//! submitters wait for room and idle workers steal).

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::ConnectionPool;
use rusty_db::runtime::CoreRuntime;

const SUBMITTERS: u64 = 6;
const JOBS_EACH: u64 = 500;

#[test]
fn every_accepted_job_runs_once_with_an_exclusive_connection() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(3).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let runtime = CoreRuntime::builder().workers(3).queue_capacity(4).build(pool.clone()).unwrap();
    let ran = Mutex::new(HashSet::new());
    let ran = &ran;
    thread::scope(|s| {
        for submitter in 0..SUBMITTERS {
            let runtime = &runtime;
            s.spawn(move || {
                let handles: Vec<_> = (0..JOBS_EACH)
                    .map(|n| {
                        let id = submitter * JOBS_EACH + n;
                        let handle = runtime.execute(move |conn: &mut TestConn| {
                            assert!(!conn.in_use.swap(true, SeqCst), "connection {} used twice at once", conn.serial);
                            assert!(!conn.closed.load(SeqCst), "connection {} used after close", conn.serial);
                            conn.queries += 1;
                            conn.in_use.store(false, SeqCst);
                            id
                        });
                        (id, handle)
                    })
                    .collect();
                for (id, handle) in handles {
                    assert_eq!(handle.join().expect("the job ran"), id);
                    assert!(ran.lock().unwrap().insert(id), "job {id} reported twice");
                }
            });
        }
    });
    assert_eq!(ran.lock().unwrap().len() as u64, SUBMITTERS * JOBS_EACH);
    runtime.shutdown();
    assert_eq!(runtime.queued(), 0);
    assert!(factory.max_open() <= 3);
    let all: Vec<_> = (0..3).map(|_| pool.acquire().unwrap()).collect();
    assert_eq!(all.iter().map(|c| c.queries).sum::<u64>(), SUBMITTERS * JOBS_EACH, "each job ran once");
    drop(all);
    factory.assert_no_violations();
}
