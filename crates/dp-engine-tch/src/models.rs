//! Reference architectures used by the examples, benchmarks and experiments.

use tch::nn;

use crate::{ConvConfig, Function, LinearConfig, Result, Sequential, conv2d, linear};

/// The MNIST CNN of the Opacus example (`[batch, 1, 28, 28]` -> 10 logits): conv 1->16 k8 s2
/// p3, ReLU, max-pool 2 s1, conv 16->32 k4 s2, ReLU, max-pool 2 s1, flatten, fc 512->32, ReLU,
/// fc 32->10.
///
/// # Errors
///
/// libtorch errors.
pub fn mnist_cnn(path: &nn::Path<'_>) -> Result<Sequential> {
    let pool = Function::MaxPool2d {
        kernel_size: 2,
        stride: 1,
    };
    let first = ConvConfig {
        stride: 2,
        padding: 3,
        ..ConvConfig::default()
    };
    let second = ConvConfig {
        stride: 2,
        ..ConvConfig::default()
    };
    Ok(Sequential::new()
        .add(conv2d(&(path / "conv1"), 1, 16, 8, first)?)
        .add(Function::Relu)
        .add(pool)
        .add(conv2d(&(path / "conv2"), 16, 32, 4, second)?)
        .add(Function::Relu)
        .add(pool)
        .add(Function::Flatten)
        .add(linear(
            &(path / "fc1"),
            32 * 4 * 4,
            32,
            LinearConfig::default(),
        )?)
        .add(Function::Relu)
        .add(linear(&(path / "fc2"), 32, 10, LinearConfig::default())?))
}

/// A ReLU multi-layer perceptron with the given widths (`[784, 256, 10]`: one hidden layer),
/// layers at `path / "fc{i}"`.
///
/// # Errors
///
/// [`crate::TchEngineError::InvalidParameter`] for fewer than two widths or a non-positive
/// width; libtorch errors.
pub fn mlp(path: &nn::Path<'_>, widths: &[i64]) -> Result<Sequential> {
    if widths.len() < 2 {
        return Err(crate::TchEngineError::InvalidParameter {
            name: "widths",
            value: format!("{widths:?}"),
            reason: "needs an input and an output width",
        });
    }
    let mut module = Sequential::new();
    for (index, pair) in widths.windows(2).enumerate() {
        if index > 0 {
            module = module.add(Function::Relu);
        }
        module = module.add(linear(
            &(path / format!("fc{index}")),
            pair[0],
            pair[1],
            LinearConfig::default(),
        )?);
    }
    Ok(module)
}
