//! Creating a connection for an acquire without outliving its timeout.
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
use super::error::{PoolError, Result};
use super::events::CloseReason;
use super::inner::Inner;

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
    Done(Result<C>),
    /// The acquire stopped waiting; the creator keeps what it makes.
    Abandoned,
}

impl<C: Send + 'static> Inner<C> {
    /// Creates a connection in the reserved slot `index`, waiting for the
    /// factory until `deadline`. `Ok(None)`: the deadline passed first (the
    /// slot, and any connection made in it, now belong to the pool).
    ///
    /// The caller holds a pool handle (it is inside an acquire).
    pub(super) fn create_by(&self, index: u32, deadline: Instant) -> Result<Option<C>> {
        let delivery =
            Arc::new(Delivery { state: parking_lot::Mutex::new(State::Pending), done: parking_lot::Condvar::new() });
        let theirs = Arc::clone(&delivery);
        let started = self.spawn_job(THREAD_NAME, Starter::Open, move |pool| {
            let outcome = pool.create_in(index);
            let mut state = theirs.state.lock();
            if matches!(*state, State::Abandoned) {
                drop(state);
                // A failed creation already freed its slot and told the gate.
                if let Ok(conn) = outcome {
                    pool.adopt(index, conn);
                }
            } else {
                *state = State::Done(outcome);
                theirs.done.notify_one();
            }
        });
        if !started {
            // The pool closed after this acquire last looked.
            self.free_slot(index);
            return Err(PoolError::PoolClosed);
        }
        let mut state = delivery.state.lock();
        loop {
            if let State::Done(outcome) = mem::replace(&mut *state, State::Pending) {
                return outcome.map(Some);
            }
            if delivery.done.wait_until(&mut state, deadline).timed_out() {
                return match mem::replace(&mut *state, State::Abandoned) {
                    State::Done(outcome) => outcome.map(Some),
                    _ => Ok(None),
                };
            }
        }
    }

    /// Takes in a connection created for an acquire that stopped waiting.
    fn adopt(&self, index: u32, conn: C) {
        if self.is_closed() {
            self.discard(index, conn, CloseReason::Shutdown);
        } else {
            self.give_back(index, conn);
        }
    }
}
