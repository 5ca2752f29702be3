//! `DashboardProvider` recomputes at most once per refresh interval, and
//! its rates cover the window since its previous refresh.

mod common;

use std::time::Duration;

use common::{TrackingFactory, config};
use rusty_db::pool::{ConnectionPool, DashboardProvider};

#[test]
fn figures_are_cached_for_the_refresh_interval_then_windowed() {
    let pool =
        ConnectionPool::new(config().initial_size(2).min_size(2).build().unwrap(), TrackingFactory::new()).unwrap();
    let interval = Duration::from_millis(100);
    let dashboard = DashboardProvider::new(pool.stats.clone(), interval);
    assert_eq!(dashboard.refresh_interval(), interval);

    let held = pool.acquire().unwrap();
    let first = dashboard.get_dashboard_data();
    assert_eq!((first.active_connections, first.idle_connections, first.total_connections), (1, 1, 2));
    assert_eq!((first.wait_queue_size, first.pool_utilization), (0, 0.25));
    assert_eq!((first.pool_efficiency, first.success_rate, first.cache_hit_rate), (1.0, 1.0, 0.0));
    // The first window runs from the pool's creation.
    assert!(first.window < Duration::from_secs(5), "{:?}", first.window);
    let created = first.connections_created_per_second * first.window.as_secs_f64();
    assert!((created - 2.0).abs() < 1e-6, "{created}");
    let acquired = first.acquires_per_second * first.window.as_secs_f64();
    assert!((acquired - 1.0).abs() < 1e-6, "{acquired}");

    // Within the interval: the same figures, though the pool moved on.
    drop(held);
    for _ in 0..10 {
        drop(pool.acquire().unwrap());
    }
    assert!(pool.try_acquire().is_ok());
    assert_eq!(dashboard.get_dashboard_data(), first);

    // After it: fresh gauges, and rates over the window since the first.
    std::thread::sleep(interval);
    let second = dashboard.get_dashboard_data();
    assert_ne!(second, first);
    assert_eq!(second.active_connections, 0);
    assert!(second.window >= interval, "{:?}", second.window);
    let acquires = second.acquires_per_second * second.window.as_secs_f64();
    assert!((acquires - 11.0).abs() < 1e-6, "{acquires}");
    assert_eq!((second.connections_created_per_second, second.failures_per_second), (0.0, 0.0));
    assert_eq!(second.pool_efficiency, 1.0);
    assert_eq!(second.wait_time_percentiles, pool.statistics().wait_time_histogram.percentiles);
}

#[test]
fn a_window_without_attempts_reads_as_efficient_and_idle() {
    let pool = ConnectionPool::new(config().build().unwrap(), TrackingFactory::new()).unwrap();
    let dashboard = DashboardProvider::new(pool.stats.clone(), Duration::ZERO);
    let data = dashboard.get_dashboard_data();
    assert_eq!((data.pool_efficiency, data.success_rate, data.acquires_per_second), (1.0, 1.0, 0.0));
    // A zero interval recomputes every time.
    let later = dashboard.get_dashboard_data();
    assert!(later.generated_at > data.generated_at);
}
