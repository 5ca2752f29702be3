//! A TCP proxy that puts network failures between the pool and a real
//! database server: a stopped server (refused connects), a black hole
//! (connects that are never answered), a crash or failover (every open
//! connection reset) and a slow link (latency on every chunk).
//!
//! Plain threads, no poll loop: tens of connections at most. Every thread
//! is woken by a socket shutdown or a flag it polls, so dropping the proxy
//! never hangs a test. A reset sets `SO_LINGER` to zero and closes the last
//! handle of each socket, so the peer sees a real RST; readers are woken by
//! `shutdown(SHUT_RD)`, which on Linux sends nothing to the peer, rather
//! than by `SHUT_RDWR`, whose FIN would reach the peer before the RST.
#![cfg(unix)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often the accept loop looks for new connections, and the longest a
/// writer sleeps (or blocks in a write) before it looks at its link's state.
const TICK: Duration = Duration::from_millis(10);
/// Chunks read and not yet written, per direction: past that the reader
/// waits, so a peer that stops reading slows its sender as TCP would.
const IN_FLIGHT: usize = 256;
/// How long an upstream connect may take before the client is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long leaving `Refuse` retries binding the proxy's port.
const REBIND_FOR: Duration = Duration::from_secs(5);
/// How long `reset_all` waits for the reset sockets to close, and `drop`
/// for the proxy's threads to end.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// What the proxy does with connections it has not accepted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connects each one upstream and forwards bytes both ways.
    Pass,
    /// Refuses them (`ECONNREFUSED`), like a stopped server: the port is closed.
    Refuse,
    /// Accepts them, discards what they send and never answers.
    BlackHole,
}

/// A fault-injecting proxy on `127.0.0.1` in front of one upstream server.
pub struct FaultProxy {
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on a free port of `127.0.0.1` and forwards to `upstream`, in `Mode::Pass`.
    pub fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            upstream,
            addr: listener.local_addr()?,
            gate: Mutex::new(Gate { listener: Some(listener), mode: Mode::Pass }),
            latency_nanos: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        spawn(&shared, "fault-proxy-accept", move || accept_loop(&accepting))?;
        Ok(FaultProxy { shared })
    }

    /// The proxy's address, the same in every mode for its whole life.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Applies `mode` to connections not accepted yet; returns once it is in force.
    ///
    /// Connections whose connect completed before the call are accepted
    /// under the old mode first. Panics if leaving `Refuse` cannot bind
    /// the port again within a few seconds.
    pub fn set_mode(&self, mode: Mode) {
        let mut gate = lock(&self.shared.gate);
        if gate.mode == mode {
            return;
        }
        if let Some(listener) = &gate.listener {
            drain_backlog(&self.shared, listener, gate.mode);
        }
        match mode {
            Mode::Refuse => gate.listener = None,
            Mode::Pass | Mode::BlackHole if gate.listener.is_none() => {
                gate.listener = Some(rebind(self.shared.addr));
            }
            Mode::Pass | Mode::BlackHole => {}
        }
        gate.mode = mode;
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        lock(&self.shared.gate).mode
    }

    /// Resets every open connection, on the client's side and upstream; returns how many.
    ///
    /// Returns once their sockets are closed (the RSTs sent), or after a
    /// few seconds if a thread is stuck. A connection still connecting
    /// upstream is not open yet, and is not reset.
    pub fn reset_all(&self) -> usize {
        let links: Vec<Arc<Link>> = lock(&self.shared.links).iter().filter_map(Weak::upgrade).collect();
        for link in &links {
            link.reset();
        }
        let closed: Vec<Arc<AtomicBool>> = links.iter().map(|link| Arc::clone(&link.open.closed)).collect();
        let count = links.len();
        // Ours go first: whichever handle is the last closes the sockets.
        drop(links);
        let deadline = Instant::now() + WIND_DOWN;
        while !closed.iter().all(|c| c.load(SeqCst)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        count
    }

    /// Delays every chunk, each way, by `latency` from when it was read (`ZERO`: none).
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, SeqCst);
    }

    /// Client connections open through the proxy now, black-holed ones included.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(SeqCst)
    }
}

impl Drop for FaultProxy {
    /// Closes the port and every connection (the peers see EOF, or a reset
    /// if they sent bytes the proxy had not read yet), then joins the
    /// proxy's threads, giving up on any still running after a few seconds.
    fn drop(&mut self) {
        let shared = &self.shared;
        let links: Vec<Arc<Link>> = {
            let links = lock(&shared.links);
            // Under the lock that registers links: none registers after this.
            shared.stopping.store(true, SeqCst);
            links.iter().filter_map(Weak::upgrade).collect()
        };
        lock(&shared.gate).listener = None;
        for link in &links {
            link.close();
        }
        drop(links);
        let deadline = Instant::now() + WIND_DOWN;
        loop {
            let finished = {
                let mut threads = lock(&shared.threads);
                let (finished, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
                *threads = running;
                finished
            };
            for thread in finished {
                if thread.join().is_err() {
                    eprintln!("fault proxy: a thread panicked");
                }
            }
            // A thread's spawner pushes its handle before ending itself, so
            // once the list is empty no thread of the proxy runs.
            let running = lock(&shared.threads).len();
            if running == 0 {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!("fault proxy: {running} thread(s) still running after {WIND_DOWN:?}, left behind");
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

// === impl Shared ===

/// What the proxy's threads share.
struct Shared {
    upstream: SocketAddr,
    addr: SocketAddr,
    gate: Mutex<Gate>,
    latency_nanos: AtomicU64,
    /// Set once by `drop`, under the `links` lock.
    stopping: AtomicBool,
    /// Every link registered; dead entries are pruned on registration.
    links: Mutex<Vec<Weak<Link>>>,
    /// Links whose sockets are not closed yet.
    open: AtomicUsize,
    accepted: AtomicU64,
    /// Every thread started and not joined yet.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The listening socket (none while refusing) and the mode it accepts under.
struct Gate {
    listener: Option<TcpListener>,
    mode: Mode,
}

impl Shared {
    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(SeqCst))
    }

    /// Registers a link for `client` (and `upstream`), or `None` once the proxy is stopping.
    fn register(self: &Arc<Self>, client: TcpStream, upstream: Option<TcpStream>) -> Option<Arc<Link>> {
        let mut links = lock(&self.links);
        if self.stopping.load(SeqCst) {
            return None;
        }
        let link = Arc::new(Link { client, upstream, state: AtomicU8::new(OPEN), open: OpenToken::new(self) });
        links.retain(|l| l.strong_count() > 0);
        links.push(Arc::downgrade(&link));
        Some(link)
    }
}

/// Starts a named thread that `drop` joins.
fn spawn(shared: &Arc<Shared>, name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let handle = thread::Builder::new().name(name.to_string()).stack_size(256 * 1024).spawn(f)?;
    let mut threads = lock(&shared.threads);
    let (finished, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
    *threads = running;
    threads.push(handle);
    drop(threads);
    for thread in finished {
        // A panic was already printed by the thread; the proxy carries on.
        let _ = thread.join();
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `addr` again after `Refuse`, retrying while the port is busy.
fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + REBIND_FOR;
    loop {
        match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() >= deadline => panic!("fault proxy: cannot bind {addr} again: {e}"),
            Err(_) => thread::sleep(TICK),
        }
    }
}

// === the accept loop ===

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.stopping.load(SeqCst) {
        {
            let gate = lock(&shared.gate);
            if let Some(listener) = &gate.listener {
                drain_backlog(shared, listener, gate.mode);
            }
        }
        thread::sleep(TICK);
    }
}

/// Accepts every connection waiting on `listener` and hands it to `mode`.
fn drain_backlog(shared: &Arc<Shared>, listener: &TcpListener, mode: Mode) {
    loop {
        match listener.accept() {
            Ok((client, _)) => admit(shared, client, mode),
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => {}
            // WouldBlock: none left; anything else (out of descriptors):
            // leave it in the backlog for the next tick.
            Err(_) => return,
        }
    }
}

fn admit(shared: &Arc<Shared>, client: TcpStream, mode: Mode) {
    shared.accepted.fetch_add(1, SeqCst);
    let handling = Arc::clone(shared);
    let started = match mode {
        Mode::Pass => spawn(shared, "fault-proxy-pass", move || pass(&handling, client)),
        Mode::BlackHole => spawn(shared, "fault-proxy-hole", move || black_hole(&handling, client)),
        Mode::Refuse => unreachable!("no listener while refusing"),
    };
    if let Err(e) = started {
        eprintln!("fault proxy: cannot start a connection's thread ({e}); its client is closed");
    }
}

// === the connections ===

/// The body of one of a passing link's threads.
type Pump = Box<dyn FnOnce() + Send>;

/// Connects `client` upstream and forwards both ways: a reader and a writer
/// per direction, the reader stamping each chunk with its delivery time.
fn pass(shared: &Arc<Shared>, client: TcpStream) {
    let upstream = match TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) {
        Ok(upstream) => upstream,
        Err(_) => {
            set_linger_zero(&client);
            return;
        }
    };
    if prepare(&client).and_then(|()| prepare(&upstream)).is_err() {
        return;
    }
    let Some(link) = shared.register(client, Some(upstream)) else { return };
    let (to_upstream, for_upstream) = mpsc::sync_channel(IN_FLIGHT);
    let (to_client, for_client) = mpsc::sync_channel(IN_FLIGHT);
    let pumps: [(&str, Pump); 3] = [
        ("fault-proxy-wr-u", {
            let link = Arc::clone(&link);
            Box::new(move || write_chunks(&link, Side::Upstream, &for_upstream))
        }),
        ("fault-proxy-wr-c", {
            let link = Arc::clone(&link);
            Box::new(move || write_chunks(&link, Side::Client, &for_client))
        }),
        ("fault-proxy-rd-u", {
            let link = Arc::clone(&link);
            let shared = Arc::clone(shared);
            Box::new(move || read_chunks(&shared, &link, Side::Upstream, &to_client))
        }),
    ];
    for (name, pump) in pumps {
        if spawn(shared, name, pump).is_err() {
            link.close();
            return;
        }
    }
    read_chunks(shared, &link, Side::Client, &to_upstream);
}

/// Holds `client` open, reading and discarding, until it closes or the
/// link is reset or closed.
fn black_hole(shared: &Arc<Shared>, client: TcpStream) {
    // Some systems give an accepted socket the listener's O_NONBLOCK.
    if client.set_nonblocking(false).is_err() {
        return;
    }
    let Some(link) = shared.register(client, None) else { return };
    let mut buf = [0u8; 4096];
    loop {
        match (&link.client).read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    link.close();
}

/// Blocking reads, and writes that give up every `TICK` to look at the link's state.
fn prepare(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(TICK))
}

/// Reads chunks from `from` and sends them, stamped, to the other side's writer.
fn read_chunks(shared: &Shared, link: &Link, from: Side, to: &SyncSender<(Instant, Vec<u8>)>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match link.socket(from).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.send((Instant::now() + shared.latency(), buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes each chunk to `to` at its delivery time; once the reader is done
/// and every chunk delivered, or on any error, closes the link.
fn write_chunks(link: &Link, to: Side, chunks: &Receiver<(Instant, Vec<u8>)>) {
    'chunks: while let Ok((at, bytes)) = chunks.recv() {
        loop {
            if !link.is_open() {
                return;
            }
            let now = Instant::now();
            if now >= at {
                break;
            }
            thread::sleep((at - now).min(TICK));
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match link.socket(to).write(rest) {
                Ok(0) => break 'chunks,
                Ok(n) => rest = &rest[n..],
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    if !link.is_open() {
                        return;
                    }
                }
                Err(_) => break 'chunks,
            }
        }
    }
    link.close();
}

// === impl Link ===

/// A link is open, then closing (both sockets shut down: the peers see
/// EOF) or reset (linger zero: the peers see RST at the close).
const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const RESET: u8 = 2;

/// One client connection and, when passing, its upstream connection.
/// The sockets close when the last thread using them drops its handle.
struct Link {
    client: TcpStream,
    upstream: Option<TcpStream>,
    state: AtomicU8,
    /// Declared after the sockets, so dropped after they are closed.
    open: OpenToken,
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Client,
    Upstream,
}

impl Link {
    fn socket(&self, side: Side) -> &TcpStream {
        match side {
            Side::Client => &self.client,
            Side::Upstream => self.upstream.as_ref().expect("a passing link has an upstream socket"),
        }
    }

    fn sockets(&self) -> impl Iterator<Item = &TcpStream> {
        std::iter::once(&self.client).chain(&self.upstream)
    }

    fn is_open(&self) -> bool {
        self.state.load(SeqCst) == OPEN
    }

    /// Shuts both sockets down (the peers see EOF) unless already closing or reset.
    fn close(&self) {
        if self.state.compare_exchange(OPEN, CLOSING, SeqCst, SeqCst).is_ok() {
            for socket in self.sockets() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Sets linger zero, so the close sends RST, and wakes the readers
    /// without sending the peers anything.
    fn reset(&self) {
        self.state.store(RESET, SeqCst);
        for socket in self.sockets() {
            set_linger_zero(socket);
            let _ = socket.shutdown(Shutdown::Read);
        }
    }
}

/// Counts a link open from its registration until its sockets are closed.
struct OpenToken {
    shared: Arc<Shared>,
    closed: Arc<AtomicBool>,
}

impl OpenToken {
    fn new(shared: &Arc<Shared>) -> OpenToken {
        shared.open.fetch_add(1, SeqCst);
        OpenToken { shared: Arc::clone(shared), closed: Arc::new(AtomicBool::new(false)) }
    }
}

impl Drop for OpenToken {
    fn drop(&mut self) {
        // Count first: once `reset_all` sees the flag, the count is down.
        self.shared.open.fetch_sub(1, SeqCst);
        self.closed.store(true, SeqCst);
    }
}

/// `SO_LINGER` {on, 0 s}: closing `stream` then discards unsent data and sends RST.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor belongs to `stream`, borrowed for the whole
    // call, so it is open; the value points to a live `libc::linger` and
    // the length passed is its size, as `SO_LINGER` expects.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        eprintln!("fault proxy: SO_LINGER: {}", std::io::Error::last_os_error());
    }
}
