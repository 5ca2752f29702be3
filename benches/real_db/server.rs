//! The server under test, and the monitoring session that watches it.
//!
//! Every session a pool opens carries [`APPLICATION_NAME`], added to the
//! URL itself (so each pool is still given a plain URL), which lets the
//! monitor tell the bench's sessions from any other program's in
//! `pg_stat_activity`. The monitor connects to another database of the
//! same server (`postgres`, else `template1`): `pg_stat_database` and
//! `pg_stat_activity` cover the whole server, and the monitor's own
//! transactions then never land in the counters it reads.

use std::time::{Duration, Instant};

use rusty_db::adapters::postgres::postgres::{self, Client, NoTls};

/// The `application_name` of every session the bench's pools open.
pub const APPLICATION_NAME: &str = "rusty_db_real_db_bench";

/// The `application_name` of the monitoring session.
const MONITOR_NAME: &str = "rusty_db_real_db_monitor";

/// Where the pools connect.
pub struct Server {
    /// The user's URL, as given (for `pgbench`).
    plain: String,
    /// The same URL naming its sessions [`APPLICATION_NAME`].
    tagged: String,
    config: postgres::Config,
    dbname: String,
}

impl Server {
    /// The server `RUSTY_DB_TEST_PG_URL` names, or why the bench skips.
    pub fn from_env() -> Result<Server, String> {
        let plain = match std::env::var("RUSTY_DB_TEST_PG_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                return Err("RUSTY_DB_TEST_PG_URL is not set (for example \
                            postgres://postgres@127.0.0.1:5432/test); nothing to measure against"
                    .into());
            }
        };
        let tagged = tag(&plain);
        let config: postgres::Config =
            tagged.parse().map_err(|e| format!("RUSTY_DB_TEST_PG_URL does not parse as a connection string: {e}"))?;
        let dbname = config.get_dbname().or(config.get_user()).unwrap_or("postgres").to_string();
        Ok(Server { plain, tagged, config, dbname })
    }

    /// The connection string every pool is given.
    pub fn url(&self) -> &str {
        &self.tagged
    }

    /// The connection string as the user gave it.
    pub fn plain_url(&self) -> &str {
        &self.plain
    }

    /// [`url`](Self::url), parsed.
    pub fn config(&self) -> postgres::Config {
        self.config.clone()
    }

    /// The database the pools work in.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }
}

/// `url` with `application_name` set to ours, in the string's own form
/// (URL or `key=value` pairs); a later setting wins over one it had.
fn tag(url: &str) -> String {
    if url.contains("://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={APPLICATION_NAME}")
    } else {
        format!("{url} application_name={APPLICATION_NAME}")
    }
}

/// The bench's sessions and other programs' in the pools' database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sessions {
    pub ours: i64,
    /// Client backends and autovacuum workers not ours: their transactions
    /// would land in the same counters.
    pub others: i64,
}

/// A session on another database of the same server, that reads the
/// counters and watches the pools' sessions come and go.
pub struct Monitor {
    client: Client,
    dbname: String,
}

impl Monitor {
    pub fn connect(server: &Server) -> Result<Monitor, String> {
        let mut last = String::new();
        for other in ["postgres", "template1"].into_iter().filter(|db| *db != server.dbname()) {
            let mut config = server.config();
            config.dbname(other).application_name(MONITOR_NAME);
            match config.connect(NoTls) {
                Ok(client) => return Ok(Monitor { client, dbname: server.dbname().to_string() }),
                Err(e) => last = format!("database {other}: {e}"),
            }
        }
        Err(format!(
            "could not connect to another database than {:?} on the same server ({last}); \
             the monitor's own transactions would be counted",
            server.dbname()
        ))
    }

    /// `xact_commit` and `xact_rollback` of the pools' database, as flushed
    /// so far (the statistics snapshot cleared first, so nothing cached is
    /// read).
    pub fn counters(&mut self) -> (i64, i64) {
        self.client.batch_execute("SELECT pg_stat_clear_snapshot()").expect("pg_stat_clear_snapshot()");
        let row = self
            .client
            .query_one("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", &[&self.dbname])
            .expect("the pools' database in pg_stat_database");
        (row.get(0), row.get(1))
    }

    /// Who is connected to the pools' database now.
    pub fn sessions(&mut self) -> Sessions {
        self.client.batch_execute("SELECT pg_stat_clear_snapshot()").expect("pg_stat_clear_snapshot()");
        let row = self
            .client
            .query_one(
                "SELECT count(*) FILTER (WHERE application_name = $2), \
                        count(*) FILTER (WHERE application_name IS DISTINCT FROM $2 \
                                         AND backend_type IN ('client backend', 'autovacuum worker')) \
                 FROM pg_stat_activity WHERE datname = $1",
                &[&self.dbname, &APPLICATION_NAME],
            )
            .expect("pg_stat_activity");
        Sessions { ours: row.get(0), others: row.get(1) }
    }

    /// Waits until none of the bench's sessions is left, polling; `false`
    /// if some still are after `timeout`. A backend flushes its statistics
    /// as it exits, before it leaves `pg_stat_activity`.
    pub fn wait_until_ours_gone(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.sessions().ours == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The server's version string.
    pub fn server_version(&mut self) -> String {
        self.client
            .query_one("SELECT current_setting('server_version')", &[])
            .map(|row| row.get(0))
            .unwrap_or_else(|_| "unknown".into())
    }
}
