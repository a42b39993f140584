//! Ghost clipping (Li et al. 2021): norms without per-sample gradients, then a second backward.

use dp_engine::{EngineError, PerSampleGradEngine, PerSampleNorms, ScaleVector};
use tch::{Kind, Tensor};

use super::{
    DeviceScales, EmptyTape, Keep, LayerTape, RecordedForward, add_layer_clipped_sum,
    buffers_by_layer, defined_or_zeros, device_scales, norm_matrix, norms_by_layer, phase_one,
};
use crate::batch::{TensorBatch, to_host_f64};
use crate::{DpModel, NormCosts, Precision, Result};

/// Ghost clipping (Li et al. 2021, "Large language models can be strong differentially private
/// learners").
///
/// Phase 1: one recorded forward pass, one backward pass to the layer outputs (graph kept), and
/// per-sample norms from activations and output gradients without forming per-sample gradients:
/// for a Linear layer over a sequence, ||sum_t g_t a_tᵀ||² = sum_{t,s} (a_t·a_s)(g_t·g_s).
/// The backward pass goes down the model's chain ([`crate::DpModule::chain`], the links of a
/// [`crate::Sequential`]) one link at a time, and each layer's norms are taken, and its output
/// gradients freed, as soon as its link is done: output gradients are held for one link at a
/// time, not for the whole model (a transformer's blocks each are links, so its step peaks at
/// 1.20x the non-private step's memory instead of 1.66x when all were held at once).
/// Layers without a ghost formula (the norms' affine parameters), and layers whose per-sample
/// gradient is smaller than the ghost norm's Gram matrices (convolutions over many positions:
/// mixed ghost clipping, Bu, Mao and Xu 2022, [`NormCosts`]), are materialized, one layer at a
/// time. Phase 2: a second backward pass of sum_i s_i L_i through the kept graph.
/// Per-group scales (per-layer clipping) cannot be expressed as one reweighted loss; for them
/// phase 2 recomputes the output gradients (one more backward pass to the layer outputs, link
/// by link as in phase 1) and takes the clipped sum from them and the activations. The tape
/// keeps the graph but no output gradient, so phase 2's backward pass does not run on top of
/// them.
///
/// With [`Precision::Bf16`] ([`Ghost::with_precision`]) the output gradients are stored in
/// bfloat16 (half the bytes); the layer inputs are the graph's own saved tensors and stay
/// shared (a bfloat16 copy would add memory, not save it). Phase 2
/// then always takes the second way (output gradients recomputed, clipped sum from them), so
/// that norms and clipped sum come from the same rounded values and the clipping bound holds
/// exactly; the reweighted backward pass would clip the exact gradients by factors computed from
/// rounded norms.
#[derive(Debug, Default)]
pub struct Ghost {
    precision: Precision,
    tape: Option<GhostTape>,
}

#[derive(Debug)]
struct GhostTape {
    batch: usize,
    /// The recorded forward pass with its graph (absent for an empty batch).
    forward: Option<RecordedForward>,
}

impl EmptyTape for GhostTape {
    fn empty() -> Self {
        Self {
            batch: 0,
            forward: None,
        }
    }
}

impl Ghost {
    /// An engine with no tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// The engine storing the output gradients it computes in `precision`.
    #[must_use]
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    /// The precision the output gradients are stored in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    fn reweighted_backward(model: &mut DpModel, losses: &Tensor, scales: &Tensor) -> Result<()> {
        let reweighted = losses.f_mul(scales)?.f_sum(Kind::Float)?;
        let parameters: Vec<&Tensor> = model.parameters().iter().map(|p| &p.tensor).collect();
        let gradients = Tensor::f_run_backward(&[reweighted], &parameters, true, false)?;
        let gradients = gradients
            .into_iter()
            .zip(&parameters)
            .map(|(gradient, parameter)| defined_or_zeros(gradient, parameter))
            .collect::<Result<Vec<_>>>()?;
        model.add_to_gradients(&gradients)
    }

    /// The clipped sum from output gradients recomputed through the kept graph, one layer at a
    /// time as the segmented backward pass delivers them.
    fn clipped_sum_by_layer(
        model: &DpModel,
        forward: &RecordedForward,
        scales: &DeviceScales,
    ) -> Result<()> {
        let layers = model.layers();
        let layer_scales = scales.per_layer(model);
        let mut buffers = buffers_by_layer(model);
        forward.backward_by_layer(model, |position, captures| {
            add_layer_clipped_sum(
                layers[position],
                &LayerTape::Captures(captures),
                layer_scales[position],
                &mut buffers[position],
            )
        })
    }
}

impl PerSampleGradEngine for Ghost {
    type Model = DpModel;
    type Batch = TensorBatch;

    fn norms(
        &mut self,
        model: &DpModel,
        batch: &TensorBatch,
    ) -> Result<PerSampleNorms, EngineError> {
        let precision = self.precision;
        phase_one(&mut self.tape, model, batch, |size| {
            let mut forward = RecordedForward::run(model, batch, precision)?;
            let (squared, _) =
                norms_by_layer(model, &mut forward, Keep::Graph, NormCosts::prefers_ghost)?;
            let norms = norm_matrix(size, &squared)?;
            let losses = to_host_f64(&forward.losses.detach())?;
            let tape = GhostTape {
                batch: size,
                forward: Some(forward),
            };
            Ok((PerSampleNorms { losses, norms }, tape))
        })
    }

    fn accumulate_scaled(
        &mut self,
        model: &mut DpModel,
        scales: &ScaleVector,
    ) -> Result<(), EngineError> {
        let tape = self.tape.as_ref().ok_or(EngineError::MissingTape)?;
        let scales = device_scales(scales, tape.batch, model.parameters().len(), model.device())?;
        match (&tape.forward, &scales.per_example, self.precision) {
            (None, _, _) => Ok(()),
            (Some(forward), Some(per_example), Precision::F32) => Ok(Self::reweighted_backward(
                model,
                &forward.losses,
                per_example,
            )?),
            (Some(forward), _, _) => Ok(Self::clipped_sum_by_layer(model, forward, &scales)?),
        }
    }

    super::shared_engine_methods!();
}
