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
                average(&c.view.ttft, context.now, ttl)
            } else {
                None
            };
            ttft.or_else(|| average(&c.view.latency, context.now, ttl))
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
    use crate::strategy::test_support::{histogram, view};
    use crate::view::DeploymentView;
    use std::sync::Arc;
    use std::time::Instant;

    const HOUR: Duration = Duration::from_secs(3600);

    fn samples(at: Instant, values: &[f64]) -> Arc<[LatencySample]> {
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

    fn candidates(views: &[DeploymentView]) -> Vec<Candidate<'_>> {
        views
            .iter()
            .map(|view| Candidate { view, weight: 1.0 })
            .collect()
    }

    #[test]
    fn fastest_wins_and_unseen_deployments_go_first() {
        let now = ManualClock::new().now();
        let mut views = vec![view("slow", now, |_| {}), view("fast", now, |_| {})];
        views[0].latency = samples(now, &[2.0, 4.0]);
        views[1].latency = samples(now, &[1.0, 1.0]);
        let mut rng = fastrand::Rng::with_seed(11);
        let c = candidates(&views);
        for _ in 0..50 {
            assert_eq!(pick(&c, &context(now, false), 0.0, HOUR, &mut rng), Some(1));
        }
        views.push(view("new", now, |_| {}));
        let c = candidates(&views);
        assert_eq!(pick(&c, &context(now, false), 0.0, HOUR, &mut rng), Some(2));
    }

    #[test]
    fn buffer_spreads_over_near_ties() {
        let now = ManualClock::new().now();
        let mut views = vec![
            view("a", now, |_| {}),
            view("b", now, |_| {}),
            view("c", now, |_| {}),
        ];
        views[0].latency = samples(now, &[1.0]);
        views[1].latency = samples(now, &[1.4]);
        views[2].latency = samples(now, &[2.0]);
        let c = candidates(&views);
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
        let mut views = vec![view("a", now, |_| {}), view("b", now, |_| {})];
        views[0].latency = samples(now, &[0.01]);
        views[0].ttft = samples(now, &[3.0]);
        views[1].latency = samples(now, &[0.05]);
        views[1].ttft = samples(now, &[0.5]);
        let c = candidates(&views);
        let mut rng = fastrand::Rng::with_seed(4);
        assert_eq!(pick(&c, &context(now, false), 0.0, HOUR, &mut rng), Some(0));
        assert_eq!(pick(&c, &context(now, true), 0.0, HOUR, &mut rng), Some(1));
    }

    #[test]
    fn samples_older_than_ttl_are_ignored() {
        let clock = ManualClock::new();
        let start = clock.now();
        let mut views = vec![view("a", start, |_| {}), view("b", start, |_| {})];
        views[0].latency = samples(start, &[1000.0]);
        clock.advance(Duration::from_secs(30));
        views[1].latency = samples(clock.now(), &[2.0]);
        let c = candidates(&views);
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
