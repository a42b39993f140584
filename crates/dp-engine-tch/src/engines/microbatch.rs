//! One backward pass per example: the reference.

use dp_engine::{EngineError, ExampleBatch, PerSampleGradEngine, PerSampleNorms, ScaleVector};
use tch::{Kind, Tensor};

use super::{PerSampleTape, defined_or_zeros, norm_matrix, phase_one, squared_norms};
use crate::batch::{TensorBatch, to_host_f64};
use crate::layers::ForwardContext;
use crate::{DpModel, Result};

/// Per-sample gradients by one forward and backward pass per example.
///
/// Slow (a batch of B costs B small passes) but correct by construction for any model: the
/// reference every other engine is tested against.
///
/// # Examples
///
/// ```
/// use dp_engine::{PerSampleGradEngine, ScaleVector};
/// use dp_engine_tch::{DpModel, LinearConfig, Loss, Microbatch, TensorBatch, linear};
/// use tch::{Device, Kind, Tensor, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let model_layer = linear(&(&store.root() / "fc"), 4, 3, LinearConfig::default())?;
/// let mut model = DpModel::new(&store, model_layer, Loss::CrossEntropy)?;
/// let batch = TensorBatch::new(
///     Tensor::randn([5, 4], (Kind::Float, Device::Cpu)),
///     Tensor::from_slice(&[0_i64, 1, 2, 0, 1]),
/// )?;
/// let mut engine = Microbatch::new();
/// let phase1 = engine.norms(&model, &batch)?;
/// assert_eq!(phase1.norms.num_examples(), 5);
/// engine.accumulate_scaled(&mut model, &ScaleVector::ones(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Microbatch {
    tape: Option<PerSampleTape>,
}

impl Microbatch {
    /// An engine with no tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// As [`Materialized::per_sample_gradients`](crate::Materialized::per_sample_gradients),
    /// from one backward pass per example: the reference for the other engines' formulas.
    ///
    /// # Errors
    ///
    /// As [`Materialized::per_sample_gradients`](crate::Materialized::per_sample_gradients).
    pub fn per_sample_gradients(&self, model: &DpModel) -> Result<Vec<Tensor>, EngineError> {
        let tape = self.tape.as_ref().ok_or(EngineError::MissingTape)?;
        Ok(tape.gradients(model)?)
    }

    fn per_sample(model: &DpModel, batch: &TensorBatch) -> Result<(Vec<f64>, Vec<Tensor>)> {
        let parameters: Vec<&Tensor> = model.parameters().iter().map(|p| &p.tensor).collect();
        let size = i64::try_from(batch.num_examples()).unwrap_or(i64::MAX);
        let mut losses = Vec::with_capacity(batch.num_examples());
        let mut per_group: Vec<Vec<Tensor>> = parameters.iter().map(|_| Vec::new()).collect();
        for example in 0..size {
            let (inputs, targets) = batch.example(example)?;
            let mut context = ForwardContext::new(model.is_training());
            let loss = model.losses(&inputs, &targets, &mut context)?;
            let total = loss.f_sum(Kind::Float)?;
            let gradients = Tensor::f_run_backward(&[&total], &parameters, false, false)?;
            for ((group, gradient), parameter) in
                per_group.iter_mut().zip(gradients).zip(&parameters)
            {
                group.push(defined_or_zeros(gradient, parameter)?.f_reshape([-1])?);
            }
            losses.extend(to_host_f64(&total.f_detach()?)?);
        }
        let stacked = per_group
            .iter()
            .map(|group| Ok(Tensor::f_stack(group, 0)?))
            .collect::<Result<Vec<_>>>()?;
        Ok((losses, stacked))
    }
}

impl PerSampleGradEngine for Microbatch {
    type Model = DpModel;
    type Batch = TensorBatch;

    fn norms(
        &mut self,
        model: &DpModel,
        batch: &TensorBatch,
    ) -> Result<PerSampleNorms, EngineError> {
        phase_one(&mut self.tape, model, batch, |size| {
            let (losses, per_sample) = Self::per_sample(model, batch)?;
            let norms = norm_matrix(size, &squared_norms(&per_sample)?)?;
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
