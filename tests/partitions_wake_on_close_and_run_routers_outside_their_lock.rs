//! A partitioned pool under hostile users: `close()` wakes the requests
//! queued in a partition (and in the shared queue) with `PoolClosed`, and
//! every later one fails the same way at once; a custom router runs with
//! no lock of the pool's held, so one that reads the pool's statistics
//! does not deadlock it, and one that is stuck on its own tenant's lookup
//! delays no other tenant's acquires or releases.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{TestConn, TrackingFactory};
use rusty_db::pool::{
    ConnectionPool, PartitionLimits, PartitionManager, PartitionRequest, PartitionType, PoolConfig, PoolError,
    RoutingStrategy, WeakConnectionPool,
};

/// Long enough that a request woken only by its timeout is obvious.
const TIMEOUT: Duration = Duration::from_secs(6);
/// How long a woken request may take to say so, on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(2);

fn pool(max_size: usize) -> ConnectionPool<TestConn> {
    let config = PoolConfig::builder()
        .min_size(0)
        .initial_size(0)
        .max_size(max_size)
        .acquire_timeout(TIMEOUT)
        .enable_partitioning(true)
        .build()
        .unwrap();
    ConnectionPool::new(config, TrackingFactory::new()).unwrap()
}

fn limits(max: usize, min: usize) -> PartitionLimits {
    PartitionLimits { max_connections: max, min_connections: min, ..Default::default() }
}

fn tenant(t: &str) -> PartitionRequest {
    PartitionRequest::for_tenant(t)
}

/// Runs `f` on a thread of its own; its result, or a panic naming `what`
/// if it has not returned within `within` (a hang would stall the suite).
fn within<T: Send + 'static>(what: &str, within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let _ = send.send(f());
    });
    receive.recv_timeout(within).unwrap_or_else(|_| panic!("{what} did not return within {within:?}"))
}

#[test]
fn close_wakes_a_request_queued_in_a_partition_and_refuses_later_ones() {
    let pool = pool(4);
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    manager.create_partition("p".into(), PartitionType::Tenant("p".into()), limits(2, 2)).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let held = [pool.acquire_for(&tenant("p")).unwrap(), pool.acquire_for(&tenant("p")).unwrap()];

    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || {
            let started = Instant::now();
            (pool.acquire_for(&tenant("p")).map(|_| ()), started.elapsed())
        })
    };
    let partition = pool.partitions().unwrap().partition("p").unwrap();
    assert!(common::eventually(|| partition.statistics().waiting == 1), "the request queues in its partition");

    let closed_at = Instant::now();
    pool.close();
    let (outcome, _) = waiter.join().unwrap();
    assert!(matches!(outcome, Err(PoolError::PoolClosed)), "{outcome:?}");
    assert!(closed_at.elapsed() < PROMPTLY, "woken by close(), not by its timeout: {:?}", closed_at.elapsed());
    assert_eq!(partition.statistics().waiting, 0);

    let started = Instant::now();
    let later = pool.acquire_for(&tenant("p"));
    assert!(matches!(later, Err(PoolError::PoolClosed)), "{later:?}");
    assert!(started.elapsed() < PROMPTLY, "refused at once: {:?}", started.elapsed());
    assert!(matches!(pool.acquire(), Err(PoolError::PoolClosed)));
    drop(held);
}

#[test]
fn close_wakes_a_request_queued_for_no_partition() {
    let pool = pool(2);
    let manager = PartitionManager::new(RoutingStrategy::TenantBased);
    // Its reservation leaves one connection to requests of no partition.
    manager.create_partition("p".into(), PartitionType::Tenant("p".into()), limits(1, 1)).unwrap();
    pool.set_partition_manager(manager).unwrap();
    let held = pool.acquire().unwrap();

    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || pool.acquire().map(|_| ()))
    };
    thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "the plain acquire waits for the one shared connection");
    let closed_at = Instant::now();
    pool.close();
    let outcome = waiter.join().unwrap();
    assert!(matches!(outcome, Err(PoolError::PoolClosed)), "{outcome:?}");
    assert!(closed_at.elapsed() < PROMPTLY, "woken by close(): {:?}", closed_at.elapsed());
    let failed = pool.statistics().acquire_failures.closed;
    assert_eq!(failed, 1, "counted as an acquire failed by PoolClosed");
    drop(held);
}

#[test]
fn a_custom_router_that_reads_the_pool_does_not_deadlock_it() {
    let pool = pool(4);
    // Picks the partition with the fewest connections held, from the pool's
    // own statistics: the load-aware router a user would write.
    let slot: Arc<OnceLock<WeakConnectionPool<TestConn>>> = Arc::default();
    let router = {
        let slot = Arc::clone(&slot);
        RoutingStrategy::Custom(Arc::new(move |_: &PartitionRequest| {
            let pool = slot.get()?.upgrade()?;
            pool.statistics().partitions.iter().min_by_key(|p| p.active).map(|p| p.name.clone())
        }))
    };
    let manager = PartitionManager::new(router);
    for name in ["a", "b"] {
        manager.create_partition(name.into(), PartitionType::ResourceGroup(name.into()), limits(2, 0)).unwrap();
    }
    pool.set_partition_manager(manager).unwrap();
    slot.set(pool.downgrade()).unwrap();

    let guards = {
        let pool = pool.clone();
        within("acquire_for through a router that reads the pool", Duration::from_secs(10), move || {
            (0..4).map(|_| pool.acquire_for(&PartitionRequest::default()).unwrap()).collect::<Vec<_>>()
        })
    };
    let active: Vec<usize> = pool.statistics().partitions.iter().map(|p| p.active).collect();
    assert_eq!(active, [2, 2], "the router balanced the four borrows");
    within("releases after the router ran", Duration::from_secs(10), move || drop(guards));
    assert_eq!(pool.statistics().partitions.iter().map(|p| p.active).sum::<usize>(), 0);
}

/// Where the slow tenant's router waits until the test lets it go.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    /// The router's side: says it is in, waits to be let go.
    fn enter_and_wait(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 = true;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn wait_until_entered(&self) {
        let mut state = self.state.lock().unwrap();
        while !state.0 {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

#[test]
fn a_slow_router_delays_only_its_own_tenant() {
    let pool = pool(4);
    let gate = Arc::new(Gate::default());
    let router = {
        let gate = Arc::clone(&gate);
        RoutingStrategy::Custom(Arc::new(move |request: &PartitionRequest| {
            let tenant = request.tenant.clone()?;
            if tenant == "slow" {
                gate.enter_and_wait();
            }
            Some(tenant)
        }))
    };
    let manager = PartitionManager::new(router);
    for name in ["slow", "a"] {
        manager.create_partition(name.into(), PartitionType::Tenant(name.into()), limits(2, 0)).unwrap();
    }
    pool.set_partition_manager(manager).unwrap();
    let borrowed = pool.acquire_for(&tenant("a")).unwrap();

    // The slow tenant's lookup is in progress, for as long as the test says.
    let slow = {
        let pool = pool.clone();
        thread::spawn(move || pool.acquire_for(&tenant("slow")).map(|c| c.id()))
    };
    gate.wait_until_entered();
    let other = {
        let pool = pool.clone();
        within("another tenant's acquires and releases", Duration::from_secs(10), move || {
            drop(borrowed);
            for _ in 0..10 {
                drop(pool.acquire_for(&tenant("a")).unwrap());
            }
            pool.statistics().partitions.iter().map(|p| p.acquired).sum::<u64>()
        })
    };
    assert_eq!(other, 11, "tenant a was served while the slow lookup ran");
    gate.open();
    assert!(slow.join().unwrap().is_ok(), "and the slow tenant once its lookup ended");
}
