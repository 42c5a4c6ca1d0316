//! A sliding-minute counter made of two fixed windows, the current one and the one before,
//! interpolated by how far into the current window we are (as pingora's `rate.rs` estimates a
//! rate). Two integers and an instant per counter instead of a queue of timestamps; the time is
//! always passed in, so rollover is computed lazily and the counter never needs a timer.

use std::time::{Duration, Instant};

/// Length of one fixed window: rpm and tpm are per minute.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Slack for float comparisons, so a limit reached exactly counts as reached.
const EPSILON: f64 = 1e-6;

/// A count over the last [`WINDOW`], estimated as
/// `previous * (1 - elapsed_fraction) + current`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateWindow {
    start: Instant,
    current: u64,
    previous: u64,
}

impl RateWindow {
    /// An empty counter whose first window starts at `now`.
    pub fn new(now: Instant) -> RateWindow {
        RateWindow {
            start: now,
            current: 0,
            previous: 0,
        }
    }

    /// This counter moved to the fixed window that contains `now`.
    fn rolled(&self, now: Instant) -> RateWindow {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < WINDOW {
            return *self;
        }
        let windows = elapsed.as_nanos() / WINDOW.as_nanos();
        let previous = if windows == 1 { self.current } else { 0 };
        let skipped = u32::try_from(windows).unwrap_or(u32::MAX);
        RateWindow {
            start: self.start + WINDOW.saturating_mul(skipped),
            current: 0,
            previous,
        }
    }

    fn fraction(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.start).as_secs_f64() / WINDOW.as_secs_f64()
    }

    /// Counts `amount` at `now`.
    pub fn add(&mut self, now: Instant, amount: u64) {
        *self = self.rolled(now);
        self.current = self.current.saturating_add(amount);
    }

    /// Forgets everything counted so far.
    pub fn clear(&mut self, now: Instant) {
        *self = RateWindow::new(now);
    }

    /// The estimated count over the minute ending at `now`.
    pub fn estimate(&self, now: Instant) -> f64 {
        let window = self.rolled(now);
        window.previous as f64 * (1.0 - window.fraction(now)).max(0.0) + window.current as f64
    }

    /// Whether `amount` more stays within `limit`: the `limit`-th unit in a minute is allowed.
    pub fn fits(&self, now: Instant, amount: u64, limit: u64) -> bool {
        self.estimate(now) + amount as f64 <= limit as f64 + EPSILON
    }

    /// How long until `amount` more fits within `limit` (zero if it fits now), or `None` when it
    /// never can (`amount > limit`).
    pub fn wait_for_room(&self, now: Instant, amount: u64, limit: u64) -> Option<Duration> {
        if amount > limit {
            return None;
        }
        if self.fits(now, amount, limit) {
            return Some(Duration::ZERO);
        }
        let window = self.rolled(now);
        let headroom = (limit - amount) as f64;
        let window_secs = WINDOW.as_secs_f64();
        let wait_secs = if window.current as f64 <= headroom {
            // This window: wait until the previous window's share has decayed enough.
            let needed = 1.0 - (headroom - window.current as f64) / window.previous as f64;
            (needed - window.fraction(now)) * window_secs
        } else {
            // Next window: the current count becomes the decaying one.
            let until_next = window_secs - window.fraction(now) * window_secs;
            let needed = 1.0 - headroom / window.current as f64;
            until_next + needed * window_secs
        };
        // Round up to the next millisecond so the deployment really fits by then.
        let millis = (wait_secs.max(0.0) * 1000.0).ceil() + 1.0;
        Some(Duration::from_millis(millis as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn counts_within_the_first_window() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        window.add(clock.now(), 3);
        clock.advance(secs(30));
        window.add(clock.now(), 2);
        assert_eq!(window.estimate(clock.now()), 5.0);
    }

    #[test]
    fn previous_window_decays_linearly() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        window.add(clock.now(), 60);
        clock.advance(secs(60));
        assert_eq!(window.estimate(clock.now()), 60.0);
        clock.advance(secs(15));
        assert!((window.estimate(clock.now()) - 45.0).abs() < 1e-9);
        clock.advance(secs(45));
        assert_eq!(window.estimate(clock.now()), 0.0);
    }

    #[test]
    fn a_long_gap_forgets_everything() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        window.add(clock.now(), 10);
        clock.advance(secs(150));
        assert_eq!(window.estimate(clock.now()), 0.0);
        window.add(clock.now(), 1);
        assert_eq!(window.estimate(clock.now()), 1.0);
    }

    #[test]
    fn the_limit_th_unit_is_allowed() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        for _ in 0..5 {
            assert!(window.fits(clock.now(), 1, 6));
            window.add(clock.now(), 1);
        }
        // Five used, rpm 6: the sixth request is allowed (LiteLLM refuses it), the seventh not.
        assert!(window.fits(clock.now(), 1, 6));
        window.add(clock.now(), 1);
        assert!(!window.fits(clock.now(), 1, 6));
    }

    #[test]
    fn wait_for_room_is_exact_in_the_current_window() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        window.add(clock.now(), 6);
        clock.advance(secs(60));
        // previous = 6, current = 0: one more fits once 6 * (1 - f) <= 5, at f = 1/6 (10 s).
        let wait = window.wait_for_room(clock.now(), 1, 6).unwrap();
        assert!(
            wait >= secs(10) && wait < Duration::from_millis(10_010),
            "{wait:?}"
        );
        clock.advance(wait);
        assert!(window.fits(clock.now(), 1, 6));
    }

    #[test]
    fn wait_for_room_spans_into_the_next_window() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        clock.advance(secs(20));
        window.add(clock.now(), 4);
        // rpm 4 full at 20 s: 40 s to the next window, then 4 * (1 - f) <= 3 at f = 1/4 (15 s).
        let wait = window.wait_for_room(clock.now(), 1, 4).unwrap();
        assert!(
            wait >= secs(55) && wait < Duration::from_millis(55_010),
            "{wait:?}"
        );
        clock.advance(wait - Duration::from_millis(50));
        assert!(!window.fits(clock.now(), 1, 4));
        clock.advance(Duration::from_millis(50));
        assert!(window.fits(clock.now(), 1, 4));
    }

    #[test]
    fn an_amount_over_the_limit_never_fits() {
        let clock = ManualClock::new();
        let window = RateWindow::new(clock.now());
        assert_eq!(window.wait_for_room(clock.now(), 11, 10), None);
        assert_eq!(
            window.wait_for_room(clock.now(), 10, 10),
            Some(Duration::ZERO)
        );
    }
}
