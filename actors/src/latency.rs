//! Recent latency samples of one deployment, for latency-based routing. A bounded window of the
//! newest samples (LiteLLM's list stops sliding once full; ours always keeps the newest), each
//! stamped so readers can ignore samples older than the strategy's ttl.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sample a timeout adds, in seconds (LiteLLM's 1000 s penalty), so a deployment that times
/// out sinks to the bottom until enough good samples replace it.
pub const TIMEOUT_PENALTY_SECS: f64 = 1000.0;

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

/// Mean of the samples no older than `ttl` at `now`; `None` when there are none.
pub fn average(samples: &[LatencySample], now: Instant, ttl: Duration) -> Option<f64> {
    let (sum, count) = samples
        .iter()
        .filter(|sample| now.saturating_duration_since(sample.at) <= ttl)
        .fold((0.0, 0u32), |(sum, count), sample| {
            (sum + sample.seconds, count + 1)
        });
    (count > 0).then(|| sum / f64::from(count))
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

    #[test]
    fn average_ignores_samples_older_than_ttl() {
        let clock = ManualClock::new();
        let old = LatencySample {
            at: clock.now(),
            seconds: 10.0,
        };
        clock.advance(Duration::from_secs(100));
        let fresh = LatencySample {
            at: clock.now(),
            seconds: 2.0,
        };
        let samples = [old, fresh];
        let ttl = Duration::from_secs(60);
        assert_eq!(average(&samples, clock.now(), ttl), Some(2.0));
        assert_eq!(
            average(&samples, clock.now(), Duration::from_secs(200)),
            Some(6.0)
        );
        clock.advance(Duration::from_secs(61));
        assert_eq!(average(&samples, clock.now(), ttl), None);
    }
}
