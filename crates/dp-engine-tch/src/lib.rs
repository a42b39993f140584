//! Per-sample gradient engines for DP-SGD over libtorch, through the `tch` crate.
//!
//! This is the only crate of the workspace that names `tch`; it is not a default member, so
//! plain `cargo build` and `cargo test` never need libtorch (`cargo xtask test` provisions it).
//!
//! - **Layers** ([`linear`], [`conv1d`], [`conv2d`], [`embedding`], [`layer_norm`],
//!   [`group_norm`], [`rms_norm`], [`Function`], [`Sequential`], [`Residual`]): built on a
//!   `tch::nn::Path` like `tch::nn`, each recording its input and output during the engines'
//!   forward pass. Composite layers built from DP Linear layers: [`multi_head_attention`],
//!   [`lstm`], [`gru`]. Reference architectures in [`models`].
//! - **Model** ([`DpModel`]): a module, its per-example [`Loss`] and gradient buffers, checked by
//!   [`validate`] (BatchNorm and layers without per-sample formulas are refused).
//! - **Engines**, implementing `dp_engine::PerSampleGradEngine`: [`Microbatch`] (one backward
//!   per example, the reference), [`Materialized`], [`Ghost`] (Li et al. 2021) and
//!   [`BookKeeping`] (Bu et al. 2023). Every engine reports norms per parameter group (one
//!   group per weight or bias tensor), so per-layer clipping works with all of them.
//!   [`Microbatch`] and [`Materialized`] also hand out the per-sample gradients themselves
//!   ([`Materialized::per_sample_gradients`], `[batch, *parameter shape]` per parameter).
//!
//! - **Mixed precision** ([`Precision`]): [`BookKeeping`] and [`Ghost`] can store what they keep
//!   on top of autograd (layer inputs and output gradients) in bfloat16
//!   (`BookKeeping::new().with_precision(Precision::Bf16)`), computing norms and clipped sums
//!   from those values widened back to f32; forward, backward and parameters stay in f32. On the
//!   benchmark char-LSTM this lowers book-keeping's peak step memory from 1.32x to 1.02x the
//!   non-private step's, at 20% to 50% more step time on CPU; on the benchmark transformer it
//!   saves little (1.14x against 1.15x in f32, where book-keeping already frees the layer
//!   norms' captures during the backward pass). Norms and updates agree with f32 to about 1e-3
//!   relative. [`Ghost`] needs no bfloat16 for memory: it holds output gradients one link of
//!   the model's chain at a time (1.20x on the transformer).
//!
//! Siblings: `dp-engine` (the trait), `dp-engine-testkit` (the conformance suite),
//! `dp-trainer` (the DP-SGD loop), `dp-engine-ndarray` (the pure-Rust engine).
//!
//! # Examples
//!
//! ```
//! use dp_engine::{PerSampleGradEngine, ScaleVector};
//! use dp_engine_tch::{BookKeeping, DpModel, Function, LinearConfig, Loss, Sequential, TensorBatch, linear};
//! use tch::{Device, Kind, Tensor, nn};
//!
//! let store = nn::VarStore::new(Device::Cpu);
//! let root = store.root();
//! let module = Sequential::new()
//!     .add(linear(&(&root / "fc1"), 4, 8, LinearConfig::default())?)
//!     .add(Function::Relu)
//!     .add(linear(&(&root / "fc2"), 8, 3, LinearConfig::default())?);
//! let mut model = DpModel::new(&store, module, Loss::CrossEntropy)?;
//! let batch = TensorBatch::new(
//!     Tensor::randn([6, 4], (Kind::Float, Device::Cpu)),
//!     Tensor::from_slice(&[0_i64, 1, 2, 0, 1, 2]),
//! )?;
//!
//! let mut engine = BookKeeping::new();
//! let phase1 = engine.norms(&model, &batch)?;
//! let max_grad_norm = 1.0;
//! let scales = phase1.norms.flat_norms().iter().map(|n| (max_grad_norm / n).min(1.0)).collect();
//! engine.accumulate_scaled(&mut model, &ScaleVector::new(scales)?)?;
//! assert_eq!(model.gradients().len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod engines;
mod error;
mod layers;
mod model;
pub mod models;
mod precision;

/// The `tch` this crate is built on, so that dependents need not name it (DESIGN.md section 2).
pub use tch;

pub use batch::{TensorBatch, TensorDataset};
pub use engines::{BookKeeping, Ghost, Materialized, Microbatch, NormChoice};
pub use error::{Result, TchEngineError};
pub use layers::{
    AttentionConfig, Capture, Conv, ConvConfig, DpLayer, DpModule, Embedding, ForwardContext,
    Function, GroupNorm, Gru, LayerId, LayerNorm, Linear, LinearConfig, Lstm, MultiHeadAttention,
    NamedParameter, Norm, NormConfig, NormCosts, Recurrent, RecurrentConfig, Residual, RmsNorm,
    Sequential, conv1d, conv2d, embedding, group_norm, gru, layer_norm, linear,
    linear_per_sample_weight_gradients, lstm, multi_head_attention, rms_norm,
};
pub use model::{DpModel, Loss, validate};
pub use precision::Precision;
