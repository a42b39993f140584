//! Multi-head self-attention built from four DP Linear layers.

use tch::{Tensor, nn};

use super::linear::positive;
use super::{DpLayer, DpModule, ForwardContext, Linear, LinearConfig, linear};
use crate::{Result, TchEngineError};

/// Options of [`multi_head_attention`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionConfig {
    /// Number of heads; must divide the embedding dimension.
    pub num_heads: i64,
    /// Whether position t attends only to positions up to t (a causal mask).
    pub causal: bool,
    /// Whether the four projections have biases.
    pub bias: bool,
}

/// Multi-head self-attention (Vaswani et al. 2017) on `[batch, T, embed_dim]`: query, key and
/// value projections, scaled dot-product attention per head, output projection.
///
/// The projections are DP [`Linear`] layers over sequences, so every engine handles them with
/// the Linear formulas; the attention itself has no parameters and mixes positions of one
/// example only, never examples.
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    embed_dim: i64,
    num_heads: i64,
    causal: bool,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
}

/// A multi-head self-attention layer with its projections at `path / "query"`, `"key"`,
/// `"value"` and `"output"` (each a [`linear`] `embed_dim -> embed_dim`).
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for a non-positive size or a head count that does not
/// divide `embed_dim`; libtorch errors.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::{AttentionConfig, DpModule, multi_head_attention};
/// use tch::{Device, Kind, Tensor, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let config = AttentionConfig { num_heads: 2, causal: true, bias: true };
/// let attention = multi_head_attention(&(&store.root() / "attention"), 8, config)?;
/// let output = attention.forward(&Tensor::randn([3, 5, 8], (Kind::Float, Device::Cpu)))?;
/// assert_eq!(output.size(), [3, 5, 8]);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
pub fn multi_head_attention(
    path: &nn::Path<'_>,
    embed_dim: i64,
    config: AttentionConfig,
) -> Result<MultiHeadAttention> {
    positive("embed_dim", embed_dim)?;
    positive("num_heads", config.num_heads)?;
    if embed_dim % config.num_heads != 0 {
        return Err(TchEngineError::InvalidParameter {
            name: "num_heads",
            value: config.num_heads.to_string(),
            reason: "must divide embed_dim",
        });
    }
    let projection = |name: &str| {
        linear(
            &(path / name),
            embed_dim,
            embed_dim,
            LinearConfig { bias: config.bias },
        )
    };
    Ok(MultiHeadAttention {
        embed_dim,
        num_heads: config.num_heads,
        causal: config.causal,
        query: projection("query")?,
        key: projection("key")?,
        value: projection("value")?,
        output: projection("output")?,
    })
}

impl MultiHeadAttention {
    /// `[batch, T, embed_dim]` -> `[batch, heads, T, head_dim]`.
    fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let size = xs.size();
        let (batch, time) = (size[0], size[1]);
        Ok(xs
            .f_reshape([batch, time, self.num_heads, self.embed_dim / self.num_heads])?
            .f_transpose(1, 2)?)
    }
}

impl DpModule for MultiHeadAttention {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let size = xs.size();
        if size.len() != 3 || size[2] != self.embed_dim {
            return Err(TchEngineError::Shape {
                what: "attention input",
                expected: "[batch, T, embed_dim]",
                actual: size,
            });
        }
        let query = self.split_heads(&self.query.forward_dp(xs, context)?)?;
        let key = self.split_heads(&self.key.forward_dp(xs, context)?)?;
        let value = self.split_heads(&self.value.forward_dp(xs, context)?)?;
        let attended = Tensor::f_scaled_dot_product_attention(
            &query,
            &key,
            &value,
            None::<&Tensor>,
            0.0,
            self.causal,
            None,
            false,
        )?;
        let merged = attended
            .f_transpose(1, 2)?
            .f_reshape([size[0], size[1], self.embed_dim])?;
        self.output.forward_dp(&merged, context)
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        vec![&self.query, &self.key, &self.value, &self.output]
    }
}
