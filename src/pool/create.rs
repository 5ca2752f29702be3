//! Creating connections: calling the factory in a reserved slot, and doing
//! so for an acquire without outliving its timeout.
//!
//! `ConnectionFactory::create` blocks, sometimes for as long as the
//! network's own timeouts (a server that stopped answering). Run on the
//! caller's thread, it would hold `acquire` well past `acquire_timeout`,
//! which is exactly when an application needs the error soon. So an
//! acquire that may wait runs the factory on a short-lived thread of its
//! own and waits for the result until its deadline. If the deadline comes
//! first, the acquire fails as any timed-out acquire does, and the thread,
//! once the factory returns, gives the new connection to the pool (to a
//! waiter, or idle) instead of to the caller that left: nothing is lost,
//! and the capacity comes back.
//!
//! The thread is one of the pool's jobs (see `background`): `close()`
//! waits for the creations in progress (up to its shutdown timeout), and
//! one that finishes after the pool closed closes its connection at once.
//!
//! `try_acquire` and a zero timeout still create on the caller's thread:
//! they promise not to wait, so there is nothing to bound.

use std::mem;
use std::sync::Arc;
use std::time::Instant;

use super::background::Starter;
use super::engine::{Detached, Owned};
use super::error::{FactoryError, PoolError, Result};
use super::events::CloseReason;
use super::hooks::Hook;
use super::inner::{Inner, Lease};
use super::slot::SlotState;
use crate::sync::{Ordering, fence};

/// Connection ids come from one counter for the whole process, so that an
/// id names one connection whichever pool holds it (the admin API kills
/// connections by id). Not a loom atomic: ids only need to be unique.
static NEXT_CONNECTION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A new connection's id.
fn next_connection_id() -> u64 {
    // Relaxed: ids only need to be unique.
    NEXT_CONNECTION_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The thread name of a creation (kernel names hold 15 bytes; not `rdb-`,
/// which names maintenance threads).
const THREAD_NAME: &str = "rusty-db-create";

/// Where a creation's outcome meets the acquire that asked for it.
struct Delivery<C> {
    state: parking_lot::Mutex<State<C>>,
    done: parking_lot::Condvar,
}

enum State<C> {
    /// The factory is running and the acquire waits.
    Pending,
    /// The factory returned; the acquire has not taken it yet.
    Done(Result<(Detached, C)>),
    /// The acquire stopped waiting; the creator keeps what it makes.
    Abandoned,
}

impl<C: Send + 'static> Inner<C> {
    /// Runs `factory.create` in a reserved slot; the slot and the new
    /// connection come back together. On failure (or panic) the slot goes
    /// back to the vacant stack and the gate starts backing off.
    pub(super) fn create_in<'a>(&'a self, owned: Owned<'a, C>) -> Result<(Owned<'a, C>, C)> {
        let slot = owned.slot();
        slot.set_state(SlotState::Creating);
        let outcome = match self.caught(Hook::Create, || self.factory.create()) {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(PoolError::Factory(e))) => Err(e),
            Ok(Err(other)) => Err(FactoryError::new(other)),
            Err(panic) => Err(FactoryError::new(format!("ConnectionFactory::create panicked: {panic}"))),
        };
        match outcome {
            Ok(conn) => {
                let id = next_connection_id();
                let now = self.epoch.elapsed();
                self.tick(now);
                slot.born(id, now, self.lifetime_for(id));
                slot.describe(self.guarded(Hook::Describe, || self.factory.describe(&conn)).flatten());
                slot.set_state(SlotState::InUse);
                self.stats.record_created();
                self.notify(Hook::OnCreate, |l| l.on_create(id));
                if self.engine.gate().on_success() {
                    log::info!("pool {:?}: connection factory recovered", self.config.name);
                    // Waiters held back by the backoff may create now.
                    fence(Ordering::SeqCst);
                    self.serve_waiters();
                }
                Ok((owned, conn))
            }
            Err(error) => {
                log::warn!("pool {:?}: creating a connection failed: {error}", self.config.name);
                self.stats.record_create_failure();
                self.engine.gate().on_failure(Instant::now(), error.clone());
                self.free_slot(owned);
                // Refill will be due once the backoff allows another try.
                self.wake_maintenance();
                Err(PoolError::Factory(error))
            }
        }
    }

    /// Creates a connection in a reserved slot and leases it. With a
    /// `deadline`, the factory runs on a thread of its own and the caller
    /// waits for it until then (`Ok(None)` after; see the module docs).
    pub(super) fn create_lease(
        &self,
        owned: Owned<'_, C>,
        home: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<Lease<C>>> {
        let (owned, conn) = match deadline {
            Some(deadline) => match self.create_by(owned, deadline)? {
                Some(created) => created,
                None => return Ok(None),
            },
            None => self.create_in(owned)?,
        };
        if self.is_closed() {
            self.discard(owned, conn, CloseReason::Shutdown);
            return Err(PoolError::PoolClosed);
        }
        Ok(Some(self.lease(owned, conn, home)))
    }

    /// Creates a connection in the reserved slot, waiting for the factory
    /// until `deadline`. `Ok(None)`: the deadline passed first (the slot,
    /// and any connection made in it, now belong to the pool).
    ///
    /// The caller holds a pool handle (it is inside an acquire).
    fn create_by(&self, owned: Owned<'_, C>, deadline: Instant) -> Result<Option<(Owned<'_, C>, C)>> {
        let delivery =
            Arc::new(Delivery { state: parking_lot::Mutex::new(State::Pending), done: parking_lot::Condvar::new() });
        let theirs = Arc::clone(&delivery);
        let job = self.spawn_job(THREAD_NAME, Starter::Open, owned.detach(), move |pool: &Inner<C>, slot| {
            let outcome = pool.create_in(pool.engine.attach(slot)).map(|(owned, conn)| (owned.detach(), conn));
            let mut state = theirs.state.lock();
            if matches!(*state, State::Abandoned) {
                drop(state);
                // A failed creation already freed its slot and told the gate.
                if let Ok((slot, conn)) = outcome {
                    pool.adopt(pool.engine.attach(slot), conn);
                }
            } else {
                *state = State::Done(outcome);
                theirs.done.notify_one();
            }
        });
        if let Err(slot) = job {
            // The pool closed after this acquire last looked.
            self.free_slot(self.engine.attach(slot));
            return Err(PoolError::PoolClosed);
        }
        let mut state = delivery.state.lock();
        loop {
            if let State::Done(outcome) = mem::replace(&mut *state, State::Pending) {
                return outcome.map(|(slot, conn)| Some((self.engine.attach(slot), conn)));
            }
            if delivery.done.wait_until(&mut state, deadline).timed_out() {
                return match mem::replace(&mut *state, State::Abandoned) {
                    State::Done(outcome) => outcome.map(|(slot, conn)| Some((self.engine.attach(slot), conn))),
                    _ => Ok(None),
                };
            }
        }
    }

    /// Takes in a connection created for an acquire that stopped waiting.
    fn adopt(&self, owned: Owned<'_, C>, conn: C) {
        if self.is_closed() {
            self.discard(owned, conn, CloseReason::Shutdown);
        } else {
            self.give_back(owned, conn);
        }
    }
}
