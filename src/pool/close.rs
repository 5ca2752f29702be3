//! `close()`: wake every waiter with `PoolClosed`, close idle connections
//! on a few threads at once, stop the maintenance and wait for the jobs in
//! progress, all within `shutdown_timeout`; borrowed connections are
//! closed as they come back.

use std::time::Instant;

use super::background::Starter;
use super::deadline::deadline_after;
use super::inner::Inner;
use super::slot::SlotState;

/// Most threads `close()` closes idle connections on, so that closing a
/// pool of slow-to-close connections takes a fraction of their sum.
const CLOSERS: usize = 4;

/// The thread name of `close()`'s closers (15 bytes at most).
const CLOSER_THREAD_NAME: &str = "rusty-db-close";

impl<C: Send + 'static> Inner<C> {
    /// Closes the pool: wakes every waiter with `PoolClosed`, closes idle
    /// connections on up to [`CLOSERS`] threads, stops the maintenance and
    /// waits for the jobs in progress (creations, the pass's factory
    /// calls); borrowed connections are closed as they come back. All of it
    /// within `shutdown_timeout`: what is still running in user code then
    /// finishes in the background (and closes what it holds), and is logged.
    pub(crate) fn close(&self) {
        if !self.engine.close() {
            return;
        }
        // Requests queued in the partitions' ledger wake with `PoolClosed` too.
        if let Some(manager) = self.partitions.get() {
            manager.core().close();
        }
        let deadline = deadline_after(Instant::now(), self.config.shutdown_timeout);
        // No job starts from now on but our closers.
        self.jobs.refuse();
        // Closers first, so that idle connections close while we wait for
        // the rest; a pass or job that pushes connections back after this
        // sees `closed` and closes them itself.
        if self.engine.has_idle() {
            let closers = self.count(SlotState::Idle).clamp(1, CLOSERS);
            for _ in 0..closers {
                // A closer is never refused.
                let _ = self.spawn_job(CLOSER_THREAD_NAME, Starter::Close, (), |pool, ()| pool.drain_idle());
            }
        }
        let registration = self.maintenance.lock().take();
        let maintenance_stopped = registration.is_none_or(|r| r.stop_until(deadline));
        let busy = match (self.jobs.wait_until(deadline), maintenance_stopped) {
            (Ok(()), true) => {
                log::debug!("pool {:?}: closed", self.config.name);
                return;
            }
            (Ok(()), false) => "the maintenance pass".to_string(),
            (Err(jobs), true) => format!("{jobs} background job(s)"),
            (Err(jobs), false) => format!("the maintenance pass and {jobs} background job(s)"),
        };
        log::warn!(
            "pool {:?}: close() returns after its shutdown_timeout of {:?} with {busy} still in user code \
             (a factory or listener call); they finish in the background and close what they hold",
            self.config.name,
            self.config.shutdown_timeout,
        );
    }
}
