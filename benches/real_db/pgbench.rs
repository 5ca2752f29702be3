//! The pgbench tables at scale 1 (1 branch, 10 tellers, 100 000
//! accounts), which `select-only` and `tpcb-like` run against: reused when
//! present with the right row counts, else made by `pgbench -i -s 1 -q`,
//! the tool's own definition, or by the same definition in SQL where
//! pgbench is missing or fails.

use std::process::Command;

use rusty_db::adapters::postgres::postgres::{self, Client, NoTls};

use crate::server::Server;

/// Accounts at scale 1; `select-only` and `tpcb-like` draw `aid` from 1..=ACCOUNTS.
pub const ACCOUNTS: i32 = 100_000;
/// Tellers at scale 1, `tid` in 1..=TELLERS.
pub const TELLERS: i32 = 10;
/// Branches at scale 1, `bid` in 1..=BRANCHES.
pub const BRANCHES: i32 = 1;

/// pgbench's tables made with `generate_series`, as `pgbench -i -s 1`
/// makes them (same columns, fill factors, keys and data).
const SQL_INIT: &str = "
    DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers;
    CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
    CREATE TABLE pgbench_tellers (tid int NOT NULL, bid int, tbalance int, filler char(84)) WITH (fillfactor = 100);
    CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84)) WITH (fillfactor = 100);
    CREATE TABLE pgbench_branches (bid int NOT NULL, bbalance int, filler char(88)) WITH (fillfactor = 100);
    INSERT INTO pgbench_branches (bid, bbalance) SELECT bid, 0 FROM generate_series(1, 1) AS bid;
    INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT tid, (tid - 1) / 10 + 1, 0 FROM generate_series(1, 10) AS tid;
    INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
        SELECT aid, (aid - 1) / 100000 + 1, 0, '' FROM generate_series(1, 100000) AS aid;
    ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid);
    ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid);
    ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid);
    VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history;
";

/// Makes sure the tables are there at scale 1; says what it did.
pub fn ensure_tables(server: &Server) -> Result<String, String> {
    let mut client = server.config().connect(NoTls).map_err(|e| format!("connecting: {e}"))?;
    if at_scale_1(&mut client)? {
        return Ok("pgbench tables at scale 1 found and reused".into());
    }
    let outcome = match pgbench_init(server.plain_url()) {
        Ok(()) => "pgbench tables made by `pgbench -i -s 1 -q`".to_string(),
        Err(why) => {
            client.batch_execute(SQL_INIT).map_err(|e| format!("{why}; then the SQL definition failed too: {e}"))?;
            format!("pgbench tables made in SQL ({why})")
        }
    };
    if !at_scale_1(&mut client)? {
        return Err(format!("{outcome}, but they do not hold scale 1's rows"));
    }
    client.close().map_err(|e| format!("closing: {e}"))?;
    Ok(outcome)
}

/// Whether the three fixed tables hold scale 1's rows (and history exists).
fn at_scale_1(client: &mut Client) -> Result<bool, String> {
    let present: i64 = client
        .query_one(
            "SELECT count(to_regclass(t)) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_branches', \
             'pgbench_tellers', 'pgbench_history']) AS t",
            &[],
        )
        .map_err(|e| format!("looking for the tables: {e}"))?
        .get(0);
    if present < 4 {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_tellers), \
                    (SELECT count(*) FROM pgbench_branches)",
            &[],
        )
        .map_err(|e: postgres::Error| format!("counting rows: {e}"))?;
    let (accounts, tellers, branches): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    Ok((accounts, tellers, branches) == (ACCOUNTS.into(), TELLERS.into(), BRANCHES.into()))
}

/// Runs `pgbench -i -s 1 -q` on the URL (pgbench takes a connection string
/// where the database name goes).
fn pgbench_init(url: &str) -> Result<(), String> {
    let output = Command::new("pgbench")
        .args(["-i", "-s", "1", "-q", url])
        .output()
        .map_err(|e| format!("pgbench could not be run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("pgbench -i failed ({}): {}", output.status, stderr.trim()))
    }
}
