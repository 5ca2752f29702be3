//! Plain HTTP/1.1, read by us: an accept thread, a thread per connection
//! (kept a while for the next one, `spare`) that reads request heads
//! (`head`) and hands each request to the admin thread, and the way back
//! for the connection once it is answered.
//!
//! tiny_http parsed heads before we saw them and answered the malformed
//! ones with empty bodies, or not at all; so plain connections no longer
//! go through it (only its response writer is used). Over TLS tiny_http
//! still reads the requests (`tls`): it does the handshake.
//!
//! A connection serves one request at a time: its thread waits until the
//! answer is written before it reads the next head, which keeps pipelined
//! answers in order. After an answer to a malformed head, or one whose body
//! was not read to its end, the connection closes: shut for writing, then
//! drained for a moment so that the client reads the answer rather than a
//! reset.

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::body::Body;
use super::exchange::{Exchange, Response};
use super::head::{self, Framing, Head, NoRequest, Version};
use super::reply::Reply;
use super::spare::Spares;

/// The read buffer of a connection: a request head usually fits.
const BUFFER: usize = 8 * 1024;
/// How long, at most, a closing connection is drained after its last
/// answer (and never longer than the read timeout).
const LINGER: Duration = Duration::from_secs(2);
/// How many bytes, at most, a closing connection is drained of.
const LINGER_BYTES: usize = 1024 * 1024;
/// How long a connection thread whose connection ended waits for another.
const SPARE_FOR: Duration = Duration::from_secs(5);

/// A request on its way to be answered.
pub(crate) type Job = Box<dyn Exchange>;

/// The accept thread: a thread for each connection, whose requests go to
/// `jobs`, until `stop`.
#[derive(Debug)]
pub(crate) struct Acceptor {
    thread: JoinHandle<()>,
    local_addr: SocketAddr,
    connections: Arc<Spares<Accepted>>,
}

/// An accepted connection and its peer.
type Accepted = (TcpStream, SocketAddr);

impl Acceptor {
    /// Starts accepting on `listener`, whose accepted sockets inherit its
    /// read and write timeouts; `read_timeout` bounds each request head.
    pub(crate) fn start(
        listener: TcpListener,
        jobs: mpsc::Sender<Job>,
        stop: Arc<AtomicBool>,
        read_timeout: Duration,
    ) -> io::Result<Acceptor> {
        let local_addr = listener.local_addr()?;
        let connections = Spares::new("rusty-db-admin-conn", SPARE_FOR, move |(stream, peer): Accepted| {
            serve(stream, peer, &jobs, read_timeout);
        });
        let thread = {
            let connections = Arc::clone(&connections);
            std::thread::Builder::new()
                .name("rusty-db-admin-accept".into())
                .spawn(move || accept(&listener, &connections, &stop))?
        };
        Ok(Acceptor { thread, local_addr, connections })
    }

    /// Ends the accept thread (the stop flag is set): a connection of our
    /// own wakes it from `accept`, then it closes the listener.
    pub(crate) fn join(self) {
        let ip = match self.local_addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        // Failing, the thread ends at its next accept timeout.
        let _ = TcpStream::connect_timeout(&SocketAddr::new(ip, self.local_addr.port()), Duration::from_secs(1));
        let _ = self.thread.join();
        // Connection threads waiting for a connection end now; those
        // serving one end with it.
        self.connections.release();
    }
}

fn accept(listener: &TcpListener, connections: &Arc<Spares<Accepted>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => return,
            Ok((stream, peer)) => {
                if let Err(e) = connections.run((stream, peer)) {
                    log::warn!("admin server: no thread for a connection from {peer} ({e}); closed it");
                }
            }
            // The socket's read timeout bounds accept too.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            // A client that gave up before it was accepted.
            Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
            Err(e) => {
                // Out of file descriptors, say: wait for some to close.
                log::warn!("admin server: accepting failed ({e}); retrying");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A client connection: its socket, read through a buffer, and its peer.
struct Connection {
    reader: BufReader<TcpStream>,
    peer: SocketAddr,
}

/// What comes back to a connection's thread after an answer.
struct Answered {
    connection: Connection,
    keep_alive: bool,
}

/// Serves the requests of one connection until it closes.
fn serve(stream: TcpStream, peer: SocketAddr, jobs: &mpsc::Sender<Job>, read_timeout: Duration) {
    // Each answer is one write; pipelined ones should not wait for an ACK.
    let _ = stream.set_nodelay(true);
    let mut connection = Connection { reader: BufReader::with_capacity(BUFFER, stream), peer };
    loop {
        let head = match head::read(&mut connection.reader, read_timeout) {
            Ok(head) => head,
            Err(NoRequest::Quiet) => return,
            Err(NoRequest::Refused(error)) => {
                log::debug!("admin server: refused a request from {peer}: {}", error.message);
                let written = write(&mut connection, Reply::from(error).into_response(), Version::Http11, false, false);
                if written.is_ok() {
                    linger(connection, read_timeout);
                }
                return;
            }
        };
        let (back, answered) = mpsc::channel();
        let body = Body::new(head.framing);
        let request = PlainRequest { head, body, connection, back, continued: false };
        // Sent back with the connection, or dropped (the server stops, or
        // the answer could not be written): either ends the wait.
        if jobs.send(Box::new(request)).is_err() {
            return;
        }
        match answered.recv() {
            Ok(Answered { connection: next, keep_alive: true }) => connection = next,
            Ok(Answered { connection, keep_alive: false }) => return linger(connection, read_timeout),
            Err(_) => return,
        }
    }
}

/// Writes `response` to the connection in one write, with a `Connection`
/// header where the version's default is not what happens next; unless
/// `keep_alive`, then shuts it for writing, so that the client sees the end
/// of the answer at once (`linger` closes it later).
fn write(
    connection: &mut Connection,
    response: Response,
    version: Version,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let (version, next) = match (version, keep_alive) {
        (Version::Http11, true) => (tiny_http::HTTPVersion(1, 1), None),
        (Version::Http11, false) => (tiny_http::HTTPVersion(1, 1), Some("close")),
        (Version::Http10, true) => (tiny_http::HTTPVersion(1, 0), Some("keep-alive")),
        (Version::Http10, false) => (tiny_http::HTTPVersion(1, 0), Some("close")),
    };
    let mut bytes = Vec::with_capacity(512);
    response.raw_print(&mut bytes, version, &[], head_only, None)?;
    if let Some(next) = next {
        // tiny_http's responses refuse a Connection header: it goes in
        // after the status line.
        let at = bytes.windows(2).position(|w| w == b"\r\n").map_or(0, |at| at + 2);
        bytes.splice(at..at, format!("Connection: {next}\r\n").into_bytes());
    }
    let stream = connection.reader.get_mut();
    stream.write_all(&bytes)?;
    stream.flush()?;
    if !keep_alive {
        stream.shutdown(Shutdown::Write)?;
    }
    Ok(())
}

/// Closes after a last answer, once `write` shut the connection for
/// writing: drained first, for at most `LINGER` and `LINGER_BYTES`, of
/// what the client sent that was not read. Closing with unread bytes would
/// send a reset, which can destroy the answer before it is read.
fn linger(mut connection: Connection, read_timeout: Duration) {
    let stream = connection.reader.get_mut();
    let deadline = Instant::now() + LINGER.min(read_timeout);
    let mut drained = 0;
    let mut sink = [0u8; 8192];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A request read off a plain connection, which it carries until answered.
struct PlainRequest {
    head: Head,
    body: Body,
    connection: Connection,
    back: mpsc::Sender<Answered>,
    /// Whether `100 Continue` was sent.
    continued: bool,
}

impl Read for PlainRequest {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.head.expects_continue && !self.continued && self.body != Body::Done {
            self.continued = true;
            let stream = self.connection.reader.get_mut();
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        self.body.read(&mut self.connection.reader, buf)
    }
}

impl Exchange for PlainRequest {
    fn method(&self) -> &str {
        &self.head.method
    }

    fn url(&self) -> &str {
        &self.head.target
    }

    fn header_values<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.head.values(name).collect()
    }

    fn body_length(&self) -> Option<usize> {
        match self.head.framing {
            Framing::Length(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Framing::Empty | Framing::Chunked => None,
        }
    }

    fn body(&mut self) -> &mut dyn Read {
        self
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.connection.peer)
    }

    fn respond(self: Box<Self>, response: Response) -> io::Result<()> {
        let PlainRequest { head, body, mut connection, back, .. } = *self;
        // A body not read to its end leaves the connection inside it.
        let keep_alive = head.keep_alive && body == Body::Done;
        let written = write(&mut connection, response, head.version, keep_alive, head.method == "HEAD");
        if written.is_ok() {
            // The connection's thread may be gone (it cannot, while it waits).
            let _ = back.send(Answered { connection, keep_alive });
        }
        written
    }
}
