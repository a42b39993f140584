//! Models: a stack of Linear layers with a fixed activation between them.

use dp_engine::EngineError;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The nonlinearity applied between Linear layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// tanh(x).
    Tanh,
}

impl Activation {
    pub(crate) fn apply(self, z: &mut Array2<f32>) {
        match self {
            Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
            Activation::Tanh => z.mapv_inplace(f32::tanh),
        }
    }

    /// Multiplies `grad` by the derivative, expressed through the activation's output `out`.
    pub(crate) fn backprop(self, grad: &mut Array2<f32>, out: &Array2<f32>) {
        match self {
            Activation::Relu => {
                ndarray::Zip::from(grad).and(out).for_each(|g, &a| {
                    if a <= 0.0 {
                        *g = 0.0;
                    }
                });
            }
            Activation::Tanh => {
                ndarray::Zip::from(grad)
                    .and(out)
                    .for_each(|g, &a| *g *= 1.0 - a * a);
            }
        }
    }
}

/// A fully connected layer y = x W + b, with its gradient buffers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// Weight, `in_features x out_features`, standard (row-major) layout.
    pub(crate) weight: Array2<f32>,
    /// Bias, `out_features`.
    pub(crate) bias: Array1<f32>,
    pub(crate) weight_grad: Array2<f32>,
    pub(crate) bias_grad: Array1<f32>,
}

impl Linear {
    /// A layer from its weight (`in_features x out_features`) and bias (`out_features`).
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if the bias length differs from the weight's columns.
    pub fn from_parts(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self, EngineError> {
        if bias.len() != weight.ncols() {
            return Err(EngineError::ShapeMismatch {
                what: "bias length",
                expected: weight.ncols(),
                actual: bias.len(),
            });
        }
        let weight = weight.as_standard_layout().into_owned();
        let weight_grad = Array2::zeros(weight.raw_dim());
        let bias_grad = Array1::zeros(bias.len());
        Ok(Self {
            weight,
            bias,
            weight_grad,
            bias_grad,
        })
    }

    /// PyTorch's default initialization: weight and bias uniform in ±1/sqrt(in_features).
    pub fn random<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Self {
        let bound = 1.0 / (in_features.max(1) as f32).sqrt();
        let weight = Array2::from_shape_simple_fn((in_features, out_features), || {
            rng.random_range(-bound..=bound)
        });
        let bias = Array1::from_shape_simple_fn(out_features, || rng.random_range(-bound..=bound));
        let weight_grad = Array2::zeros((in_features, out_features));
        let bias_grad = Array1::zeros(out_features);
        Self {
            weight,
            bias,
            weight_grad,
            bias_grad,
        }
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.nrows()
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.ncols()
    }

    /// The weight, `in_features x out_features`.
    pub fn weight(&self) -> &Array2<f32> {
        &self.weight
    }

    /// The bias.
    pub fn bias(&self) -> &Array1<f32> {
        &self.bias
    }

    pub(crate) fn forward(&self, input: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut out = input.dot(&self.weight);
        out += &self.bias;
        out
    }
}

/// A multilayer perceptron for classification: Linear layers with one activation between them,
/// trained with softmax cross-entropy. One Linear layer is multinomial logistic regression.
///
/// # Examples
///
/// ```
/// use dp_engine_ndarray::{Activation, Mlp};
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let model = Mlp::new(&[784, 256, 10], Activation::Relu, &mut rng)?;
/// assert_eq!(model.num_classes(), 10);
/// assert_eq!(model.num_parameters(), 784 * 256 + 256 + 256 * 10 + 10);
/// # Ok::<(), dp_engine::EngineError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    pub(crate) layers: Vec<Linear>,
    pub(crate) activation: Activation,
}

impl Mlp {
    /// A randomly initialized MLP with the given layer widths (input, hidden..., classes).
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidParameter`] with fewer than two widths or a zero width.
    pub fn new<R: Rng + ?Sized>(
        widths: &[usize],
        activation: Activation,
        rng: &mut R,
    ) -> Result<Self, EngineError> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(EngineError::InvalidParameter {
                name: "widths",
                value: format!("{widths:?}"),
                reason: "need at least an input and an output width, all positive",
            });
        }
        let layers = widths
            .windows(2)
            .map(|w| Linear::random(w[0], w[1], rng))
            .collect();
        Ok(Self { layers, activation })
    }

    /// Multinomial logistic regression: a single Linear layer.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidParameter`] if a size is zero.
    pub fn logistic_regression<R: Rng + ?Sized>(
        in_features: usize,
        num_classes: usize,
        rng: &mut R,
    ) -> Result<Self, EngineError> {
        Self::new(&[in_features, num_classes], Activation::Relu, rng)
    }

    /// A model from explicit layers.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if consecutive layers do not chain, or
    /// [`EngineError::InvalidParameter`] if there are none.
    pub fn from_layers(layers: Vec<Linear>, activation: Activation) -> Result<Self, EngineError> {
        if layers.is_empty() {
            return Err(EngineError::InvalidParameter {
                name: "layers",
                value: "[]".into(),
                reason: "a model needs at least one Linear layer",
            });
        }
        for pair in layers.windows(2) {
            if pair[0].out_features() != pair[1].in_features() {
                return Err(EngineError::ShapeMismatch {
                    what: "layer input width",
                    expected: pair[0].out_features(),
                    actual: pair[1].in_features(),
                });
            }
        }
        Ok(Self { layers, activation })
    }

    /// The Linear layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The activation between layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.layers[0].in_features()
    }

    /// Number of classes (output width).
    pub fn num_classes(&self) -> usize {
        self.layers[self.layers.len() - 1].out_features()
    }

    /// Total number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.weight.len() + l.bias.len())
            .sum()
    }

    /// Logits for each row of `features`.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if `features` has the wrong number of columns.
    pub fn logits(&self, features: ArrayView2<'_, f32>) -> Result<Array2<f32>, EngineError> {
        if features.ncols() != self.in_features() {
            return Err(EngineError::ShapeMismatch {
                what: "feature columns",
                expected: self.in_features(),
                actual: features.ncols(),
            });
        }
        let mut current = self.layers[0].forward(features);
        for layer in &self.layers[1..] {
            self.activation.apply(&mut current);
            current = layer.forward(current.view());
        }
        Ok(current)
    }

    /// The predicted class (arg-max logit) of each row.
    ///
    /// # Errors
    ///
    /// As [`logits`](Self::logits).
    pub fn predict(&self, features: ArrayView2<'_, f32>) -> Result<Vec<usize>, EngineError> {
        let logits = self.logits(features)?;
        Ok(logits
            .axis_iter(Axis(0))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (k, &v)| {
                        if v > best.1 { (k, v) } else { best }
                    })
                    .0
            })
            .collect())
    }

    /// The fraction of rows whose predicted class equals the label (0 for no rows).
    ///
    /// # Errors
    ///
    /// As [`logits`](Self::logits), or [`EngineError::ShapeMismatch`] if the label count differs.
    pub fn accuracy(
        &self,
        features: ArrayView2<'_, f32>,
        labels: &[usize],
    ) -> Result<f64, EngineError> {
        if labels.len() != features.nrows() {
            return Err(EngineError::ShapeMismatch {
                what: "labels",
                expected: features.nrows(),
                actual: labels.len(),
            });
        }
        let predictions = self.predict(features)?;
        let correct = predictions
            .iter()
            .zip(labels)
            .filter(|(p, l)| p == l)
            .count();
        Ok(if labels.is_empty() {
            0.0
        } else {
            correct as f64 / labels.len() as f64
        })
    }
}
