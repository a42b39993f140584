//! Truncated and padded Poisson sampling: fixed-shape batches for efficient execution.

use dp_accountant::DpEvent;
use rand::seq::SliceRandom;

use crate::batch::poisson_indices;
use crate::error::{check_positive_count, invalid};
use crate::{Batch, BatchSampler, DpRng, Poisson, PrivacyUnit, SamplerError};

/// Poisson sampling cut to at most `max_batch_size` examples and padded up to exactly
/// `max_batch_size` slots, so every step has the same shape (compiled graphs, GPU kernels).
///
/// When the Poisson draw exceeds `max_batch_size`, a uniformly random subset of that size is
/// kept; otherwise [`Batch::padding`] slots are appended, which the engine weights by zero.
///
/// # Privacy
///
/// Without overflow the batch is exactly the Poisson batch, so a step is accounted as
/// `mechanism.poisson_sampled(q)` under add/remove of one example. Overflow, whose per-step
/// probability is at most `p =` [`TruncatedPoisson::overflow_probability`] (a Chernoff bound
/// on P[Binomial(N, q) > B]), breaks that coupling: after `T` steps accounted at (ε, δ) the
/// run satisfies (ε, δ + (1 + e^ε)·T·p); [`TruncatedPoisson::delta_increase`] computes the
/// increase. The constructor refuses configurations where `p` exceeds the caller's tolerance,
/// so the increase stays negligible (for example below 1e-12 per step).
///
/// # Examples
///
/// ```
/// use dp_sampler::{BatchSampler, SeededRng, TruncatedPoisson};
///
/// // Expected batch 256 out of 60 000, fixed shape 384: overflow is astronomically rare.
/// let mut sampler = TruncatedPoisson::new(60_000, 256.0 / 60_000.0, 384, 1e-12)?;
/// let batch = sampler.sample(&mut SeededRng::new(5));
/// assert_eq!(batch.padded_len(), 384);
/// assert!(sampler.overflow_probability() < 1e-12);
/// # Ok::<(), dp_sampler::SamplerError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TruncatedPoisson {
    poisson: Poisson,
    max_batch_size: usize,
    overflow_probability: f64,
}

impl TruncatedPoisson {
    /// Fixed batches of `max_batch_size` slots from Poisson sampling with probability
    /// `sampling_probability` over `dataset_size` examples, refusing a per-step overflow
    /// probability bound above `max_overflow_probability`.
    ///
    /// # Errors
    ///
    /// [`SamplerError::InvalidParameter`] for an empty dataset, a probability outside (0, 1],
    /// a zero `max_batch_size` or a tolerance outside [0, 1);
    /// [`SamplerError::OverflowProbabilityTooLarge`] when the bound exceeds the tolerance.
    pub fn new(
        dataset_size: usize,
        sampling_probability: f64,
        max_batch_size: usize,
        max_overflow_probability: f64,
    ) -> Result<Self, SamplerError> {
        let poisson = Poisson::new(dataset_size, sampling_probability)?;
        let max_batch_size = check_positive_count("max_batch_size", max_batch_size)?;
        if !(0.0..1.0).contains(&max_overflow_probability) {
            return Err(invalid(
                "max_overflow_probability",
                max_overflow_probability,
                "must be in [0, 1)",
            ));
        }
        let overflow_probability =
            binomial_upper_tail_bound(dataset_size, sampling_probability, max_batch_size);
        if overflow_probability > max_overflow_probability {
            return Err(SamplerError::OverflowProbabilityTooLarge {
                max_batch_size,
                overflow_probability,
                tolerance: max_overflow_probability,
            });
        }
        Ok(TruncatedPoisson {
            poisson,
            max_batch_size,
            overflow_probability,
        })
    }

    /// The fixed number of slots per batch.
    pub fn max_batch_size(&self) -> usize {
        self.max_batch_size
    }

    /// Upper bound on the increase of δ after `steps` steps whose composition is accounted at
    /// `epsilon`: `(1 + e^ε)·steps·p`, rounded up, capped at 1. A non-finite or negative
    /// `epsilon` gives 1 (no useful bound).
    pub fn delta_increase(&self, steps: u64, epsilon: f64) -> f64 {
        if !(0.0..f64::INFINITY).contains(&epsilon) {
            return 1.0;
        }
        let increase = (1.0 + epsilon.exp()) * steps as f64 * self.overflow_probability;
        // Three products, each rounded to nearest: a relative margin of 1e-12 covers them.
        (increase * (1.0 + 1e-12)).min(1.0)
    }
}

impl BatchSampler for TruncatedPoisson {
    fn sample(&mut self, rng: &mut dyn DpRng) -> Batch {
        let mut indices = poisson_indices(
            self.poisson.population_size(),
            self.poisson.sampling_probability(),
            rng,
        );
        if indices.len() > self.max_batch_size {
            let (kept, _) = indices.partial_shuffle(rng, self.max_batch_size);
            let mut kept = kept.to_vec();
            kept.sort_unstable();
            indices = kept;
        }
        let padding = self.max_batch_size - indices.len();
        Batch { indices, padding }
    }

    fn step_event(&self, mechanism: DpEvent) -> DpEvent {
        self.poisson.step_event(mechanism)
    }

    fn expected_batch_size(&self) -> f64 {
        self.poisson.expected_batch_size()
    }

    fn population_size(&self) -> usize {
        self.poisson.population_size()
    }

    fn privacy_unit(&self) -> PrivacyUnit {
        PrivacyUnit::Example
    }

    fn overflow_probability(&self) -> f64 {
        self.overflow_probability
    }
}

/// Upper bound on P[Binomial(n, q) > max]: the Chernoff bound
/// `exp(-n·KL(a || q))` with `a = (max + 1)/n`, valid whenever `a > q`; 1 otherwise.
///
/// The exponent is shrunk by a relative 1e-9 so that rounding in `ln` cannot make the result
/// smaller than the exact bound.
pub(crate) fn binomial_upper_tail_bound(n: usize, q: f64, max: usize) -> f64 {
    if max >= n {
        return 0.0;
    }
    let a = (max as f64 + 1.0) / n as f64;
    if a <= q {
        return 1.0;
    }
    // KL(a || q) for Bernoulli laws; the second term is zero when a = 1.
    let kl_first = a * (a / q).ln();
    let kl_second = if a < 1.0 {
        (1.0 - a) * ((-a).ln_1p() - (-q).ln_1p())
    } else {
        0.0
    };
    let exponent = n as f64 * (kl_first + kl_second) * (1.0 - 1e-9);
    (-exponent.max(0.0)).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P[Binomial(100, 0.1) > 20] = 8.0757e-4 (the pmf summed exactly in rationals, Python
    /// `fractions`);
    /// the Chernoff bound must lie above it and within a factor 20 of it.
    #[test]
    fn chernoff_bound_is_above_an_exact_tail() {
        let exact = exact_binomial_tail(100, 0.1, 20);
        let bound = binomial_upper_tail_bound(100, 0.1, 20);
        assert!(bound >= exact, "{bound} < {exact}");
        assert!(bound < 20.0 * exact, "{bound} too loose against {exact}");
    }

    /// Direct summation in f64 (log-space pmf), adequate for the small n used here.
    fn exact_binomial_tail(n: u64, q: f64, max: u64) -> f64 {
        let mut log_choose = 0.0f64;
        let mut total = 0.0;
        for k in 0..=n {
            if k > 0 {
                log_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
            }
            if k > max {
                total += (log_choose + k as f64 * q.ln() + (n - k) as f64 * (-q).ln_1p()).exp();
            }
        }
        total
    }

    #[test]
    fn bound_edge_cases() {
        assert_eq!(binomial_upper_tail_bound(10, 0.5, 10), 0.0);
        assert_eq!(binomial_upper_tail_bound(10, 0.5, 3), 1.0);
        assert!(binomial_upper_tail_bound(10, 0.01, 9) > 0.0);
    }

    #[test]
    fn refuses_a_shape_that_overflows_often() {
        let err = TruncatedPoisson::new(1000, 0.1, 100, 1e-9).expect_err("overflows half the time");
        assert!(matches!(
            err,
            SamplerError::OverflowProbabilityTooLarge { .. }
        ));
        assert!(TruncatedPoisson::new(1000, 0.1, 100, f64::NAN).is_err());
        assert!(TruncatedPoisson::new(1000, 0.1, 0, 0.5).is_err());
    }

    #[test]
    fn delta_increase_grows_with_steps_and_epsilon() {
        let sampler = TruncatedPoisson::new(10_000, 0.01, 160, 1e-6).expect("valid");
        let p = sampler.overflow_probability();
        assert!(p > 0.0 && p <= 1e-6);
        assert!(sampler.delta_increase(100, 1.0) >= (1.0 + 1f64.exp()) * 100.0 * p);
        assert!(sampler.delta_increase(200, 1.0) > sampler.delta_increase(100, 1.0));
        assert_eq!(sampler.delta_increase(100, f64::NAN), 1.0);
    }
}
