//! A job that panics is reported through its handle as `JobPanicked` with
//! the panic's message; the worker that ran it goes on with the next job,
//! and the connection the job held is validated before anyone reuses it
//! (its state is unknown after a panic).

mod common;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::ConnectionPool;
use rusty_db::runtime::{CoreRuntime, RuntimeError};

#[test]
fn a_panicking_job_is_reported_and_the_worker_runs_the_next_one() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(1).validate_on_acquire(false).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let runtime = CoreRuntime::builder().workers(1).build(pool.clone()).unwrap();

    let first = runtime.execute(|conn: &mut TestConn| conn.serial).join().expect("the job ran");
    let validated_before = factory.validated();

    let panicked = runtime.execute(|_: &mut TestConn| -> u64 { panic!("query exploded") }).join();
    match panicked {
        Err(RuntimeError::JobPanicked(message)) => assert_eq!(message, "query exploded"),
        other => panic!("expected JobPanicked, got {other:?}"),
    }
    assert!(factory.validated() > validated_before, "the panicked job's connection was validated on return");

    let after = runtime.execute(|conn: &mut TestConn| conn.serial).join().expect("the worker lives on");
    assert_eq!(after, first, "the connection passed validation and was reused");
    runtime.shutdown();
    factory.assert_no_violations();
}
