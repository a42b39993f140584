//! Random models of every layer type, for the conformance tests.

#![allow(dead_code)] // Each test binary uses part of this module.

use std::cell::RefCell;

use dp_engine_tch::{
    AttentionConfig, ConvConfig, DpModel, Function, LinearConfig, Loss, NormConfig,
    RecurrentConfig, Sequential, TensorBatch, conv1d, conv2d, embedding, group_norm, gru,
    layer_norm, linear, lstm, models, multi_head_attention, rms_norm,
};
use dp_engine_testkit::{ConformanceFixture, SplitMix64};
use tch::{Device, Kind, Tensor, nn};

/// The device of the tests: CUDA when available unless `DP_RS_DEVICE=cpu`.
pub fn device() -> Device {
    match std::env::var("DP_RS_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

/// The layer type a random model exercises (each ends in a Linear classifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Linear, ReLU, Linear on `[batch, features]`.
    Mlp,
    /// Linear, Tanh, Linear on sequences `[batch, T, features]`, a loss per position.
    SequenceLinear,
    /// Conv2d with random stride, padding, dilation and groups, then pooling and Linear.
    Conv2d,
    /// Conv1d with random stride, padding, dilation and groups.
    Conv1d,
    /// Embedding over token sequences (repeated tokens), Linear per position.
    Embedding,
    /// Linear, LayerNorm, ReLU, Linear on sequences.
    LayerNorm,
    /// Linear, RMSNorm, Tanh, Linear on sequences.
    RmsNorm,
    /// Conv2d, GroupNorm, ReLU, Linear.
    GroupNorm,
    /// One Linear layer applied twice (tied parameters).
    TiedLinear,
    /// Linear, multi-head self-attention (random heads, causal or not), Tanh, Linear on
    /// sequences.
    Attention,
    /// A small transformer encoder (`models::transformer_encoder`) over token sequences.
    Transformer,
    /// One or two stacked LSTM layers on sequences, Linear per position.
    Lstm,
    /// One or two stacked GRU layers on sequences, Linear per position.
    Gru,
    /// A small character LSTM (`models::char_lstm`) over token sequences.
    CharLstm,
}

impl ModelKind {
    /// Every kind.
    pub const ALL: [Self; 14] = [
        Self::Mlp,
        Self::SequenceLinear,
        Self::Conv2d,
        Self::Conv1d,
        Self::Embedding,
        Self::LayerNorm,
        Self::RmsNorm,
        Self::GroupNorm,
        Self::TiedLinear,
        Self::Attention,
        Self::Transformer,
        Self::Lstm,
        Self::Gru,
        Self::CharLstm,
    ];
}

/// What a batch for the last built model looks like.
#[derive(Clone, Debug, Default)]
struct InputSpec {
    /// Input shape after the batch dimension.
    shape: Vec<i64>,
    /// Token inputs in `0..vocabulary` instead of Gaussian features.
    vocabulary: Option<i64>,
    /// Target shape after the batch dimension (class indices in `0..classes`).
    target_shape: Vec<i64>,
    classes: i64,
}

/// A conformance fixture: random models of one [`ModelKind`], the engine from `make_engine`.
pub struct Fixture<E> {
    kind: ModelKind,
    make_engine: fn() -> E,
    /// The input specification of the model built last: the suite asks for a model, then for
    /// batches that fit it.
    last_spec: RefCell<InputSpec>,
}

impl<E> Fixture<E> {
    /// A fixture for `kind`.
    pub fn new(kind: ModelKind, make_engine: fn() -> E) -> Self {
        Self {
            kind,
            make_engine,
            last_spec: RefCell::new(InputSpec::default()),
        }
    }
}

fn between(rng: &mut SplitMix64, low: i64, high: i64) -> i64 {
    low + rng.below((high - low + 1) as usize) as i64
}

fn conv_config(rng: &mut SplitMix64, groups: i64) -> ConvConfig {
    ConvConfig {
        stride: between(rng, 1, 2),
        padding: between(rng, 0, 2),
        dilation: between(rng, 1, 2),
        groups,
        bias: rng.below(4) != 0,
    }
}

fn output_size(input: i64, kernel: i64, config: &ConvConfig) -> i64 {
    (input + 2 * config.padding - config.dilation * (kernel - 1) - 1) / config.stride + 1
}

/// A random model of `kind` on `device` and the inputs it takes.
fn build(kind: ModelKind, seed: u64, device: Device) -> anyhow::Result<(DpModel, InputSpec)> {
    tch::manual_seed(seed as i64);
    let mut rng = SplitMix64::new(seed.wrapping_mul(0x5851_F42D_4C95_7F2D) ^ 0xA5);
    let store = nn::VarStore::new(device);
    let root = store.root();
    let classes = between(&mut rng, 2, 5);
    let hidden = between(&mut rng, 3, 9);
    let bias = LinearConfig {
        bias: rng.below(4) != 0,
    };
    let (module, spec) = match kind {
        ModelKind::Mlp | ModelKind::SequenceLinear | ModelKind::LayerNorm | ModelKind::RmsNorm => {
            let features = between(&mut rng, 2, 8);
            let time = if kind == ModelKind::Mlp {
                None
            } else {
                Some(between(&mut rng, 1, 5))
            };
            let mut module =
                Sequential::new().add(linear(&(&root / "fc1"), features, hidden, bias)?);
            if kind == ModelKind::LayerNorm {
                module = module.add(layer_norm(
                    &(&root / "norm"),
                    vec![hidden],
                    NormConfig::default(),
                )?);
                // Non-trivial affine parameters, so their gradients are not special.
                perturb(&store)?;
            }
            if kind == ModelKind::RmsNorm {
                module = module.add(rms_norm(
                    &(&root / "norm"),
                    vec![hidden],
                    NormConfig::default(),
                )?);
                perturb(&store)?;
            }
            let module = module
                .add(if kind == ModelKind::Mlp {
                    Function::Relu
                } else {
                    Function::Tanh
                })
                .add(linear(
                    &(&root / "fc2"),
                    hidden,
                    classes,
                    LinearConfig::default(),
                )?);
            let (shape, target_shape) = match time {
                Some(time) => (vec![time, features], vec![time]),
                None => (vec![features], Vec::new()),
            };
            (
                module,
                InputSpec {
                    shape,
                    vocabulary: None,
                    target_shape,
                    classes,
                },
            )
        }
        ModelKind::Conv2d | ModelKind::GroupNorm => {
            let groups = between(&mut rng, 1, 2);
            let in_channels = groups * between(&mut rng, 1, 2);
            let out_channels = groups * between(&mut rng, 1, 3);
            let kernel = between(&mut rng, 1, 3);
            let config = conv_config(&mut rng, groups);
            let size = between(&mut rng, 5, 8);
            let out = output_size(size, kernel, &config);
            let mut module = Sequential::new().add(conv2d(
                &(&root / "conv"),
                in_channels,
                out_channels,
                kernel,
                config,
            )?);
            if kind == ModelKind::GroupNorm {
                module = module.add(group_norm(
                    &(&root / "norm"),
                    groups,
                    out_channels,
                    NormConfig::default(),
                )?);
                perturb(&store)?;
            }
            let module = module
                .add(Function::Relu)
                .add(Function::MaxPool2d {
                    kernel_size: 2,
                    stride: 1,
                })
                .add(Function::Flatten)
                .add(linear(
                    &(&root / "fc"),
                    out_channels * (out - 1) * (out - 1),
                    classes,
                    LinearConfig::default(),
                )?);
            (
                module,
                InputSpec {
                    shape: vec![in_channels, size, size],
                    vocabulary: None,
                    target_shape: Vec::new(),
                    classes,
                },
            )
        }
        ModelKind::Conv1d => {
            let groups = between(&mut rng, 1, 2);
            let in_channels = groups * between(&mut rng, 1, 2);
            let out_channels = groups * between(&mut rng, 1, 3);
            let kernel = between(&mut rng, 1, 3);
            let config = conv_config(&mut rng, groups);
            let length = between(&mut rng, 5, 9);
            let out = output_size(length, kernel, &config);
            let module = Sequential::new()
                .add(conv1d(
                    &(&root / "conv"),
                    in_channels,
                    out_channels,
                    kernel,
                    config,
                )?)
                .add(Function::Gelu)
                .add(Function::Flatten)
                .add(linear(
                    &(&root / "fc"),
                    out_channels * out,
                    classes,
                    LinearConfig::default(),
                )?);
            (
                module,
                InputSpec {
                    shape: vec![in_channels, length],
                    vocabulary: None,
                    target_shape: Vec::new(),
                    classes,
                },
            )
        }
        ModelKind::Embedding => {
            let vocabulary = between(&mut rng, 2, 6);
            let time = between(&mut rng, 1, 6);
            let module = Sequential::new()
                .add(embedding(&(&root / "embedding"), vocabulary, hidden)?)
                .add(Function::Tanh)
                .add(linear(
                    &(&root / "fc"),
                    hidden,
                    classes,
                    LinearConfig::default(),
                )?);
            (
                module,
                InputSpec {
                    shape: vec![time],
                    vocabulary: Some(vocabulary),
                    target_shape: vec![time],
                    classes,
                },
            )
        }
        ModelKind::TiedLinear => {
            let features = between(&mut rng, 2, 6);
            let shared = linear(&(&root / "shared"), hidden, hidden, bias)?;
            let module = Sequential::new()
                .add(linear(
                    &(&root / "fc1"),
                    features,
                    hidden,
                    LinearConfig::default(),
                )?)
                .add(Function::Tanh)
                .add(shared.clone())
                .add(Function::Tanh)
                .add(shared)
                .add(Function::Tanh)
                .add(linear(
                    &(&root / "fc2"),
                    hidden,
                    classes,
                    LinearConfig::default(),
                )?);
            (
                module,
                InputSpec {
                    shape: vec![features],
                    vocabulary: None,
                    target_shape: Vec::new(),
                    classes,
                },
            )
        }
        ModelKind::Attention => {
            let features = between(&mut rng, 2, 6);
            let time = between(&mut rng, 1, 5);
            let config = AttentionConfig {
                num_heads: between(&mut rng, 1, 2),
                causal: rng.below(2) == 0,
                bias: bias.bias,
            };
            let width = config.num_heads * between(&mut rng, 1, 3);
            let module = Sequential::new()
                .add(linear(
                    &(&root / "fc1"),
                    features,
                    width,
                    LinearConfig::default(),
                )?)
                .add(multi_head_attention(&(&root / "attention"), width, config)?)
                .add(Function::Tanh)
                .add(linear(
                    &(&root / "fc2"),
                    width,
                    classes,
                    LinearConfig::default(),
                )?);
            (module, sequence_spec(vec![time, features], time, classes))
        }
        ModelKind::Transformer => {
            let num_heads = between(&mut rng, 1, 2);
            let time = between(&mut rng, 1, 5);
            let config = models::TransformerConfig {
                vocabulary: classes,
                max_length: time + between(&mut rng, 0, 2),
                model_dim: num_heads * between(&mut rng, 1, 3),
                num_heads,
                num_layers: between(&mut rng, 1, 2) as usize,
                mlp_dim: between(&mut rng, 2, 6),
                causal: rng.below(2) == 0,
            };
            let module = models::transformer_encoder(&root, &config)?;
            perturb(&store)?;
            let mut spec = sequence_spec(vec![time], time, classes);
            spec.vocabulary = Some(classes);
            (module, spec)
        }
        ModelKind::Lstm | ModelKind::Gru => {
            let features = between(&mut rng, 1, 5);
            let time = between(&mut rng, 1, 5);
            let config = RecurrentConfig { bias: bias.bias };
            let recurrent = if kind == ModelKind::Lstm { lstm } else { gru };
            let mut module =
                Sequential::new().add(recurrent(&(&root / "rnn0"), features, hidden, config)?);
            if rng.below(2) == 0 {
                module = module.add(recurrent(&(&root / "rnn1"), hidden, hidden, config)?);
            }
            let module = module.add(linear(
                &(&root / "fc"),
                hidden,
                classes,
                LinearConfig::default(),
            )?);
            (module, sequence_spec(vec![time, features], time, classes))
        }
        ModelKind::CharLstm => {
            let time = between(&mut rng, 1, 5);
            let config = models::CharLstmConfig {
                vocabulary: classes,
                embedding_dim: between(&mut rng, 2, 5),
                hidden_size: hidden,
            };
            let mut spec = sequence_spec(vec![time], time, classes);
            spec.vocabulary = Some(classes);
            (models::char_lstm(&root, &config)?, spec)
        }
    };
    Ok((DpModel::new(&store, module, Loss::CrossEntropy)?, spec))
}

/// Gaussian sequences of `shape`, a class per position.
fn sequence_spec(shape: Vec<i64>, time: i64, classes: i64) -> InputSpec {
    InputSpec {
        shape,
        vocabulary: None,
        target_shape: vec![time],
        classes,
    }
}

/// Moves every variable away from its initial value (LayerNorm scale 1 and shift 0 would hide
/// mistakes in their formulas).
fn perturb(store: &nn::VarStore) -> anyhow::Result<()> {
    tch::no_grad(|| -> anyhow::Result<()> {
        for mut variable in store.trainable_variables() {
            let noise = variable.f_randn_like()?.f_mul_scalar(0.3)?;
            let _ = variable.f_add_(&noise)?;
        }
        Ok(())
    })
}

fn random_batch(
    spec: &InputSpec,
    size: i64,
    seed: u64,
    device: Device,
) -> anyhow::Result<TensorBatch> {
    tch::manual_seed(seed as i64);
    let mut shape = vec![size];
    shape.extend(&spec.shape);
    let inputs = match spec.vocabulary {
        Some(vocabulary) => Tensor::f_randint(vocabulary, shape.as_slice(), (Kind::Int64, device))?,
        None => Tensor::f_randn(shape.as_slice(), (Kind::Float, device))?,
    };
    let mut target_shape = vec![size];
    target_shape.extend(&spec.target_shape);
    let targets = Tensor::f_randint(spec.classes, target_shape.as_slice(), (Kind::Int64, device))?;
    Ok(TensorBatch::new(inputs, targets)?)
}

impl<E> ConformanceFixture for Fixture<E>
where
    E: dp_engine::PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    type Model = DpModel;
    type Batch = TensorBatch;
    type Engine = E;
    type Reference = dp_engine_tch::Microbatch;

    fn engine(&self) -> E {
        (self.make_engine)()
    }

    fn reference(&self) -> Self::Reference {
        dp_engine_tch::Microbatch::new()
    }

    fn random_model(&self, seed: u64) -> DpModel {
        let (model, spec) = build(self.kind, seed, device()).expect("fixture models are valid");
        *self.last_spec.borrow_mut() = spec;
        model
    }

    fn random_batch(&self, _model: &DpModel, num_examples: usize, seed: u64) -> TensorBatch {
        random_batch(
            &self.last_spec.borrow(),
            num_examples as i64,
            seed,
            device(),
        )
        .expect("fixture batches are valid")
    }

    fn replace_example(
        &self,
        _model: &DpModel,
        batch: &TensorBatch,
        index: usize,
        seed: u64,
    ) -> TensorBatch {
        let replacement = random_batch(&self.last_spec.borrow(), 1, seed ^ 0xDEAD, device())
            .expect("fixture batches are valid");
        let index = Tensor::from_slice(&[index as i64]).to_device(device());
        let replace = |all: &Tensor, one: &Tensor| all.index_copy(0, &index, one);
        TensorBatch::new(
            replace(batch.inputs(), replacement.inputs()),
            replace(batch.targets(), replacement.targets()),
        )
        .expect("same shapes")
    }
}
