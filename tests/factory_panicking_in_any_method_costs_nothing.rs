//! A `ConnectionFactory` that panics, in any method, always or on one call
//! in three, costs the pool nothing: a panicking `create` is a failed
//! create, a panicking `validate`, `validate_query` or `reset` closes that
//! connection, a panicking `close` still frees the slot. Under 8 threads
//! no acquire returns anything but a timeout, an exhausted pool or (while
//! `create` panics) the factory's error; afterwards all `max_size`
//! connections can be held at once, `close()` returns within its bound,
//! and the statistics count each panic under its method.

mod common;

use common::hostile::{Every, assert_intact, drive, hostile_pool};
use rusty_db::pool::Hook;

fn survives(hook: Hook, every: Every) {
    let (pool, factory, _listener) = hostile_pool(hook, every);
    let errors = drive(&pool, hook);
    assert_eq!(errors, Vec::<String>::new(), "with {hook} panicking ({every:?})");
    assert_intact(pool, &factory, &factory.trigger, hook);
}

macro_rules! factory_methods {
    ($($always:ident, $sometimes:ident: $hook:expr;)*) => {$(
        #[test]
        fn $always() {
            survives($hook, Every::Call);
        }

        #[test]
        fn $sometimes() {
            survives($hook, Every::OneIn(3));
        }
    )*};
}

factory_methods! {
    create_always, create_one_call_in_three: Hook::Create;
    validate_always, validate_one_call_in_three: Hook::Validate;
    validate_query_always, validate_query_one_call_in_three: Hook::ValidateQuery;
    reset_always, reset_one_call_in_three: Hook::Reset;
    close_always, close_one_call_in_three: Hook::Close;
}
