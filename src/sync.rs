//! The one place that names synchronization primitives.
//!
//! Everything lock-free in the crate imports its atomics, cells, locks and
//! fences from here, so that `RUSTFLAGS="--cfg loom"` swaps them all for
//! loom's model-checked versions at once. The lock and condition variable
//! are thin wrappers so both backends share one API (parking_lot's
//! `&mut guard` style).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

pub(crate) use crossbeam_utils::CachePadded;

use std::time::Instant;

/// The releaser's half of the pool's push-then-look handshake: between its
/// `SeqCst` push and its `SeqCst` loads of the waiter count and the closed
/// flag.
///
/// On hardware nothing more is needed. The other side (a waiter, or
/// `close`) publishes itself, issues a `SeqCst` fence and then looks at the
/// stacks. If the releaser's `SeqCst` load missed that publication, the load
/// precedes the fence in the single total order `S`, and so does the push,
/// which is `SeqCst` and sequenced before the load; a look after the fence
/// then cannot miss the push (C++20 \[atomics.order\] p4, which Rust follows).
/// On x86 this saves an `mfence` per release: the push's locked CAS is
/// already a full barrier and a `SeqCst` load is a plain `mov`.
///
/// Loom models `SeqCst` accesses as `AcqRel` only, so it would report a lost
/// wake-up that cannot happen. Under loom this is a real `SeqCst` fence:
/// the models check the fenced protocol, which implies the unfenced one.
///
/// The runtime's lanes use it the same way, after each `SeqCst`
/// read-modify-write that is followed by a `SeqCst` load of the other
/// side's word (a place reserved then `shut` read; a place given back then
/// `blocked` read; `blocked` counted then the places read).
#[inline(always)]
pub(crate) fn releaser_fence() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// Lets another thread run (the lanes' shutdown drain spins on it).
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

/// The runtime's job queues and worker parking: crossbeam's lock-free
/// `Injector` and `Parker`, or under loom the small stand-ins below, which
/// keep their API (a lock-free queue any thread may steal from; a park
/// token) on loom's primitives so that the lanes' handshakes can be
/// model-checked.
#[cfg(not(loom))]
pub(crate) use crossbeam_deque::{Injector, Steal};
#[cfg(not(loom))]
pub(crate) use crossbeam_utils::sync::{Parker, Unparker};

#[cfg(loom)]
pub use loom_stand_ins::{Injector, Parker, Steal, Unparker};

#[cfg(loom)]
mod loom_stand_ins {
    use loom::sync::atomic::{AtomicPtr, Ordering};
    use loom::sync::{Arc, Condvar, Mutex};

    /// `crossbeam_deque::Steal`, as far as the lanes use it.
    pub enum Steal<T> {
        /// Nothing to take.
        Empty,
        /// Took this.
        Success(T),
        /// Lost a race: try again (the stand-in never does).
        #[allow(dead_code)]
        Retry,
    }

    /// `crossbeam_deque::Injector`, lock-free as the real one is, so that a
    /// push and a steal order nothing but through their own atomics (a
    /// lock would synchronize them and hide a missing handshake fence): a
    /// Treiber stack whose nodes are never freed (so no pop reads a freed
    /// node and no address comes back: no ABA). Models are small; the leak
    /// is bounded by their pushes.
    pub struct Injector<T> {
        head: AtomicPtr<Node<T>>,
    }

    struct Node<T> {
        value: std::cell::Cell<Option<T>>,
        next: *mut Node<T>,
    }

    // SAFETY: a node's value is taken once, by the one pop whose CAS
    // unlinked it; `next` is written before the node is published.
    unsafe impl<T: Send> Sync for Injector<T> {}
    // SAFETY: as above; the queue owns values of a `Send` type.
    unsafe impl<T: Send> Send for Injector<T> {}

    impl<T> Injector<T> {
        /// An empty queue.
        pub fn new() -> Self {
            Injector { head: AtomicPtr::new(std::ptr::null_mut()) }
        }

        /// Queues `value`.
        pub fn push(&self, value: T) {
            let node =
                Box::into_raw(Box::new(Node { value: std::cell::Cell::new(Some(value)), next: std::ptr::null_mut() }));
            let mut head = self.head.load(Ordering::Relaxed);
            loop {
                // SAFETY: `node` is ours until the CAS below publishes it.
                unsafe { (*node).next = head };
                // Release: publishes the node's fields to the pop that takes it.
                match self.head.compare_exchange(head, node, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => return,
                    Err(actual) => head = actual,
                }
            }
        }

        /// Takes a value.
        pub fn steal(&self) -> Steal<T> {
            // Acquire: pairs with the push that published the node.
            let mut head = self.head.load(Ordering::Acquire);
            loop {
                if head.is_null() {
                    return Steal::Empty;
                }
                // SAFETY: nodes are never freed, and `next` was written
                // before the node was published.
                let next = unsafe { (*head).next };
                match self.head.compare_exchange(head, next, Ordering::Acquire, Ordering::Acquire) {
                    // SAFETY: our CAS unlinked the node: its value is ours.
                    Ok(_) => return unsafe { (*head).value.take() }.map_or(Steal::Empty, Steal::Success),
                    Err(actual) => head = actual,
                }
            }
        }
    }

    struct Token {
        set: Mutex<bool>,
        cv: Condvar,
    }

    /// `crossbeam_utils::sync::Parker`: `park` takes the token `unpark` set.
    pub struct Parker {
        unparker: Unparker,
    }

    /// `crossbeam_utils::sync::Unparker`.
    #[derive(Clone)]
    pub struct Unparker(Arc<Token>);

    impl Default for Parker {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Parker {
        /// A parker without a token.
        pub fn new() -> Self {
            Parker { unparker: Unparker(Arc::new(Token { set: Mutex::new(false), cv: Condvar::new() })) }
        }

        /// Blocks until the token is set, and takes it.
        pub fn park(&self) {
            let token = &self.unparker.0;
            let mut set = token.set.lock().unwrap_or_else(|e| e.into_inner());
            while !*set {
                set = token.cv.wait(set).unwrap_or_else(|e| e.into_inner());
            }
            *set = false;
        }

        /// The handle that sets the token.
        pub fn unparker(&self) -> &Unparker {
            &self.unparker
        }
    }

    impl Unparker {
        /// Sets the token, waking the parked thread if there is one.
        pub fn unpark(&self) {
            *self.0.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.0.cv.notify_one();
        }
    }
}

/// A handle to a thread (to unpark it), and the current thread's.
#[cfg(not(loom))]
pub(crate) use std::thread::{Thread, current as current_thread};

#[cfg(loom)]
pub(crate) use loom::thread::{Thread, current as current_thread};

/// Parks the current thread until it is unparked, `deadline` passes, or
/// it wakes spuriously (callers re-check their condition in a loop).
///
/// Under loom there is no time: it parks until unparked, so a model that
/// forgets to unpark shows up as a deadlock.
pub(crate) fn park_until(deadline: Instant) {
    #[cfg(not(loom))]
    {
        let now = Instant::now();
        if deadline > now {
            std::thread::park_timeout(deadline - now);
        }
    }
    #[cfg(loom)]
    {
        let _ = deadline;
        loom::thread::park();
    }
}

/// An `UnsafeCell` whose accesses loom can track.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(#[cfg(not(loom))] std::cell::UnsafeCell<T>, #[cfg(loom)] loom::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(std::cell::UnsafeCell::new(value));
        #[cfg(loom)]
        return Self(loom::cell::UnsafeCell::new(value));
    }

    /// Runs `f` with a mutable pointer to the contents.
    ///
    /// The caller must hold exclusive access for the duration of `f`; loom
    /// checks that it does.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.0.get());
        #[cfg(loom)]
        return self.0.with_mut(f);
    }
}

/// A mutual-exclusion lock (parking_lot, or loom's under `cfg(loom)`).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(#[cfg(not(loom))] parking_lot::Mutex<T>, #[cfg(loom)] loom::sync::Mutex<T>);

/// The guard of a locked [`Mutex`].
pub(crate) struct MutexGuard<'a, T>(
    #[cfg(not(loom))] parking_lot::MutexGuard<'a, T>,
    #[cfg(loom)] Option<loom::sync::MutexGuard<'a, T>>,
);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(parking_lot::Mutex::new(value));
        #[cfg(loom)]
        return Self(loom::sync::Mutex::new(value));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return MutexGuard(self.0.lock());
        // A poisoned lock only means another model thread panicked; the
        // model fails on that panic anyway.
        #[cfg(loom)]
        return MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())));
    }
}

impl<T> Mutex<T> {
    /// Locks, waiting until `deadline` at most; `None` if it is still held
    /// then. Under loom there is no time: one attempt.
    pub(crate) fn try_lock_until(&self, deadline: Instant) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        return self.0.try_lock_until(deadline).map(MutexGuard);
        #[cfg(loom)]
        {
            let _ = deadline;
            return self.0.try_lock().ok().map(|g| MutexGuard(Some(g)));
        }
    }
}

impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        #[cfg(not(loom))]
        return &self.0;
        #[cfg(loom)]
        return self.0.as_ref().expect("guard present outside a wait");
    }
}

impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        return &mut self.0;
        #[cfg(loom)]
        return self.0.as_mut().expect("guard present outside a wait");
    }
}

/// A condition variable paired with [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(#[cfg(not(loom))] parking_lot::Condvar, #[cfg(loom)] loom::sync::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        #[cfg(not(loom))]
        return Self(parking_lot::Condvar::new());
        #[cfg(loom)]
        return Self(loom::sync::Condvar::new());
    }

    /// Blocks until notified or until `deadline`; returns `true` on timeout.
    ///
    /// Under loom there is no time: the wait lasts until a notification, so
    /// a model that forgets to notify shows up as a deadlock.
    pub(crate) fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, deadline: Instant) -> bool {
        #[cfg(not(loom))]
        return self.0.wait_until(&mut guard.0, deadline).timed_out();
        #[cfg(loom)]
        {
            let _ = deadline;
            let inner = guard.0.take().expect("guard present outside a wait");
            guard.0 = Some(self.0.wait(inner).unwrap_or_else(|e| e.into_inner()));
            false
        }
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }
}
