//! What a slot carries for the pool's optional features (the statement
//! cache, partitions), kept beside the slab rather than in it: the slots
//! the lock-free paths touch stay as small as they were (a larger slot
//! cost the fast path index arithmetic and cache footprint). Only a
//! connection's borrower touches its extras, and never on the fast path.

use parking_lot::{Mutex, MutexGuard};

use super::partition::Admission;
use super::statements::AnyStatements;

/// One slot's extras.
#[derive(Default)]
pub(crate) struct SlotExtras {
    /// A connection's statement cache, with that connection's id: a later
    /// connection in the slot finds another id and starts afresh.
    statements: Mutex<Option<(u64, AnyStatements)>>,
    /// The connection (by id) and the partition tag (index + 1) it was
    /// last prepared for.
    partition: Mutex<(u64, usize)>,
    /// The current borrow's partition claim.
    claim: Mutex<Option<Admission>>,
}

impl SlotExtras {
    /// Takes connection `id`'s statement cache out, for its borrower to use
    /// and put back; `None` if it has none yet (one left by an earlier
    /// connection is dropped: its statements died with it).
    pub(crate) fn take_statements(&self, id: u64) -> Option<AnyStatements> {
        match self.statements.lock().take() {
            Some((owner, cache)) if owner == id => Some(cache),
            _ => None,
        }
    }

    /// Puts connection `id`'s statement cache back.
    pub(crate) fn put_statements(&self, id: u64, cache: AnyStatements) {
        *self.statements.lock() = Some((id, cache));
    }

    /// The partition tag connection `id` was last prepared for (0: none).
    pub(crate) fn partition(&self, id: u64) -> usize {
        match *self.partition.lock() {
            (owner, tag) if owner == id => tag,
            _ => 0,
        }
    }

    /// Connection `id` is now prepared for partition `tag`.
    pub(crate) fn set_partition(&self, id: u64, tag: usize) {
        *self.partition.lock() = (id, tag);
    }

    /// Keeps the current borrow's partition claim.
    pub(crate) fn set_claim(&self, claim: Admission) {
        *self.claim.lock() = Some(claim);
    }

    /// The current borrow's claim, to use in place.
    pub(crate) fn claim(&self) -> MutexGuard<'_, Option<Admission>> {
        self.claim.lock()
    }

    /// Takes the claim out, at the borrow's end.
    pub(crate) fn take_claim(&self) -> Option<Admission> {
        self.claim.lock().take()
    }
}
