//! The pools an admin server serves, by id.
//!
//! The registry holds each pool by a [`WeakConnectionPool`], so
//! registering a pool never keeps it open: once the application drops its
//! last handle, the pool closes and drops out of every listing. A request
//! upgrades the pools it needs for as long as it runs, outside the
//! registry's lock, so registering and unregistering never wait for a
//! request, and a request never waits for a pool's user code.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::error::AdminError;
use super::routes::NewPartition;
use super::views;
use crate::pool::{
    ConnectionInfo, ConnectionPool, Killed, LeakInfo, PoolConfig, PoolStatistics, Result as PoolResult,
    WeakConnectionPool,
};

/// A registry of named pools for an [`AdminServer`](super::AdminServer).
/// Cheap to clone; clones share the pools.
///
/// A pool's id is `pool_` followed by its configured name, so the pool
/// named `default` (the default name) is `pool_default`.
///
/// ```
/// use rusty_db::admin::Registry;
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};
/// use std::sync::Arc;
///
/// struct F;
/// impl ConnectionFactory<u8> for F { fn create(&self) -> Result<u8> { Ok(0) } }
///
/// let pool = ConnectionPool::new(PoolConfig::default(), Arc::new(F))?;
/// let registry = Registry::new();
/// assert_eq!(registry.register(&pool)?, "pool_default");
/// assert_eq!(registry.ids(), ["pool_default"]);
/// drop(pool); // closes it: the registry does not keep it open
/// assert!(registry.ids().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    pools: Arc<RwLock<BTreeMap<String, Arc<dyn Registered>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("ids", &self.ids()).finish()
    }
}

/// The id a pool named `name` is registered under.
pub fn pool_id(name: &str) -> String {
    format!("pool_{name}")
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `pool` under its id (`pool_<name>`), which it returns. Fails
    /// with [`AdminError::DuplicatePool`] while another open pool has the
    /// same id; give pools distinct names. (A pool whose handles were all
    /// dropped frees its id.)
    pub fn register<C: Send + 'static>(&self, pool: &ConnectionPool<C>) -> Result<String, AdminError> {
        let id = pool_id(&pool.config().name);
        let mut pools = self.pools.write();
        if pools.get(&id).is_some_and(|existing| existing.upgrade().is_some()) {
            return Err(AdminError::DuplicatePool(id));
        }
        pools.insert(id.clone(), Arc::new(pool.downgrade()));
        Ok(id)
    }

    /// Removes the pool registered as `id`; `false` if there was none.
    /// A request already running on it finishes.
    pub fn unregister(&self, id: &str) -> bool {
        self.pools.write().remove(id).is_some()
    }

    /// The ids of the registered pools whose last handle is not dropped
    /// yet, in order.
    pub fn ids(&self) -> Vec<String> {
        self.open().into_iter().map(|(id, _)| id).collect()
    }

    /// The pool registered as `id`, unless its last handle was dropped.
    pub(crate) fn get(&self, id: &str) -> Option<Box<dyn AdminPool>> {
        // Cloned out, so the pool is upgraded (and later dropped, which
        // may close it) outside the lock.
        let entry = self.pools.read().get(id).cloned()?;
        entry.upgrade()
    }

    /// Every registered pool still open, by id, in order.
    pub(crate) fn open(&self) -> Vec<(String, Box<dyn AdminPool>)> {
        let entries: Vec<_> = self.pools.read().iter().map(|(id, e)| (id.clone(), Arc::clone(e))).collect();
        entries.into_iter().filter_map(|(id, entry)| Some((id, entry.upgrade()?))).collect()
    }
}

/// A registered pool, held weakly.
pub(crate) trait Registered: Send + Sync {
    /// The pool, if it is still open.
    fn upgrade(&self) -> Option<Box<dyn AdminPool>>;
}

impl<C: Send + 'static> Registered for WeakConnectionPool<C> {
    fn upgrade(&self) -> Option<Box<dyn AdminPool>> {
        Some(Box::new(WeakConnectionPool::upgrade(self)?))
    }
}

/// What the admin API needs of a pool, whatever its connection type.
pub(crate) trait AdminPool {
    fn config(&self) -> &PoolConfig;
    fn statistics(&self) -> PoolStatistics;
    fn connections(&self) -> Vec<ConnectionInfo>;
    fn kill(&self, id: u64, force: bool) -> PoolResult<Killed>;
    fn leaks(&self) -> Vec<LeakInfo>;
    fn is_closed(&self) -> bool;
    /// The partitions as the API lists them, or `None` if no partition
    /// manager is attached.
    fn partitions(&self) -> Option<Vec<Value>>;
    /// Creates a partition and answers it as the API does, or `None` if
    /// no partition manager is attached. The pool checks the limits
    /// against its `max_size` and the name against the others.
    fn create_partition(&self, new: NewPartition) -> Option<PoolResult<Value>>;
}

impl<C: Send + 'static> AdminPool for ConnectionPool<C> {
    fn config(&self) -> &PoolConfig {
        ConnectionPool::config(self)
    }
    fn statistics(&self) -> PoolStatistics {
        ConnectionPool::statistics(self)
    }
    fn connections(&self) -> Vec<ConnectionInfo> {
        ConnectionPool::connections(self)
    }
    fn kill(&self, id: u64, force: bool) -> PoolResult<Killed> {
        self.kill_connection(id, force)
    }
    fn leaks(&self) -> Vec<LeakInfo> {
        ConnectionPool::leaks(self)
    }
    fn is_closed(&self) -> bool {
        ConnectionPool::is_closed(self)
    }
    fn partitions(&self) -> Option<Vec<Value>> {
        let manager = ConnectionPool::partitions(self)?;
        // Idle connections belong to no partition: each entry shows the
        // pool's, read once so that the entries agree.
        let idle = self.idle();
        Some(manager.partitions().iter().map(|p| views::partition(p, idle)).collect())
    }
    fn create_partition(&self, new: NewPartition) -> Option<PoolResult<Value>> {
        let manager = ConnectionPool::partitions(self)?;
        Some(manager.create_partition(new.name, new.partition_type, new.limits).map(|p| views::created_partition(&p)))
    }
}
