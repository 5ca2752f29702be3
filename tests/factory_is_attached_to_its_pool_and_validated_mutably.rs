//! The pool tells its factory who it is before the first `create`
//! (`attach`, with the pool's configuration), and validates through
//! `validate_mut`, so a client whose every query takes `&mut self` can be
//! checked with a real round trip.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, Result};

/// A connection that counts the round trips made on it.
struct Session {
    round_trips: u32,
}

/// Records what the pool told it, in order.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl ConnectionFactory<Session> for Recorder {
    fn create(&self) -> Result<Session> {
        self.log("create".into());
        Ok(Session { round_trips: 0 })
    }

    fn validate(&self, _: &Session) -> Result<bool> {
        self.log("validate".into());
        Ok(false)
    }

    fn validate_mut(&self, session: &mut Session) -> Result<bool> {
        session.round_trips += 1;
        self.log(format!("validate_mut {}", session.round_trips));
        Ok(true)
    }

    fn attach(&self, pool: &PoolConfig) {
        self.log(format!("attach {} max {}", pool.name, pool.max_size));
    }
}

#[test]
fn attach_comes_first_and_validation_gets_the_connection_mutably() {
    let factory = Arc::new(Recorder::default());
    let config = PoolConfig::builder()
        .name("orders")
        .min_size(0)
        .initial_size(1)
        .max_size(3)
        .validate_on_acquire(true)
        // Every acquire makes the round trip this test counts.
        .validation_bypass_window(Duration::ZERO)
        .validate_on_release(true)
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::clone(&factory)).unwrap();
    let guard = pool.acquire().unwrap();
    assert_eq!(guard.round_trips, 1, "validated on acquire, through validate_mut");
    drop(guard);
    let guard = pool.acquire().unwrap();
    assert_eq!(guard.round_trips, 3, "on release, then on the next acquire");
    drop(guard);
    pool.close();

    let calls = factory.calls.lock().unwrap().clone();
    assert_eq!(
        calls[..5],
        ["attach orders max 3", "create", "validate_mut 1", "validate_mut 2", "validate_mut 3"],
        "validate (the `&` form) is never called by the pool: {calls:?}"
    );
    assert!(!calls.iter().any(|c| c == "validate"), "{calls:?}");
}

#[test]
fn a_factory_given_to_two_pools_hears_from_each() {
    let factory = Arc::new(Recorder::default());
    let config = |name: &str| PoolConfig::builder().name(name).min_size(0).initial_size(0).max_size(2).build().unwrap();
    let a = ConnectionPool::new(config("a"), Arc::clone(&factory)).unwrap();
    let b = ConnectionPool::new(config("b"), Arc::clone(&factory)).unwrap();
    let calls = factory.calls.lock().unwrap().clone();
    assert_eq!(calls, ["attach a max 2", "attach b max 2"]);
    a.close();
    b.close();
}
