//! A browser opens several connections at once (six per host) and keeps
//! them open. tiny_http hands each new connection to a thread of its pool,
//! and when connections arrive faster than its idle threads wake up, one
//! can be left queued until another connection closes: seconds, or the
//! read timeout. The admin server wakes such a connection itself, so a
//! burst of new connections is answered at once.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::http::read_response;
use rusty_db::admin::{AdminServer, Registry};

const TOKEN: &str = "burst-token-0123";
/// Connections opened at once, per round: two browsers' worth.
const CONNECTIONS: usize = 12;
const ROUNDS: usize = 8;
/// Long, so that a connection left queued is plain to see.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What "at once" means on a loaded two-core machine.
const BOUND: Duration = Duration::from_secs(3);

#[test]
fn a_burst_of_new_keep_alive_connections_is_answered_at_once() {
    let server = AdminServer::builder().token(TOKEN).read_timeout(READ_TIMEOUT).start(Registry::new()).unwrap();
    let addr = server.local_addr();
    // Busy threads beside the burst, as the pool's own workers would be:
    // they slow the wake-up of tiny_http's idle threads, which is the race.
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let start = Arc::new(Barrier::new(CONNECTIONS));
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    let mut stream = TcpStream::connect(addr).unwrap();
                    stream.set_read_timeout(Some(READ_TIMEOUT * 2)).unwrap();
                    // HTTP/1.1 without `Connection: close`: kept alive, as a browser does.
                    let request =
                        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
                    stream.write_all(request.as_bytes()).unwrap();
                    let status = read_response(&mut stream).map_or(0, |r| r.status);
                    (began.elapsed(), status, stream)
                })
            })
            .collect();
        // Every connection stays open until the whole round is answered.
        let answered: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        for (took, status, _) in &answered {
            assert_eq!(*status, 200);
            slowest = slowest.max(*took);
        }
        assert!(
            slowest < BOUND,
            "round {round}: a new connection waited {slowest:?} for its answer (the bound is {BOUND:?})"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().unwrap();
    }
    println!("slowest answer over {ROUNDS} bursts of {CONNECTIONS} connections: {slowest:?}");
    server.shutdown();
}
