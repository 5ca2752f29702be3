//! Nudges: empty loopback connections that free a connection tiny_http
//! left queued.
//!
//! tiny_http 0.12 gives each accepted connection to a thread of its pool.
//! When it counts an idle thread it queues the connection and wakes one
//! idle thread; but a thread it woke counts as idle until it runs, so when
//! connections arrive faster than woken threads run (a browser opens six at
//! once, on a busy machine), two can be queued on one wake-up. The second
//! then waits until some thread ends its connection: up to the read
//! timeout, or for as long as a browser keeps its other connections busy.
//!
//! A connection that arrives while one is queued takes a thread of its own
//! or wakes one, and that thread serves the queue first. So for a short
//! while after a request comes on a connection not seen before (a burst
//! may have left a sibling behind), the admin thread opens and at once
//! resets a connection to its own port every `EVERY`: each frees one
//! queued connection. Requests on connections kept alive send none, so a
//! dashboard polling over the same connections costs no nudge. Over TLS
//! tiny_http does the handshake before it queues, and a nudge, which never
//! finishes one, frees nothing; it is not sent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::socket::reset_on_close;

/// How often a nudge is sent after a new connection.
const EVERY: Duration = Duration::from_millis(25);
/// How long after the latest new connection nudges go on: a burst's
/// connections are accepted well within it.
const AFTER_A_NEW_CONNECTION: Duration = Duration::from_secs(1);
/// The most connections remembered; past it the memory starts afresh
/// (every connection then counts as new once more, which costs only nudges).
const REMEMBERED: usize = 1024;
/// How long a nudge may take to connect; loopback answers in microseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(50);

/// When to nudge the server listening on `addr`.
#[derive(Debug)]
pub(crate) struct Nudges {
    /// Where to connect (loopback for an unspecified address); `None` for
    /// TLS, where a nudge frees nothing.
    addr: Option<SocketAddr>,
    /// The peers that sent requests, and when they last did.
    seen: HashMap<SocketAddr, Instant>,
    /// Connections idle longer than this are closed by the read timeout:
    /// a request from such a peer comes on a new connection.
    forget_after: Duration,
    last_new: Option<Instant>,
    last_nudge: Option<Instant>,
}

impl Nudges {
    pub(crate) fn new(listening: SocketAddr, tls: bool, forget_after: Duration) -> Nudges {
        let ip = match listening.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let addr = (!tls).then_some(SocketAddr::new(ip, listening.port()));
        Nudges { addr, seen: HashMap::new(), forget_after, last_new: None, last_nudge: None }
    }

    /// A request from `peer` arrived at `now`.
    pub(crate) fn request(&mut self, peer: Option<SocketAddr>, now: Instant) {
        if self.addr.is_none() {
            return;
        }
        let Some(peer) = peer else { return };
        let forget_after = self.forget_after;
        if self.seen.len() >= REMEMBERED {
            self.seen.retain(|_, at| now.duration_since(*at) < forget_after);
            if self.seen.len() >= REMEMBERED {
                self.seen.clear();
            }
        }
        let new = self.seen.insert(peer, now).is_none_or(|at| now.duration_since(at) >= forget_after);
        if new {
            self.last_new = Some(now);
        }
    }

    /// Sends a nudge if one is due at `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        let Some(addr) = self.addr else { return };
        let recent = self.last_new.is_some_and(|at| now.duration_since(at) < AFTER_A_NEW_CONNECTION);
        let due = self.last_nudge.is_none_or(|at| now.duration_since(at) >= EVERY);
        if recent && due {
            self.last_nudge = Some(now);
            nudge(addr);
        }
    }
}

/// Connects to `addr` and resets the connection at once (no TIME_WAIT
/// left behind). A nudge that fails changes nothing: it is dropped.
fn nudge(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(stream) => {
            if let Err(e) = reset_on_close(&stream) {
                log::debug!("admin server: SO_LINGER on a nudge failed: {e}");
            }
        }
        Err(e) => log::debug!("admin server: a nudge to {addr} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nudges_go_to_loopback_only_after_new_connections_and_never_over_tls() {
        const FORGET: Duration = Duration::from_secs(16);
        let any = SocketAddr::from(([0, 0, 0, 0], 8080));
        assert_eq!(Nudges::new(any, false, FORGET).addr, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
        let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 8080));
        assert_eq!(Nudges::new(any6, false, FORGET).addr, Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 8080))));
        assert_eq!(Nudges::new(any, true, FORGET).addr, None);

        // A listener that counts the nudges it gets.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut nudges = Nudges::new(listener.local_addr().unwrap(), false, FORGET);
        let count = |listener: &std::net::TcpListener| {
            std::thread::sleep(Duration::from_millis(50));
            std::iter::from_fn(|| listener.accept().ok()).count()
        };
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        let t0 = Instant::now();
        nudges.tick(t0);
        assert_eq!(count(&listener), 0, "no request yet: no nudge");
        nudges.request(Some(peer), t0);
        nudges.tick(t0);
        nudges.tick(t0 + EVERY / 2);
        nudges.tick(t0 + EVERY);
        assert_eq!(count(&listener), 2, "one nudge per EVERY after a new connection");
        let later = t0 + AFTER_A_NEW_CONNECTION;
        nudges.request(Some(peer), later);
        nudges.tick(later);
        assert_eq!(count(&listener), 0, "none for a connection kept alive");
        let much_later = later + FORGET;
        nudges.request(Some(peer), much_later);
        nudges.tick(much_later);
        assert_eq!(count(&listener), 1, "a peer silent past the read timeout is on a new connection");
    }
}
