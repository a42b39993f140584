//! Parameter-free layers: they need no per-sample formula, gradients flow through them.

use tch::Tensor;

use super::{DpLayer, DpModule, ForwardContext};
use crate::Result;

/// A parameter-free layer that acts on each example separately.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Function {
    /// max(x, 0).
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Gaussian error linear unit (exact, erf form).
    Gelu,
    /// Flattens every dimension after the batch dimension.
    Flatten,
    /// 2-d max pooling over `[batch, channels, height, width]`.
    MaxPool2d {
        /// Window size.
        kernel_size: i64,
        /// Step between windows.
        stride: i64,
    },
    /// 2-d average pooling over `[batch, channels, height, width]`.
    AvgPool2d {
        /// Window size.
        kernel_size: i64,
        /// Step between windows.
        stride: i64,
    },
    /// Zeroes each element with probability `probability` in training mode (and rescales the
    /// rest by 1/(1 - probability)); the identity in evaluation mode.
    Dropout {
        /// Probability of zeroing an element, in [0, 1).
        probability: f64,
    },
}

impl DpModule for Function {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        Ok(match *self {
            Self::Relu => xs.f_relu()?,
            Self::Tanh => xs.f_tanh()?,
            Self::Sigmoid => xs.f_sigmoid()?,
            Self::Gelu => xs.f_gelu("none")?,
            Self::Flatten => xs.f_flatten(1, -1)?,
            Self::MaxPool2d {
                kernel_size,
                stride,
            } => xs.f_max_pool2d(
                [kernel_size, kernel_size],
                [stride, stride],
                [0, 0],
                [1, 1],
                false,
            )?,
            Self::AvgPool2d {
                kernel_size,
                stride,
            } => xs.f_avg_pool2d(
                [kernel_size, kernel_size],
                [stride, stride],
                [0, 0],
                false,
                true,
                None,
            )?,
            Self::Dropout { probability } => xs.f_dropout(probability, context.train())?,
        })
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        Vec::new()
    }
}
