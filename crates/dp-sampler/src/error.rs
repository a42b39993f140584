//! The crate's one error type and the parameter checks every constructor shares.

use thiserror::Error;

/// Everything that can go wrong in dp-sampler. Constructors validate, so a sampler or noise
/// configuration that exists is valid, and sampling itself never fails.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SamplerError {
    /// A parameter is outside its domain (NaN, negative, zero where a positive value is
    /// needed, a probability outside (0, 1], ...).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in the constructor's signature.
        name: &'static str,
        /// The value that was given (counts converted to `f64`).
        value: f64,
        /// What the parameter must satisfy.
        reason: &'static str,
    },
    /// A fixed-shape (truncated) Poisson batch would overflow too often for its overflow to
    /// be negligible in the privacy guarantee.
    #[error(
        "a fixed batch of {max_batch_size} overflows with probability up to \
         {overflow_probability:e} per step, above the tolerance {tolerance:e}"
    )]
    OverflowProbabilityTooLarge {
        /// The fixed batch size.
        max_batch_size: usize,
        /// Upper bound on P[Binomial(N, q) > max_batch_size].
        overflow_probability: f64,
        /// The largest per-step overflow probability the caller accepted.
        tolerance: f64,
    },
    /// The same example id appears under two users (or twice under one), which would break
    /// the user-level contribution bound.
    #[error("example {example} is listed more than once across users")]
    DuplicateExample {
        /// The repeated example id.
        example: usize,
    },
    /// The operating system's entropy source failed.
    #[error("the operating system's entropy source failed: {reason}")]
    Entropy {
        /// The operating system's message.
        reason: String,
    },
    /// A checkpoint was restored into a generator of the other kind.
    #[error("the checkpoint holds a {found} generator, not a {expected} one")]
    CheckpointMismatch {
        /// The kind of generator being restored.
        expected: &'static str,
        /// The kind the checkpoint holds.
        found: &'static str,
    },
}

/// Shorthand for an [`SamplerError::InvalidParameter`].
pub(crate) fn invalid(name: &'static str, value: f64, reason: &'static str) -> SamplerError {
    SamplerError::InvalidParameter {
        name,
        value,
        reason,
    }
}

/// A sampling probability: finite and in (0, 1].
pub(crate) fn check_sampling_probability(value: f64) -> Result<f64, SamplerError> {
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(invalid("sampling_probability", value, "must be in (0, 1]"))
    }
}

/// A count that must be at least one.
pub(crate) fn check_positive_count(
    name: &'static str,
    value: usize,
) -> Result<usize, SamplerError> {
    if value == 0 {
        Err(invalid(name, 0.0, "must be at least 1"))
    } else {
        Ok(value)
    }
}

/// The sampling probability that gives `expected_batch_size` in expectation over
/// `dataset_size` records.
pub(crate) fn probability_from_expected_batch_size(
    dataset_size: usize,
    expected_batch_size: f64,
) -> Result<f64, SamplerError> {
    let dataset_size = check_positive_count("dataset_size", dataset_size)?;
    if !(expected_batch_size > 0.0 && expected_batch_size <= dataset_size as f64) {
        return Err(invalid(
            "expected_batch_size",
            expected_batch_size,
            "must be in (0, dataset_size]",
        ));
    }
    // The division can round above the exact ratio; either side is a valid probability
    // that the event records exactly, so no rounding direction matters here.
    check_sampling_probability((expected_batch_size / dataset_size as f64).min(1.0))
}
