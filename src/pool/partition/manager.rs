//! Partitions and the ledger that admits their requests under the pool's
//! one cap.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::sync::{AtomicU64, Ordering};

use super::quota::{QUOTA_WINDOW, Quotas, Resource};
use super::types::{PartitionLimits, PartitionRequest, PartitionType, RoutingStrategy};
use crate::pool::error::{PoolError, Result};

/// One partition of a pool: its name, whom it serves and its limits.
#[derive(Debug)]
pub struct Partition {
    index: usize,
    id: String,
    name: String,
    partition_type: PartitionType,
    limits: PartitionLimits,
    created_at: SystemTime,
    core: Arc<Core>,
}

impl Partition {
    /// Its place in its manager.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The admin API's id for it (`partition_<n>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name, unique in its manager.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whom it serves.
    pub fn partition_type(&self) -> &PartitionType {
        &self.partition_type
    }

    /// What it may use.
    pub fn limits(&self) -> &PartitionLimits {
        &self.limits
    }

    /// When it was created.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// Its counters now.
    pub fn statistics(&self) -> PartitionStatistics {
        let mut ledger = self.core.ledger.lock();
        let state = &mut ledger.states[self.index];
        let violations = state.quotas.violations();
        let usage = state.quotas.usage(Instant::now());
        PartitionStatistics {
            name: self.name.clone(),
            active: state.borrowed,
            waiting: state.waiting.len(),
            acquired: state.acquired,
            timeouts: state.timeouts,
            rejected: state.rejected,
            violations: violations.total(),
            cpu_violations: violations.cpu,
            memory_violations: violations.memory,
            io_violations: violations.io,
            cpu_in_window: usage.cpu_in_window,
            memory_in_use: usage.memory_in_use,
        }
    }
}

/// A partition's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStatistics {
    /// The partition's name.
    pub name: String,
    /// Connections its requests hold now.
    pub active: usize,
    /// Its requests waiting now.
    pub waiting: usize,
    /// Connections it has been given.
    pub acquired: u64,
    /// Its requests that timed out waiting.
    pub timeouts: u64,
    /// Its requests turned away because its wait queue was full.
    pub rejected: u64,
    /// Times it went over one of its quotas (the three below together).
    pub violations: u64,
    /// Of which over `cpu_limit`.
    pub cpu_violations: u64,
    /// Of which over `memory_limit`.
    pub memory_violations: u64,
    /// Of which over `io_limit`.
    pub io_violations: u64,
    /// Hold time (and reported CPU) in the current rolling minute.
    pub cpu_in_window: Duration,
    /// Bytes its borrowers report in use.
    pub memory_in_use: u64,
}

/// Partitions, the routing that picks one for a request, and (once
/// attached to a pool with [`ConnectionPool::set_partition_manager`]) the
/// admission of their requests under the pool's `max_size`.
///
/// [`ConnectionPool::set_partition_manager`]: crate::pool::ConnectionPool::set_partition_manager
#[derive(Debug)]
pub struct PartitionManager {
    strategy: RoutingStrategy,
    core: Arc<Core>,
}

/// The pool's figures the ledger needs, from the moment it is attached.
#[derive(Debug)]
struct Attached {
    max_size: usize,
    max_shared_waiters: usize,
    /// The pool's starvation threshold in force, in nanoseconds (see the
    /// pool's `hold_estimate`).
    threshold_nanos: Arc<AtomicU64>,
}

impl Attached {
    /// How long a queue's oldest request may be overtaken: as long as in
    /// the pool's own wait queue now.
    fn threshold(&self) -> Duration {
        // Relaxed: a setting, as in the pool's acquire.
        Duration::from_nanos(self.threshold_nanos.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Core {
    ledger: Mutex<Ledger>,
    /// Signalled on every release (and new partition): waiters look again.
    changed: Condvar,
    attached: OnceLock<Attached>,
}

#[derive(Debug, Default)]
struct Ledger {
    partitions: Vec<Arc<Partition>>,
    states: Vec<State>,
    default: Option<usize>,
    /// Connections held through the ledger, by partitions and by requests
    /// that reached none (plain `acquire` without a default partition).
    borrowed: usize,
    /// The latter's queue.
    shared: State,
    next_ticket: u64,
    /// The pool closed: every waiter leaves with `PoolClosed`.
    closed: bool,
}

#[derive(Debug)]
struct State {
    borrowed: usize,
    quotas: Quotas,
    /// Waiting requests, oldest first: ticket and arrival.
    waiting: VecDeque<(u64, Instant)>,
    acquired: u64,
    timeouts: u64,
    rejected: u64,
}

impl Ledger {
    /// Connections reserved for partitions below their minimum and not
    /// held: nobody else may take them.
    fn unused_reservations(&self) -> usize {
        self.partitions.iter().zip(&self.states).map(|(p, s)| p.limits.min_connections.saturating_sub(s.borrowed)).sum()
    }

    /// Whether `partition` (or a request of none) may take a connection now.
    fn has_room(&self, partition: Option<usize>, max_size: usize) -> bool {
        if let Some(i) = partition {
            let (limits, state) = (&self.partitions[i].limits, &self.states[i]);
            if state.borrowed >= limits.max_connections {
                return false;
            }
            if state.borrowed < limits.min_connections {
                return true;
            }
        }
        self.borrowed + self.unused_reservations() < max_size
    }

    /// The partition a load-balanced request should use: the one holding
    /// the fewest connections relative to its maximum, among those with
    /// room if any has (and, while `waiting`, whose own queue it may pass
    /// as a newcomer); ties go to the first created.
    fn least_loaded(
        &self,
        max_size: usize,
        with_room: bool,
        ticket: u64,
        now: Instant,
        threshold: Duration,
    ) -> Option<usize> {
        self.partitions
            .iter()
            .zip(&self.states)
            .filter(|(p, s)| !with_room || (self.has_room(Some(p.index), max_size) && s.may_go(ticket, now, threshold)))
            // Fewest held relative to its maximum, in millionths.
            .min_by_key(|(p, s)| (s.borrowed as u128 * 1_000_000) / p.limits.max_connections as u128)
            .map(|(p, _)| p.index)
    }

    fn state(&mut self, partition: Option<usize>) -> &mut State {
        match partition {
            Some(i) => &mut self.states[i],
            None => &mut self.shared,
        }
    }

    fn states_of(&self, partition: Option<usize>) -> &State {
        match partition {
            Some(i) => &self.states[i],
            None => &self.shared,
        }
    }
}

impl State {
    /// Whether `ticket` may go ahead of the queue: it is the oldest, or
    /// the oldest has not yet waited `threshold` (barging until then, as
    /// the pool's own wait path does).
    fn may_go(&self, ticket: u64, now: Instant, threshold: Duration) -> bool {
        match self.waiting.front() {
            None => true,
            Some(&(oldest, _)) if oldest == ticket => true,
            Some(&(_, since)) => now.saturating_duration_since(since) < threshold,
        }
    }

    fn leave(&mut self, ticket: u64) {
        self.waiting.retain(|&(t, _)| t != ticket);
    }

    fn new(limits: &PartitionLimits) -> Self {
        State {
            borrowed: 0,
            quotas: Quotas::new(limits.cpu_limit, limits.memory_limit, limits.io_limit, QUOTA_WINDOW, Instant::now()),
            waiting: VecDeque::new(),
            acquired: 0,
            timeouts: 0,
            rejected: 0,
        }
    }
}

impl Default for State {
    /// The shared queue's: no quotas.
    fn default() -> Self {
        State::new(&PartitionLimits { cpu_limit: None, memory_limit: None, io_limit: None, ..Default::default() })
    }
}

impl PartitionManager {
    /// A manager that routes with `strategy`, with no partitions yet.
    pub fn new(strategy: RoutingStrategy) -> Self {
        PartitionManager { strategy, core: Arc::default() }
    }

    /// The routing strategy.
    pub fn strategy(&self) -> &RoutingStrategy {
        &self.strategy
    }

    /// Adds a partition. Fails with
    /// [`InvalidConfig`](PoolError::InvalidConfig) for limits that cannot
    /// work (no connections, a minimum over the maximum, a zero quota), or,
    /// once attached, a maximum over the pool's `max_size` or minimums
    /// that together exceed it; with
    /// [`PartitionExists`](PoolError::PartitionExists) for a name taken.
    pub fn create_partition(
        &self,
        name: String,
        partition_type: PartitionType,
        limits: PartitionLimits,
    ) -> Result<Arc<Partition>> {
        if name.is_empty() {
            return Err(PoolError::InvalidConfig("a partition needs a name".into()));
        }
        if let Some(problem) = limits.problem() {
            return Err(PoolError::InvalidConfig(format!("partition {name:?}: {problem}")));
        }
        let mut ledger = self.core.ledger.lock();
        if ledger.partitions.iter().any(|p| p.name == name) {
            return Err(PoolError::PartitionExists(name));
        }
        if let Some(attached) = self.core.attached.get() {
            let reserved: usize = ledger.partitions.iter().map(|p| p.limits.min_connections).sum();
            check_fits(&name, &limits, reserved, attached.max_size)?;
        }
        let index = ledger.partitions.len();
        let partition = Arc::new(Partition {
            index,
            id: format!("partition_{}", index + 1),
            name,
            partition_type,
            limits,
            created_at: SystemTime::now(),
            core: Arc::clone(&self.core),
        });
        ledger.states.push(State::new(&partition.limits));
        ledger.partitions.push(Arc::clone(&partition));
        drop(ledger);
        self.core.changed.notify_all();
        Ok(partition)
    }

    /// Sends requests that no partition takes to the partition `name`
    /// (instead of failing with `PartitionNotFound`); plain `acquire` on
    /// the pool uses it too.
    pub fn set_default_partition(&self, name: &str) -> Result<()> {
        let mut ledger = self.core.ledger.lock();
        let index = ledger
            .partitions
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| PoolError::PartitionNotFound(format!("partition {name:?}")))?;
        ledger.default = Some(index);
        Ok(())
    }

    /// The partitions, in the order they were created.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.core.ledger.lock().partitions.clone()
    }

    /// The partition named `name`.
    pub fn partition(&self, name: &str) -> Option<Arc<Partition>> {
        self.core.ledger.lock().partitions.iter().find(|p| p.name == name).cloned()
    }

    /// The partition a request goes to, by the routing strategy, else the
    /// default partition; [`PartitionNotFound`](PoolError::PartitionNotFound)
    /// if neither. `LoadBalanced` picks the partition holding the fewest
    /// connections relative to its maximum, preferring one with room; an
    /// acquire waiting for it moves to whichever gets room first.
    ///
    /// A `Custom` router runs with no lock of the pool's held: it may read
    /// the pool (its statistics, say), and a slow one delays only its own
    /// request.
    pub fn route(&self, request: &PartitionRequest) -> Result<Arc<Partition>> {
        let routed = match &self.strategy {
            RoutingStrategy::Custom(router) => {
                let name = catch_unwind(AssertUnwindSafe(|| router(request))).unwrap_or_else(|_| {
                    log::warn!("a custom partition router panicked; the request is unroutable");
                    None
                });
                let ledger = self.core.ledger.lock();
                let routed = name.and_then(|name| ledger.partitions.iter().find(|p| p.name == name).cloned());
                routed.or_else(|| ledger.default.map(|i| Arc::clone(&ledger.partitions[i])))
            }
            _ => {
                let ledger = self.core.ledger.lock();
                self.route_in(&ledger, request).or_else(|| ledger.default.map(|i| Arc::clone(&ledger.partitions[i])))
            }
        };
        routed.ok_or_else(|| PoolError::PartitionNotFound(describe(request)))
    }

    /// Routing by the request's fields, under the ledger's lock (every
    /// strategy but `Custom`, which runs user code).
    fn route_in(&self, ledger: &Ledger, request: &PartitionRequest) -> Option<Arc<Partition>> {
        let by = |wanted: &Option<String>, matches: fn(&PartitionType, &str) -> bool| {
            let wanted = wanted.as_deref()?;
            ledger
                .partitions
                .iter()
                .find(|p| matches(&p.partition_type, wanted))
                .or_else(|| ledger.partitions.iter().find(|p| p.name == wanted))
                .cloned()
        };
        match &self.strategy {
            RoutingStrategy::TenantBased => by(&request.tenant, |t, w| matches!(t, PartitionType::Tenant(v) if v == w)),
            RoutingStrategy::UserBased => by(&request.user, |t, w| matches!(t, PartitionType::User(v) if v == w)),
            RoutingStrategy::ApplicationBased => {
                by(&request.application, |t, w| matches!(t, PartitionType::Application(v) if v == w))
            }
            RoutingStrategy::LoadBalanced => {
                let max_size = self.core.attached.get().map_or(usize::MAX, |a| a.max_size);
                let (now, threshold) = (Instant::now(), Duration::MAX);
                ledger
                    .least_loaded(max_size, true, u64::MAX, now, threshold)
                    .or_else(|| ledger.least_loaded(max_size, false, u64::MAX, now, threshold))
                    .map(|i| Arc::clone(&ledger.partitions[i]))
            }
            RoutingStrategy::Custom(_) => None,
        }
    }

    /// Whether a waiting request may move to another partition that gets
    /// room first (`LoadBalanced` routing).
    pub(crate) fn rebalances(&self) -> bool {
        matches!(self.strategy, RoutingStrategy::LoadBalanced)
    }

    /// The default partition's place, if one is set.
    pub(crate) fn default_index(&self) -> Option<usize> {
        self.core.ledger.lock().default
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Binds the manager to a pool: its partitions must fit in it.
    pub(crate) fn attach(
        &self,
        max_size: usize,
        max_shared_waiters: usize,
        threshold_nanos: Arc<AtomicU64>,
    ) -> Result<()> {
        let ledger = self.core.ledger.lock();
        let mut reserved = 0;
        for p in &ledger.partitions {
            check_fits(&p.name, &p.limits, reserved, max_size)?;
            reserved += p.limits.min_connections;
        }
        self.core
            .attached
            .set(Attached { max_size, max_shared_waiters, threshold_nanos })
            .map_err(|_| PoolError::InvalidConfig("this partition manager is attached to a pool already".into()))
    }

    /// The minimums of all partitions: connections maintenance keeps open.
    pub(crate) fn reserved(&self) -> usize {
        self.core.ledger.lock().partitions.iter().map(|p| p.limits.min_connections).sum()
    }
}

/// A partition's limits against its pool's `max_size`, with `reserved`
/// already promised to the others.
fn check_fits(name: &str, limits: &PartitionLimits, reserved: usize, max_size: usize) -> Result<()> {
    if limits.max_connections > max_size {
        return Err(PoolError::InvalidConfig(format!(
            "partition {name:?}: max_connections ({}) exceeds the pool's max_size ({max_size})",
            limits.max_connections
        )));
    }
    if reserved + limits.min_connections > max_size {
        return Err(PoolError::InvalidConfig(format!(
            "partition {name:?}: its min_connections ({}) and the other partitions' ({reserved}) exceed the \
             pool's max_size ({max_size})",
            limits.min_connections
        )));
    }
    Ok(())
}

/// What a request asked for, for `PartitionNotFound`.
fn describe(request: &PartitionRequest) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &request.tenant {
        parts.push(format!("tenant {t:?}"));
    }
    if let Some(u) = &request.user {
        parts.push(format!("user {u:?}"));
    }
    if let Some(a) = &request.application {
        parts.push(format!("application {a:?}"));
    }
    if parts.is_empty() { "a request naming no tenant, user or application".into() } else { parts.join(", ") }
}

/// A request's claim on the ledger, from admission to release: on
/// release its hold time is charged to the partition's cpu quota and the
/// memory its borrower reported is freed.
#[derive(Debug)]
pub(crate) struct Admission {
    core: Arc<Core>,
    partition: Option<usize>,
    since: Instant,
    memory: u64,
}

impl Admission {
    /// The partition it admits to (`None`: a request that reached none).
    pub(crate) fn partition(&self) -> Option<usize> {
        self.partition
    }

    /// The borrow it admitted got its connection: counted in the
    /// partition's `acquired` (a borrow whose connection could not be
    /// prepared for the partition is not).
    pub(crate) fn served(&self) {
        self.core.ledger.lock().state(self.partition).acquired += 1;
    }

    /// Reports CPU used on the database for the partition, beyond the hold
    /// time the release charges.
    pub(crate) fn report_cpu(&self, used: Duration) -> Result<()> {
        self.with_quotas(|q, now| q.charge_cpu(now, used))
    }

    /// Reports `bytes` more in use until the borrow ends.
    pub(crate) fn report_memory(&mut self, bytes: u64) -> Result<()> {
        self.with_quotas(|q, _| q.reserve_memory(bytes))?;
        self.memory = self.memory.saturating_add(bytes);
        Ok(())
    }

    /// Reports `ops` I/O operations.
    pub(crate) fn report_io(&self, ops: u64) -> Result<()> {
        self.with_quotas(|q, now| q.take_io(now, ops))
    }

    fn with_quotas(&self, f: impl FnOnce(&mut Quotas, Instant) -> std::result::Result<(), Resource>) -> Result<()> {
        let Some(index) = self.partition else { return Ok(()) };
        let mut ledger = self.core.ledger.lock();
        let outcome = f(&mut ledger.states[index].quotas, Instant::now());
        outcome.map_err(|resource| quota_exceeded(&ledger.partitions[index].name, resource))
    }
}

fn quota_exceeded(partition: &str, resource: Resource) -> PoolError {
    PoolError::QuotaExceeded { partition: Arc::from(partition), resource }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut ledger = self.core.ledger.lock();
        ledger.borrowed = ledger.borrowed.saturating_sub(1);
        let state = ledger.state(self.partition);
        state.borrowed = state.borrowed.saturating_sub(1);
        if self.partition.is_some() {
            // Going over shows at the next admission; nobody to tell here.
            let _ = state.quotas.charge_cpu(now, now.saturating_duration_since(self.since));
            state.quotas.free_memory(self.memory);
        }
        drop(ledger);
        self.core.changed.notify_all();
    }
}

impl Core {
    /// Waits until `partition` (or a request of none) may take a
    /// connection, up to `timeout`: in its own queue, bounded by its
    /// `max_wait_queue`, with the pool's bounded-wait fairness. With
    /// `rebalance` (`LoadBalanced` routing) a waiting request moves to any
    /// partition that gets room first. Quotas are checked on arrival and
    /// again when a request that waited is let through. Without `wait`
    /// (`try_acquire`), no room is
    /// [`PoolExhausted`](PoolError::PoolExhausted): the partition's count
    /// and maximum, or the pool's. Once the pool closes, every request
    /// (waiting or new) fails with [`PoolClosed`](PoolError::PoolClosed).
    pub(crate) fn admit(
        self: &Arc<Self>,
        mut partition: Option<usize>,
        rebalance: bool,
        timeout: Duration,
        wait: bool,
    ) -> Result<Admission> {
        let attached = self.attached.get().expect("admission is only asked of an attached manager");
        let timeout = if wait { timeout } else { Duration::ZERO };
        let deadline = Instant::now() + timeout;
        let mut ledger = self.ledger.lock();
        if ledger.closed {
            return Err(PoolError::PoolClosed);
        }
        let ticket = ledger.next_ticket;
        ledger.next_ticket += 1;
        if let Some(i) = partition {
            if let Err(resource) = ledger.states[i].quotas.admit(Instant::now()) {
                return Err(quota_exceeded(&ledger.partitions[i].name, resource));
            }
        }
        // The partition whose quotas were checked since the request last
        // waited: a request let through after waiting is checked again.
        let mut checked = partition;
        let mut queued = false;
        loop {
            let now = Instant::now();
            let threshold = attached.threshold();
            if ledger.closed {
                ledger.state(partition).leave(ticket);
                return Err(PoolError::PoolClosed);
            }
            let may_go = |ledger: &Ledger, partition| {
                ledger.has_room(partition, attached.max_size)
                    && ledger.states_of(partition).may_go(ticket, now, threshold)
            };
            if rebalance && !may_go(&ledger, partition) {
                if let Some(j) = ledger.least_loaded(attached.max_size, true, ticket, now, threshold) {
                    ledger.state(partition).leave(ticket);
                    partition = Some(j);
                }
            }
            if may_go(&ledger, partition) {
                if let Some(i) = partition.filter(|&i| checked != Some(i)) {
                    if let Err(resource) = ledger.states[i].quotas.admit(now) {
                        ledger.states[i].leave(ticket);
                        let error = quota_exceeded(&ledger.partitions[i].name, resource);
                        drop(ledger);
                        // The oldest may have left: the next one looks again.
                        self.changed.notify_all();
                        return Err(error);
                    }
                }
                ledger.borrowed += 1;
                let state = ledger.state(partition);
                state.leave(ticket);
                state.borrowed += 1;
                return Ok(Admission { core: Arc::clone(self), partition, since: now, memory: 0 });
            }
            if !wait {
                let (active, max) = match partition {
                    Some(i) => (ledger.states[i].borrowed, ledger.partitions[i].limits.max_connections),
                    None => (ledger.borrowed, attached.max_size),
                };
                return Err(PoolError::PoolExhausted { active, max });
            }
            if now >= deadline {
                let state = ledger.state(partition);
                state.leave(ticket);
                state.timeouts += 1;
                drop(ledger);
                // The oldest may have left: the next one looks again.
                self.changed.notify_all();
                return Err(PoolError::ConnectionTimeout(timeout));
            }
            if !queued {
                let queue_bound = match partition {
                    Some(i) => ledger.partitions[i].limits.max_wait_queue,
                    None => attached.max_shared_waiters,
                };
                let state = ledger.state(partition);
                if state.waiting.len() >= queue_bound {
                    state.rejected += 1;
                    return Err(PoolError::WaitQueueFull);
                }
                state.waiting.push_back((ticket, now));
                queued = true;
                checked = None;
            }
            // Past the oldest's fairness threshold the queue order decides:
            // wake again then, even if nothing was released.
            let wake = ledger
                .state(partition)
                .waiting
                .front()
                .map_or(deadline, |&(_, since)| (since + threshold).max(now))
                .min(deadline);
            let wake = if wake <= now { deadline } else { wake };
            self.changed.wait_until(&mut ledger, wake);
        }
    }

    /// Closes the ledger with its pool: every waiting request wakes and
    /// fails with `PoolClosed`, and so does every later one.
    pub(crate) fn close(&self) {
        self.ledger.lock().closed = true;
        self.changed.notify_all();
    }

    /// The partition at `index`.
    pub(crate) fn partition(&self, index: usize) -> Arc<Partition> {
        Arc::clone(&self.ledger.lock().partitions[index])
    }
}
