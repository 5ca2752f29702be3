//! Synchronous twins of the API reference's partitioning snippets
//! ("Creating Partitions", "Routing Strategies") and of its "Complete
//! Example: Multi-Tenant Application": `.await` and `#[tokio::main]`
//! dropped, the monitoring task a thread, every name, field and default
//! kept.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rusty_db::pool::*;

#[test]
fn creating_partitions() {
    // Create partition manager
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);

    // Define resource limits
    let limits = PartitionLimits {
        max_connections: 50,
        min_connections: 5,
        max_wait_queue: 100,
        cpu_limit: Some(Duration::from_secs(60)),
        memory_limit: Some(1024 * 1024 * 1024), // 1GB
        io_limit: Some(1000),                   // 1000 IOPS
    };

    // Create partition
    let partition =
        manager.create_partition("tenant_acme".to_string(), PartitionType::Tenant("ACME Corp".to_string()), limits);
    let partition = partition.expect("valid limits");
    assert_eq!((partition.name(), partition.partition_type().kind()), ("tenant_acme", "TENANT"));
    assert_eq!(manager.route(&PartitionRequest::for_tenant("ACME Corp")).unwrap().name(), "tenant_acme");
}

#[test]
fn routing_strategies() {
    // Tenant-based routing
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    assert!(matches!(manager.strategy(), RoutingStrategy::TenantBased));

    // User-based routing
    let manager = PartitionManager::new(RoutingStrategy::UserBased);
    assert!(matches!(manager.strategy(), RoutingStrategy::UserBased));

    // Application-based routing
    let manager = PartitionManager::new(RoutingStrategy::ApplicationBased);
    assert!(matches!(manager.strategy(), RoutingStrategy::ApplicationBased));

    // Load-balanced routing
    let manager = PartitionManager::new(RoutingStrategy::LoadBalanced);
    assert!(matches!(manager.strategy(), RoutingStrategy::LoadBalanced));

    // Custom routing
    let custom_router = Arc::new(|request: &PartitionRequest| Some(format!("partition_{}", request.user.as_ref()?)));
    let manager = PartitionManager::new(RoutingStrategy::Custom(custom_router));
    manager
        .create_partition("partition_bob".into(), PartitionType::User("bob".into()), PartitionLimits::default())
        .unwrap();
    assert_eq!(manager.route(&PartitionRequest::for_user("bob")).unwrap().name(), "partition_bob");
}

/// The reference's `MyConnectionFactory`, for the complete example.
struct MyConnectionFactory;

impl MyConnectionFactory {
    fn new() -> Self {
        MyConnectionFactory
    }
}

impl ConnectionFactory<u64> for MyConnectionFactory {
    fn create(&self) -> Result<u64> {
        Ok(0)
    }
}

/// "Complete Example: Multi-Tenant Application", made synchronous: the
/// monitoring task is a thread that runs a few rounds (the reference's
/// loops forever), at a short interval so the test ends.
fn multi_tenant_main(rounds: u32, every: Duration) -> std::result::Result<(), Box<dyn std::error::Error>> {
    // 1. Create pool with partitioning
    let config = PoolConfig::builder().min_size(20).max_size(200).initial_size(50).enable_partitioning(true).build()?;

    let factory = Arc::new(MyConnectionFactory::new());
    let pool = ConnectionPool::new(config, factory)?;

    // 2. Set up partitioning for tenants
    let partition_mgr = PartitionManager::new(RoutingStrategy::TenantBased);

    // Enterprise tier
    partition_mgr.create_partition(
        "enterprise_tier".to_string(),
        PartitionType::ResourceGroup("Enterprise".to_string()),
        PartitionLimits { max_connections: 100, min_connections: 10, ..Default::default() },
    )?;

    // Standard tier
    partition_mgr.create_partition(
        "standard_tier".to_string(),
        PartitionType::ResourceGroup("Standard".to_string()),
        PartitionLimits { max_connections: 50, min_connections: 5, ..Default::default() },
    )?;
    pool.set_partition_manager(partition_mgr)?;

    // 3. Set up monitoring
    let dashboard = DashboardProvider::new(pool.stats.clone(), Duration::from_secs(5));

    let leak_detector = LeakDetector::new(Duration::from_secs(300), Duration::from_secs(60));

    // 4. Monitor in background
    let monitor = thread::spawn(move || {
        for _ in 0..rounds {
            thread::sleep(every);

            let data = dashboard.get_dashboard_data();
            println!("Pool health: {:.1}% efficient, {} active", data.pool_efficiency * 100.0, data.active_connections);

            let leaks = leak_detector.get_leaks();
            if !leaks.is_empty() {
                eprintln!("WARNING: {} leaks detected!", leaks.len());
            }
        }
    });

    // The tiers at work (the reference leaves this to the reader).
    let enterprise = pool.acquire_for(&PartitionRequest::for_tenant("enterprise_tier"))?;
    let standard = pool.acquire_for(&PartitionRequest::for_tenant("standard_tier"))?;
    let stats = pool.statistics();
    let active: Vec<_> = stats.partitions.iter().map(|p| (p.name.as_str(), p.active)).collect();
    assert_eq!(active, [("enterprise_tier", 1), ("standard_tier", 1)]);
    drop((enterprise, standard));
    monitor.join().expect("the monitor ran");
    Ok(())
}

#[test]
fn complete_multi_tenant_example() {
    multi_tenant_main(3, Duration::from_millis(10)).expect("the example runs");
}
