//! One forward and backward pass that records what book-keeping needs: each Linear layer's
//! input activations and the gradients of the loss with respect to its outputs.

use crate::{Batch, Mlp};
use dp_engine::{EngineError, ExampleBatch};
use ndarray::{Array2, ArrayView2, Axis, Slice, linalg::general_mat_mul};
use rayon::prelude::*;

/// Activations and output gradients of one batch.
pub(crate) struct Tape {
    /// Input to each Linear layer (rows x in_features).
    pub(crate) inputs: Vec<Array2<f32>>,
    /// Gradient of the summed per-example losses with respect to each layer's output
    /// (rows x out_features). Row r belongs to example r / views.
    pub(crate) output_grads: Vec<Array2<f32>>,
    /// Loss of each example (mean over its views).
    pub(crate) losses: Vec<f64>,
    /// Rows per example.
    pub(crate) views: usize,
}

impl Tape {
    pub(crate) fn num_examples(&self) -> usize {
        self.losses.len()
    }

    /// The rows of example `example` in layer `layer`: (activations, output gradients).
    pub(crate) fn example_rows(
        &self,
        layer: usize,
        example: usize,
    ) -> (ArrayView2<'_, f32>, ArrayView2<'_, f32>) {
        let rows = Slice::from(example * self.views..(example + 1) * self.views);
        (
            self.inputs[layer].slice_axis(Axis(0), rows),
            self.output_grads[layer].slice_axis(Axis(0), rows),
        )
    }
}

/// Forward and backward pass of softmax cross-entropy, summed over examples, each example's loss
/// being the mean over its views.
pub(crate) fn forward_backward(model: &Mlp, batch: &Batch) -> Result<Tape, EngineError> {
    let num_classes = model.num_classes();
    if let Some((row, &label)) = batch
        .labels()
        .iter()
        .enumerate()
        .find(|(_, l)| **l >= num_classes)
    {
        return Err(EngineError::InvalidLabel {
            example: row / batch.views_per_example(),
            label,
            num_classes,
        });
    }
    if batch.features().ncols() != model.in_features() {
        return Err(EngineError::ShapeMismatch {
            what: "feature columns",
            expected: model.in_features(),
            actual: batch.features().ncols(),
        });
    }
    let views = batch.views_per_example();
    let mut inputs = Vec::with_capacity(model.layers.len());
    let mut current = batch.features().clone();
    for (index, layer) in model.layers.iter().enumerate() {
        let mut out = layer.forward(current.view());
        if index + 1 < model.layers.len() {
            model.activation.apply(&mut out);
        }
        inputs.push(current);
        current = out;
    }
    let (row_losses, mut grad) = softmax_cross_entropy(current, batch.labels(), views);
    let losses = row_losses
        .chunks(views)
        .map(|chunk| chunk.iter().sum::<f64>() / views as f64)
        .collect::<Vec<_>>();
    debug_assert_eq!(losses.len(), batch.num_examples());
    let mut output_grads = Vec::with_capacity(model.layers.len());
    for index in (0..model.layers.len()).rev() {
        let back = (index > 0).then(|| {
            let mut back = grad.dot(&model.layers[index].weight.t());
            model.activation.backprop(&mut back, &inputs[index]);
            back
        });
        output_grads.push(grad);
        match back {
            Some(back) => grad = back,
            None => break,
        }
    }
    output_grads.reverse();
    Ok(Tape {
        inputs,
        output_grads,
        losses,
        views,
    })
}

/// Per-row losses and d(sum of example losses)/d(logits), i.e. (softmax - one_hot) / views.
fn softmax_cross_entropy(
    mut logits: Array2<f32>,
    labels: &[usize],
    views: usize,
) -> (Vec<f64>, Array2<f32>) {
    let weight = 1.0 / views as f32;
    let losses = logits
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(labels.par_iter())
        .map(|(mut row, &label)| {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let total: f32 = row.sum();
            let loss = f64::from(total.ln()) - f64::from(row[label].ln());
            row.mapv_inplace(|v| v / total * weight);
            row[label] -= weight;
            loss
        })
        .collect();
    (losses, logits)
}

/// `out += a^T b`, split over column blocks of `out` in parallel.
pub(crate) fn add_transposed_product(
    out: &mut Array2<f32>,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
) {
    let chunk = out.ncols().div_ceil(rayon::current_num_threads()).max(16);
    out.axis_chunks_iter_mut(Axis(1), chunk)
        .into_par_iter()
        .zip(b.axis_chunks_iter(Axis(1), chunk).into_par_iter())
        .for_each(|(mut out_block, b_block)| {
            general_mat_mul(1.0, &a.t(), &b_block, 1.0, &mut out_block);
        });
}
