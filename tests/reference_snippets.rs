//! Synchronous twins of the Rust snippets in the API reference
//! (`rustydb-pool-api-reference.md`): `.await`, `#[async_trait]` and
//! `#[tokio::main]` dropped, every name, field, default and error variant
//! kept. Statistics and the dashboard have their twins in
//! `statistics_reference_snippets.rs`, aging, the validator and the leak
//! detector in `reference_maintenance_snippets.rs`, partitioning (and its
//! complete multi-tenant example) in `reference_partition_snippets.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusty_db::pool::{
    ConnectionFactory, ConnectionPool, PoolConfig, PoolError, PooledConnectionGuard, QueueMode, Result,
};

// === The reference's `MyConnection` / `MyConnectionFactory` ===

static CLOSED: AtomicU64 = AtomicU64::new(0);

/// The connection type the reference's snippets assume.
struct MyConnection {
    connected: bool,
    in_transaction: bool,
    queries: u64,
}

impl MyConnection {
    fn new() -> Self {
        MyConnection { connected: true, in_transaction: false, queries: 0 }
    }

    fn is_connected(&self) -> bool {
        self.connected
    }

    fn reset_state(&mut self) -> Result<()> {
        self.in_transaction = false;
        Ok(())
    }

    fn disconnect(mut self) -> Result<()> {
        self.connected = false;
        CLOSED.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn execute_query(&self, sql: &str) -> Result<Vec<String>> {
        if !self.connected {
            return Err(PoolError::factory("not connected"));
        }
        Ok(vec![format!("rows of {sql}")])
    }
}

// "Connection Factory Implementation"
struct MyConnectionFactory;

impl MyConnectionFactory {
    fn new() -> Self {
        MyConnectionFactory
    }
}

impl ConnectionFactory<MyConnection> for MyConnectionFactory {
    fn create(&self) -> Result<MyConnection> {
        // Create new connection
        Ok(MyConnection::new())
    }

    fn validate(&self, connection: &MyConnection) -> Result<bool> {
        // Validate connection is healthy
        Ok(connection.is_connected())
    }

    fn reset(&self, connection: &mut MyConnection) -> Result<()> {
        // Reset connection state
        connection.reset_state()
    }

    fn close(&self, connection: MyConnection) -> Result<()> {
        // Close connection
        connection.disconnect()
    }
}

// === Pool Creation & Configuration ===

#[test]
fn basic_pool_creation() -> Result<()> {
    let config = PoolConfig::default();
    let factory = Arc::new(MyConnectionFactory::new());
    let pool = ConnectionPool::new(config, factory)?;

    assert_eq!(pool.size(), 10, "initial_size defaults to 10");
    assert_eq!(pool.config().max_size, 100);
    Ok(())
}

#[test]
fn custom_configuration() -> Result<()> {
    let config = PoolConfig::builder()
        .min_size(10) // Minimum connections
        .max_size(100) // Maximum connections
        .initial_size(20) // Initial pool size
        .acquire_timeout(Duration::from_secs(30)) // Connection timeout
        .max_lifetime(Duration::from_secs(3600)) // Max connection age
        .idle_timeout(Duration::from_secs(600)) // Max idle time
        .validate_on_acquire(true) // Validate before use
        .statement_cache_size(100) // Statement cache
        .enable_partitioning(true) // Multi-tenant support
        .build()?;

    assert_eq!((config.min_size, config.max_size, config.initial_size), (10, 100, 20));
    assert_eq!(config.acquire_timeout, Duration::from_secs(30));
    assert_eq!(config.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(config.idle_timeout, Some(Duration::from_secs(600)));
    assert!(config.validate_on_acquire && config.enable_partitioning);
    assert_eq!(config.statement_cache_size, 100);
    let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory::new()))?;
    assert_eq!(pool.size(), 20);
    Ok(())
}

#[test]
fn configuration_options_table_defaults() {
    let c = PoolConfig::default();
    assert_eq!(c.min_size, 10);
    assert_eq!(c.max_size, 100);
    assert_eq!(c.initial_size, 10);
    assert_eq!(c.acquire_timeout, Duration::from_secs(30));
    assert_eq!(c.max_lifetime, None);
    assert_eq!(c.idle_timeout, None);
    assert!(c.validate_on_acquire);
    assert!(!c.validate_on_release);
    assert_eq!(c.max_wait_queue_size, 1000);
    assert_eq!(c.statement_cache_size, 100);
    assert!(!c.enable_partitioning);
    // Added by this crate ("Fair Queuing: FIFO or priority-based allocation").
    assert_eq!(c.queue_mode, QueueMode::Fair);
}

// === Connection Management ===

#[test]
fn acquiring_connections() -> Result<()> {
    let config = PoolConfig::builder().min_size(1).max_size(2).initial_size(1).build()?;
    let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory::new()))?;

    // Acquire a connection
    let conn = pool.acquire()?;

    // Use the connection
    let result = conn.connection().execute_query("SELECT * FROM users")?;
    assert_eq!(result, vec!["rows of SELECT * FROM users".to_string()]);
    assert_eq!(pool.active(), 1);

    // Connection automatically returned on drop
    drop(conn);
    assert_eq!((pool.active(), pool.idle()), (0, 1));
    Ok(())
}

#[test]
fn connection_guard_api() -> Result<()> {
    // impl<C> PooledConnectionGuard<C> {
    //     pub fn connection(&self) -> &C;
    //     pub fn connection_mut(&mut self) -> &mut C;
    //     pub fn id(&self) -> u64;
    //     pub fn age(&self) -> Duration;
    // }
    type Guard = PooledConnectionGuard<MyConnection>;
    let _: fn(&Guard) -> &MyConnection = Guard::connection;
    let _: fn(&mut Guard) -> &mut MyConnection = Guard::connection_mut;
    let _: fn(&Guard) -> u64 = Guard::id;
    let _: fn(&Guard) -> Duration = Guard::age;

    let config = PoolConfig::builder().min_size(0).max_size(1).initial_size(0).build()?;
    let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory::new()))?;
    let mut conn = pool.acquire()?;
    conn.connection_mut().in_transaction = true;
    conn.connection_mut().queries += 1;
    assert!(conn.connection().in_transaction);
    assert!(conn.id() > 0);
    assert!(conn.age() < Duration::from_secs(60));
    drop(conn);
    let conn = pool.acquire()?;
    assert!(!conn.connection().in_transaction, "the factory's reset ran");
    assert_eq!(conn.connection().queries, 1);
    Ok(())
}

#[test]
fn connection_factory_implementation() -> Result<()> {
    let factory = MyConnectionFactory;
    let mut connection = factory.create()?;
    assert!(factory.validate(&connection)?);
    connection.in_transaction = true;
    factory.reset(&mut connection)?;
    assert!(!connection.in_transaction);
    let before = CLOSED.load(Ordering::SeqCst);
    factory.close(connection)?;
    assert!(CLOSED.load(Ordering::SeqCst) > before);
    Ok(())
}

// === Error Handling ===

/// The reference's `match pool.acquire().await { .. }`, reporting which arm ran.
fn handle(result: Result<PooledConnectionGuard<MyConnection>>) -> String {
    match result {
        Ok(conn) => {
            // Use connection
            conn.connection().execute_query("SELECT 1").map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())
        }
        Err(PoolError::ConnectionTimeout(duration)) => {
            eprintln!("Timeout after {:?}", duration);
            format!("timeout {duration:?}")
        }
        Err(PoolError::PoolExhausted { active, max }) => {
            eprintln!("Pool full: {}/{} connections", active, max);
            format!("full {active}/{max}")
        }
        Err(PoolError::ValidationFailed(msg)) => {
            eprintln!("Validation failed: {}", msg);
            format!("invalid {msg}")
        }
        Err(e) => {
            eprintln!("Pool error: {}", e);
            format!("error {e}")
        }
    }
}

#[test]
fn error_handling() -> Result<()> {
    let config = PoolConfig::builder()
        .min_size(1)
        .max_size(1)
        .initial_size(1)
        .acquire_timeout(Duration::from_millis(100))
        .build()?;
    let pool = ConnectionPool::new(config, Arc::new(MyConnectionFactory::new()))?;
    assert_eq!(handle(pool.acquire()), "ok");
    let held = pool.acquire()?;
    assert_eq!(handle(pool.acquire()), "timeout 100ms");
    assert_eq!(handle(pool.try_acquire()), "full 1/1");
    drop(held);
    pool.close();
    assert_eq!(handle(pool.acquire()), format!("error {}", PoolError::PoolClosed));
    Ok(())
}

// === Complete Example: Multi-Tenant Application (step 1 only) ===

#[test]
fn complete_example_pool_with_partitioning() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // 1. Create pool with partitioning
    let config = PoolConfig::builder().min_size(20).max_size(200).initial_size(50).enable_partitioning(true).build()?;

    let factory = Arc::new(MyConnectionFactory::new());
    let pool = ConnectionPool::new(config, factory)?;

    assert_eq!(pool.size(), 50);
    Ok(())
}
