//! The async reference row: deadpool-postgres, as its docs give it
//! (`Manager::new`, so `RecyclingMethod::Fast`: a returned client is
//! checked only for a closed socket, no round trip), `max_size = P`, on a
//! tokio multi-thread runtime of 2 worker threads (the machine's cores)
//! running the case's `T` workers as tasks. It shows what the same
//! statements cost when no thread blocks on a socket; the blocking pools
//! are the comparison that matters for rusty-db.
//!
//! deadpool opens sessions on demand: opening takes all `P` at once (so
//! all are created) and prepares the workload's statements on each through
//! deadpool's statement cache, as the blocking pools are primed.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::tokio_postgres::{self, NoTls};
use deadpool_postgres::{Client, Manager, Pool};
use tokio::runtime::Runtime;

use crate::run::{self, Outcome, STOPPED, Tally, WARMING};
use crate::server::Server;
use crate::subjects::Open;
use crate::workload::{Params, Rng, SELECT_1, SELECT_BALANCE, TPCB, Workload};

/// The runtime's worker threads: the machine's 2 cores.
const WORKER_THREADS: usize = 2;

/// deadpool-postgres on its own runtime.
pub struct AsyncPool {
    runtime: Runtime,
    pool: Pool,
}

impl AsyncPool {
    /// Opens `connections` sessions and primes each for `workload`.
    pub fn open(server: &Server, connections: usize, workload: Workload) -> AsyncPool {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let config: tokio_postgres::Config = server.url().parse().expect("a valid connection string");
        let pool = Pool::builder(Manager::new(config, NoTls)).max_size(connections).build().expect("a deadpool pool");
        runtime.block_on(async {
            let mut held = Vec::with_capacity(connections);
            for _ in 0..connections {
                let client = pool.get().await.expect("deadpool opens a session");
                for sql in workload.statements() {
                    client.prepare_cached(sql).await.expect("a statement prepared through deadpool's cache");
                }
                held.push(client);
            }
        });
        AsyncPool { runtime, pool }
    }
}

impl Open for AsyncPool {
    fn run(&self, workload: Workload, threads: usize, warm_up: Duration, duration: Duration) -> Outcome {
        let phase = Arc::new(AtomicU8::new(WARMING));
        let tasks: Vec<_> = (0..threads)
            .map(|i| self.runtime.spawn(worker(self.pool.clone(), workload, Arc::clone(&phase), i as u64 + 1)))
            .collect();
        let elapsed = run::timeline(&phase, warm_up, duration);
        let tallies = self.runtime.block_on(async {
            let mut tallies = Vec::with_capacity(tasks.len());
            for task in tasks {
                tallies.push(task.await.expect("a benchmark task"));
            }
            tallies
        });
        Outcome::new(tallies, elapsed)
    }

    /// Closes the pool, then shuts the runtime down: each session's
    /// connection task ends and its socket closes.
    fn close(self: Box<Self>) {
        let AsyncPool { runtime, pool } = *self;
        pool.close();
        drop(pool);
        drop(runtime);
    }
}

/// One task's closed loop (see `run.rs`).
async fn worker(pool: Pool, workload: Workload, phase: Arc<AtomicU8>, seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new();
    loop {
        // Relaxed: see `run::timeline`.
        let now = phase.load(Ordering::Relaxed);
        if now == STOPPED {
            break;
        }
        let params = rng.params();
        let start = Instant::now();
        let mut client = pool.get().await.expect("a deadpool session");
        let acquired = start.elapsed();
        op(&mut client, workload, params).await;
        drop(client);
        tally.record(now, acquired, start.elapsed());
    }
    tally
}

/// `workload::run`'s operation, on deadpool's client.
async fn op(client: &mut Client, workload: Workload, p: Params) {
    match workload {
        Workload::Select1 => {
            black_box(client.simple_query(SELECT_1).await.expect("SELECT 1"));
        }
        Workload::SelectOnly => {
            let select = client.prepare_cached(SELECT_BALANCE).await.expect("a cached statement");
            let row = client.query_one(&select, &[&p.aid]).await.expect("an account's balance");
            black_box(row.get::<_, i32>(0));
        }
        Workload::TpcbLike => {
            let mut statements = Vec::with_capacity(TPCB.len());
            for sql in TPCB {
                statements.push(client.prepare_cached(sql).await.expect("a cached statement"));
            }
            let [account, select, teller, branch, history] = &statements[..] else {
                unreachable!("five tpcb-like statements")
            };
            let tx = client.transaction().await.expect("BEGIN");
            tx.execute(account, &[&p.delta, &p.aid]).await.expect("UPDATE pgbench_accounts");
            let row = tx.query_one(select, &[&p.aid]).await.expect("an account's balance");
            black_box(row.get::<_, i32>(0));
            tx.execute(teller, &[&p.delta, &p.tid]).await.expect("UPDATE pgbench_tellers");
            tx.execute(branch, &[&p.delta, &p.bid]).await.expect("UPDATE pgbench_branches");
            tx.execute(history, &[&p.tid, &p.bid, &p.aid, &p.delta]).await.expect("INSERT INTO pgbench_history");
            tx.commit().await.expect("COMMIT");
        }
    }
}
