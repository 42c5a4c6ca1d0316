//! usage-based-routing (v1 and v2 names both land here, with v2's behaviour): the deployment that
//! used the fewest tokens over the sliding minute, ties at random. Deployments over their rpm/tpm
//! were already filtered out by the ModelGroup.

use std::time::Instant;

use super::{random_lowest, Candidate};

/// Index of the candidate with the lowest tpm use at `now`.
pub fn pick(candidates: &[Candidate<'_>], now: Instant, rng: &mut fastrand::Rng) -> Option<usize> {
    let keys: Vec<f64> = candidates.iter().map(|c| c.view.tpm_used(now)).collect();
    random_lowest(&keys, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::strategy::test_support::{histogram, view};
    use std::time::Duration;

    #[test]
    fn lowest_tokens_this_minute_wins() {
        let clock = ManualClock::new();
        let now = clock.now();
        let mut views = [
            view("a", now, |_| {}),
            view("b", now, |_| {}),
            view("c", now, |_| {}),
        ];
        views[0].tokens.add(now, 500);
        views[1].tokens.add(now, 200);
        views[2].tokens.add(now, 200);
        let candidates: Vec<Candidate<'_>> = views
            .iter()
            .map(|view| Candidate { view, weight: 1.0 })
            .collect();
        let mut rng = fastrand::Rng::with_seed(5);
        let counts = histogram(3, 2000, || pick(&candidates, now, &mut rng));
        assert_eq!(counts[0], 0);
        assert!(counts[1] > 850 && counts[2] > 850, "{counts:?}");

        // Two minutes later everyone's usage has slid out of the window: all tie.
        let later = now + Duration::from_secs(120);
        let counts = histogram(3, 3000, || pick(&candidates, later, &mut rng));
        assert!(counts.iter().all(|c| *c > 850), "{counts:?}");
    }
}
