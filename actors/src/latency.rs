//! Recent latency samples of one deployment, for latency-based routing. A bounded window of the
//! newest samples (LiteLLM's list stops sliding once full; ours always keeps the newest), each
//! stamped so that samples older than the strategy's ttl stop counting. The Deployment actor
//! keeps the window and publishes, with each new sample, what a pick ranks by: the mean of the
//! samples still fresh at the picker's `now` ([`FreshMean`]), read with a few atomic loads.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::settings::Strategy;

/// The sample a timeout adds, in seconds (LiteLLM's 1000 s penalty), so a deployment that times
/// out sinks to the bottom until enough good samples replace it.
pub const TIMEOUT_PENALTY_SECS: f64 = 1000.0;

/// How many samples a deployment keeps and how long one counts: latency-based routing's
/// `max_latency_list_size` and `ttl`, LiteLLM's defaults (10, one hour) under other strategies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LatencyConfig {
    pub(crate) samples: usize,
    pub(crate) ttl: Duration,
}

impl LatencyConfig {
    pub(crate) fn for_strategy(strategy: &Strategy) -> LatencyConfig {
        match strategy {
            Strategy::LatencyBased {
                max_latency_list_size,
                ttl,
                ..
            } => LatencyConfig {
                samples: (*max_latency_list_size).max(1),
                ttl: *ttl,
            },
            _ => LatencyConfig::for_strategy(&Strategy::latency_based_default()),
        }
    }
}

/// One measurement: seconds (per output token when the token count is known).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySample {
    /// When it was recorded.
    pub at: Instant,
    /// The measured value in seconds.
    pub seconds: f64,
}

/// The newest `capacity` samples, oldest first.
#[derive(Clone, Debug)]
pub struct LatencyWindow {
    samples: VecDeque<LatencySample>,
    capacity: usize,
}

impl LatencyWindow {
    /// An empty window keeping at most `capacity` samples (at least one).
    pub fn new(capacity: usize) -> LatencyWindow {
        LatencyWindow {
            samples: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds a sample, dropping the oldest when full.
    pub fn push(&mut self, sample: LatencySample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples as an immutable snapshot for the deployment's published view.
    pub fn snapshot(&self) -> Arc<[LatencySample]> {
        self.samples.iter().copied().collect()
    }
}

/// The mean of a deployment's samples that are still fresh at a reader's `now` (no older than
/// the ttl), published by the Deployment actor and read by pickers on any thread with a few
/// atomic loads and no lock. For the samples sorted oldest first, entry `k` holds when sample
/// `k` stops counting (its time + ttl) and the mean of samples `k..`; at `now` the answer is the
/// first entry still counting. A sequence lock made of atomics keeps a reader from mixing two
/// publications: it retries if the actor wrote meanwhile.
#[derive(Debug)]
pub(crate) struct FreshMean {
    origin: Instant,
    ttl: Duration,
    /// Odd while the actor writes.
    seq: AtomicU64,
    len: AtomicUsize,
    /// Entry `k`: nanoseconds after `origin` until which sample `k` counts.
    until: Box<[AtomicU64]>,
    /// Entry `k`: the mean of samples `k..`, as `f64` bits.
    mean: Box<[AtomicU64]>,
}

impl FreshMean {
    /// No samples yet; room for `config.samples`.
    pub(crate) fn new(origin: Instant, config: LatencyConfig) -> FreshMean {
        let capacity = config.samples.max(1);
        FreshMean {
            origin,
            ttl: config.ttl,
            seq: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            until: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            mean: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// One writer only (the Deployment actor): publishes the means of `window`'s samples.
    pub(crate) fn publish(&self, window: &LatencyWindow) {
        let mut samples: Vec<LatencySample> = window.samples.iter().copied().collect();
        samples.sort_by_key(|sample| sample.at);
        samples.truncate(self.until.len());
        let ttl = u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX);
        let mut entries = vec![(0, 0.0); samples.len()];
        let mut sum = 0.0;
        for (k, sample) in samples.iter().enumerate().rev() {
            sum += sample.seconds;
            let until = self.nanos(sample.at).saturating_add(ttl);
            entries[k] = (until, sum / (samples.len() - k) as f64);
        }
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (k, (until, mean)) in entries.iter().enumerate() {
            self.until[k].store(*until, Ordering::Relaxed);
            self.mean[k].store(mean.to_bits(), Ordering::Relaxed);
        }
        self.len.store(entries.len(), Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The mean of the samples no older than the ttl at `now`; `None` when there are none.
    pub(crate) fn at(&self, now: Instant) -> Option<f64> {
        let now = self.nanos(now);
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            if seq % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = self.len.load(Ordering::Relaxed).min(self.until.len());
            let fresh = (0..len).find(|k| now <= self.until[*k].load(Ordering::Relaxed));
            let mean = fresh.map(|k| f64::from_bits(self.mean[k].load(Ordering::Relaxed)));
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == seq {
                return mean;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn keeps_the_newest_samples() {
        let clock = ManualClock::new();
        let mut window = LatencyWindow::new(3);
        for seconds in [1.0, 2.0, 3.0, 4.0, 5.0] {
            window.push(LatencySample {
                at: clock.now(),
                seconds,
            });
        }
        let kept: Vec<f64> = window.snapshot().iter().map(|s| s.seconds).collect();
        assert_eq!(kept, vec![3.0, 4.0, 5.0]);
    }

    /// The reference: the mean of the samples no older than `ttl` at `now`.
    fn average(samples: &[LatencySample], now: Instant, ttl: Duration) -> Option<f64> {
        let (sum, count) = samples
            .iter()
            .filter(|sample| now.saturating_duration_since(sample.at) <= ttl)
            .fold((0.0, 0u32), |(sum, count), sample| {
                (sum + sample.seconds, count + 1)
            });
        (count > 0).then(|| sum / f64::from(count))
    }

    fn fresh_mean(clock: &ManualClock, samples: usize, ttl: Duration) -> FreshMean {
        FreshMean::new(clock.now(), LatencyConfig { samples, ttl })
    }

    #[test]
    fn the_fresh_mean_ignores_samples_older_than_ttl() {
        let clock = ManualClock::new();
        let ttl = Duration::from_secs(60);
        let mean = fresh_mean(&clock, 10, ttl);
        let mut window = LatencyWindow::new(10);
        assert_eq!(mean.at(clock.now()), None);
        window.push(LatencySample {
            at: clock.now(),
            seconds: 10.0,
        });
        clock.advance(Duration::from_secs(40));
        window.push(LatencySample {
            at: clock.now(),
            seconds: 2.0,
        });
        mean.publish(&window);
        assert_eq!(mean.at(clock.now()), Some(6.0));
        clock.advance(Duration::from_secs(20));
        assert_eq!(mean.at(clock.now()), Some(6.0), "60 s old: still counts");
        clock.advance(Duration::from_nanos(1));
        assert_eq!(mean.at(clock.now()), Some(2.0));
        clock.advance(Duration::from_secs(40));
        assert_eq!(mean.at(clock.now()), None);
    }

    #[test]
    fn the_fresh_mean_is_the_mean_of_the_fresh_samples() {
        let clock = ManualClock::new();
        let mut rng = fastrand::Rng::with_seed(13);
        let ttl = Duration::from_secs(30);
        let mean = fresh_mean(&clock, 7, ttl);
        let mut window = LatencyWindow::new(7);
        for step in 0..500 {
            clock.advance(Duration::from_millis(rng.u64(0..9000)));
            window.push(LatencySample {
                at: clock.now(),
                seconds: rng.f64() * 5.0,
            });
            mean.publish(&window);
            let later = clock.now() + Duration::from_millis(rng.u64(0..40_000));
            let expected = average(&window.snapshot(), later, ttl);
            let got = mean.at(later);
            match (got, expected) {
                (Some(got), Some(expected)) => {
                    assert!(
                        (got - expected).abs() < 1e-9,
                        "step {step}: {got} {expected}"
                    )
                }
                _ => assert_eq!(got, expected, "step {step}"),
            }
        }
    }

    #[test]
    fn readers_on_other_threads_never_see_a_mix_of_two_publications() {
        // Publication `r` (under 20,000) holds a few stale samples worth 1,000,000 + r, then
        // fresh ones worth r: a consistent read is exactly r. A read that took the entries of
        // one publication with the length or the times of another lands on a mean that includes
        // a stale sample, over 100,000 (at most ten samples).
        let clock = ManualClock::new();
        let ttl = Duration::from_secs(10);
        let mean = fresh_mean(&clock, 10, ttl);
        let stale_at = clock.now();
        clock.advance(ttl * 3);
        let fresh_at = clock.now();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        if let Some(value) = mean.at(fresh_at) {
                            assert!(value < 20_000.0 && value == value.round(), "{value}");
                        }
                    }
                });
            }
            for round in 0..20_000u32 {
                let mut window = LatencyWindow::new(10);
                let stale = round % 6;
                for k in 0..(stale + 1 + round % 4) {
                    let (at, seconds) = if k < stale {
                        (stale_at, f64::from(1_000_000 + round))
                    } else {
                        (fresh_at, f64::from(round))
                    };
                    window.push(LatencySample { at, seconds });
                }
                mean.publish(&window);
            }
            done.store(true, Ordering::Relaxed);
        });
    }
}
