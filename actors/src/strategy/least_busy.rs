//! least-busy: the deployment with the fewest requests in flight, ties at random.

use super::{random_lowest, Candidate};

/// Index of a least-busy candidate.
pub fn pick(candidates: &[Candidate<'_>], rng: &mut fastrand::Rng) -> Option<usize> {
    let keys: Vec<f64> = candidates
        .iter()
        .map(|c| f64::from(c.view.in_flight))
        .collect();
    random_lowest(&keys, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::strategy::test_support::{histogram, view};

    #[test]
    fn fewest_in_flight_wins_ties_random() {
        let now = ManualClock::new().now();
        let mut views = [
            view("a", now, |_| {}),
            view("b", now, |_| {}),
            view("c", now, |_| {}),
        ];
        views[0].in_flight = 3;
        views[1].in_flight = 1;
        views[2].in_flight = 1;
        let candidates: Vec<Candidate<'_>> = views
            .iter()
            .map(|view| Candidate { view, weight: 1.0 })
            .collect();
        let mut rng = fastrand::Rng::with_seed(1);
        let counts = histogram(3, 2000, || pick(&candidates, &mut rng));
        assert_eq!(counts[0], 0);
        assert!(counts[1] > 850 && counts[2] > 850, "{counts:?}");
    }
}
