//! cost-based-routing: the lowest input + output cost per token, with a missing price counted as
//! 5.0 (LiteLLM's placeholder), ties at random.

use super::{random_lowest, Candidate};

/// LiteLLM's price for an unknown cost per token.
pub const UNKNOWN_COST_PER_TOKEN: f64 = 5.0;

/// Index of the cheapest candidate.
pub fn pick(candidates: &[Candidate<'_>], rng: &mut fastrand::Rng) -> Option<usize> {
    let keys: Vec<f64> = candidates
        .iter()
        .map(|c| {
            let spec = c.spec;
            spec.input_cost_per_token.unwrap_or(UNKNOWN_COST_PER_TOKEN)
                + spec.output_cost_per_token.unwrap_or(UNKNOWN_COST_PER_TOKEN)
        })
        .collect();
    random_lowest(&keys, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, spec};

    #[test]
    fn cheapest_wins_and_unknown_prices_are_expensive() {
        let specs = [
            spec("unknown", |_| {}),
            spec("cheap", |s| {
                s.input_cost_per_token = Some(1e-6);
                s.output_cost_per_token = Some(2e-6);
            }),
            spec("half-known", |s| s.input_cost_per_token = Some(0.0)),
        ];
        let candidates = candidates(&specs);
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..100 {
            assert_eq!(pick(&candidates, &mut rng), Some(1));
        }
        assert_eq!(pick(&candidates[..1], &mut rng), Some(0));
        assert_eq!(pick(&[candidates[0], candidates[2]], &mut rng), Some(1));
    }
}
