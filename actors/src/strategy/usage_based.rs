//! usage-based-routing (v1 and v2 names both land here, with v2's behaviour): the deployment that
//! used the fewest tokens over the sliding minute, ties at random. Deployments over their rpm/tpm
//! were already filtered out by the group's pick.

use super::{random_lowest, Candidate};

/// Index of the candidate with the lowest tpm use.
pub fn pick(candidates: &[Candidate<'_>], rng: &mut fastrand::Rng) -> Option<usize> {
    let keys: Vec<f64> = candidates.iter().map(|c| c.tpm_used as f64).collect();
    random_lowest(&keys, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, histogram, spec};

    #[test]
    fn lowest_tokens_this_minute_wins() {
        let specs = [spec("a", |_| {}), spec("b", |_| {}), spec("c", |_| {})];
        let mut candidates = candidates(&specs);
        candidates[0].tpm_used = 500;
        candidates[1].tpm_used = 200;
        candidates[2].tpm_used = 200;
        let mut rng = fastrand::Rng::with_seed(5);
        let counts = histogram(3, 2000, || pick(&candidates, &mut rng));
        assert_eq!(counts[0], 0);
        assert!(counts[1] > 850 && counts[2] > 850, "{counts:?}");
        // (How usage slides out of the minute: `admission`'s tests.)
    }
}
