//! The pool's own side of the admin API: a factory describes its
//! connections (a panicking `describe` costs nothing but its description),
//! the list shows them with the borrower's query, and a kill by id closes
//! an idle connection at once or marks a borrowed one, whose cancel hook
//! runs (a panicking one is caught and counted).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestConn, TrackingFactory, config, eventually};
use rusty_db::pool::{
    CloseReason, ConnectionDescription, ConnectionFactory, ConnectionPool, ConnectionState, Hook, Killed, PoolError,
    Result,
};

/// The tracking factory, describing each connection; its cancel hook
/// counts calls, and panics when asked to.
struct Describing {
    inner: Arc<TrackingFactory>,
    cancels: Arc<AtomicUsize>,
    panic_in_describe: bool,
    panic_in_cancel: bool,
}

impl ConnectionFactory<TestConn> for Describing {
    fn create(&self) -> Result<TestConn> {
        self.inner.create()
    }
    fn close(&self, conn: TestConn) -> Result<()> {
        self.inner.close(conn)
    }
    fn describe(&self, conn: &TestConn) -> Option<ConnectionDescription> {
        assert!(!self.panic_in_describe, "describe panics on purpose");
        let (cancels, panics) = (Arc::clone(&self.cancels), self.panic_in_cancel);
        Some(
            ConnectionDescription::new()
                .user("admin")
                .database("rustydb")
                .client_addr(format!("10.0.0.1:{}", 40_000 + conn.serial))
                .on_cancel(move || {
                    cancels.fetch_add(1, Ordering::SeqCst);
                    assert!(!panics, "cancel panics on purpose");
                    Ok(())
                }),
        )
    }
}

fn pool(
    panic_in_describe: bool,
    panic_in_cancel: bool,
) -> (ConnectionPool<TestConn>, Arc<TrackingFactory>, Arc<AtomicUsize>) {
    let inner = TrackingFactory::new();
    let cancels = Arc::new(AtomicUsize::new(0));
    let factory =
        Describing { inner: Arc::clone(&inner), cancels: Arc::clone(&cancels), panic_in_describe, panic_in_cancel };
    let pool = ConnectionPool::new(config().min_size(2).initial_size(2).build().unwrap(), Arc::new(factory)).unwrap();
    (pool, inner, cancels)
}

#[test]
fn connections_are_listed_with_their_description_and_query() {
    let (pool, factory, _) = pool(false, false);
    let conn = pool.acquire().unwrap();
    conn.set_query("SELECT * FROM users");
    let listed = pool.connections();
    assert_eq!(listed.len(), 2);
    let active = listed.iter().find(|c| c.id == conn.id()).unwrap();
    assert_eq!(active.state, ConnectionState::Active);
    assert_eq!(active.query.as_deref(), Some("SELECT * FROM users"));
    let described = active.description.as_deref().expect("described");
    assert_eq!((described.user.as_deref(), described.database.as_deref()), (Some("admin"), Some("rustydb")));
    assert!(described.client_addr.as_deref().unwrap().starts_with("10.0.0.1:"));
    assert!(active.last_activity >= active.connected_at);
    let idle = listed.iter().find(|c| c.id != conn.id()).unwrap();
    assert_eq!((idle.state, idle.query.as_deref()), (ConnectionState::Idle, None));
    drop(conn);
    factory.assert_no_violations();
}

#[test]
fn a_panicking_describe_costs_only_the_description() {
    let (pool, factory, _) = pool(true, false);
    let conn = pool.acquire().unwrap();
    assert!(pool.connections().iter().all(|c| c.description.is_none()));
    assert!(pool.statistics().hook_panics.get(Hook::Describe) >= 2, "counted, once per creation");
    drop(conn);
    assert_eq!(pool.size(), 2);
    factory.assert_no_violations();
}

#[test]
fn an_idle_connection_is_closed_at_once_and_a_borrowed_one_at_its_return() {
    let (pool, factory, cancels) = pool(false, false);
    let held = pool.acquire().unwrap();
    let idle = pool.connections().into_iter().find(|c| c.state == ConnectionState::Idle).unwrap().id;
    assert_eq!(pool.kill_connection(idle, false).unwrap(), Killed::Closed);
    assert_eq!((pool.size(), factory.closed()), (1, 1));
    assert!(matches!(pool.kill_connection(idle, true), Err(PoolError::ConnectionNotFound(id)) if id == idle));
    // Borrowed: refused without force; with force, cancelled and marked.
    assert!(matches!(pool.kill_connection(held.id(), false), Err(PoolError::ConnectionInUse(_))));
    assert!(!held.is_killed());
    assert_eq!(pool.kill_connection(held.id(), true).unwrap(), Killed::Marked);
    assert!(held.is_killed());
    assert!(eventually(|| cancels.load(Ordering::SeqCst) == 1), "the cancel hook ran");
    drop(held);
    assert_eq!(factory.closed(), 2, "closed when it came back, not returned");
    assert_eq!(pool.statistics().closed_by_reason.get(CloseReason::Killed), 2);
    // The capacity is back: the pool opens new connections up to min_size.
    drop(pool.acquire().unwrap());
    assert!(eventually(|| pool.size() == 2));
    assert!(matches!(pool.kill_connection(u64::MAX, true), Err(PoolError::ConnectionNotFound(_))));
    factory.assert_no_violations();
}

#[test]
fn a_kill_mark_never_hits_a_later_connection_in_the_same_slot() {
    let (pool, factory, _) = pool(false, false);
    let held = pool.acquire().unwrap();
    let id = held.id();
    pool.kill_connection(id, true).unwrap();
    drop(held); // closed; its slot is reused by the next connection
    for _ in 0..8 {
        let conn = pool.acquire().unwrap();
        assert_ne!(conn.id(), id);
        assert!(!conn.is_killed(), "connection {} was never killed", conn.id());
    }
    factory.assert_no_violations();
}

#[test]
fn a_panicking_cancel_hook_is_caught_and_the_kill_still_holds() {
    let (pool, factory, cancels) = pool(false, true);
    let held = pool.acquire().unwrap();
    assert_eq!(pool.kill_connection(held.id(), true).unwrap(), Killed::Marked);
    assert!(eventually(|| pool.statistics().hook_panics.get(Hook::Cancel) == 1));
    assert_eq!(cancels.load(Ordering::SeqCst), 1);
    drop(held);
    assert_eq!(pool.statistics().closed_by_reason.get(CloseReason::Killed), 1);
    factory.assert_no_violations();
}
