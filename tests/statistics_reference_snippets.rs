//! Synchronous twins of the API reference's monitoring snippets ("Pool
//! Statistics", "Wait Time Histogram", "Efficiency Metrics") and of the
//! `DashboardProvider` part of its complete example: `.await` and
//! `tokio::spawn` replaced by a plain thread, names and fields kept.

mod common;

use std::time::Duration;

use common::TrackingFactory;
use rusty_db::pool::*;

fn pool() -> ConnectionPool<common::TestConn> {
    let config = PoolConfig::builder().min_size(2).max_size(8).initial_size(2).build().unwrap();
    let factory = TrackingFactory::new();
    ConnectionPool::new(config, factory).unwrap()
}

#[test]
fn pool_statistics_wait_time_histogram_and_efficiency_metrics() {
    let pool = pool();
    drop(pool.acquire().unwrap());

    // "Pool Statistics (Rust)"
    let stats = pool.statistics();

    println!("Connections created: {}", stats.connections_created);
    println!("Active connections: {}", stats.active_connections);
    println!("Success rate: {:.2}%", stats.success_rate * 100.0);
    println!("Avg acquire time: {:?}", stats.average_acquire_time);

    // "Wait Time Histogram"
    let histogram = stats.wait_time_histogram;
    println!("p50: {:?}", histogram.percentiles.p50);
    println!("p95: {:?}", histogram.percentiles.p95);
    println!("p99: {:?}", histogram.percentiles.p99);

    // "Efficiency Metrics"
    let efficiency = stats.efficiency_metrics;
    println!("Pool utilization: {:.2}%", efficiency.pool_utilization * 100.0);
    println!("Cache hit rate: {:.2}%", efficiency.cache_hit_rate * 100.0);
    println!("Connection reuse: {:.2}%", efficiency.connection_reuse_rate * 100.0);

    assert_eq!((stats.connections_created, stats.active_connections, stats.success_rate), (2, 0, 1.0));
    assert_eq!(histogram.percentiles.p99, Duration::ZERO, "served from an idle connection");
    assert_eq!(efficiency.connection_reuse_rate, 1.0);
}

#[test]
fn complete_example_monitoring() {
    let pool = pool();

    // 3. Set up monitoring
    let dashboard = DashboardProvider::new(pool.stats.clone(), Duration::from_secs(5));

    let leak_detector = LeakDetector::new(Duration::from_secs(300), Duration::from_secs(60));
    pool.attach_leak_detector(leak_detector.clone());

    let held = pool.acquire().unwrap();

    // 4. Monitor in background (a thread; the reference loops forever
    // every 10 s under tokio, this twin looks three times).
    let monitor = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(10));

            let data = dashboard.get_dashboard_data();
            println!("Pool health: {:.1}% efficient, {} active", data.pool_efficiency * 100.0, data.active_connections);

            let leaks = leak_detector.get_leaks();
            if !leaks.is_empty() {
                eprintln!("WARNING: {} leaks detected!", leaks.len());
            }
            seen.push((data.pool_efficiency, data.active_connections));
        }
        seen
    });
    let seen = monitor.join().unwrap();
    assert_eq!(seen, [(1.0, 1); 3]);
    drop(held);
}
