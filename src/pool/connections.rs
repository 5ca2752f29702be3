//! The pool's connections as an operator sees them: listing them and
//! killing one (the admin API's `/connections` routes).
//!
//! Both work from the slots' metadata, which observers may read without
//! owning a slot, so neither slows an acquire. Killing a borrowed
//! connection only marks it (by id, so a connection born later in the same
//! slot is never hit): its guard can tell ([`is_killed`]), and its release
//! closes it. Killing an idle one takes it out of its shard's stack, the
//! stack's top popped down to it and the rest pushed back in order, and
//! closes it at once.
//!
//! [`is_killed`]: super::PooledConnectionGuard::is_killed

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::background::Starter;
use super::engine::Owned;
use super::error::{PoolError, Result};
use super::events::CloseReason;
use super::hooks::Hook;
use super::inner::Inner;
use super::slot::{Slot, SlotState};

/// Interrupts whatever a connection is running, from another thread (a
/// PostgreSQL cancel request, say). Called once, on a thread of its own,
/// when an operator force-kills the borrowed connection.
pub type Canceller = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// What a [`ConnectionFactory`](super::ConnectionFactory) can tell about
/// a connection it created, for the admin API's connection list: whose it
/// is and where it goes, and how to interrupt it.
///
/// ```
/// use rusty_db::pool::ConnectionDescription;
///
/// let described = ConnectionDescription::new()
///     .user("admin")
///     .database("rustydb")
///     .client_addr("192.168.1.100:54321")
///     .on_cancel(|| Ok(()));
/// assert_eq!(described.user.as_deref(), Some("admin"));
/// assert!(described.canceller.is_some());
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ConnectionDescription {
    /// The database user the connection is logged in as.
    pub user: Option<String>,
    /// The database it is connected to.
    pub database: Option<String>,
    /// The client address the server sees (`host:port`).
    pub client_addr: Option<String>,
    /// Interrupts a running query when the connection is force-killed.
    pub canceller: Option<Canceller>,
}

impl ConnectionDescription {
    /// A description saying nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets the database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets the client address.
    pub fn client_addr(mut self, addr: impl Into<String>) -> Self {
        self.client_addr = Some(addr.into());
        self
    }

    /// Sets the cancel hook: called (once, on a thread of its own, with
    /// its panics caught) when the connection is force-killed while borrowed.
    pub fn on_cancel(mut self, cancel: impl Fn() -> Result<()> + Send + Sync + 'static) -> Self {
        self.canceller = Some(Arc::new(cancel));
        self
    }
}

impl fmt::Debug for ConnectionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionDescription")
            .field("user", &self.user)
            .field("database", &self.database)
            .field("client_addr", &self.client_addr)
            .field("cancellable", &self.canceller.is_some())
            .finish()
    }
}

/// Whether a listed connection is borrowed or idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Borrowed by a guard.
    Active,
    /// In the pool, ready to be handed out.
    Idle,
}

impl ConnectionState {
    /// `"active"` or `"idle"`, as in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Active => "active",
            ConnectionState::Idle => "idle",
        }
    }
}

/// One open connection, as [`ConnectionPool::connections`] saw it.
///
/// [`ConnectionPool::connections`]: super::ConnectionPool::connections
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The connection's id (a guard's [`id()`](super::PooledConnectionGuard::id)),
    /// unique within the process.
    pub id: u64,
    /// Borrowed or idle.
    pub state: ConnectionState,
    /// What the factory said of it, if it says anything.
    pub description: Option<Arc<ConnectionDescription>>,
    /// The query its borrower last recorded with
    /// [`set_query`](super::PooledConnectionGuard::set_query).
    pub query: Option<String>,
    /// When it was created.
    pub connected_at: SystemTime,
    /// When it was last returned, borrowed (while borrows are traced) or
    /// given a query, whichever is latest.
    pub last_activity: SystemTime,
    /// How long ago it was created.
    pub age: Duration,
    /// How many times it has been handed out.
    pub borrow_count: u64,
    /// Whether it was force-killed and is closed when it comes back.
    pub killed: bool,
}

/// What [`ConnectionPool::kill_connection`] did.
///
/// [`ConnectionPool::kill_connection`]: super::ConnectionPool::kill_connection
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    /// It was idle, and is closed.
    Closed,
    /// It is borrowed: marked, its cancel hook called, and closed when its
    /// guard comes back.
    Marked,
}

impl<C: Send + 'static> Inner<C> {
    /// A snapshot of the open connections, in slot order.
    pub(crate) fn connections(&self) -> Vec<ConnectionInfo> {
        let now = self.epoch.elapsed();
        self.engine.slots().filter_map(|(_, slot)| self.describe_slot(slot, now)).collect()
    }

    /// One slot's connection, if it holds one idle or borrowed.
    fn describe_slot(&self, slot: &Slot<C>, now: Duration) -> Option<ConnectionInfo> {
        let state = match slot.state() {
            SlotState::Idle => ConnectionState::Idle,
            SlotState::InUse => ConnectionState::Active,
            _ => return None,
        };
        let id = slot.id();
        let created = Duration::from_nanos(slot.created_nanos());
        let mut last = self.wall(Duration::from_nanos(slot.last_used_nanos()));
        let query = match &*slot.peek_trace() {
            Some(trace) if state == ConnectionState::Active => {
                last = last.max(trace.acquired_wall);
                if let Some(at) = trace.query_at {
                    last = last.max(at);
                }
                trace.query.clone()
            }
            _ => None,
        };
        Some(ConnectionInfo {
            id,
            state,
            description: slot.description(),
            query,
            connected_at: self.wall(created),
            last_activity: last,
            age: now.saturating_sub(created),
            borrow_count: slot.borrows(),
            killed: slot.is_killed(id),
        })
    }

    /// The wall-clock time of an instant given as time since the epoch.
    fn wall(&self, since_epoch: Duration) -> SystemTime {
        self.epoch_wall + since_epoch
    }

    /// Kills connection `id`: an idle one is closed now; a borrowed one
    /// only with `force` (else [`PoolError::ConnectionInUse`]), by marking
    /// it for its release and calling its cancel hook.
    pub(crate) fn kill(&self, id: u64, force: bool) -> Result<Killed> {
        // An idle connection can be returned and borrowed again while this
        // looks; a few rounds settle it (with `force`, the mark closes it
        // at its next release whatever this finds).
        for round in 0..3 {
            let Some((index, slot)) = self.find(id) else {
                // Never open, or gone since: closed by its own release
                // (which saw the mark), or by somebody else.
                return if force && round > 0 { Ok(Killed::Closed) } else { Err(PoolError::ConnectionNotFound(id)) };
            };
            if force && round == 0 {
                // Before looking in the stacks: a release racing this look
                // then closes it, and an idle one is found below.
                slot.kill(id);
            }
            if slot.state() == SlotState::InUse {
                if !force {
                    return Err(PoolError::ConnectionInUse(id));
                }
                self.cancel(slot, id);
                return Ok(Killed::Marked);
            }
            if self.close_idle(index, id) {
                return Ok(Killed::Closed);
            }
        }
        if force { Ok(Killed::Marked) } else { Err(PoolError::ConnectionInUse(id)) }
    }

    /// The slot holding connection `id` now, if it is idle or borrowed.
    fn find(&self, id: u64) -> Option<(u32, &Slot<C>)> {
        self.engine
            .slots()
            .find(|(_, slot)| slot.id() == id && matches!(slot.state(), SlotState::Idle | SlotState::InUse))
    }

    /// Takes slot `index` out of whichever idle stack holds it, if one
    /// does and it still holds connection `id`, and closes that connection.
    fn close_idle(&self, index: u32, id: u64) -> bool {
        for shard in 0..self.shards() {
            let mut popped: Vec<Owned<'_, C>> = Vec::new();
            let (mut target, mut seen) = (None, false);
            while let Some(owned) = self.engine.pop_home(shard) {
                if owned.index() != index {
                    popped.push(owned);
                    continue;
                }
                seen = true;
                if owned.slot().id() == id {
                    target = Some(owned);
                } else {
                    // A newer connection in the same slot: not ours to kill.
                    popped.push(owned);
                }
                break;
            }
            // Pushed back in reverse pop order: the stack is as it was.
            popped.reverse();
            self.looked(self.engine.put_back(shard, popped));
            if let Some(owned) = target {
                self.close_owned(owned, CloseReason::Killed);
                return true;
            }
            if seen {
                return false;
            }
        }
        false
    }

    /// Calls the connection's cancel hook, if its factory gave one, on a
    /// thread of its own (it may block or hang).
    fn cancel(&self, slot: &Slot<C>, id: u64) {
        let Some(cancel) = slot.description().and_then(|d| d.canceller.clone()) else { return };
        let name = &self.config.name;
        let spawned =
            self.spawn_job("rusty-db-cancel", Starter::Open, cancel, move |pool: &Inner<C>, cancel| {
                match pool.guarded(Hook::Cancel, || cancel()) {
                    Some(Ok(())) => log::info!("pool {:?}: cancelled the query of connection {id}", pool.config.name),
                    Some(Err(e)) => log::warn!("pool {:?}: cancelling connection {id} failed: {e}", pool.config.name),
                    None => {}
                }
            });
        if spawned.is_err() {
            log::debug!("pool {name:?}: closed; connection {id} is not cancelled");
        }
    }
}
