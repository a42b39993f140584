//! The two-phase per-sample gradient engine trait.

use crate::{EngineError, ParameterGroup, ParameterView, PerSampleNorms, ScaleVector};

/// A batch of examples, each example being one privacy unit.
///
/// An example may consist of several rows ("views", for augmentation multiplicity): its loss is
/// the mean of its views' losses and its per-sample gradient is the gradient of that mean.
pub trait ExampleBatch {
    /// Number of examples (privacy units) in the batch.
    fn num_examples(&self) -> usize;
}

/// A data set from which batches are gathered by example index.
///
/// The data set size is stated by the source, never inferred from a loader: samplers need it.
pub trait ExampleSource {
    /// The batch type produced.
    type Batch: ExampleBatch;

    /// Number of examples in the data set.
    fn num_examples(&self) -> usize;

    /// The batch of the given examples, in the given order (may be empty).
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if an index is out of range.
    fn gather(&self, indices: &[usize]) -> Result<Self::Batch, EngineError>;
}

/// An engine that computes per-sample gradients of a model in two phases.
///
/// 1. [`norms`](Self::norms): one forward and backward pass over the batch; returns each example's
///    loss and its gradient norm per parameter group. The engine may keep a tape (activations,
///    output gradients) for phase 2.
/// 2. [`accumulate_scaled`](Self::accumulate_scaled): **adds** sum_i s_i g_i to the gradient
///    buffers, where g_i is example i's gradient from the last `norms` call. Methods that never
///    materialize g_i (ghost clipping, book-keeping) fit this contract.
///
/// Gradient buffers are summed, never averaged: the trainer divides by the expected batch size.
/// The trainer adds noise through [`visit_gradients`](Self::visit_gradients) and runs optimizers
/// through [`visit_parameters`](Self::visit_parameters). Nothing here names a tensor library:
/// models and batches are associated types, and an engine whose tensors live on an accelerator
/// may stage both through host memory.
///
/// # Privacy
///
/// The sensitivity argument of DP-SGD relies on three properties that every engine must have and
/// that `dp-engine-testkit` checks: g_i depends on example i alone (no layer mixes examples); the
/// reported norms are the norms of the g_i actually summed; a scale of 0 removes example i exactly.
pub trait PerSampleGradEngine {
    /// The model whose parameters and gradient buffers the engine reads and writes.
    type Model;
    /// The batch type the model consumes.
    type Batch: ExampleBatch;

    /// The model's parameter groups, in a fixed order (the columns of the norm matrix).
    fn parameter_groups(&self, model: &Self::Model) -> Vec<ParameterGroup>;

    /// Phase 1: per-sample losses and per-sample, per-group gradient norms.
    ///
    /// # Errors
    ///
    /// If the batch does not fit the model (shape, labels) or the backend fails.
    fn norms(
        &mut self,
        model: &Self::Model,
        batch: &Self::Batch,
    ) -> Result<PerSampleNorms, EngineError>;

    /// Phase 2: adds sum_i s_i · g_i to the gradient buffers (group k of g_i scaled by s_ik for
    /// per-group scales), g_i from the last
    /// [`norms`](Self::norms) call. May be called several times on the same tape; the tape is
    /// invalid once the parameters change.
    ///
    /// # Errors
    ///
    /// [`EngineError::MissingTape`] without a preceding `norms`; [`EngineError::ShapeMismatch`] if
    /// `scales` does not fit that batch (see [`ScaleVector::check_shape`]).
    fn accumulate_scaled(
        &mut self,
        model: &mut Self::Model,
        scales: &ScaleVector,
    ) -> Result<(), EngineError>;

    /// Non-private path: adds the sum of the batch's gradients to the gradient buffers in one
    /// pass, without per-sample work, and returns the per-example losses.
    ///
    /// # Errors
    ///
    /// If the batch does not fit the model or the backend fails.
    fn batch_gradient(
        &mut self,
        model: &mut Self::Model,
        batch: &Self::Batch,
    ) -> Result<Vec<f64>, EngineError>;

    /// Sets every gradient buffer to zero.
    fn zero_grad(&mut self, model: &mut Self::Model);

    /// Calls `visit` once per parameter group, in the order of
    /// [`parameter_groups`](Self::parameter_groups), with mutable access to values and gradient.
    ///
    /// # Errors
    ///
    /// If the backend cannot expose or write back the buffers.
    fn visit_parameters(
        &mut self,
        model: &mut Self::Model,
        visit: &mut dyn FnMut(ParameterView<'_>),
    ) -> Result<(), EngineError>;

    /// Calls `visit(group, gradient)` once per parameter group, in the order of
    /// [`parameter_groups`](Self::parameter_groups), with mutable access to the gradient buffer
    /// alone: for noise and scaling, which never read the values. The default goes through
    /// [`visit_parameters`](Self::visit_parameters); an engine that stages buffers through host
    /// memory overrides it to move the gradients only.
    ///
    /// # Errors
    ///
    /// If the backend cannot expose or write back the buffers.
    fn visit_gradients(
        &mut self,
        model: &mut Self::Model,
        visit: &mut dyn FnMut(usize, &mut [f32]),
    ) -> Result<(), EngineError> {
        self.visit_parameters(model, &mut |view| visit(view.group, view.gradient))
    }
}
