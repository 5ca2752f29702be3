//! The RAII guard of a borrowed connection.
//!
//! The guard owns the connection while it is borrowed; dropping it hands
//! the connection back to the pool (reset, and validated if configured or
//! if the thread is panicking), or closes it if the user marked it broken
//! or the pool was closed.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::engine::Detached;
use super::error::Result;
use super::events::CloseReason;
use super::hooks::Hook;
use super::hooks::panic_message;
use super::inner::{Inner, Lease, end_reference};
use super::partition::Admission;
use super::statements::{PrepareStatement, StatementLru};

/// A connection borrowed from a [`ConnectionPool`](super::ConnectionPool).
///
/// Derefs to the connection. Returned to the pool on drop.
pub struct PooledConnectionGuard<C: Send + 'static> {
    inner: NonNull<Inner<C>>,
    /// The connection and its slot, until the guard's drop gives them back.
    held: Option<Held<C>>,
    /// The shard the connection goes back to: the acquiring thread's.
    home: u32,
    id: u64,
    /// Why the connection is to be closed instead of returned: `Broken`
    /// after `mark_broken`, `Killed` after `discard`.
    close: Option<CloseReason>,
    /// Whether [`mark_dirty`](Self::mark_dirty) was called.
    dirty: bool,
    /// When it was handed out, if an event listener wants hold times.
    acquired_at: Option<Instant>,
}

/// What a guard holds: its slot in the pool, and the connection from it.
struct Held<C> {
    slot: Detached,
    conn: C,
}

// SAFETY: the guard owns a `C` and points at an `Inner<C>`, which is
// shareable across threads; moving the guard moves the `C`.
unsafe impl<C: Send + 'static> Send for PooledConnectionGuard<C> {}
// SAFETY: `&guard` only gives out `&C` (needs `C: Sync`) and `&Inner<C>`.
unsafe impl<C: Send + Sync + 'static> Sync for PooledConnectionGuard<C> {}

impl<C: Send + 'static> PooledConnectionGuard<C> {
    /// Wraps a lease; `acquired_at` starts the hold time an event listener
    /// is told on release.
    #[inline]
    pub(crate) fn new(inner: NonNull<Inner<C>>, lease: Lease<C>, acquired_at: Option<Instant>) -> Self {
        PooledConnectionGuard {
            inner,
            held: Some(Held { slot: lease.slot, conn: lease.conn }),
            home: lease.home,
            id: lease.id,
            close: None,
            dirty: false,
            acquired_at,
        }
    }

    /// Reports CPU time this borrow used on the database, charged to its
    /// partition's `cpu_limit` on top of the hold time (see
    /// [`partition`](super::partition)).
    /// [`QuotaExceeded`](super::PoolError::QuotaExceeded) if that took the
    /// partition over (the time is charged either way). Does nothing on a
    /// connection not borrowed for a partition.
    pub fn report_cpu(&self, used: Duration) -> Result<()> {
        self.with_claim(|a| a.report_cpu(used))
    }

    /// Reports `bytes` more in use by this borrow, counted against its
    /// partition's `memory_limit` until the guard drops.
    /// [`QuotaExceeded`](super::PoolError::QuotaExceeded) (and nothing counted) if
    /// that would go over. Does nothing without a partition.
    pub fn report_memory(&mut self, bytes: u64) -> Result<()> {
        self.with_claim(|a| a.report_memory(bytes))
    }

    /// Reports `ops` I/O operations, taken from its partition's `io_limit`
    /// bucket; [`QuotaExceeded`](super::PoolError::QuotaExceeded) (and nothing
    /// taken) if it holds too few. Does nothing without a partition.
    pub fn report_io(&self, ops: u64) -> Result<()> {
        self.with_claim(|a| a.report_io(ops))
    }

    /// Runs `f` on this borrow's partition claim; `Ok` without one.
    fn with_claim(&self, f: impl FnOnce(&mut Admission) -> Result<()>) -> Result<()> {
        match self.inner().extras[self.slot() as usize].claim().as_mut() {
            Some(admission) => f(admission),
            None => Ok(()),
        }
    }

    #[inline]
    fn inner(&self) -> &Inner<C> {
        // SAFETY: this guard is counted in `refs` (as its slot's loan),
        // which keeps `Inner` allocated until the guard's drop ends it.
        unsafe { self.inner.as_ref() }
    }

    #[inline]
    fn held(&self) -> &Held<C> {
        self.held.as_ref().expect("the connection is present until the guard is dropped")
    }

    /// The slot's index, for its metadata.
    #[inline]
    fn slot(&self) -> u32 {
        self.held().slot.index()
    }

    /// The connection.
    #[inline]
    pub fn connection(&self) -> &C {
        &self.held().conn
    }

    /// The connection, mutably.
    #[inline]
    pub fn connection_mut(&mut self) -> &mut C {
        &mut self.held.as_mut().expect("the connection is present until the guard is dropped").conn
    }

    /// The connection's id: unique over the pool's life, never reused.
    #[inline]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Time since the connection was created.
    pub fn age(&self) -> Duration {
        Instant::now().saturating_duration_since(self.inner().created_at(self.slot()))
    }

    /// How many times this connection has been handed out, this time included.
    pub fn borrow_count(&self) -> u64 {
        self.inner().borrows(self.slot())
    }

    /// Marks the connection broken (say after an I/O error): it will be
    /// closed instead of returned when the guard drops.
    pub fn mark_broken(&mut self) {
        self.close = Some(CloseReason::Broken);
    }

    /// Says the session may hold state the next borrower must not see
    /// (settings, temporary tables, an open transaction the driver cannot
    /// see): on return the pool runs the factory's full clean-up
    /// ([`ConnectionFactory::clean`](super::ConnectionFactory::clean))
    /// instead of its usual reset, as it does after a panic.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Counts an error seen on this connection (a failed query, say)
    /// without closing it; `AgingPolicy::Adaptive` retires connections
    /// whose error rate passes its threshold.
    pub fn record_error(&self) {
        self.inner().record_error(self.slot());
    }

    /// Records the query the connection is running, for leak reports and
    /// the admin API's connection list.
    pub fn set_query(&self, query: impl Into<String>) {
        self.inner().set_query(self.slot(), query.into());
    }

    /// Whether an operator killed this connection while it was borrowed
    /// (the admin API's `DELETE /connections/{id}?force=true`): it is
    /// closed when the guard drops, so stop using it.
    pub fn is_killed(&self) -> bool {
        self.inner().is_killed(self.slot(), self.id)
    }

    /// Whether [`mark_broken`](Self::mark_broken) was called.
    pub fn is_broken(&self) -> bool {
        self.close == Some(CloseReason::Broken)
    }

    /// Closes the connection now instead of returning it; its capacity goes
    /// back to the pool.
    pub fn discard(mut self) {
        self.close = Some(CloseReason::Killed);
        drop(self);
    }
}

impl<C: PrepareStatement> PooledConnectionGuard<C> {
    /// The prepared statement for `sql`, from this connection's statement
    /// cache, or prepared now and cached (the least recently used
    /// statement is closed if the cache is full). The cache stays with the
    /// connection across borrows and holds up to the pool's
    /// `statement_cache_size` statements; hits and misses feed
    /// `cache_hit_rate`. A size of 0 prepares every time and counts
    /// nothing. An error from preparing is returned and caches nothing.
    ///
    /// The driver is user code: if `prepare_statement` panics, the cache
    /// goes back to the connection as it was and the panic goes on to the
    /// caller; a panic in `close_statement` is logged like its error, and
    /// the other statements evicted with it are still closed.
    pub fn prepare_cached(&mut self, sql: &str) -> Result<C::Statement> {
        let capacity = self.inner().config.statement_cache_size;
        if capacity == 0 {
            return self.connection_mut().prepare_statement(sql);
        }
        let (index, id) = (self.slot(), self.id);
        let mut cache: Box<StatementLru<C::Statement>> = match self.inner().extras[index as usize].take_statements(id) {
            Some(cache) => cache.downcast().expect("a connection type has one statement type"),
            None => Box::new(StatementLru::new(capacity)),
        };
        let outcome = match cache.get(sql) {
            Some(statement) => {
                self.inner().stats.record_cache_hit();
                Ok(Ok(statement))
            }
            None => {
                self.inner().stats.record_cache_miss();
                // For the log, on a miss (which costs a prepare anyway).
                let name = self.inner().config.name.clone();
                let conn = self.connection_mut();
                catch_unwind(AssertUnwindSafe(|| prepare_into(conn, &mut cache, sql, &name)))
            }
        };
        self.inner().extras[index as usize].put_statements(id, cache);
        outcome.unwrap_or_else(|panic| resume_unwind(panic))
    }
}

/// A miss: prepares `sql` on `conn`, caches it, and closes what made room
/// (every one of them, whatever `close_statement` does with the others).
fn prepare_into<C: PrepareStatement>(
    conn: &mut C,
    cache: &mut StatementLru<C::Statement>,
    sql: &str,
    pool: &str,
) -> Result<C::Statement> {
    let statement = conn.prepare_statement(sql)?;
    for evicted in cache.insert(sql, statement.clone()) {
        match catch_unwind(AssertUnwindSafe(|| conn.close_statement(evicted))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!("pool {pool:?}: closing an evicted statement failed: {e}"),
            Err(panic) => {
                log::warn!("pool {pool:?}: closing an evicted statement panicked: {}", panic_message(&*panic))
            }
        }
    }
    Ok(statement)
}

impl<C: Send + 'static> Drop for PooledConnectionGuard<C> {
    fn drop(&mut self) {
        let held = self.held.take();
        let inner = self.inner();
        // The acquirer's shard, even if another thread drops the guard: a
        // second `home_shard` lookup here cost more than that rare miss.
        let home = self.home as usize;
        if let Some(Held { slot, conn }) = held {
            if let Some(at) = self.acquired_at {
                // Guarded: a panic here would skip the release (losing the
                // slot for good), or abort a thread already unwinding.
                inner.notify(Hook::OnRelease, |l| l.on_release(self.id, at.elapsed()));
            }
            // A partition claim, if any, ends in the release (`end_borrow`).
            inner.release(slot, conn, self.close, self.dirty, home);
        }
        // SAFETY: this guard's reference (its slot's loan) is the one ended,
        // and the guard touches the pool no more.
        unsafe { end_reference(self.inner, home) };
    }
}

impl<C: Send + 'static> Deref for PooledConnectionGuard<C> {
    type Target = C;
    #[inline]
    fn deref(&self) -> &C {
        self.connection()
    }
}

impl<C: Send + 'static> DerefMut for PooledConnectionGuard<C> {
    #[inline]
    fn deref_mut(&mut self) -> &mut C {
        self.connection_mut()
    }
}

impl<C: Send + fmt::Debug + 'static> fmt::Debug for PooledConnectionGuard<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnectionGuard")
            .field("id", &self.id)
            .field("connection", &self.held.as_ref().map(|h| &h.conn))
            .field("broken", &self.is_broken())
            .finish()
    }
}
