//! Routing strategies: pure functions from a snapshot of the eligible deployments to the index of
//! the one to try, with time and randomness passed in. The group's pick has already dropped
//! deployments that are cooling down, at their rpm/tpm/parallel limit, or in a higher `order`
//! tier, so a strategy only ranks.

pub mod cost_based;
pub mod latency_based;
pub mod least_busy;
pub mod simple_shuffle;
pub mod usage_based;

use crate::settings::{DeploymentSpec, Strategy};

/// One eligible deployment as a strategy sees it: the numbers the strategies rank by, read
/// from the deployment's shared state when the pick starts.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Its static description (costs for cost-based).
    pub spec: &'a DeploymentSpec,
    /// Its simple-shuffle weight, resolved for the whole group (see [`simple_shuffle`]).
    pub weight: f64,
    /// Requests in flight (least-busy).
    pub in_flight: u32,
    /// Tokens over the sliding minute (usage-based; the group's pick leaves it 0 for the other
    /// strategies, which do not read it).
    pub tpm_used: u64,
    /// Mean recent latency in seconds (per output token when known), samples older than the
    /// strategy's ttl left out; `None` when none is fresh (latency-based; `None` for the other
    /// strategies, likewise).
    pub latency: Option<f64>,
    /// Mean recent time to first token, likewise; filled for stream requests only, so that a
    /// strategy ranks a stream by it when known.
    pub ttft: Option<f64>,
}

impl Strategy {
    /// The index in `candidates` to try, or `None` when `candidates` is empty.
    pub fn pick(&self, candidates: &[Candidate<'_>], rng: &mut fastrand::Rng) -> Option<usize> {
        match self {
            Strategy::SimpleShuffle => {
                let weights: Vec<f64> = candidates.iter().map(|c| c.weight).collect();
                simple_shuffle::pick(&weights, rng)
            }
            Strategy::LeastBusy => least_busy::pick(candidates, rng),
            Strategy::UsageBased => usage_based::pick(candidates, rng),
            Strategy::LatencyBased {
                lowest_latency_buffer,
                ..
            } => latency_based::pick(candidates, *lowest_latency_buffer, rng),
            Strategy::CostBased => cost_based::pick(candidates, rng),
        }
    }
}

/// A uniformly random index among those with the lowest key.
pub(crate) fn random_lowest(keys: &[f64], rng: &mut fastrand::Rng) -> Option<usize> {
    let lowest = keys.iter().copied().fold(f64::INFINITY, f64::min);
    let mut chosen = None;
    let mut seen = 0;
    for (index, key) in keys.iter().enumerate() {
        if *key <= lowest {
            seen += 1;
            // Reservoir sampling: each tied index ends up chosen with probability 1/seen.
            if rng.usize(..seen) == 0 {
                chosen = Some(index);
            }
        }
    }
    chosen.or_else(|| (!keys.is_empty()).then(|| rng.usize(..keys.len())))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Candidate;
    use crate::settings::DeploymentSpec;

    /// A spec built by `edit`.
    pub fn spec(id: &str, edit: impl FnOnce(&mut DeploymentSpec)) -> DeploymentSpec {
        let mut spec = DeploymentSpec::new(id, "group", "openai/model");
        edit(&mut spec);
        spec
    }

    /// Fresh candidates, one per spec: weight 1, nothing in flight, nothing used or measured.
    pub fn candidates(specs: &[DeploymentSpec]) -> Vec<Candidate<'_>> {
        specs
            .iter()
            .map(|spec| Candidate {
                spec,
                weight: 1.0,
                in_flight: 0,
                tpm_used: 0,
                latency: None,
                ttft: None,
            })
            .collect()
    }

    /// How often each index was picked over `rounds`.
    pub fn histogram(
        len: usize,
        rounds: usize,
        mut pick: impl FnMut() -> Option<usize>,
    ) -> Vec<usize> {
        let mut counts = vec![0; len];
        for _ in 0..rounds {
            if let Some(index) = pick() {
                counts[index] += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_lowest_spreads_ties_evenly() {
        let mut rng = fastrand::Rng::with_seed(7);
        let keys = [3.0, 1.0, 2.0, 1.0];
        let counts = test_support::histogram(4, 4000, || random_lowest(&keys, &mut rng));
        assert_eq!(counts[0] + counts[2], 0);
        assert!(counts[1] > 1800 && counts[3] > 1800, "{counts:?}");
        assert_eq!(random_lowest(&[], &mut rng), None);
    }
}
