//! Per-sample gradients from captured activations and output gradients.

use dp_engine::{EngineError, PerSampleGradEngine, PerSampleNorms, ScaleVector};

use super::{PerSampleTape, RecordedForward, materialize, norm_matrix, phase_one, squared_norms};
use crate::batch::{TensorBatch, to_host_f64};
use crate::{DpModel, Precision};

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
