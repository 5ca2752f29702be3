//! The fault proxy the network tests stand on does what it is told, checked
//! against an in-process echo server (no database): it passes bytes both
//! ways, refuses on a closed port, black-holes, resets with a real RST,
//! delays each direction and closes everything promptly when dropped.
#![cfg(unix)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Mode};
use common::within;

/// Long enough that a loaded machine never trips it; a bug fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

/// An upstream server echoing every byte, counting its connections and the
/// ones that ended in a reset. Its threads live as long as the test binary.
struct Echo {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    resets: Arc<AtomicUsize>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let resets = Arc::new(AtomicUsize::new(0));
        let (a, r) = (Arc::clone(&accepts), Arc::clone(&resets));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                a.fetch_add(1, SeqCst);
                let resets = Arc::clone(&r);
                thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                if e.kind() == ErrorKind::ConnectionReset {
                                    resets.fetch_add(1, SeqCst);
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        Echo { addr, accepts, resets }
    }

    fn accepts(&self) -> usize {
        self.accepts.load(SeqCst)
    }

    fn resets(&self) -> usize {
        self.resets.load(SeqCst)
    }
}

/// A client with read and write timeouts, so a proxy bug fails the test.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends `message` and reads it back; returns how long that took.
fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(message).unwrap();
    let mut echoed = vec![0u8; message.len()];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(echoed, message);
    started.elapsed()
}

/// Reads with a short timeout and asserts nothing arrives.
fn assert_silent(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a black-holed connection got {other:?}"),
    }
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
}

#[test]
fn pass_forwards_both_ways_and_counts_connections() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    assert_eq!(proxy.mode(), Mode::Pass);
    assert_eq!((proxy.accepted(), proxy.open_connections()), (0, 0));

    let mut client = connect(proxy.addr());
    round_trip(&mut client, b"hello");
    assert_eq!((proxy.accepted(), proxy.open_connections()), (1, 1));

    // More than one chunk each way, written while the echo comes back.
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut writer = client.try_clone().unwrap();
    let sent = payload.clone();
    let writing = thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut echoed = vec![0u8; payload.len()];
    client.read_exact(&mut echoed).unwrap();
    writing.join().unwrap();
    assert!(echoed == payload, "the payload came back altered");

    let mut second = connect(proxy.addr());
    round_trip(&mut second, b"second");
    assert_eq!((proxy.accepted(), proxy.open_connections()), (2, 2));
    assert_eq!(echo.accepts(), 2);

    drop(client);
    assert!(within(PATIENCE, || proxy.open_connections() == 1), "open: {}", proxy.open_connections());
    round_trip(&mut second, b"still there");
    drop(second);
    assert!(within(PATIENCE, || proxy.open_connections() == 0), "open: {}", proxy.open_connections());
    assert_eq!(proxy.accepted(), 2);
}

#[test]
fn refuse_closes_the_port_and_keeps_open_connections() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    let addr = proxy.addr();
    let mut open = connect(addr);
    round_trip(&mut open, b"before");

    proxy.set_mode(Mode::Refuse);
    assert_eq!(proxy.mode(), Mode::Refuse);
    assert_eq!(proxy.addr(), addr);
    let refused = TcpStream::connect(addr).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    round_trip(&mut open, b"during");

    proxy.set_mode(Mode::Pass);
    assert_eq!(proxy.addr(), addr);
    let mut again = connect(addr);
    round_trip(&mut again, b"after");
    round_trip(&mut open, b"after too");
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(echo.accepts(), 2);
}

#[test]
fn black_hole_accepts_and_never_answers_nor_connects_upstream() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    let mut passing = connect(proxy.addr());
    round_trip(&mut passing, b"passing");

    proxy.set_mode(Mode::BlackHole);
    assert_eq!(proxy.mode(), Mode::BlackHole);
    let mut hole = connect(proxy.addr());
    hole.write_all(b"anyone there?").unwrap();
    assert_silent(&mut hole);
    assert!(within(PATIENCE, || proxy.open_connections() == 2), "open: {}", proxy.open_connections());
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(echo.accepts(), 1, "a black-holed connection reached upstream");
    round_trip(&mut passing, b"still passing");

    proxy.set_mode(Mode::Pass);
    let mut fresh = connect(proxy.addr());
    round_trip(&mut fresh, b"fresh");
    assert_eq!(echo.accepts(), 2);
    // The black hole keeps what it swallowed, and the connection.
    hole.write_all(b"hello?").unwrap();
    assert_silent(&mut hole);
    assert_eq!(proxy.open_connections(), 3);
}

#[test]
fn reset_all_resets_passing_and_black_holed_connections_on_both_sides() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    let mut passing = connect(proxy.addr());
    round_trip(&mut passing, b"passing");
    proxy.set_mode(Mode::BlackHole);
    let mut hole = connect(proxy.addr());
    hole.write_all(b"swallowed").unwrap();
    assert!(within(PATIENCE, || proxy.open_connections() == 2), "open: {}", proxy.open_connections());

    assert_eq!(proxy.reset_all(), 2);
    // `reset_all` returns once the sockets are closed.
    assert_eq!(proxy.open_connections(), 0);
    // Observed: a real RST, on both clients (the proxy never sends a FIN
    // first) and on the upstream side.
    let mut buf = [0u8; 16];
    for (what, client) in [("passing", &mut passing), ("black-holed", &mut hole)] {
        match client.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("the {what} client read {other:?}, not a reset"),
        }
    }
    assert!(within(PATIENCE, || echo.resets() == 1), "upstream saw {} reset(s)", echo.resets());

    assert_eq!(proxy.reset_all(), 0);
    proxy.set_mode(Mode::Pass);
    let mut fresh = connect(proxy.addr());
    round_trip(&mut fresh, b"after the crash");
}

#[test]
fn latency_delays_each_direction_of_open_connections_in_order() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    let mut client = connect(proxy.addr());
    let fast = round_trip(&mut client, b"warm");
    assert!(fast < Duration::from_millis(400), "{fast:?} with no latency");

    proxy.set_latency(Duration::from_millis(200));
    let slow = round_trip(&mut client, b"slow");
    assert!(slow >= Duration::from_millis(400) && slow < PATIENCE, "{slow:?} with 200 ms each way");

    // Chunks read apart are delivered apart, in order.
    let started = Instant::now();
    for chunk in [b"a", b"b", b"c"] {
        client.write_all(chunk).unwrap();
        thread::sleep(Duration::from_millis(30));
    }
    let mut echoed = [0u8; 3];
    client.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"abc");
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());

    proxy.set_latency(Duration::ZERO);
    let fast = round_trip(&mut client, b"fast again");
    assert!(fast < Duration::from_millis(400), "{fast:?} with the latency back to zero");
}

#[test]
fn drop_closes_every_connection_and_returns_promptly() {
    let echo = Echo::start();
    let proxy = FaultProxy::start(echo.addr).unwrap();
    let mut passing = connect(proxy.addr());
    round_trip(&mut passing, b"passing");
    proxy.set_latency(Duration::from_secs(2));
    // A chunk waiting for its delivery time must not hold the drop up.
    passing.write_all(b"in flight").unwrap();
    proxy.set_mode(Mode::BlackHole);
    let mut hole = connect(proxy.addr());
    assert!(within(PATIENCE, || proxy.open_connections() == 2), "open: {}", proxy.open_connections());

    let started = Instant::now();
    drop(proxy);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "dropping the proxy took {took:?}");
    // Observed: EOF, the proxy shuts its sockets down before closing them.
    let mut buf = [0u8; 16];
    for (what, client) in [("passing", &mut passing), ("black-holed", &mut hole)] {
        match client.read(&mut buf) {
            Ok(0) => {}
            other => panic!("the {what} client read {other:?} after the drop, not EOF"),
        }
    }
    let refused = TcpStream::connect(passing.peer_addr().unwrap()).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
}
