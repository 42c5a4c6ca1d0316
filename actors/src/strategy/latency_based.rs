//! latency-based-routing: lowest average recent latency. For stream requests the average time to
//! first token is used when the deployment has TTFT samples. Deployments with no fresh samples
//! count as 0 so they are tried first; the pick is random among those within
//! `lowest * (1 + buffer)`. Samples older than `ttl` are ignored, and the sample window slides
//! (see [`LatencySample`](crate::LatencySample)).

use std::time::Duration;

use super::{Candidate, PickContext};
use crate::latency::average;

/// Index of a candidate within the latency buffer of the fastest.
pub fn pick(
    candidates: &[Candidate<'_>],
    context: &PickContext,
    buffer: f64,
    ttl: Duration,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let latencies: Vec<f64> = candidates
        .iter()
        .map(|c| {
            let ttft = if context.stream {
                average(c.ttft, context.now, ttl)
            } else {
                None
            };
            ttft.or_else(|| average(c.latency, context.now, ttl))
                .unwrap_or(0.0)
        })
        .collect();
    let lowest = latencies.iter().copied().fold(f64::INFINITY, f64::min);
    let ceiling = lowest + lowest * buffer.max(0.0);
    let within: Vec<usize> = latencies
        .iter()
        .enumerate()
        .filter(|(_, latency)| **latency <= ceiling)
        .map(|(index, _)| index)
        .collect();
    if within.is_empty() {
        return None;
    }
    within.get(rng.usize(..within.len())).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::latency::LatencySample;
    use crate::strategy::test_support::{candidates, histogram, spec};
    use crate::DeploymentSpec;
    use std::time::Instant;

    const HOUR: Duration = Duration::from_secs(3600);

    fn samples(at: Instant, values: &[f64]) -> Vec<LatencySample> {
        values
            .iter()
            .map(|seconds| LatencySample {
                at,
                seconds: *seconds,
            })
            .collect()
    }

    fn context(now: Instant, stream: bool) -> PickContext {
        PickContext {
            input_tokens: 0,
            stream,
            now,
        }
    }

    fn specs(ids: &[&str]) -> Vec<DeploymentSpec> {
        ids.iter().map(|id| spec(id, |_| {})).collect()
    }

    #[test]
    fn fastest_wins_and_unseen_deployments_go_first() {
        let now = ManualClock::new().now();
        let specs = specs(&["slow", "fast", "new"]);
        let (slow, fast) = (samples(now, &[2.0, 4.0]), samples(now, &[1.0, 1.0]));
        let mut c = candidates(&specs);
        c[0].latency = &slow;
        c[1].latency = &fast;
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50 {
            assert_eq!(
                pick(&c[..2], &context(now, false), 0.0, HOUR, &mut rng),
                Some(1)
            );
        }
        assert_eq!(pick(&c, &context(now, false), 0.0, HOUR, &mut rng), Some(2));
    }

    #[test]
    fn buffer_spreads_over_near_ties() {
        let now = ManualClock::new().now();
        let specs = specs(&["a", "b", "c"]);
        let measured = [
            samples(now, &[1.0]),
            samples(now, &[1.4]),
            samples(now, &[2.0]),
        ];
        let mut c = candidates(&specs);
        for (candidate, latency) in c.iter_mut().zip(&measured) {
            candidate.latency = latency;
        }
        let mut rng = fastrand::Rng::with_seed(2);
        let counts = histogram(3, 2000, || {
            pick(&c, &context(now, false), 0.5, HOUR, &mut rng)
        });
        assert_eq!(counts[2], 0);
        assert!(counts[0] > 850 && counts[1] > 850, "{counts:?}");
    }

    #[test]
    fn streams_rank_by_time_to_first_token() {
        let now = ManualClock::new().now();
        let specs = specs(&["a", "b"]);
        let (latency_a, ttft_a) = (samples(now, &[0.01]), samples(now, &[3.0]));
        let (latency_b, ttft_b) = (samples(now, &[0.05]), samples(now, &[0.5]));
        let mut c = candidates(&specs);
        (c[0].latency, c[0].ttft) = (&latency_a, &ttft_a);
        (c[1].latency, c[1].ttft) = (&latency_b, &ttft_b);
        let mut rng = fastrand::Rng::with_seed(4);
        assert_eq!(pick(&c, &context(now, false), 0.0, HOUR, &mut rng), Some(0));
        assert_eq!(pick(&c, &context(now, true), 0.0, HOUR, &mut rng), Some(1));
    }

    #[test]
    fn samples_older_than_ttl_are_ignored() {
        let clock = ManualClock::new();
        let start = clock.now();
        let specs = specs(&["a", "b"]);
        let penalty = samples(start, &[1000.0]);
        clock.advance(Duration::from_secs(30));
        let fresh = samples(clock.now(), &[2.0]);
        let mut c = candidates(&specs);
        c[0].latency = &penalty;
        c[1].latency = &fresh;
        let mut rng = fastrand::Rng::with_seed(8);
        let ttl = Duration::from_secs(60);
        assert_eq!(
            pick(&c, &context(clock.now(), false), 0.0, ttl, &mut rng),
            Some(1)
        );
        // Once the timeout penalty is older than the ttl, "a" counts as unseen and goes first.
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            pick(&c, &context(clock.now(), false), 0.0, ttl, &mut rng),
            Some(0)
        );
    }
}
