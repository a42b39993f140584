//! DP layers: tch layers that record what the per-sample gradient engines need.
//!
//! Every parameterized layer implements [`DpLayer`] (the per-sample formulas) and [`DpModule`]
//! (the forward pass). During a recording forward pass ([`ForwardContext::recording`]) each layer
//! stores its input, detached, and its output, still in the autograd graph; the engines then
//! obtain the gradient of the loss with respect to every recorded output in one backward pass
//! (`Tensor::run_backward` with the outputs as inputs) and apply the layer's formulas to the
//! pairs (input, output gradient), which this crate calls [`Capture`]s.
//!
//! A layer used several times in one forward pass (shared or tied parameters) records one
//! capture per use; its per-sample gradient is the sum over uses, and every formula here takes
//! the list of captures of one layer.

mod attention;
mod conv;
mod embedding;
mod functional;
mod linear;
mod norm;
mod recurrent;
mod residual;
mod sequential;

use std::sync::atomic::{AtomicU64, Ordering};

use tch::{Kind, Tensor};

use crate::precision::Precision;

pub use attention::{AttentionConfig, MultiHeadAttention, multi_head_attention};
pub use conv::{Conv, ConvConfig, conv1d, conv2d};
pub use embedding::{Embedding, embedding};
pub use functional::Function;
pub use linear::{Linear, LinearConfig, linear, linear_per_sample_weight_gradients};
pub use norm::{GroupNorm, LayerNorm, Norm, NormConfig, RmsNorm, group_norm, layer_norm, rms_norm};
pub use recurrent::{Gru, Lstm, Recurrent, RecurrentConfig, gru, lstm};
pub use residual::Residual;
pub use sequential::Sequential;

use crate::Result;

/// Identity of a parameterized layer, shared by its clones (which share its parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(u64);

impl LayerId {
    /// A new identity, different from every other one in this process.
    pub(crate) fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// One trainable tensor of a layer with its variable-store path: one parameter group.
#[derive(Debug)]
pub struct NamedParameter {
    /// Full variable-store path, for example `fc1.weight`.
    pub name: String,
    /// The variable (shares storage with the variable store).
    pub tensor: Tensor,
}

impl NamedParameter {
    pub(crate) fn new(path: &tch::nn::Path<'_>, name: &str, tensor: &Tensor) -> Self {
        Self {
            name: path.path(name),
            tensor: tensor.shallow_clone(),
        }
    }
}

impl Clone for NamedParameter {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            tensor: self.tensor.shallow_clone(),
        }
    }
}

/// One use of a layer in a forward pass, after the backward pass: its input and the gradient of
/// the summed loss with respect to its output.
#[derive(Debug)]
pub struct Capture {
    /// The layer's input (detached from the graph).
    pub input: Tensor,
    /// d(sum of per-example losses) / d(layer output), the output's shape.
    pub output_gradient: Tensor,
}

impl Capture {
    /// The capture with every bfloat16 tensor (stored in [`crate::Precision::Bf16`]) widened
    /// to `kind`, the kind the layer's formulas compute in; other tensors are shared, not
    /// copied.
    pub(crate) fn widened(&self, kind: Kind) -> Result<Self> {
        let widen = |tensor: &Tensor| -> Result<Tensor> {
            Ok(if tensor.f_kind()? == Kind::BFloat16 {
                tensor.f_to_kind(kind)?
            } else {
                tensor.shallow_clone()
            })
        };
        Ok(Self {
            input: widen(&self.input)?,
            output_gradient: widen(&self.output_gradient)?,
        })
    }
}

/// Per-example size (elements) of what each way of computing a layer's per-sample gradient
/// norm writes, used by the book-keeping engine to choose per layer: the layerwise rule of Bu,
/// Mao and Xu (2022, "Scalable and efficient training of large convolutional neural networks
/// with differential privacy"), ghost norm when its two `T × T` Gram matrices are smaller than
/// the per-sample gradient (`2T² < pd`).
///
/// Both ways do about the same multiply-adds per example (`T² (p + d)` against `T p d`, and the
/// ghost way's clipped sum repeats the `T p d` of the weight gradient), so what decides is the
/// memory each writes and reads back: on CPU and GPU alike, a `[batch, p d]` per-sample
/// gradient costs more in memory traffic than its arithmetic (measured on the CPU bench: Linear
/// 128 -> 512 over 64 positions, batch 256: ghost norm and clipped sum 70 ms, materialized
/// 113 ms, where multiply-adds alone favour materializing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormCosts {
    /// Ghost norm (Li et al. 2021): the Gram matrices' elements, `None` when the layer has no
    /// ghost formula.
    pub ghost: Option<f64>,
    /// Materializing the per-sample gradient: its elements.
    pub materialized: f64,
}

impl NormCosts {
    /// Whether the ghost norm is the cheaper way.
    pub fn prefers_ghost(&self) -> bool {
        self.ghost.is_some_and(|ghost| ghost < self.materialized)
    }
}

/// What a layer records during a recording forward pass.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) layer: LayerId,
    pub(crate) input: Tensor,
    /// A stand-in for the output with the output's gradient (see [`ForwardContext::record`]).
    pub(crate) output: Tensor,
}

/// A cut of a recording forward pass: the output of one link of the model's chain
/// ([`DpModule::chain`]), after the first `records` records. Every gradient that reaches those
/// records from the loss passes through the cut, so a backward pass can stop there and go on
/// from it later.
#[derive(Debug)]
pub(crate) struct Cut {
    pub(crate) records: usize,
    pub(crate) tensor: Tensor,
}

impl Cut {
    pub(crate) fn shallow_clone(&self) -> Self {
        Self {
            records: self.records,
            tensor: self.tensor.shallow_clone(),
        }
    }
}

/// What a recording forward pass records: every layer's uses and the cuts between them.
#[derive(Debug, Default)]
struct Recording {
    records: Vec<Record>,
    cuts: Vec<Cut>,
}

/// The mode of a forward pass: training or evaluation, recording or not.
#[derive(Debug)]
pub struct ForwardContext {
    train: bool,
    /// What a recording pass has recorded so far; `None` when not recording.
    recording: Option<Recording>,
    /// The precision the recorded outputs' gradients arrive in (the probes' kind).
    output_gradients: Precision,
}

impl ForwardContext {
    /// A plain forward pass (no recording).
    pub fn new(train: bool) -> Self {
        Self {
            train,
            recording: None,
            output_gradients: Precision::F32,
        }
    }

    /// A forward pass in which every parameterized layer records its input and output.
    pub fn recording(train: bool) -> Self {
        Self::recording_in(train, Precision::F32)
    }

    /// A recording forward pass whose outputs' gradients arrive in `output_gradients`.
    pub(crate) fn recording_in(train: bool, output_gradients: Precision) -> Self {
        Self {
            train,
            recording: Some(Recording::default()),
            output_gradients,
        }
    }

    /// Whether dropout and similar layers run in training mode.
    pub fn train(&self) -> bool {
        self.train
    }

    /// Called by parameterized layers with their input and output; returns the tensor the
    /// forward pass continues with. When recording, it keeps `input` (detached) and returns
    /// `output + probe`, where the probe is a broadcast view of one zero that requires a
    /// gradient: its gradient is the output's, and unlike the output it holds no storage, so
    /// asking autograd for it does not keep every layer output alive through the backward
    /// pass. Otherwise it returns `output` unchanged.
    ///
    /// When the output gradients are to be stored in [`Precision::Bf16`], the probe is a
    /// bfloat16 zero: autograd casts a gradient to the kind of the tensor it flows into, so the
    /// output's gradient arrives in bfloat16 and its f32 version is freed as the backward pass
    /// moves on.
    ///
    /// # Errors
    ///
    /// When libtorch fails.
    pub fn record(&mut self, layer: LayerId, input: &Tensor, output: Tensor) -> Result<Tensor> {
        let Some(recording) = &mut self.recording else {
            return Ok(output);
        };
        let probe_kind = self.output_gradients.storage_kind(output.f_kind()?);
        let probe = Tensor::f_zeros([1], (probe_kind, output.device()))?
            .f_set_requires_grad(true)?
            .f_expand(output.size(), false)?;
        // Not in place: a layer's output is often a view (Linear over [batch, T, features]
        // reshapes a matrix product), and an in-place addition to a view makes autograd copy
        // the whole gradient of its base in the backward pass (measured on the char-LSTM:
        // backward to the layer outputs 314-347 ms in place, 188-237 ms not). The output is
        // freed once added (the operation that produced it does not save it), so the sum
        // only replaces it.
        let output = output.f_add(&probe)?;
        recording.records.push(Record {
            layer,
            input: input.f_detach()?,
            output: probe,
        });
        Ok(output)
    }

    /// Marks `link_output`, the output of one link of the model's chain, as a cut when
    /// recording (nothing otherwise).
    pub(crate) fn cut(&mut self, link_output: &Tensor) {
        if let Some(recording) = &mut self.recording {
            recording.cuts.push(Cut {
                records: recording.records.len(),
                tensor: link_output.shallow_clone(),
            });
        }
    }

    /// The records in the order the layers made them, and the cuts in order.
    pub(crate) fn into_records(self) -> (Vec<Record>, Vec<Cut>) {
        let recording = self.recording.unwrap_or_default();
        (recording.records, recording.cuts)
    }
}

/// A differentiable function of a batch that the engines can see through.
///
/// # Privacy
///
/// An implementation must treat the examples of a batch independently (the output for example
/// i depends on input i alone, as with every layer of this crate; BatchNorm does not) and must
/// route every trainable parameter through a [`DpLayer`] listed by
/// [`parameterized_layers`](Self::parameterized_layers). [`crate::DpModel::new`] checks the
/// second property against the variable store; the first is the implementer's promise.
pub trait DpModule: std::fmt::Debug {
    /// The forward pass; parameterized layers record into `context`.
    ///
    /// # Errors
    ///
    /// When the input does not fit the layer or libtorch fails.
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor>;

    /// The parameterized layers, in a fixed order (a layer used twice may appear twice).
    fn parameterized_layers(&self) -> Vec<&dyn DpLayer>;

    /// The parts this module applies one after the other, when it is such a chain (as
    /// [`Sequential`]); `None` (the default) for any other module.
    ///
    /// [`crate::DpModel`] runs a chain part by part in place of
    /// [`forward_dp`](Self::forward_dp), so the parts must compose to it, and the engines take
    /// the gradient at each part's output in turn, so that only one part's output gradients
    /// are held at a time (the ghost engine's memory saving).
    ///
    /// # Privacy
    ///
    /// Each part must see the previous part's output alone. Parts that hand tensors to later
    /// parts by other means (interior state) would lose those gradients at the cut between
    /// them, and the per-sample norms would come out wrong.
    fn chain(&self) -> Option<Vec<&dyn DpModule>> {
        None
    }

    /// Plain forward pass in evaluation mode, without recording.
    ///
    /// # Errors
    ///
    /// When the input does not fit the layer or libtorch fails.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_dp(xs, &mut ForwardContext::new(false))
    }
}

/// A parameterized layer with per-sample gradient formulas.
///
/// Every method takes the captures of all uses of the layer in one forward pass and returns (or,
/// for [`add_weighted_gradients`](Self::add_weighted_gradients), adds to) one entry per
/// parameter, in the order of [`parameters`](Self::parameters).
pub trait DpLayer: std::fmt::Debug {
    /// The layer's identity (shared by clones).
    fn id(&self) -> LayerId;

    /// The trainable parameters, each one parameter group.
    fn parameters(&self) -> Vec<NamedParameter>;

    /// Per-sample gradients, each `[batch, numel]` (flattened in the parameter's layout).
    ///
    /// # Errors
    ///
    /// When the captures do not fit the layer or libtorch fails.
    fn per_sample_gradients(&self, captures: &[Capture]) -> Result<Vec<Tensor>>;

    /// Squared per-sample gradient norms `[batch]` without materializing per-sample gradients,
    /// or `None` when the layer has no such formula.
    ///
    /// # Errors
    ///
    /// When the captures do not fit the layer or libtorch fails.
    fn ghost_norms_squared(&self, captures: &[Capture]) -> Result<Option<Vec<Tensor>>> {
        let _ = captures;
        Ok(None)
    }

    /// Cost of the ghost and the materialized norm for these captures.
    fn norm_costs(&self, captures: &[Capture]) -> NormCosts;

    /// The captures of all uses in the form the layer's formulas read fastest, computed once
    /// per step: the default keeps one capture per use; a layer whose formulas join the uses
    /// (a Linear layer applied once per time step) joins them here, so that its norm and its
    /// clipped sum do not each copy them again.
    ///
    /// # Errors
    ///
    /// When the captures do not fit the layer or libtorch fails.
    fn merge_uses(&self, captures: Vec<Capture>) -> Result<Vec<Capture>> {
        Ok(captures)
    }

    /// Adds the weighted sum of per-sample gradients, sum_i `scales[k][i]` g_ik, to
    /// `gradients[k]`, the buffer of parameter k (in its shape and kind), for every parameter k
    /// (`scales` holds one `[batch]` tensor per parameter). The default materializes the
    /// per-sample gradients.
    ///
    /// # Errors
    ///
    /// When the captures do not fit the layer or libtorch fails.
    fn add_weighted_gradients(
        &self,
        captures: &[Capture],
        scales: &[Tensor],
        gradients: &mut [Tensor],
    ) -> Result<()> {
        let per_sample = self.per_sample_gradients(captures)?;
        for ((gradient, per_sample), scales) in gradients.iter_mut().zip(per_sample).zip(scales) {
            let sum = weighted_sum(&per_sample, scales, gradient)?;
            add_into(gradient, &sum)?;
        }
        Ok(())
    }
}

/// sum_i `scales[i]` `per_sample[i]` for `per_sample` of shape `[batch, numel]`, in the shape and
/// kind of `like`.
pub(crate) fn weighted_sum(per_sample: &Tensor, scales: &Tensor, like: &Tensor) -> Result<Tensor> {
    let scales = scales.f_to_kind(per_sample.f_kind()?)?;
    Ok(scales
        .f_matmul(per_sample)?
        .f_reshape(like.size())?
        .f_to_kind(like.f_kind()?)?)
}

/// Adds `update` (any shape with as many elements) to `buffer`, in the buffer's shape and kind.
pub(crate) fn add_into(buffer: &mut Tensor, update: &Tensor) -> Result<()> {
    let update = update
        .f_reshape(buffer.size())?
        .f_to_kind(buffer.f_kind()?)?;
    let _ = buffer.f_add_(&update)?;
    Ok(())
}

/// Buffer `index` of a layer's gradient buffers, or a shape error.
pub(crate) fn buffer_of(gradients: &mut [Tensor], index: usize) -> Result<&mut Tensor> {
    let count = gradients.len() as i64;
    gradients
        .get_mut(index)
        .ok_or(crate::TchEngineError::Shape {
            what: "gradient buffers",
            expected: "one per parameter of the layer",
            actual: vec![count],
        })
}

/// Squared L2 norm of every row of `[batch, ...]`, accumulated in f32 at least (one reduction,
/// no squared copy of the input).
pub(crate) fn row_norms_squared(per_sample: &Tensor) -> Result<Tensor> {
    let batch = per_sample.size().first().copied().unwrap_or(0);
    let rows = per_sample
        .f_reshape([batch, -1])?
        .f_to_kind(accumulation_kind(per_sample)?)?;
    Ok(rows
        .f_norm_scalaropt_dim(2.0, [1_i64].as_slice(), false)?
        .f_square()?)
}

/// The kind norms and sums accumulate in: f64 stays f64, everything else accumulates in f32.
pub(crate) fn accumulation_kind(tensor: &Tensor) -> Result<Kind> {
    Ok(match tensor.f_kind()? {
        Kind::Double => Kind::Double,
        _ => Kind::Float,
    })
}

/// Reshapes every capture to `[batch, -1, last]` (input, output gradient) and concatenates the
/// uses along the middle axis: the sequence view of a layer that acts on the last dimension.
pub(crate) fn sequence_view(
    captures: &[Capture],
    input_last: Option<i64>,
    output_last: i64,
) -> Result<(Tensor, Tensor)> {
    let mut inputs = Vec::with_capacity(captures.len());
    let mut gradients = Vec::with_capacity(captures.len());
    for capture in captures {
        let batch = leading_dimension(&capture.input)?;
        inputs.push(match input_last {
            Some(last) => capture.input.f_reshape([batch, -1, last])?,
            None => capture.input.f_reshape([batch, -1])?,
        });
        gradients.push(
            capture
                .output_gradient
                .f_reshape([batch, -1, output_last])?,
        );
    }
    Ok((concatenate(inputs, 1)?, concatenate(gradients, 1)?))
}

/// `gradients` `[batch, ...]` with example i multiplied by `scales[i]`.
pub(crate) fn scale_examples(gradients: &Tensor, scales: &Tensor) -> Result<Tensor> {
    let mut shape = vec![-1_i64];
    shape.resize(gradients.dim(), 1);
    Ok(gradients.f_mul(&scales.f_reshape(shape)?.f_to_kind(gradients.f_kind()?)?)?)
}

/// The scale tensor of parameter `index`, or a shape error.
pub(crate) fn scale_of(scales: &[Tensor], index: usize) -> Result<&Tensor> {
    scales.get(index).ok_or(crate::TchEngineError::Shape {
        what: "scales",
        expected: "one [batch] tensor per parameter of the layer",
        actual: vec![scales.len() as i64],
    })
}

/// The tensors joined along `dim`; a single tensor is returned as is (no copy).
pub(crate) fn concatenate(mut tensors: Vec<Tensor>, dim: i64) -> Result<Tensor> {
    if tensors.len() == 1
        && let Some(only) = tensors.pop()
    {
        return Ok(only);
    }
    Ok(Tensor::f_cat(&tensors, dim)?)
}

/// The batch dimension of a tensor, or a shape error for a scalar.
pub(crate) fn leading_dimension(tensor: &Tensor) -> Result<i64> {
    tensor
        .size()
        .first()
        .copied()
        .ok_or_else(|| crate::TchEngineError::Shape {
            what: "layer input",
            expected: "a batch dimension",
            actual: Vec::new(),
        })
}

/// The most bytes one Gram matrix `[chunk, T, T]` of [`ghost_outer_norm_squared`] may take: the
/// batch is processed in chunks, so long sequences do not allocate `[batch, T, T]` at once.
const GHOST_GRAM_BYTES: i64 = 64 << 20;

/// Sum over `(t, s)` of `left[b] left[b]ᵀ ⊙ right[b] right[b]ᵀ` for `[batch, T, d]` tensors:
/// the squared Frobenius norm of sum_t right_t left_tᵀ without forming it (Li et al. 2021).
pub(crate) fn ghost_outer_norm_squared(left: &Tensor, right: &Tensor) -> Result<Tensor> {
    ghost_outer_norm_squared_in_chunks(left, right, GHOST_GRAM_BYTES)
}

/// [`ghost_outer_norm_squared`] with Gram matrices of at most `gram_bytes` per chunk (at least
/// one example per chunk).
fn ghost_outer_norm_squared_in_chunks(
    left: &Tensor,
    right: &Tensor,
    gram_bytes: i64,
) -> Result<Tensor> {
    if left.size().get(1) == Some(&1) {
        // One position: the squared norm of an outer product is the product of the squared
        // norms, and no Gram matrix is needed.
        return Ok(row_norms_squared(left)?.f_mul(&row_norms_squared(right)?)?);
    }
    let kind = accumulation_kind(left)?;
    let batch = leading_dimension(left)?;
    let positions = left.size().get(1).copied().unwrap_or(1).max(1);
    let per_example = positions * positions * kind.elt_size_in_bytes() as i64;
    let chunk = (gram_bytes / per_example).clamp(1, batch.max(1));
    let mut norms = Vec::new();
    let mut start = 0;
    while start < batch {
        let length = chunk.min(batch - start);
        let left = left.f_narrow(0, start, length)?.f_to_kind(kind)?;
        let right = right.f_narrow(0, start, length)?.f_to_kind(kind)?;
        let mut gram = left.f_bmm(&left.f_transpose(1, 2)?)?;
        let _ = gram.f_mul_(&right.f_bmm(&right.f_transpose(1, 2)?)?)?;
        norms.push(gram.f_sum_dim_intlist([1, 2].as_slice(), false, None::<Kind>)?);
        start += length;
    }
    concatenate(norms, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Relative error allowed between two f32 computations of the same squared norms.
    const TOLERANCE: f64 = 1e-4;

    fn max_relative_error(actual: &Tensor, expected: &Tensor) -> f64 {
        let difference = (actual - expected).abs().max().double_value(&[]);
        difference / expected.abs().max().double_value(&[])
    }

    #[test]
    fn ghost_norms_in_chunks_match_the_materialized_norms() -> Result<()> {
        tch::manual_seed(3);
        let options = (Kind::Float, Device::Cpu);
        let inputs = Tensor::f_randn([5, 7, 3], options)?;
        let gradients = Tensor::f_randn([5, 7, 4], options)?;
        let per_sample = linear_per_sample_weight_gradients(&inputs, &gradients)?;
        let expected = row_norms_squared(&per_sample)?;
        let whole = ghost_outer_norm_squared(&inputs, &gradients)?;
        // 2 examples' Gram matrices per chunk: chunks of 2, 2 and 1.
        let chunked = ghost_outer_norm_squared_in_chunks(&inputs, &gradients, 2 * 7 * 7 * 4)?;
        assert_eq!(chunked.size(), vec![5]);
        assert!(max_relative_error(&whole, &expected) < TOLERANCE);
        assert!(max_relative_error(&chunked, &expected) < TOLERANCE);
        Ok(())
    }

    /// A Linear layer adds its clipped sum into buffers of its own kind by `addmm_` and into
    /// buffers of another kind by a product converted and added; both give the weighted sum of
    /// its materialized per-sample gradients (the trait's default).
    #[test]
    fn linear_clipped_sums_add_into_buffers_of_any_kind() -> Result<()> {
        tch::manual_seed(6);
        let store = tch::nn::VarStore::new(Device::Cpu);
        let layer = linear(&store.root(), 3, 2, LinearConfig::default())?;
        let options = (Kind::Float, Device::Cpu);
        let captures = [Capture {
            input: Tensor::f_randn([4, 5, 3], options)?,
            output_gradient: Tensor::f_randn([4, 5, 2], options)?,
        }];
        let scales = [
            Tensor::from_slice(&[1.0_f32, 0.5, 0.0, 2.0]),
            Tensor::from_slice(&[0.25_f32, 1.0, 3.0, 0.0]),
        ];
        let per_sample = layer.per_sample_gradients(&captures)?;
        for kind in [Kind::Float, Kind::Double] {
            let mut buffers = [
                Tensor::f_ones([2, 3], (kind, Device::Cpu))?,
                Tensor::f_ones([2], (kind, Device::Cpu))?,
            ];
            layer.add_weighted_gradients(&captures, &scales, &mut buffers)?;
            for ((buffer, gradients), group_scales) in buffers.iter().zip(&per_sample).zip(&scales)
            {
                assert_eq!(buffer.f_kind()?, kind);
                let expected = weighted_sum(gradients, group_scales, buffer)?.f_add_scalar(1.0)?;
                assert!(
                    max_relative_error(buffer, &expected) < TOLERANCE,
                    "{kind:?}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn one_position_ghost_norm_is_the_product_of_the_row_norms() -> Result<()> {
        tch::manual_seed(4);
        let options = (Kind::Float, Device::Cpu);
        let inputs = Tensor::f_randn([6, 1, 5], options)?;
        let gradients = Tensor::f_randn([6, 1, 2], options)?;
        let per_sample = linear_per_sample_weight_gradients(&inputs, &gradients)?;
        let expected = row_norms_squared(&per_sample)?;
        let ghost = ghost_outer_norm_squared(&inputs, &gradients)?;
        assert!(max_relative_error(&ghost, &expected) < TOLERANCE);
        Ok(())
    }
}
