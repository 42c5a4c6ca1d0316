//! A sliding-minute counter: sixty one-second buckets in a ring. `rpm: 3` then means what users
//! expect, at most three requests in any sixty seconds, and a request counted at `t` stops
//! counting by `t + 61 s` at the latest; the wait reported to a client is when the limiter will
//! really let the next one through. A fixed size (a few hundred bytes, cheap to copy into a
//! published view) instead of a queue of timestamps; the time is always passed in, so buckets
//! expire lazily and the counter never needs a timer.
//!
//! [`RateWindow`] has one writer; `AtomicWindow` (crate-internal) is the same ring for many
//! threads, which the request path counts in without a message (see `admission`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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

    /// A window from its parts: `counts[b % 60]` holds bucket `b` for the live buckets up to
    /// `head`, zero elsewhere.
    fn from_buckets(origin: Instant, head: u64, counts: [u64; BUCKETS as usize]) -> RateWindow {
        RateWindow {
            origin,
            head,
            counts,
        }
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

/// Bits of a slot that hold the count; the bucket number takes the rest.
const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn pack(bucket: u64, count: u64) -> u64 {
    (bucket.min(u64::from(u32::MAX)) << COUNT_BITS) | count.min(COUNT_MASK)
}

fn unpack(slot: u64) -> (u64, u64) {
    (slot >> COUNT_BITS, slot & COUNT_MASK)
}

/// [`RateWindow`] for many writers: the same sixty one-second buckets, each an atomic packing
/// (bucket number, count), and a running total of the live buckets, so reading the count over
/// the minute is two loads and counting is two read-modify-writes, with no lock.
///
/// Buckets leave the total when the window's newest bucket moves on: the first thread that sees
/// a new second advances `head` and expires the buckets that left the minute (a scan of sixty
/// slots, once a second at most). Every change to a slot is a compare-and-swap, so each count
/// leaves the total exactly once. A timestamp older than the newest bucket counts in the newest
/// (threads race on the clock; counting late is the conservative side).
#[derive(Debug)]
pub(crate) struct AtomicWindow {
    origin: Instant,
    /// The newest bucket the window has expired up to.
    head: AtomicU64,
    /// The counts in `slots` not yet expired. Signed: between one thread's slot update and its
    /// total update another thread may expire that slot, so it can dip below zero for an
    /// instant; readers clamp at zero.
    total: AtomicI64,
    slots: [AtomicU64; BUCKETS as usize],
}

impl AtomicWindow {
    /// An empty counter whose bucket 0 starts at `origin`.
    pub(crate) fn new(origin: Instant) -> AtomicWindow {
        AtomicWindow {
            origin,
            head: AtomicU64::new(0),
            total: AtomicI64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn bucket(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs() / BUCKET.as_secs()
    }

    fn slot(&self, bucket: u64) -> &AtomicU64 {
        &self.slots[RateWindow::slot(bucket)]
    }

    /// Moves the newest bucket up to `n` (expiring what left the minute); returns the newest
    /// bucket, which is `n` unless another thread is already further.
    fn advance(&self, n: u64) -> u64 {
        let mut head = self.head.load(Ordering::Acquire);
        while n > head {
            match self
                .head
                .compare_exchange_weak(head, n, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.expire_before((n + 1).saturating_sub(BUCKETS));
                    return n;
                }
                Err(current) => head = current,
            }
        }
        head
    }

    /// Takes every bucket older than `oldest_live` out of the total.
    fn expire_before(&self, oldest_live: u64) {
        for slot in &self.slots {
            let mut current = slot.load(Ordering::Acquire);
            loop {
                let (bucket, count) = unpack(current);
                if bucket >= oldest_live || count == 0 {
                    break;
                }
                match slot.compare_exchange_weak(
                    current,
                    pack(bucket, 0),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.total.fetch_sub(count as i64, Ordering::AcqRel);
                        break;
                    }
                    Err(seen) => current = seen,
                }
            }
        }
    }

    /// Counts `amount` at `now`; returns the bucket it went into and the total just after.
    pub(crate) fn add(&self, now: Instant, amount: u64) -> (u64, u64) {
        let n = self.advance(self.bucket(now));
        let slot = self.slot(n);
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (bucket, count) = unpack(current);
            // The slot holds this bucket, an expired one (replaced, its count leaves the total),
            // or, when `head` moved on meanwhile, a newer one (counted there).
            let (written, kept, expired) = if bucket < n {
                (n, 0, count)
            } else {
                (bucket, count, 0)
            };
            let next = pack(written, kept.saturating_add(amount));
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let added = unpack(next).1 - kept;
                    let delta = added as i64 - expired as i64;
                    let total = self.total.fetch_add(delta, Ordering::AcqRel) + delta;
                    return (written, total.max(0) as u64);
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Takes back `amount` counted into `bucket` by [`AtomicWindow::add`]. Nothing to do when
    /// the bucket has expired since: its count already left the total.
    pub(crate) fn remove(&self, bucket: u64, amount: u64) {
        let slot = self.slot(bucket);
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (held, count) = unpack(current);
            if held != bucket || count == 0 {
                return;
            }
            let taken = amount.min(count);
            match slot.compare_exchange_weak(
                current,
                pack(held, count - taken),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.total.fetch_sub(taken as i64, Ordering::AcqRel);
                    return;
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Counts `amount` at `now` only if the total stays within `limit` (the `limit`-th unit is
    /// allowed, as [`RateWindow::fits`]); returns the bucket to [`remove`](Self::remove) it from
    /// if the caller backs out. Never lets the total over the limit: every admitted unit's
    /// increment is one read-modify-write of the total and decides on its result, and a unit
    /// that crossed the limit is taken back. Two threads racing at the limit may both be
    /// refused.
    pub(crate) fn try_add(&self, now: Instant, amount: u64, limit: u64) -> Option<u64> {
        let (bucket, total) = self.add(now, amount);
        if total <= limit {
            Some(bucket)
        } else {
            self.remove(bucket, amount);
            None
        }
    }

    /// The count over the minute ending at `now` (or at the newest bucket, if later).
    pub(crate) fn total(&self, now: Instant) -> u64 {
        self.advance(self.bucket(now));
        self.total.load(Ordering::Acquire).max(0) as u64
    }

    /// A [`RateWindow`] copy, for views and for [`RateWindow::wait_for_room`].
    pub(crate) fn snapshot(&self, now: Instant) -> RateWindow {
        let head = self.advance(self.bucket(now));
        let oldest_live = (head + 1).saturating_sub(BUCKETS);
        let mut counts = [0; BUCKETS as usize];
        for (index, slot) in self.slots.iter().enumerate() {
            let (bucket, count) = unpack(slot.load(Ordering::Acquire));
            if (oldest_live..=head).contains(&bucket) {
                counts[index] = count;
            }
        }
        RateWindow::from_buckets(self.origin, head, counts)
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

    /// The same adds, at the same (non-decreasing) times, give the same counts and waits.
    #[test]
    fn the_atomic_window_counts_as_the_single_writer_one() {
        let clock = ManualClock::new();
        let mut plain = RateWindow::new(clock.now());
        let atomic = AtomicWindow::new(clock.now());
        let mut rng = fastrand::Rng::with_seed(21);
        for step in 0..3000 {
            // Mostly small steps, sometimes a jump past the whole minute.
            let step_ms = if step % 500 == 499 {
                75_000
            } else {
                rng.u64(0..700)
            };
            clock.advance(Duration::from_millis(step_ms));
            let now = clock.now();
            let amount = rng.u64(0..4);
            plain.add(now, amount);
            let (_, total) = atomic.add(now, amount);
            assert_eq!(total as f64, plain.estimate(now), "step {step}");
            let later = now + Duration::from_millis(rng.u64(0..90_000));
            assert_eq!(atomic.total(now) as f64, plain.estimate(now));
            let limit = rng.u64(1..200);
            assert_eq!(
                atomic.snapshot(now).wait_for_room(later, 1, limit),
                plain.wait_for_room(later, 1, limit),
                "step {step}"
            );
        }
    }

    #[test]
    fn try_add_allows_the_limit_th_unit_and_backs_out_past_it() {
        let clock = ManualClock::new();
        let window = AtomicWindow::new(clock.now());
        for _ in 0..3 {
            assert!(window.try_add(clock.now(), 1, 3).is_some());
        }
        assert_eq!(window.try_add(clock.now(), 1, 3), None);
        assert_eq!(
            window.total(clock.now()),
            3,
            "the refused unit was taken back"
        );
        clock.advance(Duration::from_secs(59));
        assert_eq!(window.try_add(clock.now(), 1, 3), None);
        clock.advance(Duration::from_secs(1));
        let bucket = window.try_add(clock.now(), 1, 3).unwrap();
        assert_eq!(window.total(clock.now()), 1, "the first three left at 60 s");
        window.remove(bucket, 1);
        assert_eq!(window.total(clock.now()), 0);
        // Removing from a bucket that has expired since changes nothing.
        window.add(clock.now(), 2);
        clock.advance(Duration::from_secs(61));
        window.add(clock.now(), 1);
        window.remove(bucket, 1);
        assert_eq!(window.total(clock.now()), 1);
    }
}
