//! Which shard a thread prefers.
//!
//! A thread's home shard follows the CPU it runs on: two threads running at
//! the same instant are on two CPUs, so they start from two idle stacks and
//! count their guards on two cache lines. The CPU (`sched_getcpu`, which
//! glibc answers from the kernel's rseq area without a system call) is
//! mapped to a dense index among the CPUs the process may use, so a sparse
//! CPU set such as `{0, 2}` still fills shards 0 and 1, and is read again
//! every [`REFRESH_EVERY`] calls, so a thread that migrated moves with it.
//! Off Linux (and under loom, which needs determinism) threads are spread
//! round-robin instead. [`CoreRuntime`](crate::runtime::CoreRuntime) workers
//! [bind](bind_current_thread) their thread to their shard once.
//!
//! Measured against the round-robin policy it replaced (2-core AMD EPYC
//! shared with other builds, `cargo bench --bench contention`, `cycle` =
//! acquire and drop over 8 connections, fair mode, seven runs): the same
//! cost on one thread (criterion: 35.4 ns vs. 39.0 ns per cycle, within
//! noise), 1.0-1.6× round-robin's throughput at 2 threads and 1.4-1.7× at
//! 8 (0.9× once, on a saturated machine), because with round-robin the two
//! threads running at any instant share a shard about half the time and
//! then contend on its stack head and guard counter. At 32 threads fair
//! mode's wait queue dominates both (0.9-1.5×; 3-5× in two early runs). So
//! the CPU policy is the default; [`ShardPolicy`](crate::runtime::ShardPolicy)
//! switches back.
//!
//! [`home_shard`] runs on every acquire and release, so its common path is
//! one thread-local read, a compare and a decrement: the shard is cached
//! already reduced, together with the shard count it was reduced for.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Calls between two reads of the current CPU.
pub(crate) const REFRESH_EVERY: u32 = 64;

/// How threads outside a runtime pick their home shard (see [`set_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The dense index of the CPU the thread runs on (round-robin where the
    /// CPU cannot be read).
    Cpu,
    /// A number handed out round-robin when the thread first asks.
    RoundRobin,
}

const POLICY_CPU: u8 = 0;
const POLICY_ROUND_ROBIN: u8 = 1;

static POLICY: AtomicU8 = AtomicU8::new(POLICY_CPU);
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

/// What a thread has cached about its home. Separate cells, so the common
/// path reads two words and writes one.
struct Home {
    /// The shard count `shard` was reduced for; 0 when nothing is cached.
    shards: Cell<usize>,
    /// `preference % shards`.
    shard: Cell<usize>,
    /// Calls left before the preference is recomputed.
    ttl: Cell<u32>,
    /// The unreduced preference: a dense CPU index, the round-robin number,
    /// or the bound shard.
    preference: Cell<usize>,
    /// Set by [`bind_current_thread`]: the preference never changes.
    bound: Cell<bool>,
    /// This thread's round-robin number, once it has one.
    seq: Cell<Option<usize>>,
}

thread_local! {
    static HOME: Home = const {
        Home {
            shards: Cell::new(0),
            shard: Cell::new(0),
            ttl: Cell::new(0),
            preference: Cell::new(0),
            bound: Cell::new(false),
            seq: Cell::new(None),
        }
    };
}

/// This thread's home shard among `shards` (at least 1).
#[inline]
pub(crate) fn home_shard(shards: usize) -> usize {
    HOME.try_with(|home| {
        let ttl = home.ttl.get();
        if home.shards.get() == shards && ttl != 0 {
            home.ttl.set(ttl - 1);
            return home.shard.get();
        }
        refresh(home, shards)
    })
    .unwrap_or(0)
}

/// The slow path of [`home_shard`]: recompute the preference if its time is
/// up, then reduce it for `shards`.
#[cold]
fn refresh(home: &Home, shards: usize) -> usize {
    if home.ttl.get() == 0 && !home.bound.get() {
        let cpu = match policy() {
            Policy::Cpu => current_cpu().map(dense_cpu_index),
            Policy::RoundRobin => None,
        };
        let preference = cpu.unwrap_or_else(|| {
            let seq = home.seq.get().unwrap_or_else(next_thread);
            home.seq.set(Some(seq));
            seq
        });
        home.preference.set(preference);
    }
    let shard = home.preference.get() % shards.max(1);
    home.shards.set(shards);
    home.shard.set(shard);
    home.ttl.set(REFRESH_EVERY);
    shard
}

fn next_thread() -> usize {
    // Relaxed: any distinct-enough number will do.
    NEXT_THREAD.fetch_add(1, Ordering::Relaxed)
}

/// Makes `shard` (reduced modulo each pool's shard count) this thread's
/// home for good: used by runtime workers, one per shard.
pub(crate) fn bind_current_thread(shard: usize) {
    let _ = HOME.try_with(|home| {
        home.bound.set(true);
        home.preference.set(shard);
        home.shards.set(0);
        home.ttl.set(0);
    });
}

/// The policy threads outside a runtime follow from their next refresh on.
pub(crate) fn set_policy(policy: Policy) {
    let value = match policy {
        Policy::Cpu => POLICY_CPU,
        Policy::RoundRobin => POLICY_ROUND_ROBIN,
    };
    // Relaxed: threads pick it up at their next refresh, in no particular order.
    POLICY.store(value, Ordering::Relaxed);
    let _ = HOME.try_with(|home| {
        home.shards.set(0);
        home.ttl.set(0);
    });
}

/// The policy in force.
pub(crate) fn policy() -> Policy {
    // Relaxed: see `set_policy`.
    match POLICY.load(Ordering::Relaxed) {
        POLICY_ROUND_ROBIN => Policy::RoundRobin,
        _ => Policy::Cpu,
    }
}

/// The CPU this thread runs on right now, where the platform says.
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: `sched_getcpu` takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// The CPU this thread runs on right now, where the platform says.
#[cfg(not(all(target_os = "linux", not(loom))))]
pub(crate) fn current_cpu() -> Option<usize> {
    None
}

/// The CPUs this process may run on, in ascending order (empty if unknown).
pub(crate) fn usable_cpus() -> &'static [usize] {
    static CPUS: OnceLock<Box<[usize]>> = OnceLock::new();
    CPUS.get_or_init(|| {
        let mut cpus: Vec<usize> =
            core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|core| core.id).collect();
        cpus.sort_unstable();
        cpus.dedup();
        cpus.into_boxed_slice()
    })
}

/// `cpu`'s rank among [`usable_cpus`], so that sparse CPU sets map onto
/// consecutive shards; a CPU outside the set keeps its own number.
pub(crate) fn dense_cpu_index(cpu: usize) -> usize {
    usable_cpus().binary_search(&cpu).unwrap_or(cpu)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_bound_thread_stays_on_its_shard_for_every_shard_count() {
        std::thread::spawn(|| {
            bind_current_thread(5);
            for _ in 0..3 * REFRESH_EVERY {
                assert_eq!(home_shard(8), 5);
                assert_eq!(home_shard(4), 1);
                assert_eq!(home_shard(1), 0);
            }
        })
        .join()
        .expect("no panic");
    }

    #[test]
    fn the_home_shard_is_always_in_range() {
        for shards in [1, 2, 3, 7, 64] {
            for _ in 0..2 * REFRESH_EVERY {
                assert!(home_shard(shards) < shards);
            }
        }
    }

    #[test]
    fn dense_indices_are_ranks_among_usable_cpus() {
        for (rank, &cpu) in usable_cpus().iter().enumerate() {
            assert_eq!(dense_cpu_index(cpu), rank);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_current_cpu_is_one_the_process_may_use() {
        let cpu = current_cpu().expect("sched_getcpu works on Linux");
        let usable = usable_cpus();
        assert!(usable.is_empty() || usable.contains(&cpu), "cpu {cpu} not in {usable:?}");
    }
}
