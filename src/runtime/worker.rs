//! A worker thread: pinned to its core, bound to its shard, running jobs
//! from its lane (and stolen from the others) until the runtime shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Parker;

use super::core_runtime::Shared;
use crate::pool::home_shard::{bind_current_thread, usable_cpus};
use crate::sync::{Condvar, Mutex};

/// How long one wait for the workers to start lasts before it looks again;
/// a backstop only, every worker notifies.
const START_RECHECK: Duration = Duration::from_millis(100);

/// Where worker `index` runs: the CPU it is pinned to, if it is.
pub(crate) struct Placement {
    pub(crate) index: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) pin: bool,
}

impl Placement {
    /// Worker `index` goes to the `index`-th CPU the process may use
    /// (wrapping around), so sparse CPU sets are filled densely.
    pub(crate) fn for_worker(index: usize, pin: bool) -> Placement {
        let cpus = usable_cpus();
        let cpu = if cpus.is_empty() { None } else { Some(cpus[index % cpus.len()]) };
        Placement { index, cpu, pin }
    }
}

/// Counts the workers that have started, and how many of them are pinned.
#[derive(Default)]
pub(crate) struct Startup {
    /// (started, pinned)
    counts: Mutex<(usize, usize)>,
    started: Condvar,
}

impl Startup {
    fn report(&self, pinned: bool) {
        let mut counts = self.counts.lock();
        counts.0 += 1;
        counts.1 += usize::from(pinned);
        self.started.notify_one();
    }

    /// Waits until `workers` workers have reported; returns how many are pinned.
    pub(crate) fn wait(&self, workers: usize) -> usize {
        let mut counts = self.counts.lock();
        while counts.0 < workers {
            self.started.wait_until(&mut counts, Instant::now() + START_RECHECK);
        }
        counts.1
    }
}

/// The body of a worker thread.
pub(crate) fn run<C: Send + 'static>(placement: Placement, shared: Arc<Shared<C>>, parker: Parker) {
    let pinned =
        placement.pin && placement.cpu.is_some_and(|id| core_affinity::set_for_current(core_affinity::CoreId { id }));
    shared.startup.report(pinned);
    bind_current_thread(placement.index);
    while let Some(task) = shared.lanes.next(placement.index, &parker) {
        // Jobs catch their own panics (see `CoreRuntime::try_execute`), so a
        // job cannot end the worker.
        (task.job)(&shared.pool);
    }
}
