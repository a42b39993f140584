//! The conformance suite every `dp_engine::PerSampleGradEngine` runs from its tests.
//!
//! An engine's test implements [`ConformanceFixture`] (how to make random models, batches and a
//! reference engine) and calls [`run_conformance_suite`] or the single checks. Each check returns
//! a [`ConformanceFailure`] that names the property and the first offending value. The properties
//! are the ones DP-SGD's sensitivity argument rests on (DESIGN.md section 3.4):
//!
//! - [`check_sum_equals_batch_gradient`]: sum_i g_i equals the non-private batch gradient;
//! - [`check_example_independence`]: g_i does not change when another example j changes;
//! - [`check_norms_match_materialized`]: the reported norms are the norms of the g_i summed;
//! - [`check_zero_scale_drops_example`]: a scale of 0 removes example i exactly (bit for bit);
//! - [`check_matches_reference`]: agreement with a reference engine (per-example backward passes),
//!   with per-example and per-group (per-layer clipping) scale factors;
//! - [`check_empty_batch`]: an empty batch is a valid batch with zero gradient;
//! - [`check_contract_errors`]: phase 2 without phase 1, or with the wrong number of scales, errs;
//! - [`check_gradient_access`]: `visit_gradients` reads and writes the buffers `visit_parameters`
//!   shows, and leaves the values alone.
//!
//! Per-sample gradients are materialized through the trait alone, by `accumulate_scaled` with
//! one-hot scale vectors, so the suite needs nothing engine-specific.
//!
//! # Examples
//!
//! ```text
//! // In an engine crate's tests/conformance.rs:
//! dp_engine_testkit::run_conformance_suite(&MyFixture, 0..8, dp_engine_testkit::F32_TOLERANCE)?;
//! ```

mod checks;
mod fixture;
mod tolerance;

pub use checks::{
    check_contract_errors, check_empty_batch, check_example_independence, check_gradient_access,
    check_matches_reference, check_norms_match_materialized, check_sum_equals_batch_gradient,
    check_zero_scale_drops_example, per_sample_gradients, run_conformance_suite,
};
pub use fixture::{ConformanceFixture, SplitMix64};
pub use tolerance::{ConformanceFailure, EXACT, F32_TOLERANCE, Tolerance};
