//! The PostgreSQL server the tests run against: where it is
//! (`RUSTY_DB_TEST_PG_URL`; `.ci/run` sets it), a side connection that
//! watches and hurts the pool's sessions from outside, and unique
//! application names so that concurrent tests never count each other's.
#![cfg(feature = "postgres")]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use rusty_db::adapters::postgres::postgres::{Client, Config, NoTls};

/// The variable that names the test server.
pub const PG_URL_VAR: &str = "RUSTY_DB_TEST_PG_URL";

/// The test server's URL, or `None` with the reason printed: the calling
/// test returns early (it passes without having run, and says so).
pub fn pg_url(test: &str) -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped {test}: {PG_URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test; \
                 .ci/run sets it)"
            );
            None
        }
    }
}

/// A name no other test in this run uses, for `application_name`.
pub fn unique_name(what: &str) -> String {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    format!("rdb-{what}-{}-{}", std::process::id(), SERIAL.fetch_add(1, SeqCst))
}

/// A connection of the test's own, outside any pool. Panics if the server
/// named by the variable does not answer: set means it must really run.
pub fn side_client(url: &str) -> Client {
    let mut config: Config = url.parse().expect("RUSTY_DB_TEST_PG_URL parses");
    config.application_name("rdb-test-side");
    config.connect(NoTls).unwrap_or_else(|e| panic!("{PG_URL_VAR} is set but the server does not answer: {e:?}"))
}

/// The server's sessions named `app` (`pg_stat_activity`).
pub fn backends(side: &mut Client, app: &str) -> i64 {
    side.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&app])
        .expect("pg_stat_activity")
        .get(0)
}

/// The server's address (for a proxy in front of it), from the URL's host
/// and port.
pub fn server_addr(url: &str) -> SocketAddr {
    let config: Config = url.parse().expect("RUSTY_DB_TEST_PG_URL parses");
    let host = match config.get_hosts().first() {
        Some(rusty_db::adapters::postgres::postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port).to_socket_addrs().expect("the server's host resolves").next().expect("an address")
}

/// `url` with its host and port replaced by `addr` and the given extra
/// `key=value` parameters, as a key=value connection string (easier to
/// rewrite than a URL): user and database are kept.
pub fn via(url: &str, addr: SocketAddr, extra: &[(&str, &str)]) -> String {
    let config: Config = url.parse().expect("RUSTY_DB_TEST_PG_URL parses");
    let mut parts = vec![format!("host={}", addr.ip()), format!("port={}", addr.port())];
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(db) = config.get_dbname() {
        parts.push(format!("dbname={db}"));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!("password='{}'", String::from_utf8_lossy(password).replace('\'', "\\'")));
    }
    parts.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(" ")
}
