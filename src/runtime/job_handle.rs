//! A job's result on its way from the worker that ran it to whoever joins.
//!
//! A one-shot slot behind a lock: the worker fills it once, the joiner
//! waits for it. A job dropped without running (its runtime went away
//! first) fills it with [`RuntimeError::ShutDown`] as it drops, so `join`
//! never waits for a result that cannot come.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::RuntimeError;
use crate::sync::{Condvar, Mutex};

/// How long one wait of `join` lasts before it looks again; the completer
/// always notifies, so this only bounds a wait, it never ends one early.
const WAIT_SLICE: Duration = Duration::from_secs(3600);

struct Slot<T> {
    result: Mutex<Option<Result<T, RuntimeError>>>,
    done: Condvar,
}

/// The pending result of a job given to a [`CoreRuntime`](super::CoreRuntime).
///
/// [`join`](Self::join) waits for it. Dropping the handle does not cancel
/// the job; its result is then dropped.
#[must_use = "a job's result (and its panic, if any) is only seen through join()"]
pub struct JobHandle<T> {
    slot: Arc<Slot<T>>,
}

/// The worker's end: fills the slot once, or with `ShutDown` on drop.
pub(crate) struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

/// A connected completer and handle.
pub(crate) fn pair<T>() -> (Completer<T>, JobHandle<T>) {
    let slot = Arc::new(Slot { result: Mutex::default(), done: Condvar::new() });
    (Completer { slot: Some(Arc::clone(&slot)) }, JobHandle { slot })
}

impl<T> JobHandle<T> {
    /// Waits for the job and returns what its closure returned, or why it
    /// did not: [`JobPanicked`](RuntimeError::JobPanicked),
    /// [`Pool`](RuntimeError::Pool) (no connection for it), or
    /// [`ShutDown`](RuntimeError::ShutDown) (it was never queued).
    pub fn join(self) -> Result<T, RuntimeError> {
        let mut result = self.slot.result.lock();
        loop {
            if let Some(result) = result.take() {
                return result;
            }
            self.slot.done.wait_until(&mut result, Instant::now() + WAIT_SLICE);
        }
    }

    /// Whether the result is in, so that [`join`](Self::join) will not wait.
    pub fn is_finished(&self) -> bool {
        self.slot.result.lock().is_some()
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle").field("finished", &self.is_finished()).finish()
    }
}

impl<T> Completer<T> {
    /// Hands `result` to the joiner.
    pub(crate) fn complete(mut self, result: Result<T, RuntimeError>) {
        self.fill(result);
    }

    fn fill(&mut self, result: Result<T, RuntimeError>) {
        if let Some(slot) = self.slot.take() {
            *slot.result.lock() = Some(result);
            slot.done.notify_one();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.fill(Err(RuntimeError::ShutDown));
    }
}
