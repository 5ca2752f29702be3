//! The admin server: its listener and the thread that answers it.
//!
//! One thread of ours (`rusty-db-admin`) takes requests from the HTTP layer
//! (our own over plain HTTP, `plain`; tiny_http's over TLS, `tls`) and
//! answers them, or hands them to `workers` threads. Nothing it does
//! holds a pool lock across I/O, so a slow or stuck client never delays an
//! acquire: it can only hold a connection thread, or an admin worker for
//! at most the read and write timeouts.
//!
//! The server sets the socket timeouts on the listening socket, whose
//! accepted sockets inherit them (Linux and the BSDs copy
//! `SO_RCVTIMEO`/`SO_SNDTIMEO` to accepted sockets); they bound `accept`
//! too.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::auth::{Auth, random_token};
use super::error::AdminError;
use super::exchange::Exchange;
use super::plain::{self, Job};
use super::registry::Registry;
use super::reply::{ApiError, Reply};
use super::routes::{Call, Route, parse_query};
use super::socket::set_timeouts;

/// Default limit on a request body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Default read and write timeout of a client socket: 5 s.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the admin thread looks at the stop flag (and, over TLS, at
/// retired listeners' connections).
const TICK: Duration = Duration::from_millis(20);

/// Starts an [`AdminServer`]; see [`AdminServer::builder`].
#[derive(Debug, Clone)]
pub struct AdminServerBuilder {
    addr: SocketAddr,
    token: Option<String>,
    without_auth: bool,
    plaintext_remote: bool,
    body_limit: usize,
    read_timeout: Duration,
    write_timeout: Duration,
    workers: usize,
    public_metrics: bool,
    public_health: bool,
    #[cfg(feature = "admin-tls")]
    tls: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for AdminServerBuilder {
    fn default() -> Self {
        AdminServerBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            without_auth: false,
            plaintext_remote: false,
            body_limit: DEFAULT_BODY_LIMIT,
            read_timeout: DEFAULT_IO_TIMEOUT,
            write_timeout: DEFAULT_IO_TIMEOUT,
            workers: 1,
            public_metrics: false,
            public_health: true,
            #[cfg(feature = "admin-tls")]
            tls: None,
        }
    }
}

impl AdminServerBuilder {
    /// The address to listen on. Default `127.0.0.1:0`: loopback, on a
    /// free port the OS picks ([`AdminServer::local_addr`] tells which).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The bearer token every `/api/v1` request must carry
    /// (`Authorization: Bearer <token>`): visible ASCII, no spaces.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A random 128-bit token (32 hex digits); read it back with
    /// [`AdminServer::token`].
    pub fn random_token(self) -> Self {
        self.token(random_token())
    }

    /// Serves without a token: anyone who can reach the address can read
    /// every pool's connections and kill them. Only for a trusted network.
    pub fn without_auth(mut self) -> Self {
        self.without_auth = true;
        self.token = None;
        self
    }

    /// Allows a non-loopback address without TLS (the token then crosses
    /// the network in the clear). Refused otherwise.
    pub fn allow_plaintext_remote(mut self) -> Self {
        self.plaintext_remote = true;
        self
    }

    /// Largest request body accepted, in bytes (default
    /// [`DEFAULT_BODY_LIMIT`]); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long a client may take to send each part of a request, and a
    /// request body in all (default [`DEFAULT_IO_TIMEOUT`]).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long writing a response may block on a client that does not
    /// read (default [`DEFAULT_IO_TIMEOUT`]).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Threads answering requests (default 1, at most 64): more let one
    /// slow client delay no other.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Whether `GET /metrics` is served without the token (default
    /// `false`), for scrapers that cannot send one.
    pub fn public_metrics(mut self, public: bool) -> Self {
        self.public_metrics = public;
        self
    }

    /// Whether `GET /health` is served without the token (default `true`:
    /// it tells only that the server runs and how many pools it serves).
    pub fn public_health(mut self, public: bool) -> Self {
        self.public_health = public;
        self
    }

    /// Serves HTTPS with this PEM certificate chain and private key.
    #[cfg(feature = "admin-tls")]
    pub fn tls(mut self, certificate_pem: Vec<u8>, private_key_pem: Vec<u8>) -> Self {
        self.tls = Some((certificate_pem, private_key_pem));
        self
    }

    fn has_tls(&self) -> bool {
        #[cfg(feature = "admin-tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "admin-tls"))]
        false
    }

    /// Where requests come from: tiny_http over TLS, else our own reader,
    /// whose accept thread is returned too.
    fn source(
        &self,
        listener: TcpListener,
        stop: &Arc<AtomicBool>,
    ) -> Result<(Source, Option<plain::Acceptor>), AdminError> {
        #[cfg(feature = "admin-tls")]
        if let Some((certificate, private_key)) = &self.tls {
            let ssl = tiny_http::SslConfig { certificate: certificate.clone(), private_key: private_key.clone() };
            let quiet_after = self.read_timeout * 2 + self.write_timeout + Duration::from_secs(1);
            return Ok((Source::Tls(Box::new(super::tls::Acceptor::start(listener, ssl, quiet_after)?)), None));
        }
        let (send, receive) = mpsc::channel();
        let acceptor = plain::Acceptor::start(listener, send, Arc::clone(stop), self.read_timeout)
            .map_err(|e| AdminError::Start(format!("no thread to accept connections: {e}")))?;
        Ok((Source::Plain(receive), Some(acceptor)))
    }

    fn check(&self) -> Result<Auth, AdminError> {
        let invalid = |m: &str| Err(AdminError::InvalidConfig(m.to_string()));
        if !self.addr.ip().is_loopback() && !self.has_tls() && !self.plaintext_remote {
            return invalid(
                "a non-loopback address needs TLS (feature admin-tls, .tls(..)) or .allow_plaintext_remote()",
            );
        }
        if self.body_limit == 0 {
            return invalid("body_limit must be at least 1 byte");
        }
        if self.read_timeout.is_zero() || self.write_timeout.is_zero() {
            return invalid("read_timeout and write_timeout must be above zero");
        }
        if !(1..=64).contains(&self.workers) {
            return invalid("workers must be 1 to 64");
        }
        match (&self.token, self.without_auth) {
            (_, true) => Ok(Auth::Open),
            (None, false) => invalid("no token: set .token(..) or .random_token(), or opt out with .without_auth()"),
            (Some(token), false) if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) => {
                invalid("the token must be non-empty visible ASCII without spaces")
            }
            (Some(token), false) => Ok(Auth::Token(token.clone().into_bytes())),
        }
    }

    /// Binds the address and starts serving `registry`'s pools.
    pub fn start(self, registry: Registry) -> Result<AdminServer, AdminError> {
        let auth = self.check()?;
        let listener = TcpListener::bind(self.addr).map_err(|source| AdminError::Bind { addr: self.addr, source })?;
        let local_addr = listener.local_addr().map_err(|e| AdminError::Start(e.to_string()))?;
        set_timeouts(&listener, self.read_timeout, self.write_timeout)
            .map_err(|e| AdminError::Start(format!("cannot set socket timeouts: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (source, accept) = self.source(listener, &stop)?;
        let shared = Arc::new(Shared {
            registry,
            auth,
            body_limit: self.body_limit,
            read_timeout: self.read_timeout,
            public_metrics: self.public_metrics,
            public_health: self.public_health,
        });
        // From here on, a failure to start stops what started.
        let mut server = AdminServer { local_addr, token: self.token, stop, thread: None, workers: Vec::new(), accept };
        let (workers, send) = start_workers(&shared, self.workers)?;
        server.workers = workers;
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&server.stop));
            std::thread::Builder::new()
                .name("rusty-db-admin".into())
                .spawn(move || serve(source, &shared, &stop, send))
                .map_err(|e| AdminError::Start(format!("no thread for the admin server: {e}")))?
        };
        server.thread = Some(thread);
        log::info!("admin server listening on {local_addr}");
        Ok(server)
    }
}

/// A running admin server: the REST API under `/api/v1`, `/metrics` and
/// `/health`. Dropping it shuts it down, as [`shutdown`](Self::shutdown)
/// does.
///
/// ```
/// use rusty_db::admin::{AdminServer, Registry};
///
/// let server = AdminServer::builder().token("s3cret-token").start(Registry::new())?;
/// assert!(server.local_addr().ip().is_loopback());
/// assert_eq!(server.token(), Some("s3cret-token"));
/// server.shutdown(); // joins its threads and frees the port
/// # Ok::<(), rusty_db::admin::AdminError>(())
/// ```
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    token: Option<String>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    /// The accept thread over plain HTTP.
    accept: Option<plain::Acceptor>,
}

impl AdminServer {
    /// A builder with the defaults: loopback on a free port, no token yet
    /// (one is required), 64 KiB bodies, 5 s timeouts, one thread.
    pub fn builder() -> AdminServerBuilder {
        AdminServerBuilder::default()
    }

    /// The address it listens on (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bearer token it requires (`None` after `without_auth`).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Stops serving, joins the server's threads and closes its socket.
    /// A request being answered is finished first.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            accept.join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        // Over TLS, tiny_http's accept thread holds its copy of the socket
        // until it sees the stop (the server's drop wakes it); wait,
        // briefly, until the port can be bound again.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && TcpListener::bind(self.local_addr).is_err() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if self.thread.is_some() || self.accept.is_some() {
            self.stop_and_join();
        }
    }
}

/// What every thread answering requests shares.
struct Shared {
    registry: Registry,
    auth: Auth,
    body_limit: usize,
    read_timeout: Duration,
    public_metrics: bool,
    public_health: bool,
}

/// Where the admin thread takes requests from.
enum Source {
    /// Plain HTTP: from our connection threads.
    Plain(mpsc::Receiver<Job>),
    /// HTTPS: from tiny_http.
    #[cfg(feature = "admin-tls")]
    Tls(Box<super::tls::Acceptor>),
}

impl Source {
    /// The next request, waiting up to a tick.
    fn next(&mut self) -> Option<Job> {
        match self {
            Source::Plain(jobs) => jobs.recv_timeout(TICK).ok(),
            #[cfg(feature = "admin-tls")]
            Source::Tls(acceptor) => acceptor.next(TICK).map(|request| Box::new(request) as Job),
        }
    }
}

/// The worker threads, and the way to them (none with one worker: the
/// admin thread answers itself).
type Workers = (Vec<JoinHandle<()>>, Option<mpsc::Sender<Job>>);

fn start_workers(shared: &Arc<Shared>, workers: usize) -> Result<Workers, AdminError> {
    if workers == 1 {
        return Ok((Vec::new(), None));
    }
    let (send, receive) = mpsc::channel::<Job>();
    let receive = Arc::new(Mutex::new(receive));
    let mut threads = Vec::with_capacity(workers);
    for n in 0..workers {
        let (shared, receive) = (Arc::clone(shared), Arc::clone(&receive));
        let thread = std::thread::Builder::new()
            .name(format!("rusty-db-admin-{n}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match receive.lock() {
                        Ok(receive) => receive.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(request) => answer(&shared, request),
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| AdminError::Start(format!("no thread for an admin worker: {e}")))?;
        threads.push(thread);
    }
    Ok((threads, Some(send)))
}

/// The admin thread's loop: take requests until told to stop.
fn serve(mut source: Source, shared: &Shared, stop: &AtomicBool, workers: Option<mpsc::Sender<Job>>) {
    while !stop.load(Ordering::Relaxed) {
        let Some(request) = source.next() else { continue };
        match &workers {
            Some(send) => {
                if let Err(mpsc::SendError(request)) = send.send(request) {
                    answer(shared, request);
                }
            }
            None => answer(shared, request),
        }
    }
    // Dropping the sender ends the workers once they finish their job.
    drop(workers);
}

/// Answers one request; a panic while answering becomes a 500.
fn answer(shared: &Shared, mut request: Job) {
    let reply = catch_unwind(AssertUnwindSafe(|| reply(shared, &mut *request))).unwrap_or_else(|panic| {
        let (method, url, from) = (request.method(), request.url(), request.remote_addr());
        log::error!("admin server: answering {method} {url} from {from:?} panicked: {}", panic_text(&*panic));
        ApiError::new(500, "internal_error", "the server failed to answer; see its log").into()
    });
    if let Err(e) = request.respond(reply.into_response()) {
        log::debug!("admin server: writing a response failed: {e}");
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    crate::pool::panic_message(panic)
}

/// The reply to a request: auth, route, method, query, body, then the route.
fn reply(shared: &Shared, request: &mut dyn Exchange) -> Reply {
    match checked_reply(shared, request) {
        Ok(reply) => reply,
        Err(e) => e.into(),
    }
}

fn checked_reply(shared: &Shared, request: &mut dyn Exchange) -> Result<Reply, ApiError> {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let authorized = shared.auth.allows(request.header_values("Authorization"));
    let unauthorized = || {
        ApiError::new(401, "unauthorized", "send the admin token as Authorization: Bearer <token>")
            .with_header("WWW-Authenticate", "Bearer realm=\"rusty-db\"")
    };
    // Under /api/ nothing, not even which routes exist, is told without the token.
    if path.starts_with("/api/") && !authorized {
        return Err(unauthorized());
    }
    let route = Route::parse(path)?;
    let public = match route {
        Route::Metrics => shared.public_metrics,
        Route::Health => shared.public_health,
        // The page holds no data: it asks for the token and sends it with
        // each call it makes.
        Route::Dashboard => true,
        _ => false,
    };
    if !public && !authorized {
        return Err(unauthorized());
    }
    let method = request.method().to_string();
    route.check_method(&method)?;
    // The limit holds for every request, whether its route reads a body or not.
    if request.body_length().is_some_and(|n| n > shared.body_limit) {
        return Err(too_large(shared.body_limit));
    }
    let query = parse_query(query).ok_or_else(|| {
        ApiError::new(400, "invalid_parameter", "the query string has a bad %-escape or is not UTF-8")
    })?;
    let body = if route.takes_body(&method) {
        read_body(request, shared.body_limit, shared.read_timeout)?
    } else {
        Vec::new()
    };
    route.answer(&shared.registry, &Call { method: &method, query: &query, body: &body })
}

/// Reads a request body of at most `limit` bytes within `timeout` in all.
fn read_body(request: &mut dyn Exchange, limit: usize, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    let too_large = || too_large(limit);
    let deadline = Instant::now() + timeout;
    let mut body = Vec::new();
    let mut chunk = [0u8; 8192];
    let reader = request.body();
    loop {
        if Instant::now() >= deadline {
            return Err(ApiError::new(408, "request_timeout", "the body took too long to arrive"));
        }
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(body),
            Ok(n) => {
                if body.len() + n > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ApiError::new(408, "request_timeout", "the body took too long to arrive"));
            }
            Err(e) => return Err(ApiError::new(400, "bad_request", format!("reading the body failed: {e}"))),
        }
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(413, "payload_too_large", format!("the body is over the limit of {limit} bytes"))
}
