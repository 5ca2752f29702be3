//! What a partition is, what it may use, and how a request finds one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Whom a partition serves. Routing by tenant, user or application looks
/// for the partition whose type carries the request's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PartitionType {
    /// One tenant of a multi-tenant application (`TenantBased` routing).
    Tenant(String),
    /// One database user (`UserBased` routing).
    User(String),
    /// One application or service (`ApplicationBased` routing).
    Application(String),
    /// A group of tenants sharing limits, such as a pricing tier; reached
    /// by its name or a custom router.
    ResourceGroup(String),
}

impl PartitionType {
    /// The REST API's name of the kind: `TENANT`, `USER`, `APPLICATION`,
    /// `RESOURCE_GROUP`.
    pub fn kind(&self) -> &'static str {
        match self {
            PartitionType::Tenant(_) => "TENANT",
            PartitionType::User(_) => "USER",
            PartitionType::Application(_) => "APPLICATION",
            PartitionType::ResourceGroup(_) => "RESOURCE_GROUP",
        }
    }

    /// The tenant, user, application or group it names.
    pub fn value(&self) -> &str {
        match self {
            PartitionType::Tenant(v)
            | PartitionType::User(v)
            | PartitionType::Application(v)
            | PartitionType::ResourceGroup(v) => v,
        }
    }
}

/// What a partition may use of its pool.
///
/// - `max_connections`: the most connections its requests hold at once.
/// - `min_connections`: connections reserved for it out of the pool's
///   `max_size` (no other partition can take them, even when it is idle)
///   and kept open by maintenance.
/// - `max_wait_queue`: the most of its requests waiting at once; more fail
///   with [`WaitQueueFull`](crate::pool::PoolError::WaitQueueFull).
/// - `cpu_limit`: the most connection hold time (plus CPU its borrowers
///   report) per rolling minute.
/// - `memory_limit`: the most bytes its borrowers may report in use.
/// - `io_limit`: the I/O operations per second its borrowers may report.
///
/// See the [module docs](crate::pool::partition) for what the limits
/// mean exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLimits {
    /// Most connections held at once. Default 10.
    pub max_connections: usize,
    /// Connections reserved for the partition. Default 0.
    pub min_connections: usize,
    /// Most requests waiting at once. Default 1000.
    pub max_wait_queue: usize,
    /// Hold time per rolling minute. Default none.
    pub cpu_limit: Option<Duration>,
    /// Reported bytes in use. Default none.
    pub memory_limit: Option<u64>,
    /// Reported I/O operations per second. Default none.
    pub io_limit: Option<u64>,
}

impl Default for PartitionLimits {
    fn default() -> Self {
        PartitionLimits {
            max_connections: 10,
            min_connections: 0,
            max_wait_queue: 1000,
            cpu_limit: None,
            memory_limit: None,
            io_limit: None,
        }
    }
}

impl PartitionLimits {
    /// Why these limits cannot work, if they cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.max_connections == 0 {
            return Some("max_connections must be at least 1".into());
        }
        if self.min_connections > self.max_connections {
            return Some(format!(
                "min_connections ({}) must not exceed max_connections ({})",
                self.min_connections, self.max_connections
            ));
        }
        if self.cpu_limit.is_some_and(|d| d.is_zero()) {
            return Some("cpu_limit must be more than zero, or None for no limit".into());
        }
        if self.memory_limit == Some(0) {
            return Some("memory_limit must be more than zero, or None for no limit".into());
        }
        if self.io_limit == Some(0) {
            return Some("io_limit must be more than zero, or None for no limit".into());
        }
        None
    }
}

/// Who is asking for a connection, for routing.
///
/// ```
/// use rusty_db::pool::PartitionRequest;
/// let request = PartitionRequest { tenant: Some("ACME Corp".into()), ..Default::default() };
/// assert_eq!(request, PartitionRequest::for_tenant("ACME Corp"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionRequest {
    /// The tenant the work is for.
    pub tenant: Option<String>,
    /// The database user it runs as.
    pub user: Option<String>,
    /// The application or service asking.
    pub application: Option<String>,
}

impl PartitionRequest {
    /// A request for `tenant`.
    pub fn for_tenant(tenant: impl Into<String>) -> Self {
        PartitionRequest { tenant: Some(tenant.into()), ..Default::default() }
    }

    /// A request for `user`.
    pub fn for_user(user: impl Into<String>) -> Self {
        PartitionRequest { user: Some(user.into()), ..Default::default() }
    }

    /// A request from `application`.
    pub fn for_application(application: impl Into<String>) -> Self {
        PartitionRequest { application: Some(application.into()), ..Default::default() }
    }
}

/// A router of the user's own: the name of the partition for a request,
/// or `None` (then the default partition, if any).
pub type PartitionRouter = Arc<dyn Fn(&PartitionRequest) -> Option<String> + Send + Sync>;

/// How a [`PartitionManager`](super::PartitionManager) picks a request's
/// partition.
#[derive(Clone)]
pub enum RoutingStrategy {
    /// The partition of type `Tenant(t)` with `t` the request's tenant,
    /// else the partition named like the tenant.
    TenantBased,
    /// As `TenantBased`, by the request's user and `User(u)`.
    UserBased,
    /// As `TenantBased`, by the request's application and `Application(a)`.
    ApplicationBased,
    /// The least loaded partition (fewest connections held, relative to
    /// its `max_connections`) that has room. When none has, the request
    /// waits (up to `acquire_timeout`) and takes the first room any
    /// partition gets.
    LoadBalanced,
    /// The user's router names the partition. It runs with no lock of the
    /// pool's held, so it may read the pool. A panicking router is caught:
    /// the request is unroutable.
    Custom(PartitionRouter),
}

impl fmt::Debug for RoutingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingStrategy::TenantBased => f.write_str("TenantBased"),
            RoutingStrategy::UserBased => f.write_str("UserBased"),
            RoutingStrategy::ApplicationBased => f.write_str("ApplicationBased"),
            RoutingStrategy::LoadBalanced => f.write_str("LoadBalanced"),
            RoutingStrategy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
