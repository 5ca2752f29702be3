//! A guard dropped while its thread is already unwinding runs user code
//! (the listener's `on_release` and `on_close`, the factory's `reset`,
//! `validate` and `close`). A panic escaping that drop would be a panic in
//! a destructor during cleanup, which aborts the process; so each scenario
//! runs in a child process (this test binary, re-run with one test
//! selected), and the parent checks that it exited normally and printed
//! its line. In the child, the pool must also have kept its capacity.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::time::Duration;

use common::hostile::{Every, HostileConn, hostile_pool};
use rusty_db::pool::{ConnectionPool, Hook, PoolError};

/// Set in the child's environment to the hook to exercise.
const CHILD: &str = "RUSTY_DB_UNWIND_CHILD";
/// What a child prints once its scenario has passed.
const SURVIVED: &str = "child survived the unwinding guard";

/// In the parent, runs `test` (this function's own name) again in a child
/// process for `hook` and checks the child's exit; in the child, runs the
/// scenario.
fn in_child(test: &str, hook: Hook) {
    if std::env::var(CHILD).is_ok_and(|h| h == hook.as_str()) {
        unwinding_guard_scenario(hook);
        println!("{SURVIVED}");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, hook.as_str())
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(SURVIVED),
        "with {hook} panicking, a guard dropped during unwinding killed the child ({}):\n{stdout}\n{stderr}",
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
    in_child("on_release_panicking_while_a_guard_unwinds", Hook::OnRelease);
}

#[test]
fn on_close_panicking_while_a_guard_unwinds() {
    in_child("on_close_panicking_while_a_guard_unwinds", Hook::OnClose);
}

#[test]
fn reset_panicking_while_a_guard_unwinds() {
    in_child("reset_panicking_while_a_guard_unwinds", Hook::Reset);
}

#[test]
fn validate_panicking_while_a_guard_unwinds() {
    in_child("validate_panicking_while_a_guard_unwinds", Hook::Validate);
}

#[test]
fn close_panicking_while_a_guard_unwinds() {
    in_child("close_panicking_while_a_guard_unwinds", Hook::Close);
}
