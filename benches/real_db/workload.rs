//! The workloads: what one operation runs on the session it borrowed.
//!
//! - `select1`: `SELECT 1` as a simple query (one round trip, one server
//!   transaction), the same for every pool.
//! - `select-only`: pgbench's select-only, one account's balance by a
//!   random `aid`, as a prepared statement.
//! - `tpcb-like`: pgbench's tpcb-like, five prepared statements in one
//!   transaction (`BEGIN` .. `COMMIT`).
//!
//! Statements are prepared through the pool's own statement cache where it
//! has one (rusty-db's `prepare_cached`, deadpool's); r2d2 has none, so
//! its borrower passes the SQL text and the driver prepares it at every
//! execution, as plain `client.query(sql, ..)` does: one more round trip
//! per statement (and, outside a transaction, one more server transaction).
//! The async pool runs the same statements in `async_pool.rs`.

use std::hint::black_box;

use rusty_db::adapters::postgres::postgres::types::ToSql;
use rusty_db::adapters::postgres::postgres::{Client, GenericClient, Statement};

use crate::pgbench::{ACCOUNTS, BRANCHES, TELLERS};

/// What one operation runs while it holds a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    Select1,
    SelectOnly,
    TpcbLike,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Select1, Workload::SelectOnly, Workload::TpcbLike];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Select1 => "select1",
            Workload::SelectOnly => "select-only",
            Workload::TpcbLike => "tpcb-like",
        }
    }

    /// The statements an operation prepares (through the pool's cache,
    /// where it has one), in the order it runs them.
    pub fn statements(self) -> &'static [&'static str] {
        match self {
            Workload::Select1 => &[],
            Workload::SelectOnly => &[SELECT_BALANCE],
            Workload::TpcbLike => &TPCB,
        }
    }
}

/// `select1`'s query, sent as a simple query.
pub const SELECT_1: &str = "SELECT 1";

/// `select-only`'s statement, and `tpcb-like`'s second.
pub const SELECT_BALANCE: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

/// `tpcb-like`'s statements, in order: with `delta`, `aid`, `tid` and `bid`
/// as pgbench's `:delta`, `:aid`, `:tid` and `:bid`.
pub const TPCB: [&str; 5] = [
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    SELECT_BALANCE,
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
];

/// One operation's random values, drawn as pgbench draws them.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub aid: i32,
    pub tid: i32,
    pub bid: i32,
    pub delta: i32,
}

/// A small per-thread generator (xorshift64*): uniform enough for picking
/// rows, and no shared state between threads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: i32, high: i32) -> i32 {
        let span = u64::try_from(i64::from(high) - i64::from(low) + 1).expect("low <= high");
        let offset = i64::try_from(self.next() % span).expect("fits");
        i32::try_from(i64::from(low) + offset).expect("within low..=high")
    }

    pub fn params(&mut self) -> Params {
        Params {
            aid: self.between(1, ACCOUNTS),
            tid: self.between(1, TELLERS),
            bid: self.between(1, BRANCHES),
            delta: self.between(-5000, 5000),
        }
    }
}

/// A borrowed session, as a workload sees it.
pub trait Session {
    fn client(&mut self) -> &mut Client;

    /// `sql` prepared through the pool's statement cache, or `None` where
    /// the pool has none.
    fn cached(&mut self, sql: &'static str) -> Option<Statement>;
}

/// A statement as the pool gives it: prepared, or text the driver
/// prepares at each execution.
enum Stmt {
    Prepared(Statement),
    Text(&'static str),
}

impl Stmt {
    fn of<S: Session>(session: &mut S, sql: &'static str) -> Stmt {
        session.cached(sql).map_or(Stmt::Text(sql), Stmt::Prepared)
    }

    fn execute<C: GenericClient>(&self, client: &mut C, params: &[&(dyn ToSql + Sync)]) -> u64 {
        match self {
            Stmt::Prepared(statement) => client.execute(statement, params),
            Stmt::Text(sql) => client.execute(*sql, params),
        }
        .expect("a pgbench statement")
    }

    fn balance<C: GenericClient>(&self, client: &mut C, aid: i32) -> i32 {
        match self {
            Stmt::Prepared(statement) => client.query_one(statement, &[&aid]),
            Stmt::Text(sql) => client.query_one(*sql, &[&aid]),
        }
        .expect("an account's balance")
        .get(0)
    }
}

/// Runs one operation of `workload` on a borrowed session.
pub fn run<S: Session>(session: &mut S, workload: Workload, p: Params) {
    match workload {
        Workload::Select1 => {
            black_box(session.client().simple_query(SELECT_1).expect("SELECT 1"));
        }
        Workload::SelectOnly => {
            let select = Stmt::of(session, SELECT_BALANCE);
            black_box(select.balance(session.client(), p.aid));
        }
        Workload::TpcbLike => {
            let [account, select, teller, branch, history] = TPCB.map(|sql| Stmt::of(session, sql));
            let mut tx = session.client().transaction().expect("BEGIN");
            account.execute(&mut tx, &[&p.delta, &p.aid]);
            black_box(select.balance(&mut tx, p.aid));
            teller.execute(&mut tx, &[&p.delta, &p.tid]);
            branch.execute(&mut tx, &[&p.delta, &p.bid]);
            history.execute(&mut tx, &[&p.tid, &p.bid, &p.aid, &p.delta]);
            tx.commit().expect("COMMIT");
        }
    }
}
