//! A look at an idle session's socket that costs no round trip.
//!
//! When the server ends a session (`pg_terminate_backend`, a restart, an
//! idle timeout), it sends a `FATAL` error and closes the socket: both wait
//! in the socket's receive buffer until someone reads. A non-blocking
//! `recv(MSG_PEEK)` on an idle session's socket finds them (as Go's pgx
//! `CheckConn` does): an end of stream, a reset, or a `FATAL`
//! `ErrorResponse` (behind whatever the last answer left unread) means the
//! session is gone; nothing to read means it is alive as far as the server
//! is concerned (a silently dead network
//! still needs a round trip: the bypass window's full check). Pending
//! notices, notifications and parameter changes say nothing either way.
//!
//! The driver does not hand out its socket, so the probe finds it among the
//! process's descriptors by its two addresses, as the server reported them
//! when the session opened (its `inet_client_addr` and `inet_server_addr`):
//! a TCP connection's pair is unique while it is open. Behind a proxy or a
//! NAT the server sees other addresses, no descriptor matches, and the
//! session goes unprobed. Unix only.

use std::net::SocketAddr;

/// How much of a socket's unread data a look examines: the server's
/// goodbye comes after whatever its last answer left unread (the driver
/// returns at an error before reading the `ReadyForQuery` behind it).
const PEEK_BYTES: usize = 4096;

/// Whether `bytes`, the unread data of a session's socket, hold the
/// server's goodbye: an `ErrorResponse` of severity `FATAL` or `PANIC`
/// (any other error is a leftover of the last answer). Frames from the
/// start; a frame cut off at the end says nothing.
fn ends_the_session(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 5 {
        let kind = bytes[0];
        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if length < 4 || bytes.len() < 1 + length {
            return false;
        }
        let body = &bytes[5..1 + length];
        if kind == b'E' && fatal(body) {
            return true;
        }
        bytes = &bytes[1 + length..];
    }
    false
}

/// Whether an `ErrorResponse` body's severity (the non-localized `V` field,
/// else `S`) is `FATAL` or `PANIC`.
fn fatal(mut body: &[u8]) -> bool {
    let mut severity = None;
    while let Some((&field, rest)) = body.split_first() {
        if field == 0 {
            break;
        }
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let value = &rest[..end];
        match field {
            b'V' => severity = Some(value),
            b'S' if severity.is_none() => severity = Some(value),
            _ => {}
        }
        body = rest.get(end + 1..).unwrap_or(&[]);
    }
    matches!(severity, Some(b"FATAL" | b"PANIC"))
}

/// What a look at an idle session's socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Nothing to read (or only messages that say nothing).
    Alive,
    /// The server ended the session (or the network reset it).
    Gone,
}

/// The descriptor of one session's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    /// The socket's addresses: checked again before each look.
    #[cfg(unix)]
    local: SocketAddr,
    #[cfg(unix)]
    peer: SocketAddr,
}

#[cfg(unix)]
impl Probe {
    /// The socket connected from `local` to `peer`, if this process has it.
    ///
    /// The driver closes its socket only when the client is dropped, so
    /// the descriptor stays the session's while the connection lives; a
    /// look that would call the session gone checks the addresses again all
    /// the same (a socket of another part of the process, say an
    /// in-process proxy's, may have matched, and been closed since).
    pub(crate) fn find(local: SocketAddr, peer: SocketAddr) -> Option<Probe> {
        let dir = std::fs::read_dir("/proc/self/fd").or_else(|_| std::fs::read_dir("/dev/fd")).ok()?;
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<std::os::fd::RawFd>().ok())
            .find(|&fd| {
                sys::address(fd, sys::Side::Local) == Some(local) && sys::address(fd, sys::Side::Peer) == Some(peer)
            })
            .map(|fd| Probe { fd, local, peer })
    }

    /// Peeks at the socket without reading or blocking: one system call
    /// while the session is healthy. `None` if the descriptor no longer
    /// holds that socket (its owner closed it, and the number may be
    /// another socket's now), checked before a verdict of `Gone`: a look at
    /// a stranger's socket can only ever pass, as no probe would.
    pub(crate) fn look(&self) -> Option<Liveness> {
        let mut buffer = [0u8; PEEK_BYTES];
        let verdict = match sys::peek(self.fd, &mut buffer) {
            sys::Peeked::Nothing => Liveness::Alive,
            sys::Peeked::Ended => Liveness::Gone,
            sys::Peeked::Bytes(n) if ends_the_session(&buffer[..n]) => Liveness::Gone,
            sys::Peeked::Bytes(_) => Liveness::Alive,
        };
        if verdict == Liveness::Gone
            && (sys::address(self.fd, sys::Side::Local) != Some(self.local)
                || sys::address(self.fd, sys::Side::Peer) != Some(self.peer))
        {
            return None;
        }
        Some(verdict)
    }
}

#[cfg(not(unix))]
impl Probe {
    /// No descriptors to look through here.
    pub(crate) fn find(_: SocketAddr, _: SocketAddr) -> Option<Probe> {
        None
    }

    pub(crate) fn look(&self) -> Option<Liveness> {
        None
    }
}

#[cfg(unix)]
mod sys {
    use std::mem::MaybeUninit;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::os::fd::RawFd;

    #[derive(Clone, Copy)]
    pub(super) enum Side {
        Local,
        Peer,
    }

    /// A descriptor's local or peer address, if it is an IP socket.
    pub(super) fn address(fd: RawFd, side: Side) -> Option<SocketAddr> {
        let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let call = match side {
            Side::Local => libc::getsockname,
            Side::Peer => libc::getpeername,
        };
        // SAFETY: `storage` is writable for `len` bytes, and the kernel
        // writes at most that many; a descriptor that is not a socket (or
        // closed since it was listed) makes the call fail, nothing else.
        let result = unsafe { call(fd, storage.as_mut_ptr().cast(), &mut len) };
        if result != 0 {
            return None;
        }
        // SAFETY: zeroed, then filled by a successful call: initialised.
        let storage = unsafe { storage.assume_init() };
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a `sockaddr_in`,
                // which it is large and aligned enough for.
                let v4 = unsafe { &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for a `sockaddr_in6`.
                let v6 = unsafe { &*(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                Some(SocketAddr::from((ip, u16::from_be(v6.sin6_port))))
            }
            _ => None,
        }
    }

    /// What a non-blocking peek at a socket found.
    pub(super) enum Peeked {
        /// Nothing to read yet.
        Nothing,
        /// End of stream, or an error (a reset).
        Ended,
        /// This many bytes of unread data, copied into the buffer.
        Bytes(usize),
    }

    pub(super) fn peek(fd: RawFd, buffer: &mut [u8]) -> Peeked {
        // SAFETY: `buffer` is writable for its length; MSG_PEEK leaves the
        // data in the socket for the driver, MSG_DONTWAIT keeps the call
        // from blocking.
        let read =
            unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        match read {
            1.. => Peeked::Bytes(read as usize),
            0 => Peeked::Ended,
            _ => match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Peeked::Nothing,
                _ => Peeked::Ended,
            },
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::thread::sleep;
    use std::time::Duration;

    use super::{Liveness, Probe};

    /// A connected pair on loopback, and the probe of the client's end.
    fn pair() -> (TcpStream, TcpStream, Probe) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let probe = Probe::find(client.local_addr().unwrap(), client.peer_addr().unwrap()).expect("found");
        (client, server, probe)
    }

    /// Long enough for loopback to deliver what was just sent.
    fn settle() {
        sleep(Duration::from_millis(50));
    }

    #[test]
    fn nothing_to_read_or_a_notice_is_alive() {
        let (_client, mut server, probe) = pair();
        assert_eq!(probe.look(), Some(Liveness::Alive));
        server.write_all(&[b'N', 0, 0, 0, 4]).unwrap();
        settle();
        assert_eq!(probe.look(), Some(Liveness::Alive), "a notice says nothing");
    }

    /// An `ErrorResponse` frame of `severity`.
    fn error(severity: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (field, value) in [(b'S', severity), (b'V', severity), (b'C', "57P01"), (b'M', "terminating")] {
            body.push(field);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut frame = vec![b'E'];
        frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn a_fatal_error_is_the_end_even_behind_a_leftover_answer() {
        let (_client, mut server, probe) = pair();
        // The ReadyForQuery behind an error the driver returned at.
        server.write_all(&[b'Z', 0, 0, 0, 5, b'E']).unwrap();
        settle();
        assert_eq!(probe.look(), Some(Liveness::Alive), "a leftover answer says nothing");
        server.write_all(&error("FATAL")).unwrap();
        settle();
        assert_eq!(probe.look(), Some(Liveness::Gone));
    }

    #[test]
    fn an_ordinary_error_left_over_is_not_the_end() {
        let (_client, mut server, probe) = pair();
        server.write_all(&error("ERROR")).unwrap();
        settle();
        assert_eq!(probe.look(), Some(Liveness::Alive));
    }

    #[test]
    fn a_closed_peer_is_the_end() {
        let (_client, server, probe) = pair();
        drop(server);
        settle();
        assert_eq!(probe.look(), Some(Liveness::Gone));
    }

    #[test]
    fn no_socket_has_unknown_addresses() {
        assert!(Probe::find("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()).is_none());
    }
}
