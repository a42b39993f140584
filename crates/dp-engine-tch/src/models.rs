//! Reference architectures used by the examples, benchmarks and experiments.

use tch::{Kind, Tensor, nn};

use crate::layers::{DpLayer, DpModule, ForwardContext};
use crate::{
    AttentionConfig, ConvConfig, Embedding, Function, LinearConfig, NormConfig, RecurrentConfig,
    Residual, Result, Sequential, TchEngineError, conv2d, embedding, layer_norm, linear, lstm,
    multi_head_attention,
};

/// The MNIST CNN of the Opacus example (`[batch, 1, 28, 28]` -> 10 logits): conv 1->16 k8 s2
/// p3, ReLU, max-pool 2 s1, conv 16->32 k4 s2, ReLU, max-pool 2 s1, flatten, fc 512->32, ReLU,
/// fc 32->10.
///
/// # Errors
///
/// libtorch errors.
pub fn mnist_cnn(path: &nn::Path<'_>) -> Result<Sequential> {
    let pool = Function::MaxPool2d {
        kernel_size: 2,
        stride: 1,
    };
    let first = ConvConfig {
        stride: 2,
        padding: 3,
        ..ConvConfig::default()
    };
    let second = ConvConfig {
        stride: 2,
        ..ConvConfig::default()
    };
    Ok(Sequential::new()
        .add(conv2d(&(path / "conv1"), 1, 16, 8, first)?)
        .add(Function::Relu)
        .add(pool)
        .add(conv2d(&(path / "conv2"), 16, 32, 4, second)?)
        .add(Function::Relu)
        .add(pool)
        .add(Function::Flatten)
        .add(linear(
            &(path / "fc1"),
            32 * 4 * 4,
            32,
            LinearConfig::default(),
        )?)
        .add(Function::Relu)
        .add(linear(&(path / "fc2"), 32, 10, LinearConfig::default())?))
}

/// A ReLU multi-layer perceptron with the given widths (`[784, 256, 10]`: one hidden layer),
/// layers at `path / "fc{i}"`.
///
/// # Errors
///
/// [`crate::TchEngineError::InvalidParameter`] for fewer than two widths or a non-positive
/// width; libtorch errors.
pub fn mlp(path: &nn::Path<'_>, widths: &[i64]) -> Result<Sequential> {
    if widths.len() < 2 {
        return Err(TchEngineError::InvalidParameter {
            name: "widths",
            value: format!("{widths:?}"),
            reason: "needs an input and an output width",
        });
    }
    let mut module = Sequential::new();
    for (index, pair) in widths.windows(2).enumerate() {
        if index > 0 {
            module = module.add(Function::Relu);
        }
        module = module.add(linear(
            &(path / format!("fc{index}")),
            pair[0],
            pair[1],
            LinearConfig::default(),
        )?);
    }
    Ok(module)
}

/// Sizes of [`transformer_encoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransformerConfig {
    /// Number of distinct tokens (input indices and output classes).
    pub vocabulary: i64,
    /// Longest sequence (rows of the position embedding).
    pub max_length: i64,
    /// Width of the residual stream.
    pub model_dim: i64,
    /// Attention heads per block (must divide `model_dim`).
    pub num_heads: i64,
    /// Number of encoder blocks.
    pub num_layers: usize,
    /// Hidden width of each block's MLP.
    pub mlp_dim: i64,
    /// Whether attention is causal (a language model) or sees the whole sequence.
    pub causal: bool,
}

impl TransformerConfig {
    /// The benchmark's encoder: 2 blocks, width 128, 4 heads, MLP 512, sequences up to 64,
    /// causal.
    pub fn reference(vocabulary: i64) -> Self {
        Self {
            vocabulary,
            max_length: 64,
            model_dim: 128,
            num_heads: 4,
            num_layers: 2,
            mlp_dim: 512,
            causal: true,
        }
    }
}

/// Token embedding plus learned position embedding: indices `[batch, T]` (int64, `T` at most
/// the table's length) -> `[batch, T, dim]`. Both tables are DP [`Embedding`]s (the positions
/// are looked up like tokens), tables at `path / "tokens"` and `path / "positions"`.
#[derive(Clone, Debug)]
pub struct TokenAndPositionEmbedding {
    tokens: Embedding,
    positions: Embedding,
    max_length: i64,
}

impl TokenAndPositionEmbedding {
    /// Tables `[vocabulary, dim]` and `[max_length, dim]`.
    ///
    /// # Errors
    ///
    /// [`TchEngineError::InvalidParameter`] for non-positive sizes; libtorch errors.
    pub fn new(path: &nn::Path<'_>, vocabulary: i64, max_length: i64, dim: i64) -> Result<Self> {
        Ok(Self {
            tokens: embedding(&(path / "tokens"), vocabulary, dim)?,
            positions: embedding(&(path / "positions"), max_length, dim)?,
            max_length,
        })
    }
}

impl DpModule for TokenAndPositionEmbedding {
    fn forward_dp(&self, xs: &Tensor, context: &mut ForwardContext) -> Result<Tensor> {
        let size = xs.size();
        if size.len() != 2 || size[1] > self.max_length {
            return Err(TchEngineError::Shape {
                what: "token indices",
                expected: "[batch, T] with T at most the position table's length",
                actual: size,
            });
        }
        let positions = Tensor::f_arange(size[1], (Kind::Int64, xs.device()))?
            .f_unsqueeze(0)?
            .f_expand(size.as_slice(), false)?
            .f_contiguous()?;
        let tokens = self.tokens.forward_dp(xs, context)?;
        Ok(tokens.f_add(&self.positions.forward_dp(&positions, context)?)?)
    }

    fn parameterized_layers(&self) -> Vec<&dyn DpLayer> {
        vec![&self.tokens, &self.positions]
    }
}

/// One pre-norm transformer encoder block on `[batch, T, model_dim]` (Vaswani et al. 2017,
/// with LayerNorm before each sub-layer as in GPT-2): `h = x + attention(norm1(x))`, then
/// `h + fc2(gelu(fc1(norm2(h))))`. Layers at `path / "norm1"`, `"attention"`, `"norm2"`,
/// `"fc1"`, `"fc2"`.
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for invalid sizes; libtorch errors.
pub fn transformer_encoder_block(
    path: &nn::Path<'_>,
    model_dim: i64,
    attention: AttentionConfig,
    mlp_dim: i64,
) -> Result<Sequential> {
    let norm = |name: &str| layer_norm(&(path / name), vec![model_dim], NormConfig::default());
    let attention_part = Sequential::new()
        .add(norm("norm1")?)
        .add(multi_head_attention(
            &(path / "attention"),
            model_dim,
            attention,
        )?);
    let mlp_part = Sequential::new()
        .add(norm("norm2")?)
        .add(linear(
            &(path / "fc1"),
            model_dim,
            mlp_dim,
            LinearConfig::default(),
        )?)
        .add(Function::Gelu)
        .add(linear(
            &(path / "fc2"),
            mlp_dim,
            model_dim,
            LinearConfig::default(),
        )?);
    Ok(Sequential::new()
        .add(Residual::new(attention_part))
        .add(Residual::new(mlp_part)))
}

/// A transformer encoder over token sequences: [`TokenAndPositionEmbedding`] at
/// `path / "embedding"`, `num_layers` [`transformer_encoder_block`]s at `path / "block{i}"`, a
/// final LayerNorm and a Linear head to `vocabulary` logits at every position: indices
/// `[batch, T]` -> `[batch, T, vocabulary]`.
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for invalid sizes; libtorch errors.
///
/// # Examples
///
/// ```
/// use dp_engine_tch::models::{TransformerConfig, transformer_encoder};
/// use dp_engine_tch::{DpModel, Loss};
/// use tch::{Device, nn};
///
/// let store = nn::VarStore::new(Device::Cpu);
/// let config = TransformerConfig { model_dim: 16, mlp_dim: 32, ..TransformerConfig::reference(20) };
/// let model = DpModel::new(&store, transformer_encoder(&store.root(), &config)?, Loss::CrossEntropy)?;
/// // Per block: 2 norms x 2, 4 projections x 2, 2 MLP layers x 2; plus 2 tables, norm, head.
/// assert_eq!(model.parameters().len(), 2 * 16 + 2 + 2 + 2);
/// # Ok::<(), dp_engine_tch::TchEngineError>(())
/// ```
pub fn transformer_encoder(path: &nn::Path<'_>, config: &TransformerConfig) -> Result<Sequential> {
    let mut module = Sequential::new().add(TokenAndPositionEmbedding::new(
        &(path / "embedding"),
        config.vocabulary,
        config.max_length,
        config.model_dim,
    )?);
    let attention = AttentionConfig {
        num_heads: config.num_heads,
        causal: config.causal,
        bias: true,
    };
    for index in 0..config.num_layers {
        module = module.add(transformer_encoder_block(
            &(path / format!("block{index}")),
            config.model_dim,
            attention,
            config.mlp_dim,
        )?);
    }
    Ok(module
        .add(layer_norm(
            &(path / "norm"),
            vec![config.model_dim],
            NormConfig::default(),
        )?)
        .add(linear(
            &(path / "head"),
            config.model_dim,
            config.vocabulary,
            LinearConfig::default(),
        )?))
}

/// Sizes of [`char_lstm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CharLstmConfig {
    /// Number of distinct characters (input indices and output classes).
    pub vocabulary: i64,
    /// Width of the character embedding.
    pub embedding_dim: i64,
    /// Hidden size of the LSTM.
    pub hidden_size: i64,
}

impl CharLstmConfig {
    /// The benchmark's character model: embedding 64, hidden 128.
    pub fn reference(vocabulary: i64) -> Self {
        Self {
            vocabulary,
            embedding_dim: 64,
            hidden_size: 128,
        }
    }
}

/// A character language model: embedding at `path / "embedding"`, one [`lstm`] layer at
/// `path / "lstm"`, Linear head at `path / "head"`: indices `[batch, T]` ->
/// `[batch, T, vocabulary]` logits (the next character at every position).
///
/// # Errors
///
/// [`TchEngineError::InvalidParameter`] for non-positive sizes; libtorch errors.
pub fn char_lstm(path: &nn::Path<'_>, config: &CharLstmConfig) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(embedding(
            &(path / "embedding"),
            config.vocabulary,
            config.embedding_dim,
        )?)
        .add(lstm(
            &(path / "lstm"),
            config.embedding_dim,
            config.hidden_size,
            RecurrentConfig::default(),
        )?)
        .add(linear(
            &(path / "head"),
            config.hidden_size,
            config.vocabulary,
            LinearConfig::default(),
        )?))
}
