//! `ConnectionPool::new` re-checks its configuration: a contradictory
//! `PoolConfig` (built by setting public fields, bypassing the builder's
//! check) fails with `InvalidConfig` naming the field, before the factory
//! is ever called.

mod common;

use std::time::Duration;

use common::TrackingFactory;
use rusty_db::pool::{ConnectionPool, MAX_POOL_SIZE, PoolConfig, PoolError};

fn rejected(field: &str, edit: impl FnOnce(&mut PoolConfig)) {
    let mut config = PoolConfig::default();
    edit(&mut config);
    let factory = TrackingFactory::new();
    match ConnectionPool::new(config, factory.clone()) {
        Err(PoolError::InvalidConfig(message)) => {
            assert!(message.contains(field), "{message:?} should name {field}");
            assert!(PoolError::InvalidConfig(message).to_string().contains(field));
        }
        Err(other) => panic!("{field}: expected InvalidConfig, got {other:?}"),
        Ok(_) => panic!("{field}: expected InvalidConfig, got a pool"),
    }
    assert_eq!(factory.create_attempts(), 0, "{field}: no connection was made for a bad config");
}

#[test]
fn new_rejects_each_contradictory_field_by_name() {
    rejected("name", |c| c.name = "  ".into());
    rejected("max_size", |c| {
        c.max_size = 0;
        c.min_size = 0;
        c.initial_size = 0;
    });
    rejected("min_size", |c| c.min_size = c.max_size + 1);
    rejected("initial_size", |c| {
        c.min_size = 1;
        c.initial_size = 11;
        c.max_size = 10;
    });
    rejected("acquire_timeout", |c| c.acquire_timeout = Duration::ZERO);
    rejected("max_lifetime", |c| c.max_lifetime = Some(Duration::ZERO));
    rejected("idle_timeout", |c| c.idle_timeout = Some(Duration::ZERO));
    rejected("shards", |c| c.shards = 0);
    rejected("shards", |c| c.shards = 4096);
    rejected("max_size", |c| c.max_size = MAX_POOL_SIZE + 1);
}

/// The slab is allocated up front (a few hundred bytes a slot), so a
/// `max_size` in the billions would abort on allocation rather than fail.
#[test]
fn a_max_size_beyond_the_documented_bound_is_an_error_not_an_abort() {
    for max in [MAX_POOL_SIZE + 1, 1 << 30, u32::MAX as usize - 1, usize::MAX] {
        let err = PoolConfig::builder().min_size(0).initial_size(0).max_size(max).build().unwrap_err();
        match err {
            PoolError::InvalidConfig(ref m) => {
                assert!(m.contains("max_size") && m.contains(&MAX_POOL_SIZE.to_string()), "{m:?}")
            }
            other => panic!("max_size {max}: expected InvalidConfig, got {other:?}"),
        }
    }
    let config = PoolConfig::builder().min_size(0).initial_size(0).max_size(MAX_POOL_SIZE).build().unwrap();
    let pool = ConnectionPool::new(config, TrackingFactory::new()).expect("the bound itself is accepted");
    assert_eq!(pool.config().max_size, MAX_POOL_SIZE);
}

#[test]
fn builder_rejects_the_same_contradictions() {
    let err = PoolConfig::builder().min_size(5).max_size(2).initial_size(1).build().unwrap_err();
    assert!(matches!(err, PoolError::InvalidConfig(ref m) if m.contains("min_size")), "{err:?}");
    let err = PoolConfig::builder().acquire_timeout(Duration::ZERO).build().unwrap_err();
    assert!(matches!(err, PoolError::InvalidConfig(ref m) if m.contains("acquire_timeout")), "{err:?}");
}

#[test]
fn edge_values_are_accepted() {
    let mut config = PoolConfig::default();
    (config.min_size, config.initial_size, config.max_size, config.shards) = (0, 0, 1, 1);
    config.max_wait_queue_size = 0;
    config.statement_cache_size = 0;
    let factory = TrackingFactory::new();
    let pool = ConnectionPool::new(config.clone(), factory.clone()).expect("a minimal pool is valid");
    assert_eq!(pool.config(), &config, "the pool runs with the config it was given");
    assert_eq!(factory.created(), 0);
    pool.acquire().unwrap();
}
