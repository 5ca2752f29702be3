//! The public pool handle.
//!
//! `ConnectionPool` is a cheap, cloneable handle (one `Arc`) to the engine in
//! [`inner`](super::inner). Guards do not clone that `Arc`: they point at the
//! engine directly and are counted per shard (see
//! [`guard_refs`](super::guard_refs)), so acquire and release write no
//! cache line shared by every thread. Dropping the last handle closes the
//! pool; its memory lives on until the last guard comes back.

use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::config::PoolConfig;
use super::connections::{ConnectionInfo, Killed};
use super::error::{PoolError, Result};
use super::factory::{ConnectionFactory, Shared};
use super::guard::PooledConnectionGuard;
use super::hooks::Hook;
use super::inner::{Inner, Lease};
use super::leak::{LeakDetector, LeakInfo};
use super::partition::{Admission, PartitionManager, PartitionRequest};
use super::slot::SlotState;
use super::stats::{GaugeSource, Gauges, PoolStatistics, PoolStats};
#[cfg(not(loom))]
use super::upkeep::Registration;
use super::validator::ValidatorStatistics;

/// A pool of connections of type `C`, shared between threads.
///
/// ```
/// use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};
/// use std::sync::Arc;
///
/// struct Conn(u32);
/// struct Factory;
/// impl ConnectionFactory<Conn> for Factory {
///     fn create(&self) -> Result<Conn> { Ok(Conn(7)) }
/// }
///
/// let config = PoolConfig::builder().min_size(1).max_size(4).initial_size(1).build()?;
/// let pool = ConnectionPool::new(config, Arc::new(Factory))?;
/// let conn = pool.acquire()?;
/// assert_eq!(conn.connection().0, 7);
/// assert_eq!(pool.active(), 1);
/// drop(conn); // back to the pool
/// assert_eq!(pool.idle(), 1);
/// # Ok::<(), rusty_db::pool::PoolError>(())
/// ```
pub struct ConnectionPool<C: Send + 'static> {
    handle: Arc<Handle<C>>,
    /// The pool's statistics: clone it for a
    /// [`DashboardProvider`](super::DashboardProvider), or to record
    /// statement-cache hits and misses. It does not keep the pool open.
    pub stats: PoolStats,
}

/// Owns the engine on behalf of every `ConnectionPool` clone.
struct Handle<C: Send + 'static> {
    inner: NonNull<Inner<C>>,
}

// SAFETY: `Inner<C>` is shared between threads by design (atomics, locks,
// and slots whose connections move between threads only when `C: Send`);
// the handle only hands out `&Inner<C>`.
unsafe impl<C: Send + 'static> Send for Handle<C> {}
// SAFETY: as above.
unsafe impl<C: Send + 'static> Sync for Handle<C> {}

impl<C: Send + 'static> Drop for Handle<C> {
    fn drop(&mut self) {
        // SAFETY: `inner` stays allocated until `teardown` or the last
        // guard's release says it may be freed, and that has not happened:
        // this handle still counts.
        let inner = unsafe { self.inner.as_ref() };
        // No guard is made from here on, so the loans are final.
        let loans = inner.census().loans;
        inner.stats.keep_final_acquires(loans);
        inner.close();
        if inner.refs.teardown(loans) {
            // SAFETY: no handle and no guard is left (teardown returned
            // true), so nothing else can reach `inner`; it came from
            // `Box::into_raw` in `ConnectionPool::new`.
            drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
        }
    }
}

impl<C: Send + 'static> GaugeSource for Handle<C> {
    fn gauges(&self) -> Gauges {
        // SAFETY: this handle keeps `inner` allocated (see `Drop`).
        unsafe { self.inner.as_ref() }.gauges()
    }
}

impl<C: Send + 'static> Clone for ConnectionPool<C> {
    fn clone(&self) -> Self {
        ConnectionPool { handle: Arc::clone(&self.handle), stats: self.stats.clone() }
    }
}

impl<C: Send + 'static> fmt::Debug for ConnectionPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("name", &self.inner().config.name)
            .field("size", &self.size())
            .field("idle", &self.idle())
            .field("active", &self.active())
            .field("max_size", &self.inner().config.max_size)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<C: Send + 'static> ConnectionPool<C> {
    /// Checks `config`, then creates `initial_size` connections.
    ///
    /// Fails with [`PoolError::InvalidConfig`](super::PoolError::InvalidConfig)
    /// for a contradictory configuration, or with the factory's error if an
    /// initial connection cannot be created (those already created are
    /// closed).
    pub fn new<F>(config: PoolConfig, factory: Arc<F>) -> Result<Self>
    where
        F: ConnectionFactory<C>,
    {
        let inner = Inner::new(config, Box::new(Shared(factory)))?;
        let stats = inner.stats.clone();
        let inner = NonNull::from(Box::leak(Box::new(inner)));
        // Loom models the engine alone; a background thread would not terminate.
        #[cfg(not(loom))]
        Registration::start(inner);
        let handle = Arc::new(Handle { inner });
        let gauges: Weak<Handle<C>> = Arc::downgrade(&handle);
        stats.attach(gauges);
        Ok(ConnectionPool { handle, stats })
    }

    #[inline]
    pub(crate) fn inner(&self) -> &Inner<C> {
        // SAFETY: `self.handle` keeps the engine allocated (see `Handle`).
        unsafe { self.handle.inner.as_ref() }
    }

    /// Takes a connection, waiting up to the configured `acquire_timeout`
    /// for one to come back or be created (a validation on acquire runs to
    /// completion; see [`PoolConfig::acquire_timeout`]).
    ///
    /// Errors: [`ConnectionTimeout`](super::PoolError::ConnectionTimeout),
    /// [`Factory`](super::PoolError::Factory) if creating a connection kept
    /// failing until the deadline,
    /// [`ValidationFailed`](super::PoolError::ValidationFailed) if
    /// connections kept failing validation until it,
    /// [`WaitQueueFull`](super::PoolError::WaitQueueFull),
    /// [`PoolClosed`](super::PoolError::PoolClosed).
    #[inline]
    pub fn acquire(&self) -> Result<PooledConnectionGuard<C>> {
        self.acquire_inner(self.inner().config.acquire_timeout, 0, true)
    }

    /// Like [`acquire`](Self::acquire) with another timeout. A zero timeout
    /// takes an idle connection or creates one if it can without waiting,
    /// queueing behind earlier waiters like any acquire, and fails with
    /// [`ConnectionTimeout`](super::PoolError::ConnectionTimeout) otherwise.
    #[inline]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<PooledConnectionGuard<C>> {
        self.acquire_inner(timeout, 0, true)
    }

    /// Like [`acquire`](Self::acquire), served before waiters of lower
    /// priority when the pool runs in
    /// [`QueueMode::Priority`](super::QueueMode::Priority). Other modes
    /// ignore the priority. Higher numbers go first; `acquire` uses 0.
    #[inline]
    pub fn acquire_with_priority(&self, priority: i32) -> Result<PooledConnectionGuard<C>> {
        self.acquire_inner(self.inner().config.acquire_timeout, priority, true)
    }

    /// Takes a connection without waiting for one to come back: an idle
    /// one, else a new one if there is room (this runs the factory), else
    /// [`PoolExhausted`](super::PoolError::PoolExhausted). It does not
    /// overtake a starving waiter (in `Fifo` mode, any waiter; see
    /// [`QueueMode`](super::QueueMode)).
    #[inline]
    pub fn try_acquire(&self) -> Result<PooledConnectionGuard<C>> {
        self.acquire_inner(Duration::ZERO, 0, false)
    }

    /// Every acquire: a pool built for partitions leases through the
    /// ledger (out of line), any other straight from the engine; then one
    /// place builds the returned guard. With a second place returning a
    /// guard (a partitioned branch of its own), or a guard built early and
    /// moved, the compiler staged every guard through a copy: 24 to 47
    /// instructions on each acquire of any pool.
    #[inline]
    fn acquire_inner(&self, timeout: Duration, priority: i32, wait: bool) -> Result<PooledConnectionGuard<C>> {
        let inner = self.inner();
        // Timing the fast path is paid only while a listener wants it.
        let started = inner.listener.as_ref().map(|_| Instant::now());
        let lease = if inner.config.enable_partitioning {
            self.lease_partitioned(None, timeout, priority, wait)?
        } else {
            inner.acquire(timeout, priority, wait).inspect_err(|e| inner.stats.record_acquire_failure(e))?
        };
        let acquired_at = started.map(|started| self.announce(lease.id, started));
        Ok(PooledConnectionGuard::new(self.handle.inner, lease, acquired_at))
    }

    /// A lease through the partitions' ledger (see
    /// [`partition`](super::partition)): for `request`'s partition, or for
    /// plain `acquire` (`None`) the default partition, else none; without a
    /// manager attached, a plain lease. Counted as an acquire only once
    /// its connection is prepared for the partition.
    #[cold]
    #[inline(never)]
    fn lease_partitioned(
        &self,
        request: Option<usize>,
        timeout: Duration,
        priority: i32,
        wait: bool,
    ) -> Result<Lease<C>> {
        let inner = self.inner();
        let failed = |e: &PoolError| inner.stats.record_acquire_failure(e);
        let Some(manager) = inner.partitions.get() else {
            return inner.acquire(timeout, priority, wait).inspect_err(failed);
        };
        if inner.is_closed() {
            let closed = PoolError::PoolClosed;
            failed(&closed);
            return Err(closed);
        }
        let partition = request.or_else(|| manager.default_index());
        let rebalance = request.is_some() && manager.rebalances();
        let started = Instant::now();
        let admission = manager.core().admit(partition, rebalance, timeout, wait).inspect_err(failed)?;
        let left = timeout.saturating_sub(started.elapsed());
        // On an error the admission is dropped, which releases it.
        let (lease, served) = inner.acquire_admitted(left, priority, wait).inspect_err(failed)?;
        let home = lease.home as usize;
        let lease = self.settle(lease, admission, manager).inspect_err(|e| {
            inner.stats.record_withdrawn();
            failed(e);
        })?;
        inner.stats.record_served(home, served);
        Ok(lease)
    }

    /// Takes a connection for the request's partition (see
    /// [`partition`](super::partition)): routed by the attached
    /// [`PartitionManager`](super::PartitionManager), within that
    /// partition's limits and queue, waiting up to `acquire_timeout` in
    /// all.
    ///
    /// Errors: those of [`acquire`](Self::acquire);
    /// [`PartitionNotFound`](super::PoolError::PartitionNotFound) if no
    /// partition takes the request and no default is set;
    /// [`WaitQueueFull`](super::PoolError::WaitQueueFull) when the
    /// partition's `max_wait_queue` requests wait already;
    /// [`InvalidConfig`](super::PoolError::InvalidConfig) on a pool with
    /// no manager attached.
    pub fn acquire_for(&self, request: &PartitionRequest) -> Result<PooledConnectionGuard<C>> {
        let inner = self.inner();
        let Some(manager) = inner.partitions.get() else {
            return Err(PoolError::InvalidConfig(
                "acquire_for needs partitions: build the pool with enable_partitioning(true) and attach a \
                 PartitionManager with set_partition_manager"
                    .into(),
            ));
        };
        let partition = manager.route(request).inspect_err(|e| inner.stats.record_acquire_failure(e))?;
        let started = inner.listener.as_ref().map(|_| Instant::now());
        let lease = self.lease_partitioned(Some(partition.index()), inner.config.acquire_timeout, 0, true)?;
        let acquired_at = started.map(|started| self.announce(lease.id, started));
        Ok(PooledConnectionGuard::new(self.handle.inner, lease, acquired_at))
    }

    /// Attaches the partitions of a pool built with
    /// `enable_partitioning(true)`. Fails with
    /// [`InvalidConfig`](super::PoolError::InvalidConfig) on any other pool,
    /// if one is attached already, or if the partitions do not fit in
    /// `max_size` (a maximum over it, minimums that together exceed it);
    /// with [`PoolClosed`](super::PoolError::PoolClosed) on a closed pool.
    /// Partitions can still be created afterwards; maintenance keeps their
    /// minimums open.
    pub fn set_partition_manager(&self, manager: PartitionManager) -> Result<()> {
        let inner = self.inner();
        if !inner.config.enable_partitioning {
            return Err(PoolError::InvalidConfig(
                "set_partition_manager needs a pool built with enable_partitioning(true)".into(),
            ));
        }
        if inner.is_closed() {
            return Err(PoolError::PoolClosed);
        }
        let config = &inner.config;
        let threshold = Arc::clone(&inner.threshold_nanos);
        manager.attach(config.max_size, config.max_wait_queue_size, threshold)?;
        let core = Arc::clone(manager.core());
        inner
            .partitions
            .set(Arc::new(manager))
            .map_err(|_| PoolError::InvalidConfig("a partition manager is attached to this pool already".into()))?;
        // A close() that ran meanwhile may not have seen the manager.
        if inner.is_closed() {
            core.close();
        }
        // Bring the open connections up to the partitions' reservations.
        inner.wake_maintenance();
        Ok(())
    }

    /// The attached partition manager, if any.
    pub fn partitions(&self) -> Option<Arc<PartitionManager>> {
        self.inner().partitions.get().cloned()
    }

    /// Prepares an admitted borrow's connection for its partition, if it
    /// last served another (`ConnectionFactory::assign_partition`), and
    /// leaves the admission in its slot. A failure or panic closes the
    /// connection and releases the admission.
    #[cold]
    #[inline(never)]
    fn settle(&self, mut lease: Lease<C>, admission: Admission, manager: &PartitionManager) -> Result<Lease<C>> {
        let inner = self.inner();
        let extras = &inner.extras[lease.slot.index() as usize];
        if let Some(index) = admission.partition() {
            let tag = index + 1;
            if extras.partition(lease.id) != tag {
                let partition = manager.core().partition(index);
                let conn = &mut lease.conn;
                let error =
                    match inner.caught(Hook::AssignPartition, || inner.factory.assign_partition(conn, &partition)) {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e),
                        Err(panic) => {
                            Some(PoolError::factory(format!("ConnectionFactory::assign_partition panicked: {panic}")))
                        }
                    };
                if let Some(error) = error {
                    let mut guard = PooledConnectionGuard::new(self.handle.inner, lease, None);
                    guard.mark_broken();
                    drop(guard);
                    return Err(error);
                }
                extras.set_partition(lease.id, tag);
            }
        }
        admission.served();
        extras.set_claim(admission);
        // The release ends it (`end_borrow`), behind the flag a plain
        // borrow's release tests anyway.
        inner.engine.slot(lease.slot.index()).mark_borrow_state();
        Ok(lease)
    }

    /// Tells the event listener about an acquire; returns when it ended.
    /// A panicking listener is counted and logged, not propagated: the
    /// lease is a counted loan (see `GuardRefs`) that must become a guard.
    #[cold]
    #[inline(never)]
    fn announce(&self, id: u64, started: Instant) -> Instant {
        let now = Instant::now();
        self.inner().notify(Hook::OnAcquire, |l| l.on_acquire(id, now - started));
        now
    }

    /// Closes the pool: every waiter wakes with
    /// [`PoolClosed`](super::PoolError::PoolClosed), idle connections are
    /// closed now (on up to four threads at once) and borrowed ones when
    /// they come back, and every later acquire fails with `PoolClosed`.
    /// Idempotent; a second caller returns at once.
    ///
    /// It returns once that is done, or after
    /// [`shutdown_timeout`](super::PoolConfigBuilder::shutdown_timeout)
    /// (default 5 s) if user code is still running then (a factory call
    /// that hangs, a listener hook on the maintenance thread): that work
    /// finishes in the background, closes what it holds, and is logged.
    /// Called from a listener hook on one of the pool's own threads, it
    /// does not wait for them.
    pub fn close(&self) {
        self.inner().close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner().is_closed()
    }

    /// Open connections, borrowed or idle, plus those being opened or closed.
    pub fn size(&self) -> usize {
        self.inner().live()
    }

    /// Idle connections.
    pub fn idle(&self) -> usize {
        self.inner().count(SlotState::Idle)
    }

    /// Borrowed connections.
    pub fn active(&self) -> usize {
        self.inner().count(SlotState::InUse)
    }

    /// Threads waiting for a connection.
    pub fn waiting(&self) -> usize {
        self.inner().waiting()
    }

    /// How long a waiter may be overtaken before it starves, now: the
    /// configured [`fairness_threshold`](super::PoolConfig::fairness_threshold),
    /// or longer while borrows hold their connections for long, as a
    /// database round trip does (see [`QueueMode::Fair`](super::QueueMode::Fair)).
    /// Maintenance sets it each pass. `Fifo` and `Unfair` modes ignore it.
    pub fn fairness_threshold_in_force(&self) -> Duration {
        self.inner().threshold_in_force()
    }

    /// A snapshot of the pool's statistics: the live gauges and everything
    /// recorded since the pool was created. [`PoolStatistics`] defines
    /// each figure.
    pub fn statistics(&self) -> PoolStatistics {
        let mut stats = self.stats.statistics_with(self.inner().gauges());
        if let Some(manager) = self.inner().partitions.get() {
            stats.partitions = manager.partitions().iter().map(|p| p.statistics()).collect();
        }
        stats
    }

    /// Connections currently borrowed for longer than the leak threshold,
    /// from the attached [`LeakDetector`] (empty if none is attached).
    pub fn leaks(&self) -> Vec<LeakInfo> {
        self.inner().leaks.lock().as_ref().map(LeakDetector::get_leaks).unwrap_or_default()
    }

    /// Attaches `detector` (replacing the one from
    /// `leak_detection_threshold`, if any): the maintenance thread reports
    /// to it every `check_interval`.
    ///
    /// ```
    /// # use rusty_db::pool::{ConnectionFactory, ConnectionPool, LeakDetector, PoolConfig, Result};
    /// # use std::sync::Arc; use std::time::Duration;
    /// # struct F; impl ConnectionFactory<u8> for F { fn create(&self) -> Result<u8> { Ok(0) } }
    /// # let pool = ConnectionPool::new(PoolConfig::builder().min_size(1).initial_size(1).build()?, Arc::new(F))?;
    /// let detector = LeakDetector::new(Duration::from_secs(300), Duration::from_secs(60));
    /// pool.attach_leak_detector(detector.clone());
    /// assert!(detector.get_leaks().is_empty());
    /// # Ok::<(), rusty_db::pool::PoolError>(())
    /// ```
    pub fn attach_leak_detector(&self, detector: LeakDetector) {
        self.inner().attach_leak_detector(detector);
        self.inner().wake_maintenance();
    }

    /// Statistics of the configured
    /// [`ConnectionValidator`](super::ConnectionValidator), if one is.
    pub fn validator_statistics(&self) -> Option<ValidatorStatistics> {
        self.inner().config.validator.as_ref().map(|v| v.statistics())
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.inner().config
    }

    /// The open connections, idle and borrowed, as of now (a snapshot read
    /// from the slots' metadata; it slows no acquire).
    ///
    /// ```
    /// # use rusty_db::pool::{ConnectionFactory, ConnectionPool, ConnectionState, PoolConfig, Result};
    /// # use std::sync::Arc;
    /// # struct F; impl ConnectionFactory<u8> for F { fn create(&self) -> Result<u8> { Ok(0) } }
    /// let pool = ConnectionPool::new(PoolConfig::builder().min_size(2).initial_size(2).build()?, Arc::new(F))?;
    /// let conn = pool.acquire()?;
    /// conn.set_query("SELECT * FROM users");
    /// let listed = pool.connections();
    /// let active = listed.iter().find(|c| c.state == ConnectionState::Active).expect("one is borrowed");
    /// assert_eq!(active.id, conn.id());
    /// assert_eq!(active.query.as_deref(), Some("SELECT * FROM users"));
    /// assert_eq!(listed.len(), 2);
    /// # Ok::<(), rusty_db::pool::PoolError>(())
    /// ```
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner().connections()
    }

    /// Kills connection `id`. An idle one is closed at once
    /// ([`Killed::Closed`]). A borrowed one is killed only with `force`:
    /// it is marked (its guard's
    /// [`is_killed`](super::PooledConnectionGuard::is_killed) says so),
    /// its factory's cancel hook (see [`ConnectionDescription::on_cancel`](super::ConnectionDescription::on_cancel))
    /// runs on a thread of its own, and it is closed when it comes back
    /// ([`Killed::Marked`]). Its capacity returns to the pool either way.
    ///
    /// Fails with [`PoolError::ConnectionNotFound`](super::PoolError::ConnectionNotFound) if no open connection
    /// has that id, and [`PoolError::ConnectionInUse`](super::PoolError::ConnectionInUse) for a borrowed one
    /// without `force`.
    ///
    /// ```
    /// # use rusty_db::pool::{ConnectionFactory, ConnectionPool, Killed, PoolConfig, PoolError, Result};
    /// # use std::sync::Arc;
    /// # struct F; impl ConnectionFactory<u8> for F { fn create(&self) -> Result<u8> { Ok(0) } }
    /// let pool = ConnectionPool::new(PoolConfig::builder().min_size(0).initial_size(0).build()?, Arc::new(F))?;
    /// let conn = pool.acquire()?;
    /// let id = conn.id();
    /// assert!(matches!(pool.kill_connection(id, false), Err(PoolError::ConnectionInUse(_))));
    /// assert_eq!(pool.kill_connection(id, true)?, Killed::Marked);
    /// assert!(conn.is_killed());
    /// drop(conn); // closed, not returned
    /// assert_eq!(pool.size(), 0);
    /// # Ok::<(), rusty_db::pool::PoolError>(())
    /// ```
    pub fn kill_connection(&self, id: u64, force: bool) -> Result<Killed> {
        self.inner().kill(id, force)
    }

    /// A handle that does not keep the pool open (the admin registry's):
    /// [`WeakConnectionPool::upgrade`] gives the pool back while any other
    /// handle is left.
    pub fn downgrade(&self) -> WeakConnectionPool<C> {
        WeakConnectionPool { handle: Arc::downgrade(&self.handle), stats: self.stats.clone() }
    }
}

/// A [`ConnectionPool`] handle that does not keep the pool open: once the
/// last `ConnectionPool` is dropped (which closes the pool),
/// [`upgrade`](Self::upgrade) returns `None`.
pub struct WeakConnectionPool<C: Send + 'static> {
    handle: Weak<Handle<C>>,
    stats: PoolStats,
}

impl<C: Send + 'static> WeakConnectionPool<C> {
    /// The pool, if some `ConnectionPool` handle still keeps it open.
    pub fn upgrade(&self) -> Option<ConnectionPool<C>> {
        Some(ConnectionPool { handle: self.handle.upgrade()?, stats: self.stats.clone() })
    }
}

impl<C: Send + 'static> Clone for WeakConnectionPool<C> {
    fn clone(&self) -> Self {
        WeakConnectionPool { handle: Weak::clone(&self.handle), stats: self.stats.clone() }
    }
}

impl<C: Send + 'static> fmt::Debug for WeakConnectionPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakConnectionPool").field("open", &(self.handle.strong_count() > 0)).finish()
    }
}
