//! A read/write workload against SQLite (or PostgreSQL) through a rusty-db
//! pool.
//!
//! Worker threads share a pool of a few connections: by default to a SQLite
//! WAL database in a temporary folder, with `--postgres URL` (and the
//! `postgres` feature) to a table of its own on a PostgreSQL server. Each
//! operation borrows a connection for one statement: 80 % point reads,
//! 20 % single-row updates. A live line on
//! stderr shows the pool at work (borrowed, idle, waiting); the summary on
//! stdout shows throughput, how long threads waited to acquire, and how
//! often the pool reused a connection instead of opening one.
//!
//! Beside it, a second, partitioned pool (`tenants`) serves two tenants'
//! light traffic on the same database, so that the admin server (and its
//! dashboard, printed as `dashboard: http://ADDR/dashboard`) has more than
//! one pool to show, with partitions and idle connections; one tenant now
//! and then holds its connection past the pool's leak threshold.
//!
//! ```text
//! cargo run --release --example demo -- --threads 32 --pool-size 4 --duration 2
//! cargo run --release --example demo --features postgres -- --postgres postgres://postgres@127.0.0.1/test
//! ```

use std::error::Error;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rusty_db::adapters::sqlite::SqliteConnectionFactory;
use rusty_db::adapters::sqlite::rusqlite::{Connection, params};
use rusty_db::admin::{AdminServer, Registry};
use rusty_db::pool::{
    ConnectionDescription, ConnectionFactory, ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest,
    PartitionType, PoolConfig, PoolError, Result as PoolResult, RoutingStrategy,
};

/// What a workload needs of a connection, whichever the database.
type DbResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const USAGE: &str = "\
Usage: cargo run --release --example demo -- [OPTIONS]

Runs a multi-threaded read/write workload (80 % reads, 20 % writes) against a
SQLite database in a temporary folder, through a rusty-db connection pool.
With --postgres, runs it against a PostgreSQL server instead, in a table of its
own (rusty_db_demo_kv, created and dropped by the run).

Options:
  --threads N        worker threads, 1 to 1024 (default 8)
  --duration SECS    how long to run, up to 86400; fractions allowed (default 5)
  --pool-size N      most connections the pool opens, 1 to 1024 (default 4)
  --admin-addr ADDR  where the admin REST API listens (default 127.0.0.1:0,
                     a free loopback port); printed as \"admin: http://ADDR/\"
  --admin-token T    the admin API's bearer token (default: a random one,
                     printed)
  --postgres URL     use PostgreSQL at URL (postgres://user@host:port/db);
                     needs the build's `postgres` feature
  -h, --help         print this help
";

/// Rows in the `kv` table; operations pick one uniformly.
const ROWS: u32 = 1000;
/// Share of operations that read; the rest update.
const READ_PERCENT: u64 = 80;
/// Long enough that a timeout means trouble, short enough to end the run soon after it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write waits for SQLite's write lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the live line is redrawn on a terminal.
const TICK: Duration = Duration::from_millis(250);
/// The most recorded acquire wait; longer waits count as this.
const MAX_WAIT_NS: u64 = 60_000_000_000;
const MAX_THREADS: usize = 1024;
const MAX_POOL_SIZE: usize = 1024;
/// A day: long enough for a soak test, short enough that `Instant + duration` cannot overflow.
const MAX_SECONDS: f64 = 86_400.0;
/// The tenants of the second pool, each with a partition of its own.
const TENANTS: [&str; 2] = ["acme", "globex"];
/// How long a tenant's thread pauses between two reads: light traffic.
const TENANT_PAUSE: Duration = Duration::from_millis(50);
/// The tenants pool reports a connection borrowed longer than this as a leak.
const LEAK_THRESHOLD: Duration = Duration::from_secs(1);
/// Every this many reads, the last tenant holds its connection for
/// `SLOW_HOLD`: a leak for the dashboard to show, for a moment.
const SLOW_EVERY: u64 = 40;
const SLOW_HOLD: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("demo: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}

// === Command line ===

#[derive(Debug, Clone)]
struct Options {
    threads: usize,
    duration: Duration,
    pool_size: usize,
    admin_addr: SocketAddr,
    admin_token: Option<String>,
    postgres: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 8,
            duration: Duration::from_secs(5),
            pool_size: 4,
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: None,
            postgres: None,
        }
    }
}

enum Command {
    Run(Options),
    Help,
}

/// Parses `--flag value` and `--flag=value`; the error is a message for the user.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" if inline.is_none() => return Ok(Command::Help),
            "--threads" => {
                options.threads = parse_count(&flag, &value_of(&flag, inline, &mut args)?, MAX_THREADS)?;
            }
            "--pool-size" => {
                options.pool_size = parse_count(&flag, &value_of(&flag, inline, &mut args)?, MAX_POOL_SIZE)?;
            }
            "--duration" => options.duration = parse_seconds(&flag, &value_of(&flag, inline, &mut args)?)?,
            "--admin-addr" => {
                let value = value_of(&flag, inline, &mut args)?;
                options.admin_addr = value
                    .parse()
                    .map_err(|_| format!("{flag} expects an address like 127.0.0.1:8080, got '{value}'"))?;
            }
            "--admin-token" => options.admin_token = Some(value_of(&flag, inline, &mut args)?),
            "--postgres" => options.postgres = Some(value_of(&flag, inline, &mut args)?),
            "-h" | "--help" => return Err(format!("{flag} takes no value")),
            other if other.starts_with('-') => return Err(format!("unknown option '{other}'")),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    Ok(Command::Run(options))
}

fn value_of(flag: &str, inline: Option<String>, rest: &mut impl Iterator<Item = String>) -> Result<String, String> {
    inline.or_else(|| rest.next()).ok_or_else(|| format!("{flag} needs a value"))
}

fn parse_count(flag: &str, value: &str, max: usize) -> Result<usize, String> {
    let n: usize = value.parse().map_err(|_| format!("{flag} expects a whole number, got '{value}'"))?;
    if !(1..=max).contains(&n) {
        return Err(format!("{flag} must be between 1 and {max}, got {n}"));
    }
    Ok(n)
}

fn parse_seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = value.parse().map_err(|_| format!("{flag} expects a number of seconds, got '{value}'"))?;
    if secs.is_nan() || secs <= 0.0 || secs > MAX_SECONDS {
        return Err(format!("{flag} must be more than 0 and at most {MAX_SECONDS} seconds, got '{value}'"));
    }
    Ok(Duration::from_secs_f64(secs))
}

// === The run ===

/// Runs the workload on the database the options name.
fn run(options: &Options) -> Result<Summary, Box<dyn Error>> {
    match &options.postgres {
        None => run_sqlite(options),
        Some(url) => run_postgres(options, url),
    }
}

/// On a SQLite database in a temporary folder.
fn run_sqlite(options: &Options) -> Result<Summary, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteConnectionFactory::new(dir.path().join("demo.db")).with_busy_timeout(BUSY_TIMEOUT);
    // Every connection is closed before the temporary folder is deleted.
    run_on(options, sqlite, "SQLite connection")
}

/// On a PostgreSQL server, in a table of the demo's own.
#[cfg(feature = "postgres")]
fn run_postgres(options: &Options, url: &str) -> Result<Summary, Box<dyn Error>> {
    use rusty_db::adapters::postgres::PostgresConnectionFactory;
    let factory = PostgresConnectionFactory::new(url)?.with_connect_timeout(Duration::from_secs(5));
    run_on(options, factory, "PostgreSQL connection")
}

#[cfg(not(feature = "postgres"))]
fn run_postgres(_: &Options, _: &str) -> Result<Summary, Box<dyn Error>> {
    Err("this demo was built without PostgreSQL: run it with `--features postgres`".into())
}

/// Sets up the table and the pool, runs the workload, and sums it up.
fn run_on<C: Workload, F: ConnectionFactory<C> + Clone>(
    options: &Options,
    factory: F,
    noun: &'static str,
) -> Result<Summary, Box<dyn Error>> {
    let tenants = tenants_pool(factory.clone())?;
    let factory = Arc::new(CountingFactory { inner: factory, created: AtomicU64::new(0) });
    let pool = ConnectionPool::new(pool_config(options)?, Arc::clone(&factory))?;
    pool.acquire()?.seed().map_err(|e| -> Box<dyn Error> { e })?;
    let created_up_front = factory.created();
    let admin = start_admin(&pool, &tenants, options)?;

    let started = Instant::now();
    let stats = thread::scope(|s| {
        for (n, tenant) in TENANTS.into_iter().enumerate() {
            let (tenants, deadline, slow) = (&tenants, started + options.duration, n == TENANTS.len() - 1);
            let spawned = thread::Builder::new()
                .name(format!("tenant-{tenant}"))
                .spawn_scoped(s, move || tenant_traffic(tenants, tenant, deadline, slow));
            if let Err(e) = spawned {
                eprintln!("no thread for tenant {tenant}'s traffic: {e}");
            }
        }
        run_workers(&pool, options)
    });
    let elapsed = started.elapsed();

    admin.shutdown();
    tenants.close();
    let dropped: Result<(), Box<dyn Error>> = match pool.acquire() {
        Ok(mut conn) => conn.drop_table().map_err(|e| -> Box<dyn Error> { e }),
        Err(e) => Err(e.into()),
    };
    pool.close();
    dropped?;
    let total = stats.into_iter().fold(WorkerStats::new(), WorkerStats::merge);
    Ok(Summary { options: options.clone(), noun, elapsed, total, created_up_front, created: factory.created() })
}

/// Serves the admin REST API over both pools while the workload runs, and
/// prints where and with which token, so it can be tried with curl or in
/// a browser.
fn start_admin<C: Send + 'static>(
    pool: &ConnectionPool<C>,
    tenants: &ConnectionPool<C>,
    options: &Options,
) -> Result<AdminServer, Box<dyn Error>> {
    let registry = Registry::new();
    let id = registry.register(pool)?;
    registry.register(tenants)?;
    let builder = AdminServer::builder().bind(options.admin_addr);
    let builder = match &options.admin_token {
        Some(token) => builder.token(token.clone()),
        None => builder.random_token(),
    };
    let server = builder.start(registry)?;
    let token = server.token().unwrap_or_default();
    println!("admin: http://{}/", server.local_addr());
    println!("admin token: {token}");
    println!("dashboard: http://{}/dashboard", server.local_addr());
    println!("try:   curl -H 'Authorization: Bearer {token}' http://{}/api/v1/pools/{id}/stats", server.local_addr());
    std::io::stdout().flush()?;
    Ok(server)
}

/// Up to two connections opened up front and kept, the rest on demand.
fn pool_config(options: &Options) -> PoolResult<PoolConfig> {
    let kept = options.pool_size.min(2);
    PoolConfig::builder()
        .name("default")
        .min_size(kept)
        .initial_size(kept)
        .max_size(options.pool_size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_wait_queue_size(options.threads)
        .build()
}

/// The second pool: up to 4 connections, 2 kept open, shared by one
/// partition per tenant (2 connections each, 1 of them reserved), with
/// leak detection.
fn tenants_pool<C: Workload, F: ConnectionFactory<C>>(factory: F) -> PoolResult<ConnectionPool<C>> {
    let config = PoolConfig::builder()
        .name("tenants")
        .min_size(2)
        .initial_size(2)
        .max_size(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .leak_detection_threshold(LEAK_THRESHOLD)
        .maintenance_interval(Duration::from_millis(250))
        .enable_partitioning(true)
        .build()?;
    let pool = ConnectionPool::new(config, Arc::new(factory))?;
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    for tenant in TENANTS {
        let limits =
            PartitionLimits { max_connections: 2, min_connections: 1, max_wait_queue: 8, ..Default::default() };
        manager.create_partition(format!("tenant_{tenant}"), PartitionType::Tenant(tenant.to_string()), limits)?;
    }
    pool.set_partition_manager(manager)?;
    Ok(pool)
}

/// One tenant's light traffic: a read, then a pause, until `deadline`;
/// if `slow`, every `SLOW_EVERY`th read holds its connection for
/// `SLOW_HOLD`. Its errors are the admin API's to show; the summary is the
/// main pool's.
fn tenant_traffic<C: Workload>(pool: &ConnectionPool<C>, tenant: &str, deadline: Instant, slow: bool) {
    let request = PartitionRequest::for_tenant(tenant);
    let mut rng = XorShift::new(tenant.len() as u64);
    let mut reads = 0u64;
    while Instant::now() < deadline {
        if let Ok(mut conn) = pool.acquire_for(&request) {
            reads += 1;
            let held = slow && reads % SLOW_EVERY == 0;
            conn.set_query(if held { "SELECT value FROM kv WHERE id = ?1 -- a slow report" } else { READ_SQL });
            let _ = conn.read(1 + rng.below(u64::from(ROWS)) as i64);
            if held {
                thread::sleep(SLOW_HOLD.min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        thread::sleep(TENANT_PAUSE.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The workload's statements, on one database.
trait Workload: Send + 'static {
    /// Creates the table with `ROWS` rows.
    fn seed(&mut self) -> DbResult<()>;
    /// Reads row `id`.
    fn read(&mut self, id: i64) -> DbResult<()>;
    /// Updates row `id`.
    fn write(&mut self, id: i64, value: &str) -> DbResult<()>;
    /// Drops the table (a temporary SQLite file goes with its folder).
    fn drop_table(&mut self) -> DbResult<()> {
        Ok(())
    }
}

const READ_SQL: &str = "SELECT value FROM kv WHERE id = ?1";
const WRITE_SQL: &str = "UPDATE kv SET value = ?1 WHERE id = ?2";

impl Workload for Connection {
    /// Creates `kv` in one transaction.
    fn seed(&mut self) -> DbResult<()> {
        self.execute_batch("CREATE TABLE kv (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")?;
        let tx = self.transaction()?;
        {
            let mut insert = tx.prepare("INSERT INTO kv (id, value) VALUES (?1, ?2)")?;
            for id in 1..=ROWS {
                insert.execute(params![id, format!("value-{id}")])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn read(&mut self, id: i64) -> DbResult<()> {
        let mut select = self.prepare_cached(READ_SQL)?;
        let _value: String = select.query_row([id], |row| row.get(0))?;
        Ok(())
    }

    fn write(&mut self, id: i64, value: &str) -> DbResult<()> {
        let mut update = self.prepare_cached(WRITE_SQL)?;
        update.execute(params![value, id])?;
        Ok(())
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use rusty_db::adapters::postgres::PgConnection;
    use rusty_db::adapters::postgres::postgres::types::Type;

    use super::{DbResult, ROWS, Workload};

    const TABLE: &str = "rusty_db_demo_kv";

    impl Workload for PgConnection {
        /// Creates the demo's table afresh, rows and all, in one statement.
        fn seed(&mut self) -> DbResult<()> {
            self.batch_execute(&format!(
                "DROP TABLE IF EXISTS {TABLE}; \
                 CREATE TABLE {TABLE} (id bigint PRIMARY KEY, value text NOT NULL); \
                 INSERT INTO {TABLE} SELECT n, 'value-' || n FROM generate_series(1, {ROWS}) AS n"
            ))?;
            Ok(())
        }

        /// One round trip: typed parameters need no prepare.
        fn read(&mut self, id: i64) -> DbResult<()> {
            let sql = format!("SELECT value FROM {TABLE} WHERE id = $1");
            let rows = self.query_typed(&sql, &[(&id, Type::INT8)])?;
            let _value: &str = rows.first().ok_or("a seeded row is missing")?.get(0);
            Ok(())
        }

        fn write(&mut self, id: i64, value: &str) -> DbResult<()> {
            let sql = format!("UPDATE {TABLE} SET value = $1 WHERE id = $2");
            self.query_typed(&sql, &[(&value, Type::TEXT), (&id, Type::INT8)])?;
            Ok(())
        }

        fn drop_table(&mut self) -> DbResult<()> {
            self.batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}"))?;
            Ok(())
        }
    }
}

/// Counts the connections the pool opens; everything else is the
/// database adapter's.
struct CountingFactory<F> {
    inner: F,
    created: AtomicU64,
}

impl<F> CountingFactory<F> {
    fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
}

impl<C, F: ConnectionFactory<C>> ConnectionFactory<C> for CountingFactory<F> {
    fn create(&self) -> PoolResult<C> {
        let conn = self.inner.create()?;
        // Relaxed: a plain counter, read after the workers are joined.
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    fn validate(&self, conn: &C) -> PoolResult<bool> {
        self.inner.validate(conn)
    }

    fn validate_mut(&self, conn: &mut C) -> PoolResult<bool> {
        self.inner.validate_mut(conn)
    }

    fn validation_round_trips(&self) -> bool {
        self.inner.validation_round_trips()
    }

    fn validate_query(&self, conn: &mut C, query: &str) -> PoolResult<bool> {
        self.inner.validate_query(conn, query)
    }

    fn reset(&self, conn: &mut C) -> PoolResult<()> {
        self.inner.reset(conn)
    }

    fn clean(&self, conn: &mut C) -> PoolResult<()> {
        self.inner.clean(conn)
    }

    fn close(&self, conn: C) -> PoolResult<()> {
        self.inner.close(conn)
    }

    fn describe(&self, conn: &C) -> Option<ConnectionDescription> {
        self.inner.describe(conn)
    }

    fn attach(&self, pool: &PoolConfig) {
        self.inner.attach(pool)
    }
}

// === Workers ===

/// One worker's running count of operations, alone on its cache line so
/// that publishing it does not slow the other workers down.
#[repr(align(128))]
#[derive(Default)]
struct Progress(AtomicU64);

/// Runs the workers until the deadline while the calling thread draws the
/// live line; returns each worker's statistics.
fn run_workers<C: Workload>(pool: &ConnectionPool<C>, options: &Options) -> Vec<WorkerStats> {
    let progress: Vec<Progress> = (0..options.threads).map(|_| Progress::default()).collect();
    let running = AtomicUsize::new(options.threads);
    let start = Instant::now();
    let deadline = start + options.duration;
    let main_thread = thread::current();
    thread::scope(|s| {
        let workers: Vec<_> = progress
            .iter()
            .enumerate()
            .map(|(index, progress)| {
                let (running, main_thread) = (&running, main_thread.clone());
                s.spawn(move || {
                    let stats = worker(pool, index as u64, deadline, progress);
                    // Release: pairs with the Acquire in `show_progress`.
                    running.fetch_sub(1, Ordering::Release);
                    main_thread.unpark();
                    stats
                })
            })
            .collect();
        show_progress(pool, &progress, &running, start, options.duration);
        workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

/// Borrows a connection for one statement at a time until `deadline`.
fn worker<C: Workload>(pool: &ConnectionPool<C>, seed: u64, deadline: Instant, progress: &Progress) -> WorkerStats {
    let mut rng = XorShift::new(seed);
    let mut stats = WorkerStats::new();
    loop {
        let started = Instant::now();
        if started >= deadline {
            return stats;
        }
        let acquired = pool.acquire();
        stats.acquire_wait_ns.saturating_record(nanos(started.elapsed()));
        let mut conn = match acquired {
            Ok(conn) => conn,
            Err(PoolError::ConnectionTimeout(_)) => {
                stats.timeouts += 1;
                continue;
            }
            Err(error) => {
                stats.record_error(&error);
                continue;
            }
        };
        stats.acquires += 1;
        let id = 1 + rng.below(u64::from(ROWS)) as i64;
        let op = if rng.below(100) < READ_PERCENT { Op::Read } else { Op::Write };
        conn.set_query(match op {
            Op::Read => READ_SQL,
            Op::Write => WRITE_SQL,
        });
        let result = match op {
            Op::Read => conn.read(id),
            Op::Write => conn.write(id, &format!("value-{:016x}", rng.next())),
        };
        drop(conn); // back to the pool before the bookkeeping
        match (result, op) {
            (Ok(()), Op::Read) => stats.reads += 1,
            (Ok(()), Op::Write) => stats.writes += 1,
            (Err(error), _) => stats.record_error(&*error),
        }
        // Relaxed: a progress display, nothing depends on it.
        progress.0.store(stats.reads + stats.writes, Ordering::Relaxed);
    }
}

/// What one worker did; merged into one at the end.
struct WorkerStats {
    reads: u64,
    writes: u64,
    acquires: u64,
    timeouts: u64,
    errors: u64,
    first_error: Option<String>,
    acquire_wait_ns: Histogram<u64>,
}

impl WorkerStats {
    fn new() -> Self {
        WorkerStats {
            reads: 0,
            writes: 0,
            acquires: 0,
            timeouts: 0,
            errors: 0,
            first_error: None,
            acquire_wait_ns: Histogram::new_with_bounds(1, MAX_WAIT_NS, 3).expect("constant, valid bounds"),
        }
    }

    fn record_error(&mut self, error: &dyn Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| error.to_string());
    }

    fn merge(mut self, other: WorkerStats) -> Self {
        self.reads += other.reads;
        self.writes += other.writes;
        self.acquires += other.acquires;
        self.timeouts += other.timeouts;
        self.errors += other.errors;
        self.first_error = self.first_error.or(other.first_error);
        self.acquire_wait_ns.add(&other.acquire_wait_ns).expect("histograms with the same bounds");
        self
    }
}

/// xorshift64 (Marsaglia 2003): plenty for picking rows, and no dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Spread small seeds apart; the state must never be zero.
        XorShift(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// === Output ===

/// Redraws the progress line until every worker has finished: in place
/// every `TICK` on a terminal, one line a second otherwise (logs, pipes).
fn show_progress<C: Send + 'static>(
    pool: &ConnectionPool<C>,
    progress: &[Progress],
    running: &AtomicUsize,
    start: Instant,
    duration: Duration,
) {
    let terminal = std::io::stderr().is_terminal();
    let interval = if terminal { TICK } else { Duration::from_secs(1) };
    let mut last = (start, 0);
    let mut next_draw = start + interval;
    // Acquire: pairs with each worker's Release when it finishes.
    while running.load(Ordering::Acquire) > 0 {
        // Workers unpark this thread when they finish, so the loop ends promptly.
        thread::park_timeout(next_draw.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        if now < next_draw {
            continue;
        }
        next_draw += interval;
        let ops: u64 = progress.iter().map(|p| p.0.load(Ordering::Relaxed)).sum();
        let rate = (ops - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, ops);
        let line = format!(
            "{:>5.1} s of {:.1} s  {:>12} ops  {:>10} ops/s   active {:>3}  idle {:>3}  waiting {:>4}",
            now.duration_since(start).as_secs_f64(),
            duration.as_secs_f64(),
            thousands(ops),
            thousands(rate as u64),
            pool.active(),
            pool.idle(),
            pool.waiting(),
        );
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if terminal {
        eprintln!();
    }
}

/// The numbers printed at the end.
struct Summary {
    options: Options,
    /// What the pool holds: "SQLite connection", "PostgreSQL connection".
    noun: &'static str,
    elapsed: Duration,
    total: WorkerStats,
    created_up_front: u64,
    created: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = &self.total;
        let ops = total.reads + total.writes;
        let secs = self.elapsed.as_secs_f64();
        let share = |n: u64| if ops == 0 { 0.0 } else { 100.0 * n as f64 / ops as f64 };
        let on_demand = self.created.saturating_sub(self.created_up_front);
        let wait = &total.acquire_wait_ns;
        let o = &self.options;

        writeln!(
            f,
            "rusty-db demo: {}, pool of up to {}, {:.2} s\n",
            plural(o.threads, "thread"),
            plural(o.pool_size, self.noun),
            secs
        )?;
        writeln!(f, "operations    {:>12}   {:>10} ops/s", thousands(ops), thousands((ops as f64 / secs) as u64))?;
        writeln!(f, "  reads       {:>12}   {:>9.1} %", thousands(total.reads), share(total.reads))?;
        writeln!(f, "  writes      {:>12}   {:>9.1} %", thousands(total.writes), share(total.writes))?;
        writeln!(
            f,
            "acquire wait  p50 {}   p99 {}   max {}   ({} acquires)",
            human_ns(wait.value_at_quantile(0.50)),
            human_ns(wait.value_at_quantile(0.99)),
            human_ns(wait.max()),
            thousands(wait.len()),
        )?;
        writeln!(
            f,
            "connections   {} created ({} up front, {} on demand), {} acquires reused one",
            self.created,
            self.created_up_front,
            on_demand,
            thousands(total.acquires.saturating_sub(on_demand)),
        )?;
        writeln!(f, "timeouts      {:>12}   (acquire timeout {:?})", thousands(total.timeouts), ACQUIRE_TIMEOUT)?;
        write!(f, "errors        {:>12}", thousands(total.errors))?;
        match &total.first_error {
            Some(first) => writeln!(f, "   (first: {first})"),
            None => writeln!(f),
        }
    }
}

/// `1 thread`, `8 threads`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration in nanoseconds, in the unit that reads best.
fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}
