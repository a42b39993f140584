//! Poisson sampling: each example independently with probability q.

use dp_accountant::DpEvent;

use crate::batch::poisson_indices;
use crate::error::{
    check_positive_count, check_sampling_probability, probability_from_expected_batch_size,
};
use crate::{Batch, BatchSampler, DpRng, PrivacyUnit, SamplerError};

/// Poisson sampling: every example joins each batch independently with probability
/// `sampling_probability`. The default sampler of DP-SGD.
///
/// # Privacy
///
/// A step running `mechanism` on the batch is `mechanism.poisson_sampled(q)` under add/remove
/// of one example. Batch sizes vary (Binomial(N, q)) and may be zero; both are part of the
/// guarantee, which is why the trainer divides by the expected batch size.
///
/// # Examples
///
/// ```
/// use dp_accountant::DpEvent;
/// use dp_sampler::{BatchSampler, Poisson, SeededRng};
///
/// let mut sampler = Poisson::with_expected_batch_size(60_000, 256.0)?;
/// let batch = sampler.sample(&mut SeededRng::new(1));
/// assert!(batch.indices.windows(2).all(|w| w[0] < w[1]));
/// let q = 256.0 / 60_000.0;
/// assert_eq!(
///     sampler.step_event(DpEvent::gaussian(1.1)),
///     DpEvent::gaussian(1.1).poisson_sampled(q),
/// );
/// # Ok::<(), dp_sampler::SamplerError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Poisson {
    dataset_size: usize,
    sampling_probability: f64,
}

impl Poisson {
    /// Poisson sampling over `dataset_size` examples with inclusion probability
    /// `sampling_probability`.
    ///
    /// # Errors
    ///
    /// [`SamplerError::InvalidParameter`] for an empty dataset or a probability outside
    /// (0, 1] (NaN included).
    pub fn new(dataset_size: usize, sampling_probability: f64) -> Result<Self, SamplerError> {
        Ok(Poisson {
            dataset_size: check_positive_count("dataset_size", dataset_size)?,
            sampling_probability: check_sampling_probability(sampling_probability)?,
        })
    }

    /// Poisson sampling with `q = expected_batch_size / dataset_size`.
    ///
    /// # Errors
    ///
    /// [`SamplerError::InvalidParameter`] for an empty dataset or an expected batch size
    /// outside (0, dataset_size].
    pub fn with_expected_batch_size(
        dataset_size: usize,
        expected_batch_size: f64,
    ) -> Result<Self, SamplerError> {
        let sampling_probability =
            probability_from_expected_batch_size(dataset_size, expected_batch_size)?;
        Poisson::new(dataset_size, sampling_probability)
    }

    /// The inclusion probability q.
    pub fn sampling_probability(&self) -> f64 {
        self.sampling_probability
    }
}

impl BatchSampler for Poisson {
    fn sample(&mut self, rng: &mut dyn DpRng) -> Batch {
        Batch::new(poisson_indices(
            self.dataset_size,
            self.sampling_probability,
            rng,
        ))
    }

    fn step_event(&self, mechanism: DpEvent) -> DpEvent {
        mechanism.poisson_sampled(self.sampling_probability)
    }

    fn expected_batch_size(&self) -> f64 {
        self.dataset_size as f64 * self.sampling_probability
    }

    fn population_size(&self) -> usize {
        self.dataset_size
    }

    fn privacy_unit(&self) -> PrivacyUnit {
        PrivacyUnit::Example
    }

    fn overflow_probability(&self) -> f64 {
        0.0
    }
}
