//! The event vocabulary: what a mechanism did, as data.
//!
//! A [`DpEvent`] describes a privacy-relevant computation without saying how to account
//! for it (after dp_accounting's `dp_event.py`). Accountants interpret events; samplers,
//! clipping policies and trainers produce them. Variants are only ever added, never
//! changed, so that a saved ledger keeps its meaning.

use serde::{Deserialize, Serialize};

use crate::AccountantError;

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
        /// Inclusion probability of each record, in (0, 1].
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
        DpEvent::RandomizedResponse {
            noise_parameter,
            num_buckets,
        }
    }

    /// This event run on a Poisson subsample with the given inclusion probability.
    pub fn poisson_sampled(self, sampling_probability: f64) -> Self {
        DpEvent::PoissonSampled {
            sampling_probability,
            event: Box::new(self),
        }
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
        DpEvent::SelfComposed {
            event: Box::new(self),
            count,
        }
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

impl DpEvent {
    /// Checks every parameter of this event and of its sub-events.
    ///
    /// Accountants call this before they change state, so an invalid event is refused
    /// whole. Domains: noise multipliers and Laplace scales finite and > 0; sampling
    /// probabilities in (0, 1]; randomized response noise in [0, 1] with at least 2
    /// buckets; `1 <= sample_size <= source_dataset_size`.
    ///
    /// # Errors
    ///
    /// [`AccountantError::InvalidParameter`] naming the first offending parameter.
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_accountant::DpEvent;
    ///
    /// assert!(DpEvent::gaussian(1.0).poisson_sampled(0.01).validate().is_ok());
    /// assert!(DpEvent::gaussian(f64::NAN).validate().is_err());
    /// assert!(DpEvent::gaussian(1.0).poisson_sampled(0.0).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), AccountantError> {
        match self {
            DpEvent::NoOp | DpEvent::NonPrivate => Ok(()),
            DpEvent::Gaussian { noise_multiplier } => {
                check_positive_finite("noise_multiplier", *noise_multiplier)
            }
            DpEvent::Laplace { scale } => check_positive_finite("scale", *scale),
            DpEvent::RandomizedResponse {
                noise_parameter,
                num_buckets,
            } => {
                if !(noise_parameter.is_finite() && (0.0..=1.0).contains(noise_parameter)) {
                    return Err(AccountantError::invalid(
                        "noise_parameter",
                        *noise_parameter,
                        "must lie in [0, 1]",
                    ));
                }
                if *num_buckets < 2 {
                    return Err(AccountantError::invalid(
                        "num_buckets",
                        *num_buckets as f64,
                        "must be at least 2",
                    ));
                }
                Ok(())
            }
            DpEvent::PoissonSampled {
                sampling_probability,
                event,
            } => {
                let q = *sampling_probability;
                if !(q.is_finite() && q > 0.0 && q <= 1.0) {
                    return Err(AccountantError::invalid(
                        "sampling_probability",
                        q,
                        "must lie in (0, 1]",
                    ));
                }
                event.validate()
            }
            DpEvent::SampledWithoutReplacement {
                source_dataset_size,
                sample_size,
                event,
            } => {
                if *source_dataset_size == 0 {
                    return Err(AccountantError::invalid(
                        "source_dataset_size",
                        0.0,
                        "must be at least 1",
                    ));
                }
                if *sample_size == 0 || sample_size > source_dataset_size {
                    return Err(AccountantError::invalid(
                        "sample_size",
                        *sample_size as f64,
                        "must lie in [1, source_dataset_size]",
                    ));
                }
                event.validate()
            }
            DpEvent::SelfComposed { event, .. } => event.validate(),
            DpEvent::Composed(events) => events.iter().try_for_each(DpEvent::validate),
        }
    }

    /// A one-line description for error messages (the variant and its scalar parameters).
    pub(crate) fn describe(&self) -> String {
        match self {
            DpEvent::NoOp => "NoOp".to_owned(),
            DpEvent::NonPrivate => "NonPrivate".to_owned(),
            DpEvent::Gaussian { noise_multiplier } => {
                format!("Gaussian(noise_multiplier = {noise_multiplier})")
            }
            DpEvent::Laplace { scale } => format!("Laplace(scale = {scale})"),
            DpEvent::RandomizedResponse {
                noise_parameter,
                num_buckets,
            } => format!(
                "RandomizedResponse(noise_parameter = {noise_parameter}, num_buckets = {num_buckets})"
            ),
            DpEvent::PoissonSampled {
                sampling_probability,
                event,
            } => format!(
                "PoissonSampled(sampling_probability = {sampling_probability}, {})",
                event.describe()
            ),
            DpEvent::SampledWithoutReplacement {
                source_dataset_size,
                sample_size,
                event,
            } => {
                format!(
                    "SampledWithoutReplacement({sample_size} of {source_dataset_size}, {})",
                    event.describe()
                )
            }
            DpEvent::SelfComposed { event, count } => {
                format!("SelfComposed({} x {count})", event.describe())
            }
            DpEvent::Composed(events) => format!("Composed({} events)", events.len()),
        }
    }

    /// The noise multiplier of the single Gaussian mechanism equivalent to this event, if
    /// it is a Gaussian or a (self-)composition of Gaussians run on the same data
    /// (Mironov, Talwar, Zhang 2019, Sec. 3: k Gaussians with multipliers σ_i on one sample
    /// are one Gaussian with multiplier (Σ σ_i^-2)^(-1/2)). `Some(f64::INFINITY)` when the
    /// event releases nothing (no Gaussian at all); `None` when some part is not Gaussian.
    pub(crate) fn effective_gaussian_noise_multiplier(&self) -> Option<f64> {
        self.inverse_square_noise().map(|s| {
            if s == 0.0 {
                f64::INFINITY
            } else {
                s.recip().sqrt()
            }
        })
    }

    /// Σ σ_i^-2 over the Gaussians in this event, or `None` if a part is not Gaussian.
    fn inverse_square_noise(&self) -> Option<f64> {
        match self {
            DpEvent::NoOp => Some(0.0),
            DpEvent::Gaussian { noise_multiplier } => Some(noise_multiplier.powi(-2)),
            DpEvent::SelfComposed { event, count } => {
                event.inverse_square_noise().map(|s| s * *count as f64)
            }
            DpEvent::Composed(events) => events
                .iter()
                .map(DpEvent::inverse_square_noise)
                .sum::<Option<f64>>(),
            _ => None,
        }
    }
}

fn check_positive_finite(name: &'static str, value: f64) -> Result<(), AccountantError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(AccountantError::invalid(
            name,
            value,
            "must be finite and > 0",
        ))
    }
}
