//! latency-based-routing: lowest mean recent latency. For stream requests the mean time to first
//! token is used when the deployment has fresh TTFT samples. Deployments with no fresh samples
//! count as 0 so they are tried first; the pick is random among those within
//! `lowest * (1 + buffer)`. The means leave out samples older than the ttl and the sample window
//! slides (see `latency::FreshMean`, which the Deployment actor publishes and the group's pick
//! reads into each [`Candidate`]).

use super::Candidate;

/// Index of a candidate within the latency buffer of the fastest.
pub fn pick(candidates: &[Candidate<'_>], buffer: f64, rng: &mut fastrand::Rng) -> Option<usize> {
    let latencies: Vec<f64> = candidates
        .iter()
        .map(|c| c.ttft.or(c.latency).unwrap_or(0.0))
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
    use crate::strategy::test_support::{candidates, histogram, spec};
    use crate::DeploymentSpec;

    fn specs(ids: &[&str]) -> Vec<DeploymentSpec> {
        ids.iter().map(|id| spec(id, |_| {})).collect()
    }

    #[test]
    fn fastest_wins_and_unseen_deployments_go_first() {
        let specs = specs(&["slow", "fast", "new"]);
        let mut c = candidates(&specs);
        c[0].latency = Some(3.0);
        c[1].latency = Some(1.0);
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50 {
            assert_eq!(pick(&c[..2], 0.0, &mut rng), Some(1));
        }
        assert_eq!(pick(&c, 0.0, &mut rng), Some(2));
    }

    #[test]
    fn buffer_spreads_over_near_ties() {
        let specs = specs(&["a", "b", "c"]);
        let mut c = candidates(&specs);
        for (candidate, latency) in c.iter_mut().zip([1.0, 1.4, 2.0]) {
            candidate.latency = Some(latency);
        }
        let mut rng = fastrand::Rng::with_seed(2);
        let counts = histogram(3, 2000, || pick(&c, 0.5, &mut rng));
        assert_eq!(counts[2], 0);
        assert!(counts[0] > 850 && counts[1] > 850, "{counts:?}");
    }

    #[test]
    fn time_to_first_token_ranks_first_when_known() {
        let specs = specs(&["a", "b", "c"]);
        let mut c = candidates(&specs);
        (c[0].latency, c[0].ttft) = (Some(0.01), Some(3.0));
        (c[1].latency, c[1].ttft) = (Some(0.05), Some(0.5));
        let mut rng = fastrand::Rng::with_seed(4);
        assert_eq!(pick(&c[..2], 0.0, &mut rng), Some(1));
        // No TTFT (a non-stream request, or none measured): its latency stands in.
        c[2].latency = Some(0.2);
        assert_eq!(pick(&c, 0.0, &mut rng), Some(2));
        c[0].ttft = None;
        c[1].ttft = None;
        assert_eq!(pick(&c, 0.0, &mut rng), Some(0));
    }
}
