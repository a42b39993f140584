//! Embedding lookup with per-sample formulas through index-add.

use tch::{Kind, Tensor, nn};

use super::linear::positive;
use super::{
    Capture, DpLayer, DpModule, ForwardContext, LayerId, NamedParameter, NormCosts,
    accumulation_kind, buffer_of, scale_examples, scale_of, sequence_view,
};
use crate::Result;

/// Maps indices `[batch, ...]` (int64) to rows of a table `[num_embeddings, dim]`.
#[derive(Debug)]
pub struct Embedding {
    id: LayerId,
    num_embeddings: i64,
    dim: i64,
    weight: NamedParameter,
}

impl Clone for Embedding {
    /// A handle to the same layer: same identity, same parameters.
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            num_embeddings: self.num_embeddings,
            dim: self.dim,
            weight: self.weight.clone(),
        }
    }
}

/// An embedding table at `path / "weight"`, initialized N(0, 1) as `tch::nn::embedding`.
///
/// # Errors
///
/// [`crate::TchEngineError::InvalidParameter`] for non-positive sizes; libtorch errors.
pub fn embedding(path: &nn::Path<'_>, num_embeddings: i64, dim: i64) -> Result<Embedding> {
    positive("num_embeddings", num_embeddings)?;
    positive("dim", dim)?;
    let weight = path.f_randn_standard("weight", &[num_embeddings, dim])?;
    Ok(Embedding {
        id: LayerId::fresh(),
        num_embeddings,
        dim,
        weight: NamedParameter::new(path, "weight", &weight),
    })
}

impl Embedding {
    /// The table `[num_embeddings, dim]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight.tensor
    }

    /// Indices `[batch, T]` and output gradients `[batch, T, dim]` of all uses.
    fn sequences(&self, captures: &[Capture]) -> Result<(Tensor, Tensor)> {
        sequence_view(captures, None, self.dim)
    }
}

impl DpModule for Embedding {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let output = Tensor::f_embedding(&self.weight.tensor, xs, -1, false, false)?;
        context.record(self.id, xs, output)
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        vec![self]
    }
}

impl DpLayer for Embedding {
    fn id(&self) -> LayerId {
        self.id
    }

    fn parameters(&self) -> Vec<NamedParameter> {
        vec![self.weight.clone()]
    }

    fn per_sample_gradients(&self, captures: &[Capture]) -> Result<Vec<Tensor>> {
        let (indices, gradients) = self.sequences(captures)?;
        let batch = indices.size()[0];
        let device = indices.device();
        let offsets = Tensor::f_arange(batch, (Kind::Int64, device))?
            .f_mul_scalar(self.num_embeddings)?
            .f_unsqueeze(1)?;
        let rows = indices.f_add(&offsets)?.f_reshape([-1])?;
        let table = Tensor::f_zeros(
            [batch * self.num_embeddings, self.dim],
            (gradients.f_kind()?, device),
        )?;
        let per_sample = table.f_index_add(0, &rows, &gradients.f_reshape([-1, self.dim])?)?;
        Ok(vec![per_sample.f_reshape([batch, -1])?])
    }

    fn ghost_norms_squared(&self, captures: &[Capture]) -> Result<Option<Vec<Tensor>>> {
        let (indices, gradients) = self.sequences(captures)?;
        let kind = accumulation_kind(&gradients)?;
        let gradients = gradients.f_to_kind(kind)?;
        let same = indices
            .f_unsqueeze(2)?
            .f_eq_tensor(&indices.f_unsqueeze(1)?)?
            .f_to_kind(kind)?;
        let gram = gradients.f_bmm(&gradients.f_transpose(1, 2)?)?;
        Ok(Some(vec![same.f_mul(&gram)?.f_sum_dim_intlist(
            [1, 2].as_slice(),
            false,
            None::<Kind>,
        )?]))
    }

    fn norm_costs(&self, captures: &[Capture]) -> NormCosts {
        let positions: i64 = captures
            .iter()
            .map(|capture| capture.input.size().iter().skip(1).product::<i64>())
            .sum();
        let positions = positions as f64;
        let dim = self.dim as f64;
        NormCosts {
            ghost: Some(2.0 * positions * positions),
            materialized: self.num_embeddings as f64 * dim,
        }
    }

    fn add_weighted_gradients(
        &self,
        captures: &[Capture],
        scales: &[Tensor],
        gradients: &mut [Tensor],
    ) -> Result<()> {
        let (indices, output_gradients) = self.sequences(captures)?;
        let scaled = scale_examples(&output_gradients, scale_of(scales, 0)?)?;
        let table = buffer_of(gradients, 0)?;
        let rows = scaled
            .f_reshape([-1, self.dim])?
            .f_to_kind(table.f_kind()?)?;
        let _ = table.f_index_add_(0, &indices.f_reshape([-1])?, &rows)?;
        Ok(())
    }
}
