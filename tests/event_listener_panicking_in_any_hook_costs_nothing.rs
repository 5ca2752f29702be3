//! A `PoolEventListener` that panics, in any hook, always or on one call
//! in three, costs the pool nothing: under 8 threads every acquire returns
//! what it would have without the listener, all `max_size` connections can
//! still be held at once, `close()` returns within its bound, every
//! connection is closed through the factory, and the statistics count each
//! panic under its hook.

mod common;

use rusty_db::pool::Hook;

panicking_hooks! {
    on_create_always, on_create_one_call_in_three: Hook::OnCreate;
    on_acquire_always, on_acquire_one_call_in_three: Hook::OnAcquire;
    on_release_always, on_release_one_call_in_three: Hook::OnRelease;
    on_timeout_always, on_timeout_one_call_in_three: Hook::OnTimeout;
    on_close_always, on_close_one_call_in_three: Hook::OnClose;
    on_leak_always, on_leak_one_call_in_three: Hook::OnLeak;
}
