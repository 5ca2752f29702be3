//! Records of borrows: who borrowed a connection (while leak detection is
//! on), the query its borrower last recorded, the errors it reported, and
//! a leaked connection's return.

use std::time::SystemTime;

use super::inner::Inner;
use super::leak::{BorrowTrace, LeakDetector};
use super::slot::{Slot, SlotState};
use crate::sync::Ordering;

impl<C: Send + 'static> Inner<C> {
    /// Whether borrow traces are being recorded.
    #[inline(always)]
    pub(super) fn tracks_borrows(&self) -> bool {
        // Relaxed: a stale `false` just skips tracing one borrow.
        self.track_borrows.load(Ordering::Relaxed)
    }

    /// Records who is borrowing `slot`'s connection, for leak reports.
    #[cold]
    #[inline(never)]
    pub(super) fn trace_borrow(&self, slot: &Slot<C>) {
        let backtraces = self.leaks.lock().as_ref().is_some_and(|d| d.captures_backtraces());
        *slot.trace() = Some(BorrowTrace::capture(backtraces));
    }

    /// Logs (and unlists) a leaked connection that came back.
    pub(super) fn returned(&self, id: u64, trace: &BorrowTrace) {
        if let Some(after) = trace.reported_to.as_ref().and_then(|d| d.returned(id)) {
            log::info!(
                "pool {:?}: leaked connection {id} returned after {:.1} s",
                self.config.name,
                after.as_secs_f64()
            );
        }
    }

    /// Whether a borrowed connection was killed by an operator.
    pub(crate) fn is_killed(&self, index: u32, id: u64) -> bool {
        self.engine.slot(index).is_killed(id)
    }

    /// Counts an error its user reported on a borrowed connection.
    pub(crate) fn record_error(&self, index: u32) {
        self.engine.slot(index).record_error();
    }

    /// Records the last query run on a borrowed connection (and in its
    /// leak report, if it is listed as leaked already).
    pub(crate) fn set_query(&self, index: u32, query: String) {
        let slot = self.engine.slot(index);
        let mut trace = slot.trace();
        let trace = trace.get_or_insert_with(|| BorrowTrace::capture(false));
        // The detector's lock inside the slot's: `scan_leaks` nests them so too.
        if let Some(detector) = &trace.reported_to {
            detector.update_query(slot.id(), &query);
        }
        trace.query = Some(query);
        trace.query_at = Some(SystemTime::now());
    }

    /// Attaches a leak detector (replacing any other).
    ///
    /// Connections borrowed before it was attached have no record of their
    /// borrower; they are traced from now on (thread unknown, borrowed at
    /// least since now), so a leak already in progress is reported too. A
    /// borrow already reported to the detector it replaces is reported to
    /// this one once past its threshold (and unlisted from the old one).
    pub(crate) fn attach_leak_detector(&self, detector: LeakDetector) {
        *self.leaks.lock() = Some(detector);
        // Relaxed: see `tracks_borrows`.
        self.track_borrows.store(true, Ordering::Relaxed);
        for (_, slot) in self.engine.slots().filter(|(_, s)| s.state() == SlotState::InUse) {
            // Who borrowed it, and when, is unknown: the borrow counts from
            // now. A slot returned meanwhile keeps this trace only until its
            // next borrow, which records its own (tracking is on now).
            slot.trace().get_or_insert_with(|| BorrowTrace { thread_name: None, ..BorrowTrace::capture(false) });
        }
    }
}
