//! `max_size` holds where it matters, at the server: `pg_stat_activity`
//! never shows more sessions for the pool's application name than
//! `max_size`, while eight threads want connections and every connect is
//! slower than the connect timeout (a slow link: the proxy delays each
//! direction), so each one times out and is retried. A timed-out attempt
//! is adopted by the next create rather than joined by another, so the
//! sessions it opens late are still within the count. Skips without
//! `RUSTY_DB_TEST_PG_URL`.
#![cfg(all(feature = "postgres", unix))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::fault_proxy::FaultProxy;
use common::pg::{backends, pg_url, server_addr, side_client, unique_name, via};
use rusty_db::adapters::postgres::PostgresConnectionFactory;
use rusty_db::pool::{ConnectionPool, PoolConfig};

const MAX: usize = 3;
const THREADS: usize = 8;
/// Each way: a connect makes two round trips (startup, then the session
/// query), about 4 x LATENCY = 1.2 s, well past CONNECT_TIMEOUT.
const LATENCY: Duration = Duration::from_millis(300);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(700);
const RUN_FOR: Duration = Duration::from_secs(5);

#[test]
fn the_server_never_sees_more_sessions_than_max_size() {
    let Some(url) = pg_url("the_server_never_sees_more_sessions_than_max_size") else { return };
    let proxy = FaultProxy::start(server_addr(&url)).expect("proxy");
    proxy.set_latency(LATENCY);
    let app = unique_name("max-size");
    let factory =
        PostgresConnectionFactory::new(&via(&url, proxy.addr(), &[])).unwrap().with_connect_timeout(CONNECT_TIMEOUT);
    let config = PoolConfig::builder()
        .name(&app)
        .min_size(MAX)
        .initial_size(0)
        .max_size(MAX)
        .acquire_timeout(Duration::from_secs(4))
        .maintenance_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let pool = ConnectionPool::new(config, Arc::new(factory)).unwrap();

    let stop = AtomicBool::new(false);
    let most = AtomicI64::new(0);
    let samples = AtomicUsize::new(0);
    let (served, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    thread::scope(|s| {
        s.spawn(|| {
            let mut side = side_client(&url);
            while !stop.load(SeqCst) {
                most.fetch_max(backends(&mut side, &app), SeqCst);
                samples.fetch_add(1, SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        });
        for _ in 0..THREADS {
            s.spawn(|| {
                let until = Instant::now() + RUN_FOR;
                while Instant::now() < until {
                    match pool.acquire() {
                        Ok(mut conn) => {
                            conn.simple_query("SELECT 1").expect("a session that came late still works");
                            served.fetch_add(1, SeqCst);
                        }
                        Err(_) => {
                            failed.fetch_add(1, SeqCst);
                        }
                    }
                }
            });
        }
        thread::sleep(RUN_FOR);
        // The threads stop by themselves; the sampler goes on until then.
        while served.load(SeqCst) + failed.load(SeqCst) == 0 {
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(500));
        stop.store(true, SeqCst);
    });
    let (most, samples) = (most.load(SeqCst), samples.load(SeqCst));
    eprintln!(
        "{samples} samples of pg_stat_activity: at most {most} sessions; {} acquires served, {} timed out; {} creates failed",
        served.load(SeqCst),
        failed.load(SeqCst),
        pool.statistics().connection_create_failures
    );
    assert!(samples > 50, "the sampler ran: {samples}");
    assert!(served.load(SeqCst) > 0, "sessions did arrive, late");
    assert!(most <= MAX as i64, "the server saw {most} sessions of a pool of at most {MAX}");

    // The link heals: the pool fills to min_size and stays within bounds.
    proxy.set_latency(Duration::ZERO);
    let mut side = side_client(&url);
    assert!(common::eventually(|| pool.size() == MAX));
    assert!(common::eventually(|| backends(&mut side, &app) == MAX as i64));
    pool.close();
    assert!(common::eventually(|| backends(&mut side, &app) == 0), "close() ends them all");
}
