//! Book-keeping (Bu et al. 2023): one backward pass, norms and clipped sum from the tape.

use super::{
    EmptyTape, Keep, LayerTape, RecordedForward, clipped_sum, device_scales, norm_matrix,
    norms_by_layer, phase_one,
};
use crate::batch::{TensorBatch, to_host_f64};
use crate::{DpModel, NormCosts, Precision};
use dp_engine::{EngineError, PerSampleGradEngine, PerSampleNorms, ScaleVector};

/// How [`BookKeeping`] obtains each layer's per-sample norms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NormChoice {
    /// Per layer, the cheaper of ghost norm and materialized norm ([`NormCosts`]): ghost when
    /// its two `T × T` Gram matrices are smaller than the per-sample gradient, `2T² < pd`
    /// (Bu, Mao and Xu 2022).
    #[default]
    ByCost,
    /// The ghost norm wherever a layer has one.
    Ghost,
    /// Materialized per-sample gradients everywhere.
    Materialized,
}

impl NormChoice {
    fn use_ghost(self, costs: &NormCosts) -> bool {
        match self {
            Self::ByCost => costs.prefers_ghost(),
            Self::Ghost => costs.ghost.is_some(),
            Self::Materialized => false,
        }
    }
}

/// Book-keeping (Bu, Wang, Zha, Karypis 2023, "Differentially private optimization on large
/// model at small cost").
///
/// Phase 1: one recorded forward pass and one backward pass to the layer outputs (no parameter
/// gradients), per-sample norms per layer by ghost norm or materialized norm, whichever writes
/// less ([`NormChoice::ByCost`]). Phase 2: the clipped sum, with no second backward pass: from
/// the stored activations and scaled output gradients (for a Linear layer `(s ⊙ G)ᵀ A`), or,
/// for a layer whose per-sample gradients were materialized for its norm and take no more
/// memory than its activations and output gradients, as their weighted sum (those are then
/// kept instead of the activations, and their norms are taken as soon as the backward pass has
/// the layer's output gradients, so that its activations and output gradients are freed
/// during it). Larger per-sample gradients are dropped once their norm is taken, so the tape
/// never holds more than the activations and output gradients and memory stays near the
/// non-private step's whatever the layer sizes. On the benchmark transformer, whose layer
/// norms' captures are freed that way and whose backward pass lets go of each block's input
/// as it passes it, the step peaks at 1.15x the non-private step's memory (1.30x when every
/// capture was held to the end of the backward pass).
///
/// With [`Precision::Bf16`] ([`BookKeeping::with_precision`]) the tape's output gradients
/// arrive in bfloat16 during the backward pass and each layer input is converted to bfloat16
/// once the backward pass has passed its layer (and the graph let go of the f32 original),
/// halving what the engine keeps on top of autograd; norms and the clipped sum are computed
/// from those values widened back to f32, one layer at a time, so both read the same rounded
/// inputs.
#[derive(Debug, Default)]
pub struct BookKeeping {
    choice: NormChoice,
    precision: Precision,
    tape: Option<BookKeepingTape>,
}

#[derive(Debug)]
struct BookKeepingTape {
    batch: usize,
    /// What phase 2 needs of every layer of [`DpModel::layers`].
    layers: Vec<LayerTape>,
}

impl EmptyTape for BookKeepingTape {
    fn empty() -> Self {
        Self {
            batch: 0,
            layers: Vec::new(),
        }
    }
}

impl BookKeeping {
    /// An engine that chooses per layer by cost.
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine with a fixed [`NormChoice`].
    pub fn with_norm_choice(choice: NormChoice) -> Self {
        Self {
            choice,
            ..Self::default()
        }
    }

    /// The engine storing its tape (layer inputs and output gradients) in `precision`.
    #[must_use]
    pub fn with_precision(self, precision: Precision) -> Self {
        Self { precision, ..self }
    }

    /// The precision the tape is stored in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// How the engine obtains each layer's norms.
    pub fn norm_choice(&self) -> NormChoice {
        self.choice
    }
}

impl PerSampleGradEngine for BookKeeping {
    type Model = DpModel;
    type Batch = TensorBatch;

    fn norms(
        &mut self,
        model: &DpModel,
        batch: &TensorBatch,
    ) -> Result<PerSampleNorms, EngineError> {
        let (precision, choice) = (self.precision, self.choice);
        phase_one(&mut self.tape, model, batch, |size| {
            let mut forward = RecordedForward::run(model, batch, precision)?;
            let (squared, layers) = norms_by_layer(model, &mut forward, Keep::Tapes, |costs| {
                choice.use_ghost(costs)
            })?;
            let norms = norm_matrix(size, &squared)?;
            let losses = to_host_f64(&forward.losses.detach())?;
            let tape = BookKeepingTape {
                batch: size,
                layers,
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
        if tape.batch == 0 {
            return Ok(());
        }
        Ok(clipped_sum(model, &tape.layers, &scales)?)
    }

    super::shared_engine_methods!();
}
