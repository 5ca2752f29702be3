//! Synchronous twins of the API reference's "Aging Policies", "Connection
//! Validator" and "Leak Detection" snippets (and the leak monitor of its
//! "Complete Example"), run against real pools: the reference's code,
//! `.await` dropped, then what it promises checked. The module docs of
//! `aging`, `validator` and `leak` carry the same snippets as doc tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rusty_db::pool::{
    AgingPolicy, ConnectionFactory, ConnectionPool, ConnectionValidator, LeakDetector, PoolConfig, Result,
    ValidationQuery,
};

/// The reference's `MyConnection`, with the check its validator runs.
struct MyConnection {
    connected: bool,
}

impl MyConnection {
    fn new() -> Self {
        MyConnection { connected: true }
    }
    fn is_connected(&self) -> bool {
        self.connected
    }
}

impl ValidationQuery for MyConnection {
    fn run_validation_query(&self, query: Option<&str>) -> Result<bool> {
        Ok(self.is_connected() && query.is_none_or(|q| q == "SELECT 1"))
    }
}

struct MyConnectionFactory;

impl ConnectionFactory<MyConnection> for MyConnectionFactory {
    fn create(&self) -> Result<MyConnection> {
        Ok(MyConnection::new())
    }
    fn validate(&self, connection: &MyConnection) -> Result<bool> {
        Ok(connection.is_connected())
    }
    fn validate_query(&self, connection: &mut MyConnection, query: &str) -> Result<bool> {
        connection.run_validation_query(Some(query))
    }
}

#[test]
fn aging_policies() -> Result<()> {
    // Time-based aging
    let time_based = AgingPolicy::TimeBased { max_lifetime: Duration::from_secs(3600) };

    // Usage-based aging
    let usage_based = AgingPolicy::UsageBased { max_borrows: 1000 };

    // Combined aging
    let combined = AgingPolicy::Combined { max_lifetime: Duration::from_secs(3600), max_borrows: 1000 };

    // Adaptive aging
    let adaptive = AgingPolicy::Adaptive {
        base_lifetime: Duration::from_secs(3600),
        error_threshold: 0.05, // Recycle if >5% error rate
    };

    for policy in [time_based, usage_based, combined, adaptive] {
        let config = PoolConfig::builder().min_size(1).max_size(2).initial_size(1).aging_policy(policy).build()?;
        let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory))?;
        assert_eq!(pool.config().aging_policy, Some(policy));
        let conn = pool.acquire()?;
        assert!(conn.is_connected());
    }
    Ok(())
}

#[test]
fn connection_validator() -> Result<()> {
    let connection = MyConnection::new();

    let validator =
        ConnectionValidator::new(Duration::from_secs(5)).with_query("SELECT 1".to_string()).with_fast_validation(true);

    let is_valid = validator.validate(&connection)?;
    let stats = validator.statistics();
    eprintln!("Validation success rate: {:.2}%", stats.success_rate * 100.0);

    assert!(is_valid);
    assert_eq!((stats.total_validations, stats.successful_validations), (1, 1));
    assert_eq!(stats.success_rate, 1.0);

    // The same validator in a pool: its query goes through the factory.
    let config = PoolConfig::builder().min_size(1).max_size(1).initial_size(1).validator(validator).build()?;
    let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory))?;
    drop(pool.acquire()?);
    assert!(pool.validator_statistics().is_some());
    Ok(())
}

#[test]
fn leak_detection() -> Result<()> {
    let detector = LeakDetector::new(
        Duration::from_secs(300), // Leak threshold
        Duration::from_secs(60),  // Check interval
    );

    let leaks = detector.get_leaks();
    for leak in &leaks {
        eprintln!("LEAK: Connection {} active for {:?}", leak.connection_id, leak.active_duration);
    }
    assert!(leaks.is_empty());
    assert_eq!((detector.threshold(), detector.check_interval()), (Duration::from_secs(300), Duration::from_secs(60)));
    Ok(())
}

#[test]
fn complete_example_leak_monitor() -> Result<()> {
    let config = PoolConfig::builder().min_size(2).max_size(4).initial_size(2).build()?;
    let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory))?;
    // The reference's thresholds, scaled down from minutes to milliseconds.
    let leak_detector = LeakDetector::new(Duration::from_millis(30), Duration::from_millis(5));
    pool.attach_leak_detector(leak_detector.clone());
    let leaked = pool.acquire()?;

    // 4. Monitor in background
    let warned = Arc::new(AtomicBool::new(false));
    let monitor = {
        let warned = Arc::clone(&warned);
        thread::spawn(move || {
            for _ in 0..1000 {
                thread::sleep(Duration::from_millis(10));
                let leaks = leak_detector.get_leaks();
                if !leaks.is_empty() {
                    eprintln!("WARNING: {} leaks detected!", leaks.len());
                    warned.store(true, Ordering::Relaxed);
                    return leaks;
                }
            }
            Vec::new()
        })
    };
    let leaks = monitor.join().unwrap();
    assert!(warned.load(Ordering::Relaxed), "the monitor saw the leak");
    assert_eq!(leaks[0].connection_id, leaked.id());
    Ok(())
}
