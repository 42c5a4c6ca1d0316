//! A sliding-minute counter: sixty one-second buckets in a ring. `rpm: 3` then means what users
//! expect, at most three requests in any sixty seconds, and a request counted at `t` stops
//! counting by `t + 61 s` at the latest; the wait reported to a client is when the limiter will
//! really let the next one through. A fixed size (a few hundred bytes, cheap to copy into a
//! published view) instead of a queue of timestamps; the time is always passed in, so buckets
//! expire lazily and the counter never needs a timer.

use std::time::{Duration, Instant};

/// The span a limit is counted over: rpm and tpm are per minute.
pub const WINDOW: Duration = Duration::from_secs(60);

const BUCKETS: u64 = 60;
const BUCKET: Duration = Duration::from_secs(1);

/// A count over the last [`WINDOW`], at one-second resolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateWindow {
    /// Bucket `b` covers `[origin + b s, origin + (b + 1) s)`.
    origin: Instant,
    /// The newest bucket written.
    head: u64,
    counts: [u64; BUCKETS as usize],
}

impl RateWindow {
    /// An empty counter.
    pub fn new(now: Instant) -> RateWindow {
        RateWindow {
            origin: now,
            head: 0,
            counts: [0; BUCKETS as usize],
        }
    }

    fn bucket(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs() / BUCKET.as_secs()
    }

    fn slot(b: u64) -> usize {
        (b % BUCKETS) as usize
    }

    /// The oldest bucket still inside the minute ending at bucket `n`.
    fn oldest_live(&self, n: u64) -> u64 {
        (n.max(self.head) + 1).saturating_sub(BUCKETS)
    }

    /// Counts `amount` at `now`.
    pub fn add(&mut self, now: Instant, amount: u64) {
        let n = self.bucket(now);
        if n > self.head {
            let stale = (n - self.head).min(BUCKETS);
            for b in (n + 1 - stale)..=n {
                self.counts[Self::slot(b)] = 0;
            }
            self.head = n;
        }
        // A timestamp older than the live minute (an outcome reported late) counts in the
        // oldest live bucket.
        let slot = Self::slot(n.max(self.oldest_live(self.head)));
        self.counts[slot] = self.counts[slot].saturating_add(amount);
    }

    /// Forgets everything counted so far.
    pub fn clear(&mut self, now: Instant) {
        *self = RateWindow::new(now);
    }

    /// The count over the minute ending at `now`.
    pub fn estimate(&self, now: Instant) -> f64 {
        self.total(now) as f64
    }

    fn total(&self, now: Instant) -> u64 {
        let n = self.bucket(now);
        (self.oldest_live(n)..=self.head).fold(0u64, |sum, b| {
            sum.saturating_add(self.counts[Self::slot(b)])
        })
    }

    /// Whether `amount` more stays within `limit`: the `limit`-th unit in a minute is allowed.
    pub fn fits(&self, now: Instant, amount: u64, limit: u64) -> bool {
        self.total(now).saturating_add(amount) <= limit
    }

    /// How long until `amount` more fits within `limit` (zero if it fits now), or `None` when it
    /// never can (`amount > limit`).
    pub fn wait_for_room(&self, now: Instant, amount: u64, limit: u64) -> Option<Duration> {
        if amount > limit {
            return None;
        }
        let mut total = self.total(now);
        if total + amount <= limit {
            return Some(Duration::ZERO);
        }
        let n = self.bucket(now);
        for b in self.oldest_live(n)..=self.head {
            total = total.saturating_sub(self.counts[Self::slot(b)]);
            if total + amount <= limit {
                // Bucket `b` leaves the minute when bucket `b + 60` begins.
                let leaves = self.origin
                    + BUCKET.saturating_mul(u32::try_from(b + BUCKETS).unwrap_or(u32::MAX));
                return Some(leaves.saturating_duration_since(now));
            }
        }
        Some(WINDOW)
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
    fn counts_within_the_minute() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        window.add(clock.now(), 3);
        clock.advance(secs(30));
        window.add(clock.now(), 2);
        assert_eq!(window.estimate(clock.now()), 5.0);
    }

    #[test]
    fn units_leave_the_minute_one_second_bucket_at_a_time() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        window.add(clock.now(), 60);
        clock.advance(secs(10));
        window.add(clock.now(), 5);
        clock.advance(secs(49));
        assert_eq!(window.estimate(clock.now()), 65.0);
        clock.advance(secs(1));
        assert_eq!(
            window.estimate(clock.now()),
            5.0,
            "the first bucket left at 60 s"
        );
        clock.advance(secs(10));
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
        clock.advance(secs(100_000));
        window.add(clock.now(), 2);
        assert_eq!(window.estimate(clock.now()), 2.0);
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
    fn wait_for_room_is_when_the_oldest_units_leave() {
        let clock = ManualClock::new();
        let mut window = RateWindow::new(clock.now());
        clock.advance(Duration::from_millis(20_300));
        window.add(clock.now(), 2);
        clock.advance(secs(10));
        window.add(clock.now(), 2);
        // rpm 4 full at 30.3 s; the two at 20.3 s (bucket 20) leave when bucket 80 starts.
        let wait = window.wait_for_room(clock.now(), 1, 4).unwrap();
        assert_eq!(wait, Duration::from_millis(49_700));
        clock.advance(wait - Duration::from_millis(1));
        assert!(!window.fits(clock.now(), 1, 4));
        clock.advance(Duration::from_millis(1));
        assert!(window.fits(clock.now(), 1, 4));
        // Never more than a minute.
        let mut full = RateWindow::new(clock.now());
        full.add(clock.now(), 4);
        assert!(full.wait_for_room(clock.now(), 1, 4).unwrap() <= WINDOW);
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
