//! A statement driver (`PrepareStatement`) that panics orphans no
//! statement: after a panic in `prepare_statement` (caught by the borrower,
//! or unwinding through the guard) the connection's cache is back as it
//! was, and a panic in `close_statement` leaves the cache whole. So an
//! open connection never has more statements open than its cache holds.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use rusty_db::pool::{ConnectionFactory, ConnectionPool, PoolConfig, PrepareStatement, Result};

const CACHE: usize = 4;

/// Statements open on each connection, by its serial; calls to the driver.
#[derive(Default)]
struct Server {
    open: Mutex<HashMap<u64, HashSet<String>>>,
    calls: AtomicU64,
    prepared: AtomicU64,
    closed: AtomicU64,
    panics: AtomicU64,
}

impl Server {
    /// Whether this driver call is one of the one in seven that panic.
    fn panics_now(&self) -> bool {
        let panics = self.calls.fetch_add(1, SeqCst) % 7 == 6;
        if panics {
            self.panics.fetch_add(1, SeqCst);
        }
        panics
    }
}

struct Conn {
    serial: u64,
    server: Arc<Server>,
}

impl PrepareStatement for Conn {
    type Statement = Arc<str>;

    /// Panics before preparing anything, one call in seven.
    fn prepare_statement(&mut self, sql: &str) -> Result<Arc<str>> {
        if self.server.panics_now() {
            panic!("driver bug while preparing");
        }
        self.server.open.lock().unwrap().entry(self.serial).or_default().insert(sql.to_string());
        self.server.prepared.fetch_add(1, SeqCst);
        Ok(Arc::from(sql))
    }

    /// Closes, then panics in its own bookkeeping, one call in seven.
    fn close_statement(&mut self, statement: Arc<str>) -> Result<()> {
        assert!(self.server.open.lock().unwrap().entry(self.serial).or_default().remove(&*statement));
        self.server.closed.fetch_add(1, SeqCst);
        if self.server.panics_now() {
            panic!("driver bug after closing");
        }
        Ok(())
    }
}

struct Factory {
    serials: AtomicU64,
    server: Arc<Server>,
}

impl ConnectionFactory<Conn> for Factory {
    fn create(&self) -> Result<Conn> {
        Ok(Conn { serial: self.serials.fetch_add(1, SeqCst), server: Arc::clone(&self.server) })
    }

    /// A connection's statements go with it.
    fn close(&self, conn: Conn) -> Result<()> {
        self.server.open.lock().unwrap().remove(&conn.serial);
        Ok(())
    }
}

#[test]
fn no_statement_is_left_open_outside_the_cache_whatever_the_driver_does() {
    let server = Arc::new(Server::default());
    let factory = Factory { serials: AtomicU64::new(0), server: Arc::clone(&server) };
    let config =
        PoolConfig::builder().min_size(2).initial_size(2).max_size(2).statement_cache_size(CACHE).build().unwrap();
    let pool = ConnectionPool::new(config, Arc::new(factory)).unwrap();
    // Quiet the expected panics' messages.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let mut seed = 0x2545_f491_u64;
    let mut next_sql = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        format!("SELECT {}", seed % 10)
    };
    for round in 0..400 {
        let sqls = [next_sql(), next_sql(), next_sql()];
        if round % 2 == 0 {
            // The borrower catches the panic and goes on with its guard.
            let mut conn = pool.acquire().unwrap();
            for sql in &sqls {
                let _ = catch_unwind(AssertUnwindSafe(|| conn.prepare_cached(sql)));
            }
        } else {
            // The panic unwinds through the guard.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let mut conn = pool.acquire().unwrap();
                for sql in &sqls {
                    conn.prepare_cached(sql).unwrap();
                }
            }));
        }
    }
    std::panic::set_hook(hook);

    let (prepared, closed, panics) =
        (server.prepared.load(SeqCst), server.closed.load(SeqCst), server.panics.load(SeqCst));
    assert!(panics >= 20 && prepared >= 100, "the driver panicked {panics} times in {prepared} prepares");
    let open = server.open.lock().unwrap();
    for (serial, statements) in open.iter() {
        assert!(
            statements.len() <= CACHE,
            "connection {serial} has {} statements open, more than its cache of {CACHE} holds \
             ({prepared} prepared, {closed} closed, {panics} driver panics)",
            statements.len()
        );
    }
}
