//! The one error type of this crate, shared by every engine.

use thiserror::Error;

/// What can go wrong inside a per-sample gradient engine.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineError {
    /// Two quantities that must agree in size do not.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// Which quantity has the wrong size.
        what: &'static str,
        /// The size the engine expected.
        expected: usize,
        /// The size it was given.
        actual: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// `accumulate_scaled` was called without a preceding `norms` on the same batch.
    #[error("accumulate_scaled needs the tape of a preceding call to norms")]
    MissingTape,
    /// A label is not a valid class index.
    #[error("label {label} of example {example} is not below the number of classes {num_classes}")]
    InvalidLabel {
        /// Index of the offending example in the batch.
        example: usize,
        /// The label found.
        label: usize,
        /// Number of classes of the model.
        num_classes: usize,
    },
    /// The backend (tensor library) reported an error.
    #[error("backend error: {message}")]
    Backend {
        /// The backend's message.
        message: String,
    },
}
