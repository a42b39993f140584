//! A pure-Rust per-sample gradient engine for dp-rs: multinomial logistic regression and MLPs
//! (Linear layers, ReLU or Tanh, softmax cross-entropy) over `ndarray`, with exact per-sample
//! gradients.
//!
//! - [`BookKeepingEngine`]: one forward/backward pass, per-sample norms from the stored
//!   activations and output gradients, clipped sum as one weighted matrix product per layer.
//! - [`PerExampleReference`]: one pass per example with materialized gradients; slow, obviously
//!   correct, the reference the conformance suite (`dp-engine-testkit`) compares against.
//! - [`Mlp`], [`Batch`] (with augmentation multiplicity), [`ArrayDataset`].
//!
//! Both engines implement `dp_engine::PerSampleGradEngine`, so `dp-trainer` drives them like any
//! other engine (`dp-engine-tch` for libtorch models).
//!
//! # Examples
//!
//! ```
//! use dp_engine::{PerSampleGradEngine, ScaleVector};
//! use dp_engine_ndarray::{Batch, BookKeepingEngine, Mlp};
//! use ndarray::array;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(3);
//! let mut model = Mlp::logistic_regression(2, 2, &mut rng)?;
//! let batch = Batch::new(array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], vec![0, 1, 1])?;
//! let mut engine = BookKeepingEngine::new();
//! let phase1 = engine.norms(&model, &batch)?;
//! // Flat clipping at 1: scale each example by min(1, 1 / ||g_i||).
//! let scales = phase1.norms.flat_norms().iter().map(|n| (1.0 / n).min(1.0)).collect();
//! engine.accumulate_scaled(&mut model, &ScaleVector::new(scales)?)?;
//! # Ok::<(), dp_engine::EngineError>(())
//! ```

mod batch;
mod engine;
mod model;
mod params;
mod tape;

pub use batch::{ArrayDataset, Batch};
pub use engine::{BookKeepingEngine, PerExampleReference};
pub use model::{Activation, Linear, Mlp};
