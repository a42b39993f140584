//! Per-sample gradient engines for DP-SGD over libtorch, through the `tch` crate.
//!
//! This is the only crate of the workspace that names `tch`; it is not a default member, so
//! plain `cargo build` and `cargo test` never need libtorch (`cargo xtask test` provisions it).
//!
//! What exists so far: the per-layer formulas that the engines are built from.
//!
//! # Examples
//!
//! ```
//! use tch::{Device, Kind, Tensor};
//!
//! // A batch of 3 examples through a Linear layer 4 -> 2: activations and output gradients.
//! let activations = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
//! let output_gradients = Tensor::randn([3, 2], (Kind::Float, Device::Cpu));
//! let per_sample =
//!     dp_engine_tch::linear_per_sample_weight_gradients(&activations, &output_gradients)?;
//! assert_eq!(per_sample.size(), [3, 2, 4]);
//! # Ok::<(), dp_engine_tch::TchEngineError>(())
//! ```

use tch::Tensor;

/// Errors of the libtorch engines.
#[derive(Debug, thiserror::Error)]
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
}

/// Per-sample gradients of a Linear layer's weight, `[batch, out, in]`.
///
/// For `y = x Wᵀ + b` applied to every position of an input `[batch, ..., in]`, the gradient
/// of example i's loss with respect to `W` is the sum over its positions of the outer
/// product of the output gradient and the input: `einsum("b...o,b...i->boi")`.
///
/// # Errors
///
/// [`TchEngineError::Shape`] when the two tensors have fewer than two dimensions or
/// different leading dimensions, and [`TchEngineError::Torch`] when libtorch fails.
pub fn linear_per_sample_weight_gradients(
    activations: &Tensor,
    output_gradients: &Tensor,
) -> Result<Tensor, TchEngineError> {
    let input_shape = activations.size();
    let output_shape = output_gradients.size();
    if input_shape.len() < 2 || input_shape.len() != output_shape.len() {
        return Err(TchEngineError::Shape {
            what: "output gradients",
            expected: "as many dimensions as the activations (at least 2)",
            actual: output_shape,
        });
    }
    if input_shape[..input_shape.len() - 1] != output_shape[..output_shape.len() - 1] {
        return Err(TchEngineError::Shape {
            what: "output gradients",
            expected: "the leading dimensions of the activations",
            actual: output_shape,
        });
    }
    let batch = input_shape[0];
    let inputs = activations.f_reshape([batch, -1, input_shape[input_shape.len() - 1]])?;
    let outputs = output_gradients.f_reshape([batch, -1, output_shape[output_shape.len() - 1]])?;
    Ok(Tensor::f_einsum(
        "bto,bti->boi",
        &[outputs, inputs],
        None::<&[i64]>,
    )?)
}
