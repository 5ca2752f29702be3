//! Dropping a `CoreRuntime` shuts it down (running what was queued) and
//! joins its workers, which then hold no handle to the pool: once the
//! application drops its own handle too, the pool closes every connection.
//! Workers may also run unpinned (`pin_workers(false)`), as they do where
//! the OS refuses pinning.

mod common;

use common::{TestConn, TrackingFactory};
use rusty_db::pool::ConnectionPool;
use rusty_db::runtime::CoreRuntime;

#[test]
fn dropping_the_runtime_and_the_last_handle_closes_the_pool() {
    let factory = TrackingFactory::new();
    let config = common::config().max_size(2).build().unwrap();
    let pool = ConnectionPool::new(config, factory.clone()).unwrap();
    let runtime = CoreRuntime::builder().workers(2).pin_workers(false).build(pool.clone()).unwrap();
    assert_eq!(runtime.pinned_workers(), 0);
    assert_eq!(runtime.workers(), 2);

    let handles: Vec<_> = (0..50u64).map(|n| runtime.execute(move |_: &mut TestConn| n)).collect();
    drop(runtime);
    assert!(handles.iter().all(|h| h.is_finished()), "drop ran every queued job");
    assert_eq!(handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>(), 50 * 49 / 2);

    assert!(factory.created() > 0);
    drop(pool);
    assert_eq!(factory.closed(), factory.created(), "no worker kept the pool open");
    factory.assert_no_violations();
}
