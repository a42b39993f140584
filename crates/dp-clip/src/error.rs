//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in dp-clip. Non-finite norms are not errors: they get a
/// scale factor of zero and are counted (see [`crate::ClipOutcome::invalid_norms`]).
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ClipError {
    /// A policy parameter is outside its domain (NaN, zero or negative max norm, ...).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given (counts converted to `f64`).
        value: f64,
        /// What the parameter must satisfy.
        reason: &'static str,
    },
    /// Shapes disagree: a norm slice whose length is not batch x groups, or a matrix with
    /// another number of groups than the policy has bounds for.
    #[error("shape mismatch in {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// Which quantity disagrees.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// An adaptive policy was updated with an outcome computed under another clip norm.
    #[error(
        "outcome computed with clip norm {outcome_clip_norm}, policy is at {current_clip_norm}"
    )]
    StaleOutcome {
        /// The clip norm the outcome was computed with.
        outcome_clip_norm: f64,
        /// The policy's current clip norm.
        current_clip_norm: f64,
    },
    /// The noise source failed.
    #[error("the noise source failed: {reason}")]
    NoiseSource {
        /// The source's message.
        reason: String,
    },
}

/// A positive, finite bound (a max norm, a stability constant, ...).
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<f64, ClipError> {
    if value > 0.0 && value.is_finite() {
        Ok(value)
    } else {
        Err(ClipError::InvalidParameter {
            name,
            value,
            reason: "must be positive and finite",
        })
    }
}
