//! Connection attempts bounded by a deadline, without ever holding more
//! attempts open than the pool asked for.
//!
//! The `postgres` crate bounds only the TCP connect (`connect_timeout`): a
//! server or middlebox that accepts the socket and then never answers the
//! startup message hangs `connect` for as long as the socket lives. Nothing
//! can cut that attempt short from outside, so each one runs on a thread of
//! its own and `create` waits for it only until its deadline.
//!
//! An attempt that outlives its `create` is an orphan, not a loss: the next
//! `create` adopts it instead of starting another, and takes its connection
//! if it arrives within that second wait. So attempts in flight never
//! outnumber the creates the pool has running plus the orphans those left,
//! and every orphan stands in for a slot the pool freed: a slow server sees
//! no more sessions than `max_size`, even while connects time out and retry.
//! An orphan that misses its second window too is written off (its
//! connection, if one ever comes, is closed at once), and at most
//! [`MAX_HUNG`] written-off attempts may hang before `create` refuses to
//! start more: threads and sockets stay bounded through any outage.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How many written-off attempts may still be hanging before `connect`
/// refuses to start another.
pub(crate) const MAX_HUNG: usize = 16;

/// Why an attempt gave no connection.
#[derive(Debug)]
pub(crate) enum AttemptError<E> {
    /// The attempt failed: the driver's error.
    Failed(E),
    /// The deadline came first; the attempt goes on as an orphan.
    TimedOut { waited: Duration, running_for: Duration },
    /// Too many written-off attempts still hang.
    TooManyHung(usize),
    /// No thread could be started for the attempt.
    Spawn(std::io::Error),
}

impl<E: fmt::Display> fmt::Display for AttemptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Failed(e) => write!(f, "{e}"),
            AttemptError::TimedOut { waited, running_for } => write!(
                f,
                "no answer within the connect timeout ({waited:?}; the attempt has run for {running_for:?}): \
                 the server or the network is not answering; the attempt goes on and the next create adopts it"
            ),
            AttemptError::TooManyHung(n) => write!(
                f,
                "{n} earlier connection attempts are still hanging (connected, never answered); not starting \
                 another until one ends: check the server and the network path to it"
            ),
            AttemptError::Spawn(e) => write!(f, "could not start a connect thread: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for AttemptError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttemptError::Failed(e) => Some(e),
            AttemptError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Who waits for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A `connect` call waits for it.
    Waiting,
    /// Its `connect` left; the next one adopts it.
    Orphan,
    /// Written off: whatever it yields is dropped.
    Lost,
}

struct Attempt<T, E> {
    owner: Owner,
    adopted: bool,
    started: Instant,
    outcome: Option<Result<T, E>>,
}

struct Table<T, E> {
    next_id: u64,
    attempts: HashMap<u64, Attempt<T, E>>,
    orphans: VecDeque<u64>,
    lost: usize,
}

/// The attempts of one factory.
pub(crate) struct Attempts<T, E> {
    table: Mutex<Table<T, E>>,
    changed: Condvar,
}

impl<T: Send + 'static, E: Send + 'static> Attempts<T, E> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Attempts {
            table: Mutex::new(Table { next_id: 0, attempts: HashMap::new(), orphans: VecDeque::new(), lost: 0 }),
            changed: Condvar::new(),
        })
    }

    /// A connection within `timeout`: an orphan's, if one is pending,
    /// otherwise a new attempt's, running `open` on a thread of its own.
    pub(crate) fn connect(
        self: &Arc<Self>,
        timeout: Duration,
        open: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, AttemptError<E>> {
        let deadline = Instant::now() + timeout;
        let mut table = self.table.lock();
        let id = match table.orphans.pop_front() {
            Some(id) => {
                table.attempts.get_mut(&id).expect("an orphan is a pending attempt").owner = Owner::Waiting;
                id
            }
            None => {
                if table.lost >= MAX_HUNG {
                    return Err(AttemptError::TooManyHung(table.lost));
                }
                let id = table.next_id;
                table.next_id += 1;
                let attempt = Attempt { owner: Owner::Waiting, adopted: false, started: Instant::now(), outcome: None };
                table.attempts.insert(id, attempt);
                let attempts = Arc::clone(self);
                let spawned =
                    thread::Builder::new().name("rusty-db-pg-conn".into()).spawn(move || attempts.finish(id, open()));
                if let Err(e) = spawned {
                    table.attempts.remove(&id);
                    return Err(AttemptError::Spawn(e));
                }
                id
            }
        };
        loop {
            let attempt = table.attempts.get_mut(&id).expect("a waited-for attempt stays until taken");
            if let Some(outcome) = attempt.outcome.take() {
                table.attempts.remove(&id);
                return outcome.map_err(AttemptError::Failed);
            }
            if self.changed.wait_until(&mut table, deadline).timed_out() {
                let attempt = table.attempts.get_mut(&id).expect("a waited-for attempt stays until taken");
                if let Some(outcome) = attempt.outcome.take() {
                    table.attempts.remove(&id);
                    return outcome.map_err(AttemptError::Failed);
                }
                let running_for = attempt.started.elapsed();
                if attempt.adopted {
                    attempt.owner = Owner::Lost;
                    table.lost += 1;
                } else {
                    attempt.adopted = true;
                    attempt.owner = Owner::Orphan;
                    table.orphans.push_back(id);
                }
                return Err(AttemptError::TimedOut { waited: timeout, running_for });
            }
        }
    }

    /// An attempt's thread hands in what it got.
    fn finish(&self, id: u64, outcome: Result<T, E>) {
        let mut table = self.table.lock();
        let attempt = table.attempts.get_mut(&id).expect("an attempt stays until finished or taken");
        match attempt.owner {
            Owner::Waiting => {
                attempt.outcome = Some(outcome);
                drop(table);
                self.changed.notify_all();
            }
            Owner::Orphan => {
                table.attempts.remove(&id);
                table.orphans.retain(|&o| o != id);
                drop(table);
                // Nobody waits: the connection is closed here, its slot
                // long since freed by the create that left.
                drop(outcome);
            }
            Owner::Lost => {
                table.attempts.remove(&id);
                table.lost -= 1;
                drop(table);
                drop(outcome);
            }
        }
    }

    /// Attempts still running that no `connect` waits for: orphans and
    /// written-off ones.
    #[cfg(test)]
    fn pending(&self) -> (usize, usize) {
        let table = self.table.lock();
        (table.orphans.len(), table.lost)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;

    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    /// An attempt that yields what the test sends it, when it sends it.
    fn gated() -> (mpsc::Sender<Result<u32, String>>, impl FnOnce() -> Result<u32, String> + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        (tx, move || rx.recv().unwrap_or_else(|_| Err("gate dropped".into())))
    }

    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if done() {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        done()
    }

    #[test]
    fn a_prompt_attempt_is_returned_and_a_failure_carries_the_driver_s_error() {
        let attempts = Attempts::<u32, String>::new();
        assert_eq!(attempts.connect(Duration::from_secs(10), || Ok(7)).unwrap(), 7);
        match attempts.connect(Duration::from_secs(10), || Err("refused".to_string())) {
            Err(AttemptError::Failed(e)) => assert_eq!(e, "refused"),
            other => panic!("{other:?}"),
        }
        assert_eq!(attempts.pending(), (0, 0));
    }

    #[test]
    fn a_late_attempt_is_adopted_by_the_next_connect_instead_of_a_new_one() {
        let attempts = Attempts::<u32, String>::new();
        let (tx, open) = gated();
        assert!(matches!(attempts.connect(SHORT, open), Err(AttemptError::TimedOut { .. })));
        assert_eq!(attempts.pending(), (1, 0), "an orphan");

        // The next connect adopts it: this `open` is never run.
        let waiter = {
            let attempts = Arc::clone(&attempts);
            thread::spawn(move || attempts.connect(Duration::from_secs(10), || panic!("not started")))
        };
        assert!(eventually(|| attempts.pending() == (0, 0)), "adopted");
        tx.send(Ok(42)).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 42);
    }

    #[test]
    fn an_orphan_that_misses_its_second_window_is_written_off_and_its_result_dropped() {
        let attempts = Attempts::<Arc<()>, String>::new();
        let (tx, rx) = mpsc::channel::<Result<Arc<()>, String>>();
        let open = move || rx.recv().unwrap_or_else(|_| Err("gate dropped".into()));
        assert!(matches!(attempts.connect(SHORT, open), Err(AttemptError::TimedOut { .. })));
        assert!(matches!(attempts.connect(SHORT, || panic!("adopts")), Err(AttemptError::TimedOut { .. })));
        assert_eq!(attempts.pending(), (0, 1), "written off");

        let connection = Arc::new(());
        tx.send(Ok(Arc::clone(&connection))).unwrap();
        assert!(eventually(|| attempts.pending() == (0, 0)));
        assert!(eventually(|| Arc::strong_count(&connection) == 1), "the late connection is dropped");
        // A new attempt starts now that none is pending.
        assert_eq!(*attempts.connect(Duration::from_secs(10), || Ok(Arc::new(()))).unwrap(), ());
    }

    #[test]
    fn an_orphan_finishing_with_nobody_waiting_is_dropped() {
        let attempts = Attempts::<Arc<()>, String>::new();
        let (tx, rx) = mpsc::channel::<Result<Arc<()>, String>>();
        let open = move || rx.recv().unwrap_or_else(|_| Err("gate dropped".into()));
        assert!(matches!(attempts.connect(SHORT, open), Err(AttemptError::TimedOut { .. })));
        let connection = Arc::new(());
        tx.send(Ok(Arc::clone(&connection))).unwrap();
        assert!(eventually(|| attempts.pending() == (0, 0)));
        assert!(eventually(|| Arc::strong_count(&connection) == 1));
    }

    #[test]
    fn hung_attempts_are_bounded() {
        let attempts = Attempts::<u32, String>::new();
        let mut gates = Vec::new();
        for _ in 0..MAX_HUNG {
            let (tx, open) = gated();
            gates.push(tx);
            assert!(matches!(attempts.connect(Duration::ZERO, open), Err(AttemptError::TimedOut { .. })));
            assert!(matches!(
                attempts.connect(Duration::ZERO, || panic!("adopts")),
                Err(AttemptError::TimedOut { .. })
            ));
        }
        assert_eq!(attempts.pending(), (0, MAX_HUNG));
        match attempts.connect(Duration::from_secs(10), || Ok(1)) {
            Err(AttemptError::TooManyHung(n)) => assert_eq!(n, MAX_HUNG),
            other => panic!("{other:?}"),
        }
        // One ends (the peer reset it, say): room for one more.
        gates.remove(0).send(Err("reset".into())).unwrap();
        assert!(eventually(|| attempts.pending() == (0, MAX_HUNG - 1)));
        assert_eq!(attempts.connect(Duration::from_secs(10), || Ok(1)).unwrap(), 1);
        drop(gates);
        assert!(eventually(|| attempts.pending() == (0, 0)), "every hung attempt ended with its gate");
    }
}
