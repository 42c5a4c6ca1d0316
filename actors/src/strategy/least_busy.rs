//! least-busy: the deployment with the fewest requests in flight, ties at random.

use super::{random_lowest, Candidate};

/// Index of a least-busy candidate.
pub fn pick(candidates: &[Candidate<'_>], rng: &mut fastrand::Rng) -> Option<usize> {
    let keys: Vec<f64> = candidates.iter().map(|c| f64::from(c.in_flight)).collect();
    random_lowest(&keys, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, histogram, spec};

    #[test]
    fn fewest_in_flight_wins_ties_random() {
        let specs = [spec("a", |_| {}), spec("b", |_| {}), spec("c", |_| {})];
        let mut candidates = candidates(&specs);
        candidates[0].in_flight = 3;
        candidates[1].in_flight = 1;
        candidates[2].in_flight = 1;
        let mut rng = fastrand::Rng::with_seed(1);
        let counts = histogram(3, 2000, || pick(&candidates, &mut rng));
        assert_eq!(counts[0], 0);
        assert!(counts[1] > 850 && counts[2] > 850, "{counts:?}");
    }
}
