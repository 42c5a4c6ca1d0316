//! simple-shuffle: weighted random choice. The weight field is decided over the whole group
//! (`weight` if any deployment sets it, else `rpm`, else `tpm`, else uniform), not from the first
//! deployment as LiteLLM does. A deployment that lacks the chosen field weighs the mean of those
//! that have it, so adding an unconfigured deployment neither starves it nor lets it dominate.
//! Non-finite or negative values count as missing; an explicit 0 is never picked while anyone
//! else has weight.

use crate::settings::DeploymentSpec;

/// Resolved weights for a group plus their running sums, built once when the group starts so a
/// pick over the whole group is one random number and a binary search.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightTable {
    weights: Vec<f64>,
    cumulative: Vec<f64>,
}

impl WeightTable {
    /// Resolves every deployment's weight by the rule in the module doc.
    pub fn build(specs: &[&DeploymentSpec]) -> WeightTable {
        let fields: [fn(&DeploymentSpec) -> Option<f64>; 3] = [
            |spec| spec.weight,
            |spec| spec.rpm.map(|rpm| rpm as f64),
            |spec| spec.tpm.map(|tpm| tpm as f64),
        ];
        let valid = |value: Option<f64>| value.filter(|v| v.is_finite() && *v >= 0.0);
        let field = fields
            .iter()
            .find(|field| specs.iter().any(|spec| valid(field(spec)).is_some()));
        let weights: Vec<f64> = match field {
            None => vec![1.0; specs.len()],
            Some(field) => {
                let present: Vec<f64> = specs.iter().filter_map(|s| valid(field(s))).collect();
                let mean = present.iter().sum::<f64>() / present.len() as f64;
                specs
                    .iter()
                    .map(|spec| valid(field(spec)).unwrap_or(mean))
                    .collect()
            }
        };
        let cumulative = weights
            .iter()
            .scan(0.0, |sum, weight| {
                *sum += weight;
                Some(*sum)
            })
            .collect();
        WeightTable {
            weights,
            cumulative,
        }
    }

    /// The resolved weight of the deployment at `index` in the group.
    pub fn weight(&self, index: usize) -> f64 {
        self.weights.get(index).copied().unwrap_or(0.0)
    }

    /// A weighted pick over the whole group.
    pub fn pick_all(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if total <= 0.0 {
            return Some(rng.usize(..self.weights.len()));
        }
        let target = rng.f64() * total;
        let index = self.cumulative.partition_point(|sum| *sum <= target);
        Some(index.min(self.weights.len() - 1))
    }
}

/// A weighted pick over a subset's weights (uniform when they are all zero).
pub fn pick(weights: &[f64], rng: &mut fastrand::Rng) -> Option<usize> {
    if weights.is_empty() {
        return None;
    }
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Some(rng.usize(..weights.len()));
    }
    let mut target = rng.f64() * total;
    let mut last_positive = 0;
    for (index, weight) in weights.iter().enumerate() {
        if *weight > 0.0 {
            if target < *weight {
                return Some(index);
            }
            target -= weight;
            last_positive = index;
        }
    }
    Some(last_positive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::histogram;

    fn spec(edit: impl FnOnce(&mut DeploymentSpec)) -> DeploymentSpec {
        let mut spec = DeploymentSpec::new("d", "g", "m");
        edit(&mut spec);
        spec
    }

    fn table(specs: &[DeploymentSpec]) -> WeightTable {
        WeightTable::build(&specs.iter().collect::<Vec<_>>())
    }

    #[test]
    fn weight_field_is_chosen_over_all_deployments() {
        // The first deployment has no rpm; LiteLLM would go uniform. We weight by rpm.
        let t = table(&[
            spec(|_| {}),
            spec(|s| s.rpm = Some(100)),
            spec(|s| s.rpm = Some(300)),
        ]);
        assert_eq!(t.weights, vec![200.0, 100.0, 300.0]);
        // weight wins over rpm even when only one deployment sets it.
        let t = table(&[spec(|s| s.rpm = Some(10)), spec(|s| s.weight = Some(4.0))]);
        assert_eq!(t.weights, vec![4.0, 4.0]);
        let t = table(&[spec(|s| s.tpm = Some(1000)), spec(|s| s.tpm = Some(3000))]);
        assert_eq!(t.weights, vec![1000.0, 3000.0]);
        let t = table(&[spec(|_| {}), spec(|_| {})]);
        assert_eq!(t.weights, vec![1.0, 1.0]);
        let t = table(&[
            spec(|s| s.weight = Some(f64::NAN)),
            spec(|s| s.weight = Some(2.0)),
        ]);
        assert_eq!(t.weights, vec![2.0, 2.0]);
    }

    #[test]
    fn table_picks_follow_weights() {
        let t = table(&[
            spec(|s| s.weight = Some(1.0)),
            spec(|s| s.weight = Some(3.0)),
            spec(|s| s.weight = Some(0.0)),
            spec(|s| s.weight = Some(6.0)),
        ]);
        let mut rng = fastrand::Rng::with_seed(42);
        let counts = histogram(4, 10_000, || t.pick_all(&mut rng));
        assert_eq!(counts[2], 0, "weight 0 is never picked");
        assert!((800..1200).contains(&counts[0]), "{counts:?}");
        assert!((2700..3300).contains(&counts[1]), "{counts:?}");
        assert!((5600..6400).contains(&counts[3]), "{counts:?}");
    }

    #[test]
    fn subset_picks_follow_weights_and_fall_back_to_uniform() {
        let mut rng = fastrand::Rng::with_seed(3);
        let counts = histogram(2, 4000, || pick(&[1.0, 3.0], &mut rng));
        assert!((850..1150).contains(&counts[0]), "{counts:?}");
        let counts = histogram(3, 3000, || pick(&[0.0, 0.0, 0.0], &mut rng));
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
        assert_eq!(pick(&[], &mut rng), None);
        let counts = histogram(2, 1000, || pick(&[0.0, 5.0], &mut rng));
        assert_eq!(counts, vec![0, 1000]);
    }
}
