//! Loom model: idle stacks under push, pop and steal from three threads.
//!
//! Two shards share three slots. One thread cycles an index through shard
//! A, one through shard B, and a third steals from both; at the end every
//! index is on exactly one stack, once.
#![cfg(loom)]

#[path = "common.rs"]
mod common;

use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use loom::thread;
use rusty_db::loom_internals::{IndexStack, NIL};

struct Shards {
    links: Box<[AtomicU32]>,
    a: IndexStack,
    b: IndexStack,
}

#[test]
fn idle_stack_push_pop_steal_keeps_each_index_once() {
    common::model(|| {
        let shards = Arc::new(Shards {
            links: (0..3).map(|_| AtomicU32::new(NIL)).collect(),
            a: IndexStack::new(),
            b: IndexStack::new(),
        });
        shards.a.push(&*shards.links, 0);
        shards.a.push(&*shards.links, 1);
        shards.b.push(&*shards.links, 2);

        let owner_a = {
            let s = Arc::clone(&shards);
            thread::spawn(move || {
                if let Some(i) = s.a.pop(&*s.links) {
                    s.a.push(&*s.links, i);
                }
            })
        };
        let owner_b = {
            let s = Arc::clone(&shards);
            thread::spawn(move || {
                if let Some(i) = s.b.pop(&*s.links) {
                    s.b.push(&*s.links, i);
                }
            })
        };
        let thief = {
            let s = Arc::clone(&shards);
            thread::spawn(move || {
                let stolen = s.b.pop(&*s.links).or_else(|| s.a.pop(&*s.links));
                if let Some(i) = stolen {
                    s.a.push(&*s.links, i);
                }
            })
        };
        for t in [owner_a, owner_b, thief] {
            t.join().expect("model thread");
        }

        let mut seen = [false; 3];
        for stack in [&shards.a, &shards.b] {
            while let Some(i) = stack.pop(&*shards.links) {
                assert!(!seen[i as usize], "index {i} is on the stacks twice");
                seen[i as usize] = true;
            }
        }
        assert_eq!(seen, [true; 3], "an index was lost");
    });
}

/// The ABA case the head's generation tag exists for: one thread reads the
/// head (1 over 0) and stalls; another pops 1, pops 0 and pushes 1 back;
/// the first thread's CAS must now fail, or it would make 0, which the
/// second thread holds, the top of the stack again.
#[test]
fn a_stalled_pop_never_reinstates_an_index_popped_since() {
    common::model(|| {
        let shards = Arc::new(Shards {
            links: (0..2).map(|_| AtomicU32::new(NIL)).collect(),
            a: IndexStack::new(),
            b: IndexStack::new(),
        });
        shards.a.push(&*shards.links, 0);
        shards.a.push(&*shards.links, 1);

        let stalled = {
            let s = Arc::clone(&shards);
            thread::spawn(move || s.a.pop(&*s.links))
        };
        let busy = {
            let s = Arc::clone(&shards);
            thread::spawn(move || {
                let first = s.a.pop(&*s.links);
                let second = s.a.pop(&*s.links);
                if let Some(i) = first {
                    s.a.push(&*s.links, i);
                }
                second
            })
        };
        let mut held: Vec<u32> =
            [stalled.join().expect("stalled"), busy.join().expect("busy")].into_iter().flatten().collect();
        while let Some(i) = shards.a.pop(&*shards.links) {
            held.push(i);
        }
        held.sort_unstable();
        assert_eq!(held, [0, 1], "each index exactly once: held by a thread or on the stack");
    });
}
