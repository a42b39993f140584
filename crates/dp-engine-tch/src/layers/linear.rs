//! Linear layer over any leading dimensions.

use tch::{Tensor, nn};

use super::{
    Capture, DpLayer, DpModule, ForwardContext, LayerId, NamedParameter, NormCosts, add_into,
    buffer_of, ghost_outer_norm_squared, row_norms_squared, scale_examples, scale_of,
    sequence_view, weighted_sum,
};
use crate::{Result, TchEngineError};

/// Options of [`linear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearConfig {
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self { bias: true }
    }
}

/// `y = x Wᵀ + b` on the last dimension of an input `[batch, ..., in]`.
#[derive(Debug)]
pub struct Linear {
    id: LayerId,
    in_features: i64,
    out_features: i64,
    weight: NamedParameter,
    bias: Option<NamedParameter>,
}

impl Clone for Linear {
    /// A handle to the same layer: same identity, same parameters.
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            in_features: self.in_features,
            out_features: self.out_features,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        }
    }
}

/// A Linear layer `in_features -> out_features` with its weight at `path / "weight"` (Kaiming
/// uniform, as `tch::nn::linear`) and its bias at `path / "bias"` (uniform in ±1/sqrt(in)).
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for a non-positive size; libtorch errors.
pub fn linear(
    path: &nn::Path<'_>,
    in_features: i64,
    out_features: i64,
    config: LinearConfig,
) -> Result<Linear> {
    positive("in_features", in_features)?;
    positive("out_features", out_features)?;
    let weight = path.f_kaiming_uniform("weight", &[out_features, in_features])?;
    let bias_bound = 1.0 / (in_features as f64).sqrt();
    Linear::from_weight(path, &weight, config.bias, bias_bound)
}

/// A Linear layer with weight and bias uniform in ±`bound` (the initialization of recurrent
/// cells, `bound` = 1/sqrt(hidden size)).
pub(crate) fn linear_uniform(
    path: &nn::Path<'_>,
    in_features: i64,
    out_features: i64,
    config: LinearConfig,
    bound: f64,
) -> Result<Linear> {
    positive("in_features", in_features)?;
    positive("out_features", out_features)?;
    let weight = path.f_uniform("weight", &[out_features, in_features], -bound, bound)?;
    Linear::from_weight(path, &weight, config.bias, bound)
}

pub(crate) fn positive(name: &'static str, value: i64) -> Result<()> {
    if value > 0 {
        Ok(())
    } else {
        Err(TchEngineError::InvalidParameter {
            name,
            value: value.to_string(),
            reason: "must be positive",
        })
    }
}

impl Linear {
    /// The layer around `weight` `[out, in]` (a variable of `path`), with a bias uniform in
    /// ±`bias_bound` at `path / "bias"` when `bias`.
    fn from_weight(
        path: &nn::Path<'_>,
        weight: &Tensor,
        bias: bool,
        bias_bound: f64,
    ) -> Result<Self> {
        let size = weight.size();
        let bias = if bias {
            let tensor = path.f_uniform("bias", &[size[0]], -bias_bound, bias_bound)?;
            Some(NamedParameter::new(path, "bias", &tensor))
        } else {
            None
        };
        Ok(Self {
            id: LayerId::fresh(),
            in_features: size[1],
            out_features: size[0],
            weight: NamedParameter::new(path, "weight", weight),
            bias,
        })
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight.tensor
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref().map(|bias| &bias.tensor)
    }

    /// Inputs `[batch, T, in]` and output gradients `[batch, T, out]` of all uses.
    fn sequences(&self, captures: &[Capture]) -> Result<(Tensor, Tensor)> {
        sequence_view(captures, Some(self.in_features), self.out_features)
    }

    /// Per-sample bias gradients `[batch, out]`: the output gradients `[batch, T, out]` summed
    /// over the positions (a view of them for one position).
    fn bias_gradients(gradients: &Tensor) -> Result<Tensor> {
        if gradients.size().get(1) == Some(&1) {
            return Ok(gradients.f_squeeze_dim(1)?);
        }
        Ok(gradients.f_sum_dim_intlist(1, false, None::<tch::Kind>)?)
    }
}

impl DpModule for Linear {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let output = xs.f_linear(&self.weight.tensor, self.bias())?;
        context.record(self.id, xs, output)
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        vec![self]
    }
}

impl DpLayer for Linear {
    fn id(&self) -> LayerId {
        self.id
    }

    fn parameters(&self) -> Vec<NamedParameter> {
        std::iter::once(self.weight.clone())
            .chain(self.bias.clone())
            .collect()
    }

    fn per_sample_gradients(&self, captures: &[Capture]) -> Result<Vec<Tensor>> {
        let (inputs, gradients) = self.sequences(captures)?;
        let batch = inputs.size()[0];
        let weight = linear_per_sample_weight_gradients(&inputs, &gradients)?;
        let mut result = vec![weight.f_reshape([batch, -1])?];
        if self.bias.is_some() {
            result.push(Self::bias_gradients(&gradients)?);
        }
        Ok(result)
    }

    fn ghost_norms_squared(&self, captures: &[Capture]) -> Result<Option<Vec<Tensor>>> {
        let (inputs, gradients) = self.sequences(captures)?;
        let mut result = vec![ghost_outer_norm_squared(&inputs, &gradients)?];
        if self.bias.is_some() {
            let bias = Self::bias_gradients(&gradients)?;
            result.push(row_norms_squared(&bias)?);
        }
        Ok(Some(result))
    }

    fn norm_costs(&self, captures: &[Capture]) -> NormCosts {
        let positions: i64 = captures
            .iter()
            .map(|capture| {
                let size = capture.input.size();
                size.iter().skip(1).rev().skip(1).product::<i64>()
            })
            .sum();
        let positions = positions as f64;
        let (input, output) = (self.in_features as f64, self.out_features as f64);
        NormCosts {
            ghost: Some(2.0 * positions * positions),
            materialized: input * output,
        }
    }

    /// `(s ⊙ G)ᵀ A` for the weight, with the scales applied to whichever of `G` and `A` is
    /// smaller (the same product, fewer elements touched), multiplied into the buffer
    /// (`addmm_`: no product tensor to allocate and add); `sᵀ (sum_t G_t)` for the bias.
    /// Several uses become one capture `[batch, T, in]`, `[batch, T, out]` (the sequence view
    /// every formula of the layer reads).
    fn merge_uses(&self, captures: Vec<Capture>) -> Result<Vec<Capture>> {
        if captures.len() < 2 {
            return Ok(captures);
        }
        let (input, output_gradient) = self.sequences(&captures)?;
        Ok(vec![Capture {
            input,
            output_gradient,
        }])
    }

    fn add_weighted_gradients(
        &self,
        captures: &[Capture],
        scales: &[Tensor],
        gradients: &mut [Tensor],
    ) -> Result<()> {
        let (inputs, output_gradients) = self.sequences(captures)?;
        let weight_scales = scale_of(scales, 0)?;
        let (scaled_inputs, scaled_gradients) = if inputs.numel() <= output_gradients.numel() {
            (
                scale_examples(&inputs, weight_scales)?,
                output_gradients.shallow_clone(),
            )
        } else {
            (inputs, scale_examples(&output_gradients, weight_scales)?)
        };
        let left = scaled_gradients
            .f_reshape([-1, self.out_features])?
            .f_tr()?;
        let right = scaled_inputs.f_reshape([-1, self.in_features])?;
        let weight = buffer_of(gradients, 0)?;
        if weight.f_kind()? == right.f_kind()? {
            let _ = weight.f_addmm_(&left, &right)?;
        } else {
            add_into(weight, &left.f_mm(&right)?)?;
        }
        if self.bias.is_some() {
            let bias = buffer_of(gradients, 1)?;
            let sum = weighted_sum(
                &Self::bias_gradients(&output_gradients)?,
                scale_of(scales, 1)?,
                bias,
            )?;
            add_into(bias, &sum)?;
        }
        Ok(())
    }
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
) -> Result<Tensor> {
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
    Ok(outputs.f_transpose(1, 2)?.f_bmm(&inputs)?)
}
