//! A guard dropped while its thread is already unwinding runs user code
//! (the listener's `on_release` and `on_close`, the factory's `reset`,
//! `validate` and `close`, and, if it is the pool's last reference, the
//! destructors of the factory and the listener). A panic escaping that
//! drop would be a panic in a destructor during cleanup, which aborts the
//! process; so each scenario runs in a child process (this test binary,
//! re-run with one test selected), and the parent checks that it exited
//! normally and printed its line. In the child, the pool must also have
//! kept its capacity.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::hostile::{Every, HostileConn, hostile_pool};
use rusty_db::pool::{ConnectionFactory, ConnectionPool, Hook, PoolError, PoolEventListener};

/// Set in the child's environment to the test to run there.
const CHILD: &str = "RUSTY_DB_UNWIND_CHILD";
/// What a child prints once its scenario has passed.
const SURVIVED: &str = "child survived the unwinding guard";

/// In the parent, runs `test` (the calling test's own name) again in a
/// child process and checks the child's exit; in the child, runs `scenario`.
fn in_child(test: &str, scenario: impl FnOnce()) {
    if std::env::var(CHILD).is_ok_and(|t| t == test) {
        scenario();
        println!("{SURVIVED}");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(SURVIVED),
        "{test}: a guard dropped during unwinding killed the child ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// Drops guards while their threads unwind, with `hook` panicking every
/// time; then checks that the pool kept all its capacity.
fn unwinding_guard_scenario(hook: Hook) {
    let (pool, factory, _listener) = hostile_pool(hook, Every::Call);
    for broken in [false, true] {
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let mut guard = pool.acquire().expect("a connection");
            if broken {
                // Closed on drop: on_close and close run during the unwinding.
                guard.mark_broken();
            }
            panic!("the user's code failed while holding a connection");
        }));
        assert!(unwound.is_err());
    }
    assert_full(&pool);
    pool.close();
    assert!(common::eventually(|| factory.existing() == 0), "every connection closed");
    assert!(pool.statistics().hook_panics.get(hook) > 0, "{hook} panicked and was counted");
}

fn assert_full(pool: &ConnectionPool<HostileConn>) {
    let max = pool.config().max_size;
    let all: Vec<_> =
        (0..max).map(|i| pool.acquire_timeout(Duration::from_secs(5)).unwrap_or_else(|e| panic!("{i}: {e}"))).collect();
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted { .. })));
    drop(all);
}

#[test]
fn on_release_panicking_while_a_guard_unwinds() {
    in_child("on_release_panicking_while_a_guard_unwinds", || unwinding_guard_scenario(Hook::OnRelease));
}

#[test]
fn on_close_panicking_while_a_guard_unwinds() {
    in_child("on_close_panicking_while_a_guard_unwinds", || unwinding_guard_scenario(Hook::OnClose));
}

#[test]
fn reset_panicking_while_a_guard_unwinds() {
    in_child("reset_panicking_while_a_guard_unwinds", || unwinding_guard_scenario(Hook::Reset));
}

#[test]
fn validate_panicking_while_a_guard_unwinds() {
    in_child("validate_panicking_while_a_guard_unwinds", || unwinding_guard_scenario(Hook::Validate));
}

#[test]
fn close_panicking_while_a_guard_unwinds() {
    in_child("close_panicking_while_a_guard_unwinds", || unwinding_guard_scenario(Hook::Close));
}

/// User code whose destructor panics: the factory and the listener are
/// dropped with the pool, by whoever ends its last reference.
struct DropPanics;

impl Drop for DropPanics {
    fn drop(&mut self) {
        panic!("a destructor of user code panics");
    }
}

impl ConnectionFactory<u32> for DropPanics {
    fn create(&self) -> rusty_db::pool::Result<u32> {
        Ok(7)
    }
}

impl PoolEventListener for DropPanics {}

#[test]
fn factory_and_listener_destructors_panicking_in_the_last_guard_s_unwinding_drop() {
    in_child("factory_and_listener_destructors_panicking_in_the_last_guard_s_unwinding_drop", || {
        let config = common::config().event_listener(Arc::new(DropPanics)).build().unwrap();
        let pool = ConnectionPool::new(config, Arc::new(DropPanics)).unwrap();
        let guard = pool.acquire().unwrap();
        drop(pool);
        let unwound = catch_unwind(AssertUnwindSafe(move || {
            let _last = guard;
            panic!("the user's code failed while holding the pool's last reference");
        }));
        assert!(unwound.is_err());
    });
}
