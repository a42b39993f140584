//! Per-sample gradients from captured activations and output gradients.

use dp_engine::{EngineError, PerSampleGradEngine, PerSampleNorms, ScaleVector};

use super::{PerSampleTape, RecordedForward, materialize, norm_matrix, phase_one, squared_norms};
use crate::batch::{TensorBatch, to_host_f64};
use crate::{DpModel, Precision};
use tch::Tensor;

/// Per-sample gradients by the layers' formulas (einsum for Linear, unfold for convolutions,
/// index-add for Embedding, the affine parameters of the norms) from one recorded forward pass
/// and one backward pass to the layer outputs; kept between the two phases.
///
/// Memory grows with batch × parameters; [`crate::BookKeeping`] avoids that.
#[derive(Debug, Default)]
pub struct Materialized {
    tape: Option<PerSampleTape>,
}

impl Materialized {
    /// An engine with no tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// The per-sample gradients of the last [`norms`](PerSampleGradEngine::norms) call, one
    /// tensor per parameter group in [`DpModel::parameters`] order, shaped
    /// `[batch, *parameter shape]` (what Opacus calls `grad_sample`): example i's gradient of
    /// its own loss, before any clipping.
    ///
    /// # Errors
    ///
    /// [`EngineError::MissingTape`] before the first `norms` call or after a failed one, and a
    /// backend error when `model`'s parameters do not have the sizes of that call's model
    /// (`model` only gives the shapes; the values come from the tape).
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_engine::PerSampleGradEngine;
    /// use dp_engine_tch::{DpModel, LinearConfig, Loss, Materialized, TensorBatch, linear};
    /// use tch::{Device, Kind, Tensor, nn};
    ///
    /// let store = nn::VarStore::new(Device::Cpu);
    /// let layer = linear(&(&store.root() / "fc"), 4, 3, LinearConfig::default())?;
    /// let model = DpModel::new(&store, layer, Loss::CrossEntropy)?;
    /// let batch = TensorBatch::new(
    ///     Tensor::randn([5, 4], (Kind::Float, Device::Cpu)),
    ///     Tensor::from_slice(&[0_i64, 1, 2, 0, 1]),
    /// )?;
    /// let mut engine = Materialized::new();
    /// engine.norms(&model, &batch)?;
    /// let per_sample = engine.per_sample_gradients(&model)?;
    /// assert_eq!(per_sample[0].size(), [5, 3, 4]); // fc.weight
    /// assert_eq!(per_sample[1].size(), [5, 3]); // fc.bias
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn per_sample_gradients(&self, model: &DpModel) -> Result<Vec<Tensor>, EngineError> {
        let tape = self.tape.as_ref().ok_or(EngineError::MissingTape)?;
        Ok(tape.gradients(model)?)
    }
}

impl PerSampleGradEngine for Materialized {
    type Model = DpModel;
    type Batch = TensorBatch;

    fn norms(
        &mut self,
        model: &DpModel,
        batch: &TensorBatch,
    ) -> Result<PerSampleNorms, EngineError> {
        phase_one(&mut self.tape, model, batch, |size| {
            let (losses, captures) =
                RecordedForward::run(model, batch, Precision::F32)?.into_captures(model)?;
            let per_sample = materialize(model, &captures, losses.size()[0])?;
            let norms = norm_matrix(size, &squared_norms(&per_sample)?)?;
            let losses = to_host_f64(&losses)?;
            let tape = PerSampleTape {
                batch: size,
                per_sample,
            };
            Ok((PerSampleNorms { losses, norms }, tape))
        })
    }

    fn accumulate_scaled(
        &mut self,
        model: &mut DpModel,
        scales: &ScaleVector,
    ) -> Result<(), EngineError> {
        self.tape
            .as_ref()
            .ok_or(EngineError::MissingTape)?
            .accumulate(model, scales)
    }

    super::shared_engine_methods!();
}
