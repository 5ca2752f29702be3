//! What the session's own bytes say: whether it sits in a transaction.
//!
//! Every PostgreSQL response ends with `ReadyForQuery`, whose one byte is
//! the session's transaction status (`I` idle, `T` in a transaction, `E` in
//! a failed one). The `postgres` crate reads it and throws it away, so a
//! pool could only roll back blindly on every return: a round trip, a
//! `WARNING: there is no transaction in progress` in the server's log and a
//! rollback in its statistics for every clean borrow. The tap reads the
//! byte itself, on the socket, as the bytes go by: it frames both
//! directions of the protocol (a type byte and a length; the startup
//! message has no type byte), keeps the last status, and counts the
//! requests that will end in a `ReadyForQuery` (`Query`, `Sync`,
//! `FunctionCall`) against those that did, so a status is only trusted
//! when no answer is still on its way.
//!
//! The driver hands the socket to nobody but a TLS connector, so the tap is
//! one: with `sslnegotiation=direct` the driver sends no `SSLRequest` and
//! passes the raw socket to the connector's `connect`, which wraps it and
//! encrypts nothing. The server sees a plain startup message, exactly as
//! with `NoTls`. Direct negotiation needs a host name (a TCP host), so a
//! Unix socket or a bare `hostaddr` goes untapped (its status is unknown).

use std::future::{Ready, ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::task::{Context, Poll};

use postgres::Socket;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A session's transaction status, as its last `ReadyForQuery` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block (a `BEGIN` without its `COMMIT` or `ROLLBACK`).
    InTransaction,
    /// In a failed transaction block: every statement fails until a `ROLLBACK`.
    Failed,
}

/// No status seen yet.
const UNKNOWN: u8 = 0;

/// What the tap has seen of one session, shared by its stream (which
/// writes it) and its [`PgConnection`](super::PgConnection) (which reads it).
/// Only the thread using the connection drives its socket, so the
/// atomics need no ordering beyond their own (`Relaxed`).
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The last `ReadyForQuery`'s status byte, or `UNKNOWN`.
    status: AtomicU8,
    /// Answers still on their way: requests that end in a
    /// `ReadyForQuery`, less the `ReadyForQuery`s received.
    awaited: AtomicI64,
}

impl Session {
    /// The session's status, if every request sent has been answered.
    pub(crate) fn status(&self) -> Option<TransactionStatus> {
        // Relaxed: see the type's docs.
        if self.awaited.load(Ordering::Relaxed) != 0 {
            return None;
        }
        match self.status.load(Ordering::Relaxed) {
            b'I' => Some(TransactionStatus::Idle),
            b'T' => Some(TransactionStatus::InTransaction),
            b'E' => Some(TransactionStatus::Failed),
            _ => None,
        }
    }

    /// A new connection on this session: the startup ends in one
    /// `ReadyForQuery`.
    fn restart(&self) {
        self.status.store(UNKNOWN, Ordering::Relaxed);
        self.awaited.store(1, Ordering::Relaxed);
    }
}

/// The "TLS" connector that taps a session (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Tap {
    session: Arc<Session>,
}

impl Tap {
    /// A tap for a new session, and the session's state to read.
    pub(crate) fn new() -> (Tap, Arc<Session>) {
        let session = Arc::new(Session::default());
        (Tap { session: Arc::clone(&session) }, session)
    }
}

impl MakeTlsConnect<Socket> for Tap {
    type Stream = Tapped;
    type TlsConnect = Tap;
    type Error = io::Error;

    fn make_tls_connect(&mut self, _domain: &str) -> io::Result<Tap> {
        Ok(self.clone())
    }
}

impl TlsConnect<Socket> for Tap {
    type Stream = Tapped;
    type Error = io::Error;
    type Future = Ready<io::Result<Tapped>>;

    fn connect(self, socket: Socket) -> Self::Future {
        // Each attempt (one per host tried) starts the session afresh.
        self.session.restart();
        ready(Ok(Tapped { socket, session: self.session, read: Framing::typed(), written: Framing::startup() }))
    }
}

/// The socket, read and written through the tap.
#[derive(Debug)]
pub(crate) struct Tapped {
    socket: Socket,
    session: Arc<Session>,
    read: Framing,
    written: Framing,
}

impl TlsStream for Tapped {
    /// None: nothing is encrypted, so there is nothing to bind to (SCRAM
    /// then runs without channel binding, as over `NoTls`).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Tapped {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.socket).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            let session = &this.session;
            this.read.feed(&buf.filled()[before..], |kind, first| {
                if kind == b'Z' {
                    // Relaxed: see `Session`.
                    session.awaited.fetch_sub(1, Ordering::Relaxed);
                    if let Some(status) = first {
                        session.status.store(status, Ordering::Relaxed);
                    }
                }
            });
        }
        polled
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            let this = &mut *self;
            let session = &this.session;
            this.written.feed(&buf[..written], |kind, _| {
                if matches!(kind, b'Q' | b'S' | b'F') {
                    // Relaxed: see `Session`.
                    session.awaited.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// Finds message boundaries in one direction of the protocol, across
/// reads: each message is a type byte (none for the startup message), a
/// 4-byte big-endian length counting itself, and a body.
#[derive(Debug)]
struct Framing {
    /// The header read so far: type byte (if any) and length.
    header: [u8; 5],
    filled: usize,
    /// Header bytes of the next message: 5, or 4 for the startup message.
    header_len: usize,
    /// Body bytes of the current message still to come.
    body_left: usize,
    /// The current message's type, while its body's first byte is awaited.
    awaiting_first: Option<u8>,
}

impl Framing {
    /// Messages with a type byte.
    fn typed() -> Self {
        Framing { header: [0; 5], filled: 0, header_len: 5, body_left: 0, awaiting_first: None }
    }

    /// A startup message first, then typed ones.
    fn startup() -> Self {
        Framing { header_len: 4, ..Self::typed() }
    }

    /// Frames `bytes`, calling `on_message(type, first body byte)` once per
    /// typed message, when its first body byte (if it has a body) is in.
    fn feed(&mut self, mut bytes: &[u8], mut on_message: impl FnMut(u8, Option<u8>)) {
        while !bytes.is_empty() {
            if let Some(kind) = self.awaiting_first.take() {
                on_message(kind, Some(bytes[0]));
            }
            if self.body_left > 0 {
                let skip = self.body_left.min(bytes.len());
                self.body_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (self.header_len - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled < self.header_len {
                return;
            }
            let typed = self.header_len == 5;
            let length = &self.header[usize::from(typed)..self.header_len];
            let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
            // A length below its own 4 bytes is a broken stream: nothing
            // more is framed (the status stays unknown past it).
            self.body_left = length.saturating_sub(4);
            self.filled = 0;
            self.header_len = 5;
            if length < 4 {
                self.body_left = usize::MAX;
            } else if typed {
                let kind = self.header[0];
                if self.body_left == 0 {
                    on_message(kind, None);
                } else {
                    self.awaiting_first = Some(kind);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    fn messages(framing: &mut Framing, chunks: &[&[u8]]) -> Vec<(u8, Option<u8>)> {
        let mut seen = Vec::new();
        for chunk in chunks {
            framing.feed(chunk, |kind, first| seen.push((kind, first)));
        }
        seen
    }

    #[test]
    fn frames_typed_messages_across_any_split() {
        // CommandComplete "SELECT 1", then ReadyForQuery 'T'.
        let mut stream = vec![b'C', 0, 0, 0, 13];
        stream.extend_from_slice(b"SELECT 1\0");
        stream.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'T']);
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            let seen = messages(&mut Framing::typed(), &[a, b]);
            assert_eq!(seen, [(b'C', Some(b'S')), (b'Z', Some(b'T'))], "split at {split}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(messages(&mut Framing::typed(), &bytewise), [(b'C', Some(b'S')), (b'Z', Some(b'T'))]);
    }

    #[test]
    fn the_startup_message_has_no_type_byte() {
        // Startup (length 8: protocol 3.0), then Sync (no body), then Query "".
        let stream = [0, 0, 0, 8, 0, 3, 0, 0, b'S', 0, 0, 0, 4, b'Q', 0, 0, 0, 5, 0];
        assert_eq!(messages(&mut Framing::startup(), &[&stream]), [(b'S', None), (b'Q', Some(0))]);
    }

    #[test]
    fn a_broken_length_stops_framing() {
        let stream = [b'Z', 0, 0, 0, 2, b'Z', 0, 0, 0, 5, b'I'];
        assert!(messages(&mut Framing::typed(), &[&stream]).is_empty());
    }
}
