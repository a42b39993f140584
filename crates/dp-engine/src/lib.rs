//! The per-sample gradient engine contract of dp-rs, with no tensor library.
//!
//! DP-SGD needs, for every example i of a batch, the norm of its own gradient g_i, and then the
//! clipped sum sum_i s_i g_i. [`PerSampleGradEngine`] splits this into two phases so that engines
//! which never materialize g_i fit the same trait (DESIGN.md section 3.4):
//! [`PerSampleGradEngine::norms`] returns per-sample losses and a [`NormMatrix`] (examples x
//! parameter groups); a clipping policy turns it into a [`ScaleVector`];
//! [`PerSampleGradEngine::accumulate_scaled`] adds sum_i s_i g_i to the gradient buffers (or, for
//! per-layer clipping, scales each group of g_i by its own factor).
//!
//! Siblings: `dp-engine-ndarray` (pure-Rust MLP engine), `dp-engine-tch` (libtorch engines),
//! `dp-engine-testkit` (the conformance suite every engine runs), `dp-trainer` (the DP-SGD loop,
//! generic over this trait), `dp-clip` (norms to scale factors).
//!
//! # Examples
//!
//! A clipped sum written against the trait alone (flat clipping at `max_grad_norm`):
//!
//! ```
//! use dp_engine::{EngineError, ExampleBatch, PerSampleGradEngine, ScaleVector};
//!
//! fn clipped_sum<E: PerSampleGradEngine>(
//!     engine: &mut E,
//!     model: &mut E::Model,
//!     batch: &E::Batch,
//!     max_grad_norm: f64,
//! ) -> Result<(), EngineError> {
//!     let phase1 = engine.norms(model, batch)?;
//!     let scales = phase1
//!         .norms
//!         .flat_norms()
//!         .iter()
//!         .map(|n| if n.is_finite() { (max_grad_norm / n).min(1.0) } else { 0.0 })
//!         .collect();
//!     engine.accumulate_scaled(model, &ScaleVector::new(scales)?)
//! }
//! ```

mod engine;
mod error;
mod types;

pub use engine::{ExampleBatch, ExampleSource, PerSampleGradEngine};
pub use error::EngineError;
pub use types::{NormMatrix, ParameterGroup, ParameterView, PerSampleNorms, ScaleVector};
