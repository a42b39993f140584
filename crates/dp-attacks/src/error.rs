//! The one error type of this crate.

/// Everything that can go wrong in `dp-attacks`.
///
/// Invalid input is always an error, never a silently wrong metric or ε bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttackError {
    /// A scalar parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name as it appears in the signature.
        name: &'static str,
        /// The rejected value (integers are converted to `f64`).
        value: f64,
        /// Why the value is rejected.
        reason: &'static str,
    },
    /// An input collection that must hold at least one element is empty.
    #[error("`{name}` is empty")]
    EmptyInput {
        /// Name of the empty input.
        name: &'static str,
    },
    /// Two inputs that must have the same length do not.
    #[error("`{name}` has length {actual}, expected {expected}")]
    LengthMismatch {
        /// Name of the input with the wrong length.
        name: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// A score, loss or log-probability is NaN or infinite.
    #[error("`{name}[{index}]` is not finite ({value})")]
    NonFinite {
        /// Name of the input holding the value.
        name: &'static str,
        /// Position of the value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// LiRA needs more shadow observations of one example than it has.
    #[error(
        "example {example} has {count} shadow models where it is {membership}, at least {required} needed"
    )]
    TooFewShadowObservations {
        /// Index of the example.
        example: usize,
        /// `"in"` or `"out"`.
        membership: &'static str,
        /// How many shadow models have it with that membership.
        count: usize,
        /// How many are needed.
        required: usize,
    },
    /// A sequence does not belong to the randomness space (wrong length or a token outside the
    /// alphabet).
    #[error("sequence is not in the randomness space: {reason}")]
    NotInSpace {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A caller-supplied shadow-training closure failed.
    #[error("shadow model {shadow} failed to train: {message}")]
    ShadowTraining {
        /// Index of the shadow model.
        shadow: usize,
        /// The closure's error, rendered with `Display`.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, AttackError>;
