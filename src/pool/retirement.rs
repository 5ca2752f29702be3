//! When connections retire: the coarse clock, each connection's jittered
//! lifetime, the aging policy's usage and error limits, and the adaptive
//! lifetime scale (refreshed once per maintenance pass, read on release).

use std::time::Duration;

use super::aging::AgingPolicy;
use super::inner::Inner;
use super::slot::{Slot, SlotState, duration_nanos};
use crate::sync::Ordering;

/// Borrows a connection needs before `AgingPolicy::Adaptive` judges its
/// error rate (so one early error does not retire it).
pub(crate) const ADAPTIVE_MIN_BORROWS: u64 = 10;

impl<C: Send + 'static> Inner<C> {
    /// The coarse clock, nanoseconds since the epoch.
    #[inline]
    pub(super) fn now_nanos(&self) -> u64 {
        // Relaxed: a clock reading; staleness is bounded by the tick interval.
        self.clock.load(Ordering::Relaxed)
    }

    /// Advances the coarse clock to `since_epoch` (never backwards).
    pub(super) fn tick(&self, since_epoch: Duration) {
        // Relaxed: a clock reading, as in `now_nanos`.
        self.clock.fetch_max(duration_nanos(since_epoch), Ordering::Relaxed);
    }

    /// A new connection's retirement age: the tightest time limit of
    /// `max_lifetime` and the aging policy, shortened by up to 5 % (by a
    /// hash of its id) so connections born together do not retire together.
    pub(super) fn lifetime_for(&self, id: u64) -> Option<Duration> {
        let policy = match self.config.aging_policy {
            Some(AgingPolicy::TimeBased { max_lifetime } | AgingPolicy::Combined { max_lifetime, .. }) => {
                Some(max_lifetime)
            }
            Some(AgingPolicy::Adaptive { base_lifetime, .. }) => Some(base_lifetime),
            _ => None,
        };
        let limit = [self.config.max_lifetime, policy].into_iter().flatten().min()?;
        // 0..=50 thousandths of the limit, from a mixed id.
        let per_mille = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as u32 % 51;
        Some(limit - limit * per_mille / 1000)
    }

    /// Whether a connection has reached its lifetime or usage limit.
    pub(super) fn is_expired(&self, slot: &Slot<C>, now_nanos: u64) -> bool {
        let lifetime = slot.lifetime_nanos();
        let scale = self.adaptive_lifetime_scale();
        let lifetime = if scale == 1.0 || lifetime == u64::MAX { lifetime } else { (lifetime as f64 * scale) as u64 };
        if now_nanos.saturating_sub(slot.created_nanos()) >= lifetime {
            return true;
        }
        match self.config.aging_policy {
            Some(AgingPolicy::UsageBased { max_borrows } | AgingPolicy::Combined { max_borrows, .. }) => {
                slot.borrows() >= max_borrows
            }
            Some(AgingPolicy::Adaptive { error_threshold, .. }) => {
                let borrows = slot.borrows();
                borrows >= ADAPTIVE_MIN_BORROWS && slot.errors() as f64 / borrows as f64 > error_threshold
            }
            _ => false,
        }
    }

    /// How `AgingPolicy::Adaptive` scales lifetimes, as of the last
    /// maintenance pass (1 for other policies).
    pub(super) fn adaptive_lifetime_scale(&self) -> f64 {
        // Relaxed: a figure refreshed once per pass; staleness is bounded by it.
        f64::from_bits(self.adaptive_scale.load(Ordering::Relaxed))
    }

    /// Recomputes the adaptive lifetime scale (see `compute_adaptive_scale`).
    pub(super) fn refresh_adaptive_scale(&self) {
        let scale = self.compute_adaptive_scale();
        // Relaxed: as in `adaptive_lifetime_scale`.
        self.adaptive_scale.store(scale.to_bits(), Ordering::Relaxed);
    }

    /// How `AgingPolicy::Adaptive` scales lifetimes: `threshold / rate`
    /// over the live connections (errors over borrows), within 0.25..=2.
    /// One pass over the slots, so it runs once per maintenance pass rather
    /// than on every release (with 100 connections that pass cost a release
    /// 52 ns: criterion, 80.6 vs 28.6 ns per acquire and release).
    fn compute_adaptive_scale(&self) -> f64 {
        let Some(AgingPolicy::Adaptive { error_threshold, .. }) = self.config.aging_policy else {
            return 1.0;
        };
        // Open connections only: a slot left vacant (or being refilled)
        // still holds the counts of the connection it last had.
        let open = self.engine.slots().filter(|(_, s)| matches!(s.state(), SlotState::Idle | SlotState::InUse));
        let (errors, borrows) = open.fold((0u64, 0u64), |(e, b), (_, s)| (e + s.errors(), b + s.borrows()));
        if borrows < ADAPTIVE_MIN_BORROWS {
            return 1.0;
        }
        let rate = errors as f64 / borrows as f64;
        if rate == 0.0 { 2.0 } else { (error_threshold / rate).clamp(0.25, 2.0) }
    }
}
