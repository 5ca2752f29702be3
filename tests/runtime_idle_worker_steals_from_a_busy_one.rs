//! A job queued behind a busy worker does not wait for it while another
//! worker is idle: the idle worker steals it. Here the first job blocks
//! until the second has run, which only another worker can do.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::ConnectionPool;
use rusty_db::runtime::CoreRuntime;

#[test]
fn a_job_behind_a_blocked_worker_runs_on_an_idle_one() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(2).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let runtime = CoreRuntime::builder().workers(2).build(pool.clone()).unwrap();

    for round in 0..20 {
        let (ran_tx, ran_rx) = mpsc::channel();
        // Submitted back to back from one thread, so both go to this
        // thread's core's worker; the first holds it until the second ran.
        let blocked = runtime.execute(move |_: &mut TestConn| ran_rx.recv_timeout(Duration::from_secs(30)).is_ok());
        let stealable = runtime.execute(move |_: &mut TestConn| {
            ran_tx.send(()).unwrap();
        });
        stealable.join().expect("the second job ran");
        assert!(blocked.join().expect("the first job ran"), "round {round}: the second job never ran");
    }
    runtime.shutdown();
    factory.assert_no_violations();
}
