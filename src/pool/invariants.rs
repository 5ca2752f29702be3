//! The pool's invariants, numbered as the tests and loom models cite them.
//!
//! Each names what checks it: the loom models (`loom-tests/`, run with
//! `bash loom-tests/run`; `bash loom-tests/defects/run` shows that each
//! model fails on a seeded defect) and the integration tests (`tests/`).
//! Debug builds also check invariant 1 from the inside: every slot state
//! change against the table in `slot`, and an owned-slot token dropped
//! without being given back panics.
//!
//! 1. **A live connection is in exactly one place**: one idle stack, one
//!    guard, or the hands of one thread (an acquire creating or validating
//!    it, a waiter it was handed to, maintenance, a closer). Never two,
//!    never none.
//!    Loom: `loom_idle_stack` (both models), `loom_handoff` (all),
//!    `loom_fairness::timeout_racing_*`. Tests:
//!    `stress_never_shares_a_connection_or_exceeds_max`,
//!    `released_connection_goes_to_a_waiting_thread::handoff_racing_with_a_timeout_loses_nothing`.
//! 2. **Live and creating connections never exceed `max_size`**, not even
//!    for an instant: the slab has `max_size` slots and a creation first
//!    reserves a vacant one.
//!    Loom: `loom_capacity::vacant_reservation_at_capacity_never_exceeds_max`.
//!    Tests: `open_connections_never_exceed_max_size`, the stress test.
//! 3. **While a thread waits, no connection stays idle and no vacant slot
//!    unused** for longer than the hand-off takes (no lost wake-up): the
//!    publish-then-look handshake (see `engine`).
//!    Loom: `loom_handoff::release_racing_new_waiter_{fair,fifo,unfair}`,
//!    `release_racing_new_starving_waiter_fair`,
//!    `discard_racing_new_waiter_hands_over_the_vacant_slot`,
//!    `unfair_release_while_a_woken_waiter_has_not_looked_yet`.
//!    Tests: `released_connection_goes_to_a_waiting_thread`.
//! 4. **A guard dropped during a panic never returns a connection in an
//!    unknown state**: it is reset and validated, or closed; and no panic
//!    of user code escapes the drop.
//!    Tests: `guard_dropped_in_a_panic_is_checked_or_closed`,
//!    `hook_panics_while_a_guard_unwinds_never_abort`.
//! 5. **When `close()` returns, every waiter has woken with `PoolClosed`**,
//!    idle connections are closed, the maintenance thread is joined, and
//!    every later acquire fails with `PoolClosed`; borrowed connections are
//!    closed when they come back. (Within `shutdown_timeout`: user code
//!    still running then finishes, and closes what it holds, in the
//!    background.)
//!    Loom: `loom_close` (all), `loom_fairness::close_racing_a_hand_off_to_a_starving_waiter`.
//!    Tests: `close_wakes_waiters_and_closes_connections`,
//!    `close_is_bounded_by_its_shutdown_timeout`,
//!    `close_waits_for_creations_in_progress`,
//!    `no_maintenance_thread_outlives_its_pool`.
//! 6. **`connections_created - connections_closed == idle + active`** at
//!    quiescence.
//!    Loom: `loom_capacity` (at the end of the model). Tests: the stress
//!    test, `statistics_count_exactly_under_contention`, and the
//!    hostile-code tests (`factory_panicking_in_any_method_costs_nothing`,
//!    `event_listener_panicking_in_any_hook_costs_nothing`).
//! 7. **A starving waiter is overtaken by at most one acquire per other
//!    thread** (one that had looked before the waiter starved), in every
//!    mode but `Unfair`; in `Fifo` mode no waiter is overtaken at all (see
//!    [`QueueMode`](super::QueueMode)).
//!    Loom: `loom_fairness::a_starving_waiter_is_not_overtaken_by_a_newcomer_that_saw_it_wait`.
//!    Tests: `fair_mode_bounds_how_long_a_waiter_can_be_overtaken`,
//!    `waiters_are_served_in_queue_order`.
