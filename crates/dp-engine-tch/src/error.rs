//! The one error type of this crate.

/// Errors of the libtorch layers, models and engines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TchEngineError {
    /// libtorch refused an operation (shape mismatch, device mismatch, out of memory, ...).
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A tensor has a shape the formula cannot handle.
    #[error("{what}: expected {expected}, got shape {actual:?}")]
    Shape {
        /// Which tensor.
        what: &'static str,
        /// The shape the formula needs, in words.
        expected: &'static str,
        /// The shape it got.
        actual: Vec<i64>,
    },
    /// A layer configuration is invalid (for example channels not divisible by groups).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A class label is outside `0..num_classes`.
    #[error("label {label} of example {example} is not below the number of classes {num_classes}")]
    InvalidLabel {
        /// Index of the example in the batch.
        example: usize,
        /// The label found.
        label: i64,
        /// Number of classes (the last dimension of the model output).
        num_classes: i64,
    },
    /// The model holds a layer the engines cannot compute per-sample gradients for.
    #[error("unsupported layer `{layer}` ({kind}): {fix}")]
    UnsupportedLayer {
        /// The layer's variable-store path.
        layer: String,
        /// What kind of layer it appears to be.
        kind: &'static str,
        /// What to use instead.
        fix: &'static str,
    },
}

impl From<TchEngineError> for dp_engine::EngineError {
    fn from(error: TchEngineError) -> Self {
        match error {
            TchEngineError::InvalidParameter {
                name,
                value,
                reason,
            } => Self::InvalidParameter {
                name,
                value,
                reason,
            },
            TchEngineError::InvalidLabel {
                example,
                label,
                num_classes,
            } => match (usize::try_from(label), usize::try_from(num_classes)) {
                (Ok(label), Ok(num_classes)) => Self::InvalidLabel {
                    example,
                    label,
                    num_classes,
                },
                _ => Self::InvalidParameter {
                    name: "label",
                    value: label.to_string(),
                    reason: "class labels must not be negative",
                },
            },
            other => Self::Backend {
                message: other.to_string(),
            },
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = TchEngineError> = std::result::Result<T, E>;
