//! The four engines and what they share: the recorded pass, norm matrices, the non-private
//! path and parameter access.

mod book_keeping;
mod ghost;
mod materialized;
mod microbatch;

use std::cell::RefCell;
use std::collections::HashMap;

use dp_engine::{
    EngineError, NormMatrix, ParameterGroup, ParameterView, PerSampleNorms, ScaleVector,
};
use tch::{Device, Kind, Tensor};

pub use book_keeping::{BookKeeping, NormChoice};
pub use ghost::Ghost;
pub use materialized::Materialized;
pub use microbatch::Microbatch;

use crate::batch::{TensorBatch, to_host_f64};
use crate::layers::{Capture, Cut, DpLayer, ForwardContext, row_norms_squared};
use crate::precision::Precision;
use crate::{DpModel, Result, TchEngineError};

/// One recorded forward pass: the losses in the graph, every use of a layer, and the cuts
/// between them.
#[derive(Debug)]
struct RecordedForward {
    /// Per-example losses `[batch]`, in the graph.
    losses: Tensor,
    /// Every use of a layer, in the order of the forward pass.
    uses: Vec<LayerUse>,
    /// The cuts that split `uses` into segments for the backward pass ([`segment_cuts`]).
    cuts: Vec<Cut>,
}

/// One use of a layer in a recorded forward pass.
#[derive(Debug)]
struct LayerUse {
    /// The layer's position in [`DpModel::layers`].
    layer: usize,
    /// The layer's input, detached.
    input: Tensor,
    /// The output's probe: in the graph, with the output's gradient ([`ForwardContext::record`]).
    probe: Tensor,
    /// The first use with the same input tensor (this use's own index when none before it):
    /// the query, key and value projections of attention share their input, and so may a tied
    /// layer's uses.
    input_group: usize,
    /// The kind a pass that releases the graph stores the input in, when it converts it: a
    /// floating input in [`Precision::Bf16`] that is not the batch's own tensor (held by the
    /// caller anyway, so a copy would add memory, not save it).
    stored_kind: Option<Kind>,
}

impl RecordedForward {
    /// The forward pass of `model` on `batch` with recording; the outputs' gradients will
    /// arrive in `output_gradients`.
    fn run(model: &DpModel, batch: &TensorBatch, output_gradients: Precision) -> Result<Self> {
        let mut context = ForwardContext::recording_in(model.is_training(), output_gradients);
        let losses = model.losses(batch.inputs(), batch.targets(), &mut context)?;
        let index: HashMap<_, _> = model
            .layers()
            .iter()
            .enumerate()
            .map(|(position, layer)| (layer.id(), position))
            .collect();
        let (records, cuts) = context.into_records();
        // Tensors are told apart by address while every input is alive (the records hold
        // them), so no address can have been reused.
        let identity =
            |tensor: &Tensor| (tensor.data_ptr() as usize, tensor.size(), tensor.stride());
        let caller_held = identity(batch.inputs());
        let mut first_uses = HashMap::new();
        // uses_before[i]: the uses among the first i records (a record of a layer the model
        // does not list is no use).
        let mut uses = Vec::with_capacity(records.len());
        let mut uses_before = Vec::with_capacity(records.len() + 1);
        uses_before.push(0);
        for record in records {
            if let Some(&layer) = index.get(&record.layer) {
                let key = identity(&record.input);
                let kind = record.input.f_kind()?;
                let stored = output_gradients.storage_kind(kind);
                let stored_kind = (stored != kind && key != caller_held).then_some(stored);
                let input_group = *first_uses.entry(key).or_insert(uses.len());
                uses.push(LayerUse {
                    layer,
                    input: record.input,
                    probe: record.output,
                    input_group,
                    stored_kind,
                });
            }
            uses_before.push(uses.len());
        }
        let cuts = cuts.into_iter().map(|cut| Cut {
            records: uses_before[cut.records],
            tensor: cut.tensor,
        });
        let cuts = segment_cuts(cuts, uses.len());
        Ok(Self { losses, uses, cuts })
    }

    /// The backward pass from the summed loss to the recorded outputs, computing no parameter
    /// gradient, one segment at a time from the loss down: the gradient at the segment's
    /// lower cut comes with its outputs' and starts the next segment's pass. As soon as every
    /// use of a layer has its gradient, the layer's captures, merged as it prefers
    /// ([`DpLayer::merge_uses`]), go to `visit` with its position in [`DpModel::layers`], so
    /// output gradients are held one segment at a time (longer only for a layer used in
    /// several). A layer without uses is not visited.
    ///
    /// The graph is kept for another pass ([`release_by_layer`](Self::release_by_layer)
    /// releases it).
    fn backward_by_layer(
        &self,
        model: &DpModel,
        visit: impl FnMut(usize, Vec<Capture>) -> Result<()>,
    ) -> Result<()> {
        let uses = self.uses.iter().map(LayerUse::shallow_clone).collect();
        let cuts = self.cuts.iter().map(Cut::shallow_clone).collect();
        pass_by_layer(model, &self.losses, uses, cuts, true, visit)
    }

    /// [`backward_by_layer`](Self::backward_by_layer), releasing the graph as it goes. The pass
    /// consumes the uses and cuts, so that it holds no layer input and no cut past the point
    /// where the graph lets go of them; only the losses remain.
    fn release_by_layer(
        &mut self,
        model: &DpModel,
        visit: impl FnMut(usize, Vec<Capture>) -> Result<()>,
    ) -> Result<()> {
        let uses = std::mem::take(&mut self.uses);
        let cuts = std::mem::take(&mut self.cuts);
        pass_by_layer(model, &self.losses, uses, cuts, false, visit)
    }

    /// Every layer's merged captures from a pass that releases the graph
    /// ([`release_by_layer`](Self::release_by_layer)), none for a layer without uses, and the
    /// losses, detached.
    fn into_captures(mut self, model: &DpModel) -> Result<(Tensor, Vec<Vec<Capture>>)> {
        let mut captures: Vec<Vec<Capture>> = model.layers().iter().map(|_| Vec::new()).collect();
        self.release_by_layer(model, |layer, merged| {
            captures[layer] = merged;
            Ok(())
        })?;
        Ok((self.losses.f_detach()?, captures))
    }
}

/// The pass of [`RecordedForward::backward_by_layer`] over `uses` and `cuts`, from `losses`;
/// `keep_graph` keeps the graph.
fn pass_by_layer(
    model: &DpModel,
    losses: &Tensor,
    mut uses: Vec<LayerUse>,
    mut cuts: Vec<Cut>,
    keep_graph: bool,
    mut visit: impl FnMut(usize, Vec<Capture>) -> Result<()>,
) -> Result<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let layers = model.layers();
    let mut remaining = vec![0_usize; layers.len()];
    for layer_use in &uses {
        remaining[layer_use.layer] += 1;
    }
    let mut pending: Vec<Vec<(usize, Capture)>> = layers.iter().map(|_| Vec::new()).collect();
    let mut stored_inputs = (!keep_graph).then(|| StoredInputs::new(&uses));
    let mut root = losses.f_sum(Kind::Float)?;
    loop {
        let cut = cuts.pop();
        let start = cut.as_ref().map_or(0, |cut| cut.records);
        let segment = uses.split_off(start);
        let mut wanted: Vec<&Tensor> = segment.iter().map(|layer_use| &layer_use.probe).collect();
        wanted.extend(cut.as_ref().map(|cut| &cut.tensor));
        let mut gradients = Tensor::f_run_backward(&[&root], &wanted, keep_graph, false)?;
        let last = match cut {
            Some(cut) => {
                let at_cut = gradients.pop().ok_or(TchEngineError::Shape {
                    what: "gradient at a cut",
                    expected: "one per backward pass",
                    actual: Vec::new(),
                })?;
                let at_cut = defined_or_zeros(at_cut, &cut.tensor)?;
                root = cut.tensor.f_mul(&at_cut)?.f_sum(Kind::Float)?;
                false
            }
            None => true,
        };
        for ((position, layer_use), gradient) in (start..).zip(segment).zip(gradients) {
            let input = match &mut stored_inputs {
                Some(stored_inputs) => stored_inputs.store(&layer_use)?,
                None => layer_use.input.shallow_clone(),
            };
            let LayerUse { layer, probe, .. } = layer_use;
            let output_gradient = defined_or_zeros(gradient, &probe)?;
            pending[layer].push((
                position,
                Capture {
                    input,
                    output_gradient,
                },
            ));
            remaining[layer] -= 1;
            if remaining[layer] == 0 {
                let mut captures = std::mem::take(&mut pending[layer]);
                captures.sort_by_key(|(position, _)| *position);
                let captures = captures.into_iter().map(|(_, capture)| capture).collect();
                visit(layer, layers[layer].merge_uses(captures)?)?;
            }
        }
        if last {
            return Ok(());
        }
    }
}

impl LayerUse {
    fn shallow_clone(&self) -> Self {
        Self {
            layer: self.layer,
            input: self.input.shallow_clone(),
            probe: self.probe.shallow_clone(),
            input_group: self.input_group,
            stored_kind: self.stored_kind,
        }
    }
}

/// The cuts a backward pass may stop at, out of the chain's cuts in forward order over `uses`
/// uses: each after at least one use and before the last, in the graph (a link output that
/// does not require a gradient passes none on), and of several with no use between them only
/// the last, so that every segment has a use.
fn segment_cuts(cuts: impl IntoIterator<Item = Cut>, uses: usize) -> Vec<Cut> {
    let mut kept: Vec<Cut> = Vec::new();
    for cut in cuts {
        if cut.records == 0 || cut.records >= uses || !cut.tensor.requires_grad() {
            continue;
        }
        if kept.last().is_some_and(|last| last.records == cut.records) {
            kept.pop();
        }
        kept.push(cut);
    }
    kept
}

/// The layer inputs a pass that releases the graph hands out, in their storage kinds
/// ([`LayerUse::stored_kind`]). Each is converted once the backward pass has passed its layer,
/// so that the graph, which needs it in the model's kind, has let go of its original; an input
/// shared by several uses is converted once and held only until the last of them is handed
/// out.
struct StoredInputs {
    /// The converted inputs of the groups with uses still to come.
    converted: HashMap<usize, Tensor>,
    /// For every input group that is converted, its uses not yet handed out.
    uses_left: HashMap<usize, usize>,
}

impl StoredInputs {
    fn new(uses: &[LayerUse]) -> Self {
        let mut uses_left = HashMap::new();
        for layer_use in uses
            .iter()
            .filter(|layer_use| layer_use.stored_kind.is_some())
        {
            *uses_left.entry(layer_use.input_group).or_insert(0) += 1;
        }
        Self {
            converted: HashMap::new(),
            uses_left,
        }
    }

    /// The input of `layer_use` as stored.
    fn store(&mut self, layer_use: &LayerUse) -> Result<Tensor> {
        let Some(kind) = layer_use.stored_kind else {
            return Ok(layer_use.input.shallow_clone());
        };
        let group = layer_use.input_group;
        let stored = match self.converted.get(&group) {
            Some(stored) => stored.shallow_clone(),
            None => layer_use.input.f_to_kind(kind)?,
        };
        let left = self.uses_left.get_mut(&group).map_or(0, |left| {
            *left -= 1;
            *left
        });
        if left == 0 {
            self.converted.remove(&group);
        } else {
            self.converted.insert(group, stored.shallow_clone());
        }
        Ok(stored)
    }
}

/// An autograd result, or zeros of `like`'s shape when the tensor did not reach the loss.
fn defined_or_zeros(gradient: Tensor, like: &Tensor) -> Result<Tensor> {
    if gradient.defined() {
        Ok(gradient)
    } else {
        Ok(like.f_zeros_like()?.f_detach()?)
    }
}

/// Per-sample gradients of every group, `[batch, numel]`, through the layers' formulas; a layer
/// that was not used gets zeros.
fn materialize(model: &DpModel, captures: &[Vec<Capture>], batch: i64) -> Result<Vec<Tensor>> {
    let mut result = Vec::with_capacity(model.parameters().len());
    for (layer, layer_captures) in model.layers().iter().zip(captures) {
        if layer_captures.is_empty() {
            for parameter in layer.parameters() {
                result.push(zeros_per_sample(&parameter.tensor, batch)?);
            }
        } else {
            result.extend(layer.per_sample_gradients(&widened(*layer, layer_captures)?)?);
        }
    }
    Ok(result)
}

fn zeros_per_sample(parameter: &Tensor, batch: i64) -> Result<Tensor> {
    Ok(Tensor::f_zeros(
        [batch, parameter.numel() as i64],
        (parameter.f_kind()?, parameter.device()),
    )?)
}

/// The norm matrix from squared per-group norms `[batch]`, one tensor per group.
fn norm_matrix(batch: usize, squared: &[Tensor]) -> Result<NormMatrix, EngineError> {
    let groups = squared.len();
    if batch == 0 || groups == 0 {
        return NormMatrix::new(batch, groups, Vec::new());
    }
    let compute = || -> Result<Vec<f64>> {
        let squared = squared
            .iter()
            .map(|values| values.f_to_kind(Kind::Double))
            .collect::<Result<Vec<_>, _>>()?;
        let stacked = Tensor::f_stack(&squared, 1)?.f_clamp_min(0.0)?.f_sqrt()?;
        to_host_f64(&stacked)
    };
    NormMatrix::new(batch, groups, compute()?)
}

/// Squared norms of materialized per-sample gradients.
fn squared_norms(per_sample: &[Tensor]) -> Result<Vec<Tensor>> {
    per_sample.iter().map(row_norms_squared).collect()
}

/// A layer's captures in the kind of its parameters (f32 for f32 models), for its formulas:
/// captures stored in bfloat16 are widened, one layer at a time, so that a layer's formulas
/// never see mixed kinds and the wider copies last only while that layer is processed.
fn widened(layer: &dyn DpLayer, captures: &[Capture]) -> Result<Vec<Capture>> {
    let kind = match layer.parameters().first() {
        Some(parameter) => parameter.tensor.f_kind()?,
        None => Kind::Float,
    };
    captures
        .iter()
        .map(|capture| capture.widened(kind))
        .collect()
}

/// Scale factors on the device: one `[batch]` tensor per parameter group.
struct DeviceScales {
    /// The per-example factors when every group shares them (flat clipping).
    per_example: Option<Tensor>,
    /// The factors of every group.
    columns: Vec<Tensor>,
}

impl DeviceScales {
    /// The columns of every layer of [`DpModel::layers`], one per parameter, in order.
    fn per_layer<'a>(&'a self, model: &DpModel) -> Vec<&'a [Tensor]> {
        layer_groups(model)
            .into_iter()
            .map(|groups| &self.columns[groups])
            .collect()
    }
}

/// The scales on the device, after checking they fit the tape's batch and the model's groups.
fn device_scales(
    scales: &ScaleVector,
    batch: usize,
    groups: usize,
    device: Device,
) -> Result<DeviceScales, EngineError> {
    scales.check_shape(batch, groups)?;
    let upload = |values: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::from_slice(&values)
            .f_to_kind(Kind::Float)?
            .f_to_device(device)?)
    };
    if scales.num_groups().is_none() {
        let factors = (0..batch)
            .map(|example| scales.factor(example, 0))
            .collect();
        let per_example = upload(factors)?;
        let columns = (0..groups).map(|_| per_example.shallow_clone()).collect();
        return Ok(DeviceScales {
            per_example: Some(per_example),
            columns,
        });
    }
    let columns = (0..groups)
        .map(|group| {
            let factors = (0..batch)
                .map(|example| scales.factor(example, group))
                .collect();
            upload(factors)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DeviceScales {
        per_example: None,
        columns,
    })
}

/// What the clipped sum of one layer is computed from in phase 2.
#[derive(Debug)]
enum LayerTape {
    /// The layer's captures (none for a layer that was not used): its weighted-gradient
    /// formula (for a Linear layer `(s ⊙ G)ᵀ A`) computes the sum.
    Captures(Vec<Capture>),
    /// The per-sample gradients `[batch, numel]` of every parameter, materialized for the
    /// norm and kept because they take no more memory than the captures they replace: the sum
    /// is one matrix-vector product per parameter.
    PerSample(Vec<Tensor>),
}

/// Adds the clipped sum of every layer to the gradient buffers from its tape; an unused layer
/// adds nothing.
fn clipped_sum(model: &DpModel, tapes: &[LayerTape], scales: &DeviceScales) -> Result<()> {
    let mut buffers = buffers_by_layer(model);
    for (((layer, tape), layer_scales), layer_buffers) in model
        .layers()
        .into_iter()
        .zip(tapes)
        .zip(scales.per_layer(model))
        .zip(&mut buffers)
    {
        add_layer_clipped_sum(layer, tape, layer_scales, layer_buffers)?;
    }
    Ok(())
}

/// Handles to the model's gradient buffers, which the layers add into in place: one list per
/// layer of [`DpModel::layers`], one buffer per parameter.
fn buffers_by_layer(model: &DpModel) -> Vec<Vec<Tensor>> {
    layer_groups(model)
        .into_iter()
        .map(|groups| {
            model.gradients()[groups]
                .iter()
                .map(Tensor::shallow_clone)
                .collect()
        })
        .collect()
}

/// The parameter groups of every layer of [`DpModel::layers`], as a range of group indices
/// (the layers' parameters are the groups, in order).
fn layer_groups(model: &DpModel) -> Vec<std::ops::Range<usize>> {
    let mut end = 0;
    model
        .layers()
        .iter()
        .map(|layer| {
            let start = end;
            end += layer.parameters().len();
            start..end
        })
        .collect()
}

/// Adds the clipped sum of each of `layer`'s parameters, from its tape and its groups' scales,
/// to the parameter's buffer in `buffers`; nothing for an unused layer.
fn add_layer_clipped_sum(
    layer: &dyn DpLayer,
    tape: &LayerTape,
    scales: &[Tensor],
    buffers: &mut [Tensor],
) -> Result<()> {
    match tape {
        LayerTape::Captures(captures) if captures.is_empty() => Ok(()),
        LayerTape::Captures(captures) => {
            layer.add_weighted_gradients(&widened(layer, captures)?, scales, buffers)
        }
        LayerTape::PerSample(per_sample) => {
            for ((gradients, buffer), group_scales) in per_sample.iter().zip(buffers).zip(scales) {
                let sum = crate::layers::weighted_sum(gradients, group_scales, buffer)?;
                crate::layers::add_into(buffer, &sum)?;
            }
            Ok(())
        }
    }
}

/// Per-sample gradients `[batch, numel]` kept between the phases (microbatch and materialized).
#[derive(Debug)]
struct PerSampleTape {
    batch: usize,
    per_sample: Vec<Tensor>,
}

impl PerSampleTape {
    /// The per-sample gradients of the tape, one tensor per parameter group of `model` shaped
    /// `[batch, *parameter shape]` (views of the tape, no copy).
    fn gradients(&self, model: &DpModel) -> Result<Vec<Tensor>> {
        let batch = i64::try_from(self.batch).unwrap_or(i64::MAX);
        model
            .parameters()
            .iter()
            .enumerate()
            .map(|(group, parameter)| {
                let shape: Vec<i64> = std::iter::once(batch)
                    .chain(parameter.tensor.size())
                    .collect();
                Ok(match self.per_sample.get(group) {
                    Some(per_sample) => per_sample.f_view(shape.as_slice())?,
                    // The empty batch's tape holds no tensors.
                    None => Tensor::f_zeros(
                        shape.as_slice(),
                        (parameter.tensor.f_kind()?, model.device()),
                    )?,
                })
            })
            .collect()
    }

    fn accumulate(&self, model: &mut DpModel, scales: &ScaleVector) -> Result<(), EngineError> {
        let scales = device_scales(scales, self.batch, model.parameters().len(), model.device())?;
        if self.batch == 0 {
            return Ok(());
        }
        let sums = self
            .per_sample
            .iter()
            .zip(model.parameters())
            .zip(&scales.columns)
            .map(|((per_sample, parameter), group_scales)| {
                crate::layers::weighted_sum(per_sample, group_scales, &parameter.tensor)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(model.add_to_gradients(&sums)?)
    }
}

/// An engine's tape for an empty batch (no examples: norms without rows, a zero clipped sum).
trait EmptyTape {
    fn empty() -> Self;
}

impl EmptyTape for PerSampleTape {
    fn empty() -> Self {
        Self {
            batch: 0,
            per_sample: Vec::new(),
        }
    }
}

/// Phase 1 as every engine runs it: the previous tape is dropped first (a failed phase 1
/// leaves none, so phase 2 reports a missing tape instead of reusing an old one); an empty
/// batch gets norms without rows and the empty tape, and never reaches libtorch; otherwise
/// `record` computes the norms and the tape from the batch of `size` examples.
fn phase_one<T: EmptyTape>(
    tape: &mut Option<T>,
    model: &DpModel,
    batch: &TensorBatch,
    record: impl FnOnce(usize) -> Result<(PerSampleNorms, T), EngineError>,
) -> Result<PerSampleNorms, EngineError> {
    *tape = None;
    let size = dp_engine::ExampleBatch::num_examples(batch);
    let (norms, recorded) = if size == 0 {
        let norms = PerSampleNorms {
            losses: Vec::new(),
            norms: NormMatrix::new(0, model.parameters().len(), Vec::new())?,
        };
        (norms, T::empty())
    } else {
        record(size)?
    };
    *tape = Some(recorded);
    Ok(norms)
}

fn parameter_groups(model: &DpModel) -> Vec<ParameterGroup> {
    model
        .parameters()
        .iter()
        .map(|parameter| ParameterGroup {
            name: parameter.name.clone(),
            len: parameter.tensor.numel(),
        })
        .collect()
}

/// The non-private path: one backward pass of the summed loss into the gradient buffers.
fn batch_gradient(model: &mut DpModel, batch: &TensorBatch) -> Result<Vec<f64>> {
    if dp_engine::ExampleBatch::num_examples(batch) == 0 {
        return Ok(Vec::new());
    }
    let mut context = ForwardContext::new(model.is_training());
    let losses = model.losses(batch.inputs(), batch.targets(), &mut context)?;
    let parameters: Vec<&Tensor> = model.parameters().iter().map(|p| &p.tensor).collect();
    let gradients =
        Tensor::f_run_backward(&[losses.f_sum(Kind::Float)?], &parameters, false, false)?;
    let gradients = gradients
        .into_iter()
        .zip(&parameters)
        .map(|(gradient, parameter)| defined_or_zeros(gradient, parameter))
        .collect::<Result<Vec<_>>>()?;
    model.add_to_gradients(&gradients)?;
    to_host_f64(&losses.f_detach()?)
}

/// Stages every group through host memory for `visit`, then writes back what it changed (an
/// unchanged parameter is not written, so a kept autograd graph stays valid).
fn visit_parameters(model: &mut DpModel, visit: &mut dyn FnMut(ParameterView<'_>)) -> Result<()> {
    let parameters: Vec<Tensor> = model
        .parameters()
        .iter()
        .map(|parameter| parameter.tensor.shallow_clone())
        .collect();
    with_host_buffers(
        |[values, gradient_values, original_values, original_gradient]| {
            for (group, (parameter, gradient)) in
                parameters.iter().zip(model.gradients_mut()).enumerate()
            {
                download(parameter, values)?;
                download(gradient, gradient_values)?;
                original_values.clone_from(values);
                original_gradient.clone_from(gradient_values);
                visit(ParameterView {
                    group,
                    values,
                    gradient: gradient_values,
                });
                tch::no_grad(|| -> Result<()> {
                    if values != original_values {
                        let mut parameter = parameter.shallow_clone();
                        parameter.f_copy_(&from_host(
                            values,
                            parameter.size(),
                            parameter.device(),
                        )?)?;
                    }
                    if gradient_values != original_gradient {
                        gradient.f_copy_(&from_host(
                            gradient_values,
                            gradient.size(),
                            gradient.device(),
                        )?)?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        },
    )
}

/// Gives `visit` each gradient buffer's values: in place where the buffer is a contiguous
/// `f32` tensor in host memory (as [`DpModel`] makes them on the CPU), otherwise staged through
/// host memory (one download, the visit, one upload). Noise needs no more: the change check of
/// [`visit_parameters`] is for parameters, which a kept graph may have saved.
fn visit_gradients(model: &mut DpModel, visit: &mut dyn FnMut(usize, &mut [f32])) -> Result<()> {
    with_host_buffers(|[host, ..]| {
        for (group, gradient) in model.gradients_mut().iter_mut().enumerate() {
            if visit_in_place(gradient, &mut |values| visit(group, values))? {
                continue;
            }
            download(gradient, host)?;
            visit(group, host);
            let update = from_host(host, gradient.size(), gradient.device())?;
            tch::no_grad(|| gradient.f_copy_(&update))?;
        }
        Ok(())
    })
}

/// Calls `visit` on the values of `tensor` in its own memory when it is a contiguous `f32`
/// tensor on the CPU, and says whether it did. Staging the benchmark MLP's 203,530 gradient
/// values through host buffers instead (download, upload, copy into the buffer) took 0.4 to
/// 0.7 ms of a 5 to 7 ms step, as much as the fast noise it carried.
#[allow(unsafe_code)]
fn visit_in_place(tensor: &mut Tensor, visit: &mut dyn FnMut(&mut [f32])) -> Result<bool> {
    if tensor.device() != Device::Cpu || tensor.f_kind()? != Kind::Float || !tensor.is_contiguous()
    {
        return Ok(false);
    }
    let numel = tensor.numel();
    let first = tensor.data_ptr().cast::<f32>();
    if numel == 0 || first.is_null() || !first.is_aligned() {
        return Ok(false);
    }
    // SAFETY: `tensor` is a contiguous f32 tensor in host memory, so its `numel` values lie
    // one after another from `data_ptr` (which includes the storage offset), aligned and
    // initialized, in storage libtorch keeps alive while `tensor` lives; `tensor` is borrowed
    // mutably for the whole visit, and no libtorch operation runs on it until the slice is
    // gone, so the slice is the only access to those values while it exists (a visit that
    // used another handle to the same buffer would break this, which `DpModel::gradients`
    // forbids).
    let values = unsafe { std::slice::from_raw_parts_mut(first, numel) };
    visit(values);
    Ok(true)
}

/// Runs `stage` with the host buffers the calling thread keeps between stagings (so a thread
/// that staged a model holds up to four copies of its largest group). With fresh buffers per
/// group and call, the benchmark's MLP 784-256-10 step with dp-sampler's fast noise took
/// 1.62-1.70x the non-private step; with kept ones 1.44-1.54x (three alternated pairs).
fn with_host_buffers<T>(stage: impl FnOnce(&mut [Vec<f32>; 4]) -> Result<T>) -> Result<T> {
    thread_local! {
        static BUFFERS: RefCell<[Vec<f32>; 4]> = RefCell::new(Default::default());
    }
    BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
        Ok(mut kept) => stage(&mut kept),
        // A visit that stages another model from inside the visit gets fresh buffers.
        Err(_) => stage(&mut Default::default()),
    })
}

/// Copies `tensor`'s values, as `f32`, into `host` (resized to them).
fn download(tensor: &Tensor, host: &mut Vec<f32>) -> Result<()> {
    let numel = tensor.numel();
    host.resize(numel, 0.0);
    Ok(tensor
        .f_detach()?
        .f_to_kind(Kind::Float)?
        .f_copy_data(host, numel)?)
}

fn from_host(values: &[f32], shape: Vec<i64>, device: Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(values)
        .f_reshape(shape)?
        .f_to_device(device)?)
}

/// The trait methods every engine shares (parameter access and the non-private path).
macro_rules! shared_engine_methods {
    () => {
        fn parameter_groups(&self, model: &Self::Model) -> Vec<dp_engine::ParameterGroup> {
            crate::engines::parameter_groups(model)
        }

        fn batch_gradient(
            &mut self,
            model: &mut Self::Model,
            batch: &Self::Batch,
        ) -> Result<Vec<f64>, dp_engine::EngineError> {
            Ok(crate::engines::batch_gradient(model, batch)?)
        }

        fn zero_grad(&mut self, model: &mut Self::Model) {
            // Zeroing a buffer that exists cannot fail short of device loss; the trait gives
            // no error channel, so a failure is left for the next operation to report.
            let _ = model.zero_gradients();
        }

        fn visit_parameters(
            &mut self,
            model: &mut Self::Model,
            visit: &mut dyn FnMut(dp_engine::ParameterView<'_>),
        ) -> Result<(), dp_engine::EngineError> {
            Ok(crate::engines::visit_parameters(model, visit)?)
        }

        fn visit_gradients(
            &mut self,
            model: &mut Self::Model,
            visit: &mut dyn FnMut(usize, &mut [f32]),
        ) -> Result<(), dp_engine::EngineError> {
            Ok(crate::engines::visit_gradients(model, visit)?)
        }
    };
}
use shared_engine_methods;

/// What phase 1 keeps for phase 2: the ghost engine's reweighted backward pass needs the graph,
/// the book-keeping engine's clipped sum needs every layer's tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// The graph, and no tape.
    Graph,
    /// Every layer's tape; the graph is released during the backward pass.
    Tapes,
}

/// Phase 1 read off the backward pass as it goes: the backward pass to the layer outputs link
/// by link ([`RecordedForward::backward_by_layer`]), and every layer's norms ([`layer_norm`])
/// taken as soon as its captures are complete where that frees memory during the backward
/// pass: always when keeping the graph (the tapes returned are then empty), otherwise for the
/// layers whose captures smaller per-sample gradients replace. The other layers' norms wait
/// for the end of the backward pass, when the graph no longer holds its tensors next to the
/// norms' workspace.
fn norms_by_layer(
    model: &DpModel,
    forward: &mut RecordedForward,
    keep: Keep,
    use_ghost: impl Fn(&crate::NormCosts) -> bool,
) -> Result<(Vec<Tensor>, Vec<LayerTape>)> {
    let examples = forward.losses.size()[0];
    let layers = model.layers();
    let norm = |layer, captures| {
        let (squared, tape) = layer_norm(model, layer, captures, examples, &use_ghost)?;
        let tape = match keep {
            Keep::Tapes => tape,
            Keep::Graph => LayerTape::Captures(Vec::new()),
        };
        Ok::<_, TchEngineError>((squared, tape))
    };
    let mut per_layer: Vec<Option<_>> = layers.iter().map(|_| None).collect();
    let mut deferred = Vec::new();
    let visit = |position: usize, captures: Vec<Capture>| {
        let layer = layers[position];
        if keep == Keep::Tapes && !replaces_captures(layer, &captures, examples, &use_ghost)? {
            deferred.push((position, captures));
        } else {
            per_layer[position] = Some(norm(layer, captures)?);
        }
        Ok(())
    };
    match keep {
        Keep::Graph => forward.backward_by_layer(model, visit)?,
        Keep::Tapes => forward.release_by_layer(model, visit)?,
    }
    for (position, captures) in deferred {
        per_layer[position] = Some(norm(layers[position], captures)?);
    }
    let mut squared = Vec::with_capacity(model.parameters().len());
    let mut tapes = Vec::with_capacity(layers.len());
    for (layer, computed) in layers.iter().zip(per_layer) {
        // A layer without uses was never visited: its norm is zero.
        let (layer_squared, tape) = match computed {
            Some(computed) => computed,
            None => norm(*layer, Vec::new())?,
        };
        squared.extend(layer_squared);
        tapes.push(tape);
    }
    Ok((squared, tapes))
}

/// Whether [`layer_norm`] replaces the layer's captures by its per-sample gradients: when it
/// materializes them and [`keeps_per_sample`].
fn replaces_captures(
    layer: &dyn DpLayer,
    captures: &[Capture],
    batch: i64,
    use_ghost: impl Fn(&crate::NormCosts) -> bool,
) -> Result<bool> {
    Ok(!use_ghost(&layer.norm_costs(captures)) && keeps_per_sample(layer, captures, batch)?)
}

/// Whether a layer's materialized per-sample gradients, `[batch, numel]` per parameter in its
/// kind, take no more bytes than its captures, and so are kept in their place.
fn keeps_per_sample(layer: &dyn DpLayer, captures: &[Capture], batch: i64) -> Result<bool> {
    let per_example = layer.parameters().iter().try_fold(0, |total, parameter| {
        Ok::<_, TchEngineError>(
            total + parameter.tensor.numel() * parameter.tensor.f_kind()?.elt_size_in_bytes(),
        )
    })?;
    let batch = usize::try_from(batch).unwrap_or(usize::MAX);
    Ok(per_example.saturating_mul(batch) <= captured_bytes(captures)?)
}

/// Squared per-group norms `[batch]` of one layer from its captures, and what phase 2 needs of
/// it. The norm comes from the ghost formula when `use_ghost` says so for the layer's costs
/// (and it has one), otherwise from its materialized per-sample gradients. Those are kept as
/// the layer's tape when they take no more bytes than its captures (phase 2 is then a weighted
/// sum instead of the layer's formula again), and dropped as soon as their norms are taken
/// otherwise, so the tape never outgrows the captures. An unused layer (no captures) has norm
/// 0.
fn layer_norm(
    model: &DpModel,
    layer: &dyn DpLayer,
    captures: Vec<Capture>,
    batch: i64,
    use_ghost: impl Fn(&crate::NormCosts) -> bool,
) -> Result<(Vec<Tensor>, LayerTape)> {
    if captures.is_empty() {
        let zeros = layer
            .parameters()
            .iter()
            .map(|_| Tensor::f_zeros([batch], (Kind::Float, model.device())))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((zeros, LayerTape::Captures(captures)));
    }
    let wide = widened(layer, &captures)?;
    if use_ghost(&layer.norm_costs(&wide))
        && let Some(ghost) = layer.ghost_norms_squared(&wide)?
    {
        return Ok((ghost, LayerTape::Captures(captures)));
    }
    let per_sample = layer.per_sample_gradients(&wide)?;
    drop(wide);
    let squared = squared_norms(&per_sample)?;
    let tape = if keeps_per_sample(layer, &captures, batch)? {
        LayerTape::PerSample(per_sample)
    } else {
        LayerTape::Captures(captures)
    };
    Ok((squared, tape))
}

/// The bytes of the tensors' elements.
fn bytes<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Result<usize> {
    tensors.into_iter().try_fold(0, |total, tensor| {
        Ok(total + tensor.numel() * tensor.f_kind()?.elt_size_in_bytes())
    })
}

/// The bytes of the captures' inputs and output gradients.
fn captured_bytes(captures: &[Capture]) -> Result<usize> {
    bytes(
        captures
            .iter()
            .flat_map(|capture| [&capture.input, &capture.output_gradient]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AttentionConfig, Function, LinearConfig, Loss, Residual, Sequential, embedding, linear,
        multi_head_attention,
    };
    use tch::nn;

    /// An embedding (integer input) followed by a Linear layer (f32 input), and a batch for it.
    fn token_model() -> Result<(DpModel, TensorBatch)> {
        let store = nn::VarStore::new(Device::Cpu);
        let root = store.root();
        let module = Sequential::new()
            .add(embedding(&(&root / "embedding"), 5, 4)?)
            .add(Function::Tanh)
            .add(linear(&(&root / "fc"), 4, 3, LinearConfig::default())?);
        let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
        let batch = TensorBatch::new(
            Tensor::from_slice(&[0_i64, 1, 2, 3, 4, 0]).f_reshape([2, 3])?,
            Tensor::from_slice(&[0_i64, 1, 2, 2, 1, 0]).f_reshape([2, 3])?,
        )?;
        Ok((model, batch))
    }

    /// The (input, output gradient) kinds of every capture, in layer order.
    fn capture_kinds(captures: &[Vec<Capture>]) -> Result<Vec<(Kind, Kind)>> {
        captures
            .iter()
            .flatten()
            .map(|capture| Ok((capture.input.f_kind()?, capture.output_gradient.f_kind()?)))
            .collect()
    }

    #[test]
    fn materialized_per_sample_gradients_are_kept_only_where_no_larger_than_the_captures()
    -> Result<()> {
        let (model, batch) = token_model()?;
        let (_, captures) =
            RecordedForward::run(&model, &batch, Precision::F32)?.into_captures(&model)?;
        let captured = captures
            .iter()
            .map(|captures| captured_bytes(captures))
            .collect::<Result<Vec<_>>>()?;
        // Embedding: a 5 x 4 table per example, 2 x 80 bytes, against 48 bytes of token
        // indices and 96 of output gradients. Linear 4 -> 3 over 3 positions: 12 weights and 3
        // biases per example, 2 x 60 bytes, against 96 bytes of inputs and 72 of gradients.
        assert_eq!(captured, [144, 168]);
        // The prediction that schedules book-keeping's norms during the backward pass agrees.
        let layers = model.layers();
        let predicted = layers
            .iter()
            .zip(&captures)
            .map(|(layer, captures)| replaces_captures(*layer, captures, 2, |_| false))
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(predicted, [false, true]);
        assert!(!replaces_captures(layers[1], &captures[1], 2, |_| {
            true
        })?);
        let mut squared = Vec::new();
        let mut tapes = Vec::new();
        for (layer, captures) in layers.iter().zip(captures) {
            let (layer_squared, tape) = layer_norm(&model, *layer, captures, 2, |_| false)?;
            squared.extend(layer_squared);
            tapes.push(tape);
        }
        assert_eq!(squared.len(), 3);
        assert!(matches!(&tapes[0], LayerTape::Captures(captures) if captures.len() == 1));
        let LayerTape::PerSample(per_sample) = &tapes[1] else {
            panic!("the Linear layer's per-sample gradients fit in its captures: {tapes:?}");
        };
        assert_eq!(bytes(per_sample)?, 120);
        Ok(())
    }

    /// A Linear layer, then one Linear layer used twice (tied), then a Linear layer, with Tanh
    /// between, and a batch for it.
    fn tied_model() -> Result<(DpModel, TensorBatch)> {
        let store = nn::VarStore::new(Device::Cpu);
        let root = store.root();
        let shared = linear(&(&root / "shared"), 4, 4, LinearConfig::default())?;
        let module = Sequential::new()
            .add(linear(&(&root / "fc1"), 3, 4, LinearConfig::default())?)
            .add(Function::Tanh)
            .add(shared.clone())
            .add(Function::Tanh)
            .add(shared)
            .add(Function::Tanh)
            .add(linear(&(&root / "fc2"), 4, 2, LinearConfig::default())?);
        let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
        let batch = TensorBatch::new(
            Tensor::f_randn([5, 3], (Kind::Float, Device::Cpu))?,
            Tensor::from_slice(&[0_i64, 1, 1, 0, 1]),
        )?;
        Ok((model, batch))
    }

    /// A visit that stages a second model from inside the first (the thread's kept buffers are
    /// then in use) sees both models' own values and writes both back.
    #[test]
    fn nested_stagings_see_and_write_their_own_models() -> Result<()> {
        let (mut outer, _) = token_model()?;
        let (mut inner, _) = tied_model()?;
        let host = |tensors: &[Tensor]| -> Result<Vec<Vec<f32>>> {
            tensors
                .iter()
                .map(|tensor| {
                    let mut values = Vec::new();
                    download(tensor, &mut values)?;
                    Ok(values)
                })
                .collect()
        };
        let outer_values: Vec<Tensor> = outer
            .parameters()
            .iter()
            .map(|p| p.tensor.shallow_clone())
            .collect();
        let expected_outer = host(&outer_values)?;
        visit_gradients(&mut inner, &mut |group, gradient| {
            gradient.fill(group as f32 + 0.5)
        })?;
        let expected_inner = host(inner.gradients())?;
        let (mut seen_outer, mut seen_inner) = (Vec::new(), Vec::new());
        let mut inner_result = Ok(());
        visit_parameters(&mut outer, &mut |view| {
            seen_outer.push(view.values.to_vec());
            view.gradient.fill(2.0);
            if view.group == 0 {
                inner_result = visit_parameters(&mut inner, &mut |inner_view| {
                    seen_inner.push(inner_view.gradient.to_vec());
                    inner_view.gradient.fill(3.0);
                });
            }
        })?;
        inner_result?;
        assert_eq!(seen_outer, expected_outer);
        assert_eq!(seen_inner, expected_inner);
        let all_equal = |tensors: &[Tensor], value: f32| -> Result<bool> {
            Ok(host(tensors)?.iter().flatten().all(|&x| x == value))
        };
        assert!(all_equal(outer.gradients(), 2.0)?);
        assert!(all_equal(inner.gradients(), 3.0)?);
        Ok(())
    }

    /// On the CPU a visit of `f32` gradients gets the buffers' own memory; a model in `f64`
    /// has its gradients staged as `f32` and written back. Either way the writes stay.
    #[test]
    fn cpu_gradients_are_visited_in_place_and_others_staged() -> Result<()> {
        for double in [false, true] {
            let (mut model, _) = tied_model()?;
            if double {
                for gradient in model.gradients_mut() {
                    *gradient = gradient.f_to_kind(Kind::Double)?;
                }
            }
            let addresses: Vec<usize> = model
                .gradients()
                .iter()
                .map(|gradient| gradient.data_ptr() as usize)
                .collect();
            let mut visited = Vec::new();
            visit_gradients(&mut model, &mut |group, gradient| {
                visited.push(gradient.as_ptr() as usize == addresses[group]);
                gradient.fill(group as f32 - 0.25);
            })?;
            assert_eq!(visited, vec![!double; addresses.len()]);
            for (group, gradient) in model.gradients().iter().enumerate() {
                assert_eq!(
                    gradient.f_kind()?,
                    if double { Kind::Double } else { Kind::Float }
                );
                let mut values = Vec::new();
                download(gradient, &mut values)?;
                assert!(values.iter().all(|&value| value == group as f32 - 0.25));
            }
        }
        Ok(())
    }

    #[test]
    fn the_backward_pass_goes_down_the_chain_one_segment_at_a_time() -> Result<()> {
        let (model, batch) = tied_model()?;
        let forward = RecordedForward::run(&model, &batch, Precision::F32)?;
        // Uses: fc1, shared, shared, fc2. Of the cuts after each of the seven links, those
        // after the Tanh that follows a Linear remain (the one after the Linear itself has
        // no use between them), and none after fc2, the last use.
        let cut_uses: Vec<usize> = forward.cuts.iter().map(|cut| cut.records).collect();
        assert_eq!(cut_uses, [1, 2, 3]);
        // One backward pass to every output, for comparison.
        let probes: Vec<&Tensor> = forward.uses.iter().map(|u| &u.probe).collect();
        let total = forward.losses.f_sum(Kind::Float)?;
        let expected = Tensor::f_run_backward(&[total], &probes, true, false)?;
        let mut visits = Vec::new();
        forward.backward_by_layer(&model, |layer, captures| {
            visits.push((layer, captures));
            Ok(())
        })?;
        // fc2 first, the tied layer once both its uses have their gradients (merged into one
        // capture over two positions), fc1 last.
        let order: Vec<(usize, Vec<i64>)> = visits
            .iter()
            .map(|(layer, captures)| (*layer, captures[0].output_gradient.size()))
            .collect();
        assert_eq!(
            order,
            [(2, vec![5, 2]), (1, vec![5, 2, 4]), (0, vec![5, 4])]
        );
        let tied = Tensor::f_stack(&[&expected[1], &expected[2]], 1)?;
        for (layer, expected) in [(2, &expected[3]), (1, &tied), (0, &expected[0])] {
            let (_, captures) = &visits[2 - layer];
            let difference = captures[0]
                .output_gradient
                .f_sub(expected)?
                .f_abs()?
                .f_max()?
                .f_double_value(&[])?;
            assert!(difference <= 1e-6, "layer {layer}: difference {difference}");
        }
        Ok(())
    }

    /// A module listing two Linear layers that uses only the first.
    #[derive(Debug)]
    struct FirstOnly {
        used: crate::Linear,
        unused: crate::Linear,
    }

    impl crate::DpModule for FirstOnly {
        fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
            self.used.forward_dp(xs, context)
        }

        fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
            vec![&self.used, &self.unused]
        }
    }

    #[test]
    fn a_layer_without_uses_has_zero_norms_and_no_clipped_sum() -> anyhow::Result<()> {
        use dp_engine::PerSampleGradEngine;
        let store = nn::VarStore::new(Device::Cpu);
        let root = store.root();
        let module = FirstOnly {
            used: linear(&(&root / "used"), 3, 2, LinearConfig::default())?,
            unused: linear(&(&root / "unused"), 3, 2, LinearConfig::default())?,
        };
        let mut model = DpModel::new(&store, module, Loss::CrossEntropy)?;
        let batch = TensorBatch::new(
            Tensor::f_randn([4, 3], (Kind::Float, Device::Cpu))?,
            Tensor::from_slice(&[0_i64, 1, 1, 0]),
        )?;
        fn check(
            engine: &mut impl PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
            model: &mut DpModel,
            batch: &TensorBatch,
        ) -> anyhow::Result<()> {
            let norms = engine.norms(model, batch)?.norms;
            for example in 0..4 {
                let row = norms.row(example);
                assert!(row[0] > 0.0 && row[1] > 0.0, "used layer: {row:?}");
                assert_eq!(&row[2..], [0.0, 0.0], "unused layer");
            }
            engine.zero_grad(model);
            engine.accumulate_scaled(model, &ScaleVector::new(vec![1.0; 4])?)?;
            assert!(
                model.gradients()[0]
                    .f_abs()?
                    .f_sum(Kind::Float)?
                    .f_double_value(&[])?
                    > 0.0
            );
            for unused in &model.gradients()[2..] {
                assert_eq!(
                    unused.f_abs()?.f_sum(Kind::Float)?.f_double_value(&[])?,
                    0.0
                );
            }
            Ok(())
        }
        check(&mut BookKeeping::new(), &mut model, &batch)?;
        check(&mut Ghost::new(), &mut model, &batch)?;
        Ok(())
    }

    #[test]
    fn a_module_that_is_no_chain_is_one_segment() -> Result<()> {
        let store = nn::VarStore::new(Device::Cpu);
        let module = Residual::new(linear(
            &(&store.root() / "fc"),
            3,
            3,
            LinearConfig::default(),
        )?);
        let model = DpModel::new(&store, module, Loss::MeanSquaredError)?;
        let inputs = Tensor::f_randn([4, 3], (Kind::Float, Device::Cpu))?;
        let batch = TensorBatch::new(inputs.shallow_clone(), inputs)?;
        let forward = RecordedForward::run(&model, &batch, Precision::F32)?;
        assert_eq!(forward.uses.len(), 1);
        assert!(forward.cuts.is_empty());
        Ok(())
    }

    #[test]
    fn bf16_storage_rounds_floating_captures_and_keeps_token_indices() -> Result<()> {
        let (model, batch) = token_model()?;
        let (_, full) =
            RecordedForward::run(&model, &batch, Precision::F32)?.into_captures(&model)?;
        assert_eq!(
            capture_kinds(&full)?,
            [(Kind::Int64, Kind::Float), (Kind::Float, Kind::Float)]
        );
        let (_, reduced) =
            RecordedForward::run(&model, &batch, Precision::Bf16)?.into_captures(&model)?;
        assert_eq!(
            capture_kinds(&reduced)?,
            [
                (Kind::Int64, Kind::BFloat16),
                (Kind::BFloat16, Kind::BFloat16)
            ]
        );
        // The stored values are the f32 ones rounded: widened back, they agree to bf16's
        // precision (relative error at most 2^-9 per value).
        for (full, reduced) in full.iter().flatten().zip(reduced.iter().flatten()) {
            let widened = reduced.widened(Kind::Float)?;
            let error = widened
                .output_gradient
                .f_sub(&full.output_gradient)?
                .f_abs()?
                .f_le_tensor(&full.output_gradient.f_abs()?.f_mul_scalar(1.0 / 256.0)?)?
                .f_all()?
                .f_int64_value(&[])?;
            assert_eq!(
                error, 1,
                "output gradients differ by more than bf16 rounding"
            );
        }
        Ok(())
    }

    #[test]
    fn bf16_storage_converts_a_shared_input_once() -> Result<()> {
        let store = nn::VarStore::new(Device::Cpu);
        let root = store.root();
        let config = AttentionConfig {
            num_heads: 1,
            causal: false,
            bias: true,
        };
        let module = Sequential::new()
            .add(linear(&(&root / "fc"), 3, 4, LinearConfig::default())?)
            .add(multi_head_attention(&(&root / "attention"), 4, config)?);
        let model = DpModel::new(&store, module, Loss::MeanSquaredError)?;
        let batch = TensorBatch::new(
            Tensor::f_randn([2, 5, 3], (Kind::Float, Device::Cpu))?,
            Tensor::f_randn([2, 5, 4], (Kind::Float, Device::Cpu))?,
        )?;
        let (_, captures) =
            RecordedForward::run(&model, &batch, Precision::Bf16)?.into_captures(&model)?;
        // Layers: fc (the batch's own input, kept as is), then the query, key, value and
        // output projections; the first three share fc's output, converted once.
        let inputs: Vec<&Tensor> = captures.iter().map(|c| &c[0].input).collect();
        let kinds = inputs
            .iter()
            .map(|input| input.f_kind())
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(
            kinds,
            [
                Kind::Float,
                Kind::BFloat16,
                Kind::BFloat16,
                Kind::BFloat16,
                Kind::BFloat16
            ]
        );
        assert_eq!(inputs[0].data_ptr(), batch.inputs().data_ptr());
        assert_eq!(inputs[1].data_ptr(), inputs[2].data_ptr());
        assert_eq!(inputs[1].data_ptr(), inputs[3].data_ptr());
        assert_ne!(inputs[1].data_ptr(), inputs[4].data_ptr());
        Ok(())
    }

    /// The pass that keeps the graph (the ghost engine's) leaves the inputs as the graph holds
    /// them; the output gradients arrive in bfloat16.
    #[test]
    fn bf16_probes_keep_inputs_shared() -> Result<()> {
        let (model, batch) = token_model()?;
        let forward = RecordedForward::run(&model, &batch, Precision::Bf16)?;
        let mut captures = Vec::new();
        forward.backward_by_layer(&model, |_, layer_captures| {
            captures.insert(0, layer_captures);
            Ok(())
        })?;
        assert_eq!(
            capture_kinds(&captures)?,
            [(Kind::Int64, Kind::BFloat16), (Kind::Float, Kind::BFloat16)]
        );
        Ok(())
    }
}
