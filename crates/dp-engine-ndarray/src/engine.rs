//! The book-keeping engine and the per-example reference engine.

use crate::tape::{Tape, add_transposed_product, forward_backward};
use crate::{Batch, Mlp};
use dp_engine::{
    EngineError, ExampleBatch, NormMatrix, ParameterGroup, ParameterView, PerSampleGradEngine,
    PerSampleNorms, ScaleVector,
};
use ndarray::{Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

/// Exact per-sample gradients by book-keeping (Bu et al. 2023), without materializing them.
///
/// One forward and backward pass stores each Linear layer's inputs a and output gradients g.
/// Example i's weight gradient is a_i^T g_i, so its squared norm is ||a_i||² ||g_i||² for a
/// single row (and the Gram form sum_{t,s} (a_t·a_s)(g_t·g_s) over an example's views); the
/// bias gradient is sum_t g_t. The clipped sum is one weighted product a^T diag(s) g per layer.
/// Norms are computed in parallel over examples and products over column blocks (rayon).
///
/// # Examples
///
/// ```
/// use dp_engine::{PerSampleGradEngine, ScaleVector};
/// use dp_engine_ndarray::{Activation, Batch, BookKeepingEngine, Mlp};
/// use ndarray::array;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let mut model = Mlp::new(&[2, 4, 3], Activation::Tanh, &mut rng)?;
/// let batch = Batch::new(array![[0.5, -1.0], [2.0, 0.0]], vec![0, 2])?;
/// let mut engine = BookKeepingEngine::new();
/// let phase1 = engine.norms(&model, &batch)?;
/// assert_eq!(phase1.norms.num_examples(), 2);
/// assert_eq!(phase1.norms.num_groups(), 4);
/// engine.accumulate_scaled(&mut model, &ScaleVector::new(vec![1.0, 0.5])?)?;
/// # Ok::<(), dp_engine::EngineError>(())
/// ```
#[derive(Default)]
pub struct BookKeepingEngine {
    tape: Option<Tape>,
}

impl BookKeepingEngine {
    /// An engine with an empty tape.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for BookKeepingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookKeepingEngine")
            .field("has_tape", &self.tape.is_some())
            .finish()
    }
}

fn squared_norm(view: ArrayView2<'_, f32>) -> f64 {
    view.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

fn row_dot(x: ArrayView2<'_, f32>, t: usize, u: usize) -> f64 {
    x.row(t)
        .iter()
        .zip(x.row(u))
        .map(|(&p, &q)| f64::from(p) * f64::from(q))
        .sum()
}

/// Norm of a^T g without forming it: ||a||·||g|| for one row, the Gram form for several.
fn weight_gradient_norm(a: ArrayView2<'_, f32>, g: ArrayView2<'_, f32>) -> f64 {
    if a.nrows() == 1 {
        return (squared_norm(a) * squared_norm(g)).sqrt();
    }
    let mut total = 0.0;
    for t in 0..a.nrows() {
        for u in 0..a.nrows() {
            total += row_dot(a, t, u) * row_dot(g, t, u);
        }
    }
    total.max(0.0).sqrt()
}

fn bias_gradient_norm(g: ArrayView2<'_, f32>) -> f64 {
    g.sum_axis(Axis(0))
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
}

/// `g` with row r multiplied by `factor(r / views)`.
fn scale_rows(g: &Array2<f32>, views: usize, factor: impl Fn(usize) -> f64) -> Array2<f32> {
    let mut scaled = g.clone();
    for (row, mut values) in scaled.axis_iter_mut(Axis(0)).enumerate() {
        values *= factor(row / views) as f32;
    }
    scaled
}

/// Adds a^T g to every layer's weight gradient and the column sums of g to its bias gradient,
/// with each row of g weighted by its example's factor for that group, if scales are given.
fn accumulate_tape(model: &mut Mlp, tape: &Tape, scales: Option<&ScaleVector>) {
    for (l, (layer, (a, g))) in model
        .layers
        .iter_mut()
        .zip(tape.inputs.iter().zip(&tape.output_grads))
        .enumerate()
    {
        let Some(scales) = scales else {
            add_transposed_product(&mut layer.weight_grad, a.view(), g.view());
            layer.bias_grad += &g.sum_axis(Axis(0));
            continue;
        };
        let weight_scaled = scale_rows(g, tape.views, |i| scales.factor(i, 2 * l));
        add_transposed_product(&mut layer.weight_grad, a.view(), weight_scaled.view());
        if scales.num_groups().is_some() {
            let bias_scaled = scale_rows(g, tape.views, |i| scales.factor(i, 2 * l + 1));
            layer.bias_grad += &bias_scaled.sum_axis(Axis(0));
        } else {
            layer.bias_grad += &weight_scaled.sum_axis(Axis(0));
        }
    }
}

impl PerSampleGradEngine for BookKeepingEngine {
    type Model = Mlp;
    type Batch = Batch;

    fn parameter_groups(&self, model: &Mlp) -> Vec<ParameterGroup> {
        model.parameter_groups()
    }

    fn norms(&mut self, model: &Mlp, batch: &Batch) -> Result<PerSampleNorms, EngineError> {
        self.tape = None;
        let tape = forward_backward(model, batch)?;
        let num_layers = model.layers.len();
        let values: Vec<f64> = (0..tape.num_examples())
            .into_par_iter()
            .flat_map_iter(|i| {
                let tape = &tape;
                (0..num_layers).flat_map(move |l| {
                    let (a, g) = tape.example_rows(l, i);
                    [weight_gradient_norm(a, g), bias_gradient_norm(g)]
                })
            })
            .collect();
        let norms = NormMatrix::new(tape.num_examples(), 2 * num_layers, values)?;
        let losses = tape.losses.clone();
        self.tape = Some(tape);
        Ok(PerSampleNorms { losses, norms })
    }

    fn accumulate_scaled(
        &mut self,
        model: &mut Mlp,
        scales: &ScaleVector,
    ) -> Result<(), EngineError> {
        let tape = self.tape.as_ref().ok_or(EngineError::MissingTape)?;
        scales.check_shape(tape.num_examples(), 2 * model.layers.len())?;
        accumulate_tape(model, tape, Some(scales));
        Ok(())
    }

    fn batch_gradient(&mut self, model: &mut Mlp, batch: &Batch) -> Result<Vec<f64>, EngineError> {
        self.tape = None;
        let tape = forward_backward(model, batch)?;
        accumulate_tape(model, &tape, None);
        Ok(tape.losses)
    }

    fn zero_grad(&mut self, model: &mut Mlp) {
        model.zero_grad();
    }

    fn visit_parameters(
        &mut self,
        model: &mut Mlp,
        visit: &mut dyn FnMut(ParameterView<'_>),
    ) -> Result<(), EngineError> {
        model.visit_parameters(visit);
        Ok(())
    }
}

/// The slow reference: one forward and backward pass per example, with each per-sample gradient
/// materialized and its norm computed from the materialized values.
///
/// It shares no per-sample arithmetic with [`BookKeepingEngine`] (no norm identities, no weighted
/// products), so the two check each other in the conformance suite.
#[derive(Debug, Default)]
pub struct PerExampleReference {
    /// Per example, per parameter group, the flattened gradient.
    gradients: Option<Vec<Vec<Vec<f32>>>>,
}

impl PerExampleReference {
    /// A reference engine with no stored gradients.
    pub fn new() -> Self {
        Self::default()
    }

    /// The materialized gradient of each example of the batch, per parameter group.
    ///
    /// # Errors
    ///
    /// If the batch does not fit the model.
    pub fn per_sample_gradients(
        model: &Mlp,
        batch: &Batch,
    ) -> Result<Vec<Vec<Vec<f32>>>, EngineError> {
        let views = batch.views_per_example();
        (0..batch.num_examples())
            .into_par_iter()
            .map(|i| {
                let rows = Slice::from(i * views..(i + 1) * views);
                let single = Batch::with_views(
                    batch.features().slice_axis(Axis(0), rows).to_owned(),
                    batch.labels()[i * views..(i + 1) * views].to_vec(),
                    views,
                )?;
                let tape = forward_backward(model, &single)?;
                let mut groups = Vec::with_capacity(2 * model.layers.len());
                for (a, g) in tape.inputs.iter().zip(&tape.output_grads) {
                    let mut weight = Array2::<f32>::zeros((a.ncols(), g.ncols()));
                    for t in 0..a.nrows() {
                        for (p, &av) in a.row(t).iter().enumerate() {
                            for (q, &gv) in g.row(t).iter().enumerate() {
                                weight[[p, q]] += av * gv;
                            }
                        }
                    }
                    groups.push(weight.into_raw_vec_and_offset().0);
                    groups.push(g.sum_axis(Axis(0)).to_vec());
                }
                Ok(groups)
            })
            .collect()
    }
}

impl PerSampleGradEngine for PerExampleReference {
    type Model = Mlp;
    type Batch = Batch;

    fn parameter_groups(&self, model: &Mlp) -> Vec<ParameterGroup> {
        model.parameter_groups()
    }

    fn norms(&mut self, model: &Mlp, batch: &Batch) -> Result<PerSampleNorms, EngineError> {
        self.gradients = None;
        let gradients = Self::per_sample_gradients(model, batch)?;
        let num_groups = 2 * model.layers.len();
        let values = gradients
            .iter()
            .flat_map(|groups| {
                groups
                    .iter()
                    .map(|g| g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
            })
            .collect();
        let norms = NormMatrix::new(gradients.len(), num_groups, values)?;
        let losses = forward_backward(model, batch)?.losses;
        self.gradients = Some(gradients);
        Ok(PerSampleNorms { losses, norms })
    }

    fn accumulate_scaled(
        &mut self,
        model: &mut Mlp,
        scales: &ScaleVector,
    ) -> Result<(), EngineError> {
        let gradients = self.gradients.as_ref().ok_or(EngineError::MissingTape)?;
        scales.check_shape(gradients.len(), 2 * model.layers.len())?;
        for (i, example) in gradients.iter().enumerate() {
            model.visit_parameters(&mut |view| {
                let scale = scales.factor(i, view.group) as f32;
                for (buffer, &g) in view.gradient.iter_mut().zip(&example[view.group]) {
                    *buffer += scale * g;
                }
            });
        }
        Ok(())
    }

    fn batch_gradient(&mut self, model: &mut Mlp, batch: &Batch) -> Result<Vec<f64>, EngineError> {
        let phase1 = self.norms(model, batch)?;
        self.accumulate_scaled(model, &ScaleVector::ones(phase1.losses.len()))?;
        self.gradients = None;
        Ok(phase1.losses)
    }

    fn zero_grad(&mut self, model: &mut Mlp) {
        model.zero_grad();
    }

    fn visit_parameters(
        &mut self,
        model: &mut Mlp,
        visit: &mut dyn FnMut(ParameterView<'_>),
    ) -> Result<(), EngineError> {
        model.visit_parameters(visit);
        Ok(())
    }
}
