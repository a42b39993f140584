//! The event vocabulary: what a mechanism did, as data.
//!
//! A [`DpEvent`] describes a privacy-relevant computation without saying how to account
//! for it (after dp_accounting's `dp_event.py`). Accountants interpret events; samplers,
//! clipping policies and trainers produce them. Variants are only ever added, never
//! changed, so that a saved ledger keeps its meaning.

use serde::{Deserialize, Serialize};

/// A differentially private (or explicitly non-private) computation, as data.
///
/// Sensitivities are normalized to one: a Gaussian event with `noise_multiplier` σ adds
/// N(0, σ²·C²) noise to a sum whose L2 sensitivity is C.
///
/// # Examples
///
/// ```
/// use dp_accountant::DpEvent;
///
/// // 1000 steps of DP-SGD with noise multiplier 1.1 and Poisson sampling probability 0.01.
/// let event = DpEvent::gaussian(1.1).poisson_sampled(0.01).repeated(1000);
/// assert_eq!(
///     event,
///     DpEvent::SelfComposed {
///         event: Box::new(DpEvent::PoissonSampled {
///             sampling_probability: 0.01,
///             event: Box::new(DpEvent::Gaussian { noise_multiplier: 1.1 }),
///         }),
///         count: 1000,
///     }
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpEvent {
    /// Touches no private data; costs nothing.
    NoOp,
    /// Releases private data without a guarantee: every accountant reports ε = ∞.
    NonPrivate,
    /// The Gaussian mechanism on a query of L2 sensitivity 1 with noise std `noise_multiplier`.
    Gaussian {
        /// Ratio of the noise standard deviation to the L2 sensitivity.
        noise_multiplier: f64,
    },
    /// The Laplace mechanism on a query of L1 sensitivity 1 with noise scale `scale`
    /// (the Laplace parameter b divided by the L1 sensitivity).
    Laplace {
        /// Ratio of the Laplace scale parameter b to the L1 sensitivity.
        scale: f64,
    },
    /// k-ary randomized response (label DP): with probability `noise_parameter` the output
    /// is drawn uniformly from the `num_buckets` values, otherwise it is the true value.
    RandomizedResponse {
        /// Probability of replacing the true value by a uniform draw, in [0, 1].
        noise_parameter: f64,
        /// Number of possible values k (at least 2).
        num_buckets: u64,
    },
    /// `event` run on a Poisson subsample: each record included independently with
    /// probability `sampling_probability`.
    PoissonSampled {
        /// Inclusion probability of each record, in [0, 1].
        sampling_probability: f64,
        /// The mechanism run on the subsample.
        event: Box<DpEvent>,
    },
    /// `event` run on a uniformly random subset of exactly `sample_size` records out of
    /// `source_dataset_size` (fixed-size batches, e.g. from shuffling). Accounted under
    /// the replace-one neighbouring relation.
    SampledWithoutReplacement {
        /// Number of records the subset is drawn from.
        source_dataset_size: u64,
        /// Number of records in the subset.
        sample_size: u64,
        /// The mechanism run on the subset.
        event: Box<DpEvent>,
    },
    /// `event` repeated `count` times (adaptive composition).
    SelfComposed {
        /// The repeated mechanism.
        event: Box<DpEvent>,
        /// How many times it runs.
        count: u64,
    },
    /// Adaptive composition of several events, in order.
    Composed(Vec<DpEvent>),
}

impl DpEvent {
    /// The Gaussian mechanism with the given noise multiplier.
    pub fn gaussian(noise_multiplier: f64) -> Self {
        DpEvent::Gaussian { noise_multiplier }
    }

    /// The Laplace mechanism with the given scale (relative to L1 sensitivity 1).
    pub fn laplace(scale: f64) -> Self {
        DpEvent::Laplace { scale }
    }

    /// k-ary randomized response with the given noise parameter and number of buckets.
    pub fn randomized_response(noise_parameter: f64, num_buckets: u64) -> Self {
        DpEvent::RandomizedResponse { noise_parameter, num_buckets }
    }

    /// This event run on a Poisson subsample with the given inclusion probability.
    pub fn poisson_sampled(self, sampling_probability: f64) -> Self {
        DpEvent::PoissonSampled { sampling_probability, event: Box::new(self) }
    }

    /// This event run on a uniformly random fixed-size subset (sampling without replacement).
    pub fn sampled_without_replacement(self, source_dataset_size: u64, sample_size: u64) -> Self {
        DpEvent::SampledWithoutReplacement {
            source_dataset_size,
            sample_size,
            event: Box::new(self),
        }
    }

    /// This event composed with itself `count` times.
    pub fn repeated(self, count: u64) -> Self {
        DpEvent::SelfComposed { event: Box::new(self), count }
    }

    /// This event followed by `other`.
    pub fn then(self, other: DpEvent) -> Self {
        match self {
            DpEvent::Composed(mut events) => {
                events.push(other);
                DpEvent::Composed(events)
            }
            first => DpEvent::Composed(vec![first, other]),
        }
    }
}
