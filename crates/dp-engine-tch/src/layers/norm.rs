//! Per-example normalization layers (LayerNorm, GroupNorm, RMSNorm) with affine parameters.
//!
//! All normalize each example with its own statistics, so examples stay independent. With
//! `x̂` the normalized input (recomputed from the stored input) and `G` the output gradient,
//! example b's gradients are `sum (G ⊙ x̂)` for the scale and `sum G` for the shift, summed over
//! every axis the parameter is broadcast along. RMSNorm has a scale only.

use tch::{Kind, Tensor, nn};

use super::linear::positive;
use super::{Capture, DpLayer, DpModule, ForwardContext, LayerId, NamedParameter, NormCosts};
use crate::{Result, TchEngineError};

/// Options of [`layer_norm`], [`group_norm`] and [`rms_norm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormConfig {
    /// Added to the variance for numerical stability.
    pub eps: f64,
    /// Whether the layer has a learned scale (init 1) and shift (init 0); RMSNorm has the
    /// scale only.
    pub affine: bool,
}

impl Default for NormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            affine: true,
        }
    }
}

/// What the two norms differ in: how an input is normalized and which axis the parameters
/// follow.
#[derive(Clone, Debug, PartialEq)]
enum Normalization {
    /// Over the trailing `normalized_shape`; parameters have that shape.
    Layer { normalized_shape: Vec<i64> },
    /// Over channel groups of `[batch, channels, ...]`; parameters are per channel.
    Group { num_groups: i64, num_channels: i64 },
    /// Divided by the root mean square over the trailing `normalized_shape` (no centring, no
    /// shift); the scale has that shape.
    Rms { normalized_shape: Vec<i64> },
}

/// Shared implementation of [`LayerNorm`], [`GroupNorm`] and [`RmsNorm`].
#[derive(Debug)]
pub struct Norm {
    id: LayerId,
    normalization: Normalization,
    eps: f64,
    weight: Option<NamedParameter>,
    bias: Option<NamedParameter>,
}

/// Layer normalization over the trailing dimensions (Ba et al. 2016).
pub type LayerNorm = Norm;
/// Group normalization over channel groups (Wu and He 2018): the per-example replacement of
/// BatchNorm.
pub type GroupNorm = Norm;
/// Root-mean-square normalization over the trailing dimensions (Zhang and Sennrich 2019):
/// `y = x / sqrt(mean(x²) + eps) ⊙ weight`.
pub type RmsNorm = Norm;

impl Clone for Norm {
    /// A handle to the same layer: same identity, same parameters.
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            normalization: self.normalization.clone(),
            eps: self.eps,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        }
    }
}

/// A LayerNorm over the trailing `normalized_shape`, parameters at `path / "weight"` and
/// `path / "bias"`.
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for an empty shape, a non-positive size or `eps`.
pub fn layer_norm(
    path: &nn::Path<'_>,
    normalized_shape: Vec<i64>,
    config: NormConfig,
) -> Result<LayerNorm> {
    check_normalized_shape(&normalized_shape)?;
    let shape = normalized_shape.clone();
    Norm::new(
        path,
        Normalization::Layer { normalized_shape },
        &shape,
        config,
    )
}

/// An RMSNorm over the trailing `normalized_shape`, its scale (init 1) at `path / "weight"`
/// when `config.affine` (RMSNorm has no shift).
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for an empty shape, a non-positive size or `eps`.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{DpLayer, NormConfig, rms_norm};
/// use tch::{Device, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let norm = rms_norm(&(&store.root() / "norm"), vec![16], NormConfig::default())?;
/// assert_eq!(norm.parameters().len(), 1);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
pub fn rms_norm(
    path: &nn::Path<'_>,
    normalized_shape: Vec<i64>,
    config: NormConfig,
) -> Result<RmsNorm> {
    check_normalized_shape(&normalized_shape)?;
    let shape = normalized_shape.clone();
    Norm::new(
        path,
        Normalization::Rms { normalized_shape },
        &shape,
        config,
    )
}

fn check_normalized_shape(normalized_shape: &[i64]) -> Result<()> {
    if normalized_shape.is_empty() {
        return Err(TchEngineError::InvalidParameter {
            name: "normalized_shape",
            value: "[]".to_owned(),
            reason: "must have at least one dimension",
        });
    }
    for &size in normalized_shape {
        positive("normalized_shape", size)?;
    }
    Ok(())
}

/// A GroupNorm of `num_channels` channels in `num_groups` groups, per-channel parameters at
/// `path / "weight"` and `path / "bias"`.
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for non-positive sizes, `num_groups` not dividing
/// `num_channels`, or a non-positive `eps`.
pub fn group_norm(
    path: &nn::Path<'_>,
    num_groups: i64,
    num_channels: i64,
    config: NormConfig,
) -> Result<GroupNorm> {
    positive("num_groups", num_groups)?;
    positive("num_channels", num_channels)?;
    if num_channels % num_groups != 0 {
        return Err(TchEngineError::InvalidParameter {
            name: "num_groups",
            value: num_groups.to_string(),
            reason: "must divide num_channels",
        });
    }
    let normalization = Normalization::Group {
        num_groups,
        num_channels,
    };
    Norm::new(path, normalization, &[num_channels], config)
}

impl Norm {
    fn new(
        path: &nn::Path<'_>,
        normalization: Normalization,
        parameter_shape: &[i64],
        config: NormConfig,
    ) -> Result<Self> {
        if config.eps.is_nan() || config.eps <= 0.0 {
            return Err(TchEngineError::InvalidParameter {
                name: "eps",
                value: config.eps.to_string(),
                reason: "must be positive",
            });
        }
        let (weight, bias) = if config.affine {
            let weight = path.f_ones("weight", parameter_shape)?;
            let bias = if matches!(normalization, Normalization::Rms { .. }) {
                None
            } else {
                let bias = path.f_zeros("bias", parameter_shape)?;
                Some(NamedParameter::new(path, "bias", &bias))
            };
            (Some(NamedParameter::new(path, "weight", &weight)), bias)
        } else {
            (None, None)
        };
        Ok(Self {
            id: LayerId::fresh(),
            normalization,
            eps: config.eps,
            weight,
            bias,
        })
    }

    fn normalize<T: std::borrow::Borrow<Tensor>>(
        &self,
        xs: &Tensor,
        weight: Option<T>,
        bias: Option<T>,
    ) -> Result<Tensor> {
        Ok(match &self.normalization {
            Normalization::Layer { normalized_shape } => {
                xs.f_layer_norm(normalized_shape.as_slice(), weight, bias, self.eps, true)?
            }
            Normalization::Group { num_groups, .. } => {
                xs.f_group_norm(*num_groups, weight, bias, self.eps, true)?
            }
            Normalization::Rms { normalized_shape } => {
                xs.f_rms_norm(normalized_shape.as_slice(), weight, self.eps)?
            }
        })
    }

    /// `[batch, P]` sums of `values` over the axes the parameters are broadcast along.
    fn reduce_to_parameters(&self, values: &Tensor) -> Result<Tensor> {
        let batch = values.size()[0];
        Ok(match &self.normalization {
            Normalization::Layer { normalized_shape } | Normalization::Rms { normalized_shape } => {
                let features: i64 = normalized_shape.iter().product();
                values.f_reshape([batch, -1, features])?.f_sum_dim_intlist(
                    1,
                    false,
                    None::<Kind>,
                )?
            }
            Normalization::Group { num_channels, .. } => values
                .f_reshape([batch, *num_channels, -1])?
                .f_sum_dim_intlist(2, false, None::<Kind>)?,
        })
    }
}

impl DpModule for Norm {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let weight = self.weight.as_ref().map(|parameter| &parameter.tensor);
        let bias = self.bias.as_ref().map(|parameter| &parameter.tensor);
        let output = self.normalize(xs, weight, bias)?;
        if self.weight.is_some() {
            context.record(self.id, xs, output)
        } else {
            Ok(output)
        }
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        if self.weight.is_some() {
            vec![self]
        } else {
            Vec::new()
        }
    }
}

impl DpLayer for Norm {
    fn id(&self) -> LayerId {
        self.id
    }

    fn parameters(&self) -> Vec<NamedParameter> {
        self.weight.iter().chain(&self.bias).cloned().collect()
    }

    fn per_sample_gradients(&self, captures: &[Capture]) -> Result<Vec<Tensor>> {
        let mut scale = Vec::with_capacity(captures.len());
        let mut shift = Vec::with_capacity(captures.len());
        for capture in captures {
            let normalized = self.normalize(&capture.input, None::<&Tensor>, None)?;
            let gradient = &capture.output_gradient;
            scale.push(self.reduce_to_parameters(&gradient.f_mul(&normalized)?)?);
            if self.bias.is_some() {
                shift.push(self.reduce_to_parameters(gradient)?);
            }
        }
        let mut result = vec![sum_all(scale)?];
        if self.bias.is_some() {
            result.push(sum_all(shift)?);
        }
        Ok(result)
    }

    fn norm_costs(&self, captures: &[Capture]) -> NormCosts {
        let elements: i64 = captures
            .iter()
            .map(|capture| capture.input.size().iter().skip(1).product::<i64>())
            .sum();
        NormCosts {
            ghost: None,
            materialized: elements as f64,
        }
    }
}

fn sum_all(tensors: Vec<Tensor>) -> Result<Tensor> {
    let mut tensors = tensors.into_iter();
    let first = tensors.next().ok_or(TchEngineError::Shape {
        what: "captures",
        expected: "at least one use of the layer",
        actual: Vec::new(),
    })?;
    tensors.try_fold(first, |sum, next| Ok(sum.f_add(&next)?))
}
