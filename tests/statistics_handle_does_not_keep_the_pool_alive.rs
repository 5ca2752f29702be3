//! A `PoolStats` handle (say, held by a dashboard) does not keep its pool
//! open: dropping the last pool handle still closes the pool, and the
//! handle then reads zero gauges and the final counters.

mod common;

use std::time::Duration;

use common::{TrackingFactory, config};
use rusty_db::pool::{ConnectionPool, DashboardProvider};

#[test]
fn dropping_the_pool_closes_it_even_while_its_stats_are_held() {
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(config().initial_size(3).min_size(3).build().unwrap(), factory.clone()).unwrap();
    let stats = pool.stats.clone();
    let dashboard = DashboardProvider::new(pool.stats.clone(), Duration::ZERO);
    drop(pool.acquire().unwrap());
    assert_eq!(stats.statistics().idle_connections, 3);
    assert_eq!(dashboard.get_dashboard_data().idle_connections, 3);

    drop(pool);
    assert_eq!(factory.live(), 0, "every connection was closed with the pool");
    let s = stats.statistics();
    assert_eq!((s.active_connections, s.idle_connections, s.total_connections, s.wait_queue_size), (0, 0, 0, 0));
    assert_eq!((s.max_size, s.connections_created, s.acquires), (4, 3, 1));
    assert_eq!((s.connections_closed, s.closed_by_reason.shutdown), (3, 3));
    assert_eq!(dashboard.get_dashboard_data().idle_connections, 0);
}
