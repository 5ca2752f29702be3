//! Hooks for observing a pool, in the spirit of r2d2's `HandleEvent`.
//!
//! A [`PoolEventListener`] set with
//! [`PoolConfigBuilder::event_listener`](super::PoolConfigBuilder::event_listener)
//! is called synchronously on the thread where the event happens, so it
//! should be quick and should not block; every method has a no-op default.
//! A hook that panics costs the pool nothing: the panic is caught, logged
//! and counted under its [`Hook`](super::Hook) in
//! [`PoolStatistics::hook_panics`](super::PoolStatistics::hook_panics),
//! and the pool goes on as if the hook had returned.
//! Timing the fast path costs two clock reads per acquire, paid only while
//! a listener is set.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::leak::LeakInfo;

/// Why a connection left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Idle longer than `idle_timeout` (or surplus shrunk by adaptive sizing).
    Idle,
    /// Reached its lifetime or usage limit (`max_lifetime`, `AgingPolicy`).
    Lifetime,
    /// Marked broken by its user, or `reset` failed.
    Broken,
    /// Failed (or panicked in) validation.
    Validation,
    /// Killed on request (`discard`, or an operator).
    Killed,
    /// The pool was closed.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in a stable order (for per-reason counters and labels).
    pub const ALL: [CloseReason; 6] = [
        CloseReason::Idle,
        CloseReason::Lifetime,
        CloseReason::Broken,
        CloseReason::Validation,
        CloseReason::Killed,
        CloseReason::Shutdown,
    ];

    /// The reason's position in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A lower-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::Lifetime => "lifetime",
            CloseReason::Broken => "broken",
            CloseReason::Validation => "validation",
            CloseReason::Killed => "killed",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives a pool's events. Every method defaults to doing nothing.
///
/// ```
/// use rusty_db::pool::{CloseReason, PoolEventListener};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Default)]
/// struct Closes(AtomicU64);
///
/// impl PoolEventListener for Closes {
///     fn on_close(&self, _connection_id: u64, reason: CloseReason) {
///         if reason != CloseReason::Shutdown {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait PoolEventListener: Send + Sync + 'static {
    /// A connection was created.
    fn on_create(&self, connection_id: u64) {
        let _ = connection_id;
    }

    /// A connection was handed out after `wait_time`.
    fn on_acquire(&self, connection_id: u64, wait_time: Duration) {
        let _ = (connection_id, wait_time);
    }

    /// A connection came back after being held for `held_for`.
    fn on_release(&self, connection_id: u64, held_for: Duration) {
        let _ = (connection_id, held_for);
    }

    /// An acquire gave up after `waited`.
    fn on_timeout(&self, waited: Duration) {
        let _ = waited;
    }

    /// A connection was closed.
    fn on_close(&self, connection_id: u64, reason: CloseReason) {
        let _ = (connection_id, reason);
    }

    /// A connection has been borrowed for longer than the leak threshold
    /// (reported once per borrow).
    fn on_leak(&self, leak: &LeakInfo) {
        let _ = leak;
    }
}

/// A shared listener, comparable by identity so `PoolConfig` stays `PartialEq`.
#[derive(Clone)]
pub struct EventListenerRef(pub(crate) Arc<dyn PoolEventListener>);

impl EventListenerRef {
    /// Wraps a listener.
    pub fn new(listener: Arc<dyn PoolEventListener>) -> Self {
        EventListenerRef(listener)
    }
}

impl fmt::Debug for EventListenerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventListener")
    }
}

impl PartialEq for EventListenerRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
