//! A `ConnectionFactory` that panics, in any method, always or on one call
//! in three, costs the pool nothing: a panicking `create` is a failed
//! create, a panicking `validate`, `validate_query` or `reset` closes that
//! connection, a panicking `close` still frees the slot, a panicking
//! `attach` is only counted. Under 8 threads no acquire returns anything
//! but a timeout, an exhausted pool, or what the panicking method makes of
//! it (the factory's error while `create` panics, `ValidationFailed` while
//! validation does); afterwards all `max_size` connections can be held at
//! once, `close()` returns within its bound, and the statistics count each
//! panic under its method.

mod common;

use rusty_db::pool::Hook;

panicking_hooks! {
    create_always, create_one_call_in_three: Hook::Create;
    validate_always, validate_one_call_in_three: Hook::Validate;
    validate_query_always, validate_query_one_call_in_three: Hook::ValidateQuery;
    reset_always, reset_one_call_in_three: Hook::Reset;
    close_always, close_one_call_in_three: Hook::Close;
    attach_always, attach_one_call_in_three: Hook::Attach;
}
