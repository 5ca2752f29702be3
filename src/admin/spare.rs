//! Spare threads: a connection thread whose connection ended waits a while
//! for the next one, rather than a new thread being started for each.
//!
//! Beside a busy application that matters more than the cost of starting
//! a thread (some 20 us): a woken thread is usually run at once, a new one
//! waits its turn. Measured on a loaded two-core machine, a thread started
//! per connection put new connections' 99th percentile at milliseconds;
//! reused, it is back to tiny_http's, whose threads were pooled too.
//!
//! A task is handed over on a rendezvous channel of the waiting thread's:
//! `try_send` succeeds only while that thread waits in `recv`, so a task is
//! never left with a thread that is leaving (the lost wake-up tiny_http's
//! pool had); when no thread waits, a new one is started.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the threads do with a task.
type Work<T> = Box<dyn Fn(T) + Send + Sync>;

/// Threads, named `name`, that do `work` on tasks of type `T`, and those
/// of them waiting for one.
pub(crate) struct Spares<T> {
    name: String,
    work: Work<T>,
    /// The waiting threads, the latest last: each one's id and channel.
    waiting: Mutex<Vec<(u64, SyncSender<T>)>>,
    ids: AtomicU64,
    /// How long a thread waits for a task before it ends.
    keep: Duration,
}

impl<T: Send + 'static> Spares<T> {
    /// Threads named `name` that do `work` on a task, then wait `keep` for
    /// the next.
    pub(crate) fn new(name: &str, keep: Duration, work: impl Fn(T) + Send + Sync + 'static) -> Arc<Spares<T>> {
        let (name, work) = (name.to_string(), Box::new(work));
        Arc::new(Spares { name, work, waiting: Mutex::new(Vec::new()), ids: AtomicU64::new(0), keep })
    }

    /// Does the work on `task` on a waiting thread, or on a new one.
    pub(crate) fn run(self: &Arc<Self>, mut task: T) -> io::Result<()> {
        while let Some((_, spare)) = self.lock().pop() {
            match spare.try_send(task) {
                Ok(()) => return Ok(()),
                // Not waiting right now: it is leaving, or not yet waiting,
                // and then leaves since its channel is gone.
                Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => task = back,
            }
        }
        let spares = Arc::clone(self);
        std::thread::Builder::new().name(self.name.clone()).spawn(move || {
            let mut task = task;
            loop {
                (spares.work)(task);
                match spares.wait() {
                    Some(next) => task = next,
                    None => return,
                }
            }
        })?;
        Ok(())
    }

    /// Lets every waiting thread end now.
    pub(crate) fn release(&self) {
        self.lock().clear();
    }

    /// Waits up to `keep` to be handed a task.
    fn wait(&self) -> Option<T> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (send, receive) = mpsc::sync_channel(0);
        self.lock().push((id, send));
        let task = receive.recv_timeout(self.keep).ok();
        if task.is_none() {
            self.lock().retain(|(waiting, _)| *waiting != id);
        }
        task
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, SyncSender<T>)>> {
        // Nothing panics while holding it; a poisoned list is still a list.
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T> std::fmt::Debug for Spares<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spares").field("name", &self.name).field("keep", &self.keep).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    #[test]
    fn a_waiting_thread_takes_the_next_task_and_none_is_lost() {
        let (done, finished) = mpsc::channel();
        let ran = Arc::new(AtomicUsize::new(0));
        let spares = {
            let ran = Arc::clone(&ran);
            Spares::new("spare-test", Duration::from_secs(10), move |n: usize| {
                ran.fetch_add(1, Ordering::Relaxed);
                if n == usize::MAX {
                    let _ = done.send(std::thread::current().id());
                }
            })
        };
        spares.run(usize::MAX).unwrap();
        let first = finished.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while spares.lock().is_empty() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        spares.run(usize::MAX).unwrap();
        assert_eq!(finished.recv().unwrap(), first, "the same thread, woken");

        // Many at once, from several threads: each runs exactly once.
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let spares = Arc::clone(&spares);
                std::thread::spawn(move || (0..500).for_each(|n| spares.run(n).unwrap()))
            })
            .collect();
        senders.into_iter().for_each(|s| s.join().unwrap());
        while ran.load(Ordering::Relaxed) < 2002 && Instant::now() < deadline + Duration::from_secs(5) {
            std::thread::yield_now();
        }
        assert_eq!(ran.load(Ordering::Relaxed), 2002);
        spares.release();
    }

    #[test]
    fn an_idle_thread_ends_after_its_wait_and_leaves_no_entry() {
        let (done, finished) = mpsc::channel();
        let spares = Spares::new("spare-test", Duration::from_millis(50), move |()| {
            let _ = done.send(());
        });
        spares.run(()).unwrap();
        finished.recv().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        std::thread::sleep(Duration::from_millis(100));
        while !spares.lock().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(spares.lock().is_empty());
    }
}
