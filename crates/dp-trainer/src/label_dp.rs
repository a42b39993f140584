//! Label differential privacy by randomized response with a prior (Ghazi et al. 2021).

use crate::TrainerError;
use dp_accountant::DpEvent;
use dp_sampler::DpRng;
use rand::Rng;

/// Randomized response with a prior (RR-with-prior, Ghazi, Golowich, Kumar, Manurangsi, Zhang,
/// "Deep Learning with Label Differential Privacy", NeurIPS 2021).
///
/// For each example with prior p over the K classes, the mechanism keeps the k classes of
/// highest prior, with k maximizing e^ε/(e^ε + k - 1) · (prior mass of those k), and runs k-ary
/// randomized response restricted to them: the true label (if among them) with probability
/// e^ε/(e^ε + k - 1), each other kept class with probability 1/(e^ε + k - 1), and a uniform
/// kept class if the true label is not among them.
///
/// # Privacy
///
/// Every output probability ratio between two labels is at most e^ε, so releasing the noisy
/// label is ε-label-DP (pure, δ = 0) under the replace-one-label relation, whatever the k — as
/// long as the prior of an example does not depend on that example's label (priors from a model
/// trained on other examples' noisy labels, as in the paper's multi-stage training). Each label
/// is randomized once; the features are not protected. The [`event`](Self::event) is K-ary
/// randomized response with the same ε, the worst case over k.
///
/// # Examples
///
/// ```
/// use dp_sampler::SeededRng;
/// use dp_trainer::RandomizedResponseWithPrior;
///
/// let mechanism = RandomizedResponseWithPrior::new(2.0, 10)?;
/// let uniform = vec![0.1; 10];
/// let (noisy, event) =
///     mechanism.randomize_labels(&[3, 7], |_| uniform.clone(), &mut SeededRng::new(0))?;
/// assert_eq!(noisy.len(), 2);
/// assert!(noisy.iter().all(|&l| l < 10));
/// # let _ = event;
/// # Ok::<(), dp_trainer::TrainerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomizedResponseWithPrior {
    epsilon: f64,
    num_classes: usize,
}

impl RandomizedResponseWithPrior {
    /// The mechanism for `num_classes` labels at label-DP level `epsilon`.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] unless `epsilon` is finite and positive and there are
    /// at least two classes.
    pub fn new(epsilon: f64, num_classes: usize) -> Result<Self, TrainerError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(TrainerError::invalid(
                "epsilon",
                epsilon,
                "must be finite and positive",
            ));
        }
        if num_classes < 2 {
            return Err(TrainerError::invalid(
                "num_classes",
                num_classes as f64,
                "must be at least 2",
            ));
        }
        Ok(Self {
            epsilon,
            num_classes,
        })
    }

    /// The label-DP ε.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The event one randomization of the labels costs: K-ary randomized response with noise
    /// parameter K/(e^ε + K - 1), rounded down so an accountant reports at least ε.
    pub fn event(&self) -> DpEvent {
        let k = self.num_classes as f64;
        let noise_parameter = k / (self.epsilon.exp() + k - 1.0) * (1.0 - f64::EPSILON);
        DpEvent::randomized_response(noise_parameter, self.num_classes as u64)
    }

    /// The noisy label of one example with true label `label` and prior `prior`.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] if the label is out of range or the prior has the wrong
    /// length, a negative or non-finite entry, or zero mass.
    pub fn randomize<R: DpRng + ?Sized>(
        &self,
        label: usize,
        prior: &[f64],
        rng: &mut R,
    ) -> Result<usize, TrainerError> {
        if label >= self.num_classes {
            return Err(TrainerError::invalid(
                "label",
                label as f64,
                "must be below num_classes",
            ));
        }
        if prior.len() != self.num_classes {
            return Err(TrainerError::invalid(
                "prior length",
                prior.len() as f64,
                "must equal num_classes",
            ));
        }
        if let Some(&bad) = prior.iter().find(|p| !(p.is_finite() && **p >= 0.0)) {
            return Err(TrainerError::invalid(
                "prior",
                bad,
                "entries must be finite and non-negative",
            ));
        }
        if prior.iter().sum::<f64>() <= 0.0 {
            return Err(TrainerError::invalid(
                "prior",
                0.0,
                "must have positive mass",
            ));
        }
        let mut order: Vec<usize> = (0..self.num_classes).collect();
        order.sort_by(|&a, &b| prior[b].total_cmp(&prior[a]).then(a.cmp(&b)));
        let e = self.epsilon.exp();
        let (mut best_k, mut best_value, mut mass) = (1, f64::NEG_INFINITY, 0.0);
        for (k, &class) in order.iter().enumerate().map(|(i, c)| (i + 1, c)) {
            mass += prior[class];
            let value = e / (e + k as f64 - 1.0) * mass;
            if value > best_value {
                (best_k, best_value) = (k, value);
            }
        }
        let kept = &order[..best_k];
        if !kept.contains(&label) {
            return Ok(kept[rng.random_range(0..best_k)]);
        }
        let keep_probability = e / (e + best_k as f64 - 1.0);
        if best_k == 1 || rng.random::<f64>() < keep_probability {
            return Ok(label);
        }
        let others: Vec<usize> = kept.iter().copied().filter(|&c| c != label).collect();
        Ok(others[rng.random_range(0..others.len())])
    }

    /// Noisy labels for a whole data set, with the event to compose (once).
    ///
    /// # Errors
    ///
    /// As [`randomize`](Self::randomize).
    pub fn randomize_labels<R: DpRng + ?Sized>(
        &self,
        labels: &[usize],
        mut prior: impl FnMut(usize) -> Vec<f64>,
        rng: &mut R,
    ) -> Result<(Vec<usize>, DpEvent), TrainerError> {
        let noisy = labels
            .iter()
            .enumerate()
            .map(|(i, &label)| self.randomize(label, &prior(i), rng))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((noisy, self.event()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_sampler::SeededRng;

    /// With a uniform prior, RR-with-prior is plain K-ary randomized response: the true label
    /// comes out with probability e^ε/(e^ε + K - 1). Fixed seed; the bound is 5 standard errors,
    /// a false-failure rate below 1e-6 for a fresh seed.
    #[test]
    fn uniform_prior_is_k_ary_randomized_response() {
        let mechanism = RandomizedResponseWithPrior::new(1.0, 4).unwrap();
        let mut rng = SeededRng::new(17);
        let trials = 20_000;
        let kept = (0..trials)
            .filter(|_| mechanism.randomize(2, &[0.25; 4], &mut rng).unwrap() == 2)
            .count();
        let p = 1f64.exp() / (1f64.exp() + 3.0);
        let standard_error = (p * (1.0 - p) / trials as f64).sqrt();
        assert!((kept as f64 / trials as f64 - p).abs() < 5.0 * standard_error);
    }

    #[test]
    fn confident_prior_restricts_the_output() {
        // A prior concentrated on class 0 makes k = 1: the output is class 0 whatever the label.
        let mechanism = RandomizedResponseWithPrior::new(0.5, 3).unwrap();
        let mut rng = SeededRng::new(1);
        for label in 0..3 {
            assert_eq!(
                mechanism
                    .randomize(label, &[0.98, 0.01, 0.01], &mut rng)
                    .unwrap(),
                0
            );
        }
        assert!(
            mechanism
                .randomize(0, &[0.5, f64::NAN, 0.5], &mut rng)
                .is_err()
        );
        assert!(mechanism.randomize(3, &[0.3; 3], &mut rng).is_err());
    }

    #[test]
    fn event_is_randomized_response_with_the_same_epsilon() {
        let mechanism = RandomizedResponseWithPrior::new(2.0, 10).unwrap();
        let DpEvent::RandomizedResponse {
            noise_parameter,
            num_buckets,
        } = mechanism.event()
        else {
            panic!("wrong event")
        };
        assert_eq!(num_buckets, 10);
        // ε of K-ary RR: ln(1 + K(1-p)/p); rounding p down makes it at least 2.
        let epsilon = (1.0 + 10.0 * (1.0 - noise_parameter) / noise_parameter).ln();
        assert!((2.0..2.0 + 1e-12).contains(&epsilon));
    }

    /// The accountants take the event under replace-one (label DP's relation): the (ε, δ) they
    /// report is within the pure ε of the mechanism, and close to it for small δ.
    #[test]
    fn accountant_composes_the_label_dp_event() {
        use dp_accountant::{NeighbouringRelation, PldAccountant, PrivacyAccountant};
        let mechanism = RandomizedResponseWithPrior::new(2.0, 10).unwrap();
        let mut accountant = PldAccountant::new(NeighbouringRelation::ReplaceOne);
        accountant.compose(&mechanism.event()).unwrap();
        let epsilon = accountant.epsilon(1e-9).unwrap().epsilon;
        assert!(epsilon <= 2.0 + 1e-6 && epsilon > 1.9, "epsilon {epsilon}");
    }
}
