//! Calling user code: the factory's methods and the listener's hooks.
//!
//! Every piece of code the pool runs on a user's behalf may panic, hang or
//! call back into the pool. A panic is caught where the hook is called,
//! counted in the statistics ([`PoolStatistics::hook_panics`]), logged, and
//! the pool goes on as if the hook had returned: a listener's hook as if it
//! had done nothing, a factory method as if it had failed. No panic of a
//! hook leaves a pool method, and none reaches a destructor of ours (a
//! panic escaping a guard's drop while its thread unwinds would abort the
//! process).
//!
//! The first panic of each hook in a pool is logged at `warn`, later ones
//! at `debug`: a listener that panics on every release would otherwise log
//! once per operation. The count is exact either way.
//!
//! [`PoolStatistics::hook_panics`]: super::PoolStatistics::hook_panics

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::events::PoolEventListener;
use super::inner::Inner;
use crate::sync::{AtomicBool, Ordering};

/// A piece of user code the pool calls: a
/// [`ConnectionFactory`](super::ConnectionFactory) method or a
/// [`PoolEventListener`] hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// `ConnectionFactory::create`.
    Create,
    /// `ConnectionFactory::validate`.
    Validate,
    /// `ConnectionFactory::validate_query` (a `ConnectionValidator`'s query).
    ValidateQuery,
    /// `ConnectionFactory::reset`.
    Reset,
    /// `ConnectionFactory::close`.
    Close,
    /// `ConnectionFactory::describe`.
    Describe,
    /// A connection's cancel hook (`ConnectionDescription::on_cancel`).
    Cancel,
    /// `ConnectionFactory::attach`.
    Attach,
    /// `ConnectionFactory::assign_partition`.
    AssignPartition,
    /// `PoolEventListener::on_create`.
    OnCreate,
    /// `PoolEventListener::on_acquire`.
    OnAcquire,
    /// `PoolEventListener::on_release`.
    OnRelease,
    /// `PoolEventListener::on_timeout`.
    OnTimeout,
    /// `PoolEventListener::on_close`.
    OnClose,
    /// `PoolEventListener::on_leak`.
    OnLeak,
}

impl Hook {
    /// How many hooks there are.
    pub const COUNT: usize = 15;

    /// Every hook, in a stable order (for per-hook counters and labels).
    pub const ALL: [Hook; Hook::COUNT] = [
        Hook::Create,
        Hook::Validate,
        Hook::ValidateQuery,
        Hook::Reset,
        Hook::Close,
        Hook::Describe,
        Hook::Cancel,
        Hook::Attach,
        Hook::AssignPartition,
        Hook::OnCreate,
        Hook::OnAcquire,
        Hook::OnRelease,
        Hook::OnTimeout,
        Hook::OnClose,
        Hook::OnLeak,
    ];

    /// The hook's position in [`Hook::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The method's name (`"create"`, `"on_release"`), as in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Create => "create",
            Hook::Validate => "validate",
            Hook::ValidateQuery => "validate_query",
            Hook::Reset => "reset",
            Hook::Close => "close",
            Hook::Describe => "describe",
            Hook::Cancel => "cancel",
            Hook::Attach => "attach",
            Hook::AssignPartition => "assign_partition",
            Hook::OnCreate => "on_create",
            Hook::OnAcquire => "on_acquire",
            Hook::OnRelease => "on_release",
            Hook::OnTimeout => "on_timeout",
            Hook::OnClose => "on_close",
            Hook::OnLeak => "on_leak",
        }
    }

    /// The trait the method belongs to.
    pub fn trait_name(self) -> &'static str {
        match self {
            Hook::Cancel => "ConnectionDescription",
            _ if self.is_factory_method() => "ConnectionFactory",
            _ => "PoolEventListener",
        }
    }

    fn is_factory_method(self) -> bool {
        matches!(
            self,
            Hook::Create
                | Hook::Validate
                | Hook::ValidateQuery
                | Hook::Reset
                | Hook::Close
                | Hook::Describe
                | Hook::Cancel
                | Hook::Attach
                | Hook::AssignPartition
        )
    }
}

impl fmt::Display for Hook {
    /// `Trait::method`, as in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.trait_name(), self.as_str())
    }
}

/// Which hooks of a pool have panicked before (so later panics log quietly).
#[derive(Debug, Default)]
pub(crate) struct Panicked([AtomicBool; Hook::COUNT]);

impl Panicked {
    /// Whether this is the first panic of `hook` in the pool.
    fn first(&self, hook: Hook) -> bool {
        // Relaxed: only picks the log level.
        !self.0[hook.index()].swap(true, Ordering::Relaxed)
    }
}

impl<C: Send + 'static> Inner<C> {
    /// Runs the user's `f` for `hook`; `None` if it panicked (the panic is
    /// counted and logged). Keep `R` small on hot paths: a `bool`, not a
    /// `Result` (see `is_valid_in`).
    #[inline(always)]
    pub(crate) fn guarded<R>(&self, hook: Hook, f: impl FnOnce() -> R) -> Option<R> {
        self.caught(hook, f).ok()
    }

    /// Runs the user's check `f` for `hook`: its verdict, or `false` if it
    /// panicked (counted and logged). The hot paths' form of `guarded`.
    #[inline(always)]
    pub(crate) fn passes(&self, hook: Hook, f: impl FnOnce() -> bool) -> bool {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(verdict) => verdict,
            Err(payload) => {
                self.hook_panicked(hook, &*payload);
                false
            }
        }
    }

    /// Like [`guarded`](Self::guarded), with the panic's message.
    #[inline(always)]
    pub(crate) fn caught<R>(&self, hook: Hook, f: impl FnOnce() -> R) -> Result<R, String> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Ok(r),
            Err(payload) => Err(self.hook_panicked(hook, &*payload)),
        }
    }

    /// Tells the event listener, if there is one; a panic in it is the
    /// listener's, counted and logged, never the caller's.
    #[inline]
    pub(crate) fn notify(&self, hook: Hook, f: impl FnOnce(&dyn PoolEventListener)) {
        if let Some(listener) = &self.listener {
            self.guarded(hook, || f(&**listener));
        }
    }

    /// Counts and logs a hook's panic; returns its message.
    #[cold]
    #[inline(never)]
    fn hook_panicked(&self, hook: Hook, payload: &(dyn Any + Send)) -> String {
        self.stats.record_hook_panic(hook);
        let name = &self.config.name;
        let message = panic_message(payload);
        if self.panicked.first(hook) {
            log::warn!(
                "pool {name:?}: {hook} panicked: {message}; the pool carries on as if it had {} \
                 (later panics of this hook are logged at debug and counted in hook_panics)",
                if hook.is_factory_method() { "failed" } else { "returned" }
            );
        } else {
            log::debug!("pool {name:?}: {hook} panicked again: {message}");
        }
        message
    }
}

/// The message of a caught panic, for logs and errors.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Hook;

    #[test]
    fn every_hook_is_listed_once_at_its_index() {
        for (i, hook) in Hook::ALL.into_iter().enumerate() {
            assert_eq!(hook.index(), i, "{hook}");
        }
        let mut names: Vec<&str> = Hook::ALL.iter().map(|h| h.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Hook::COUNT);
        assert_eq!(Hook::OnRelease.to_string(), "PoolEventListener::on_release");
        assert_eq!(Hook::ValidateQuery.to_string(), "ConnectionFactory::validate_query");
    }
}
