//! Every engine against the one-backward-per-example reference, on every layer type: the
//! dp-engine-testkit suite (sum equals batch gradient, example independence, norms of the summed
//! gradients, zero scale drops an example, agreement with `Microbatch` for flat and per-group
//! scales, empty batches, contract errors) with random shapes from several seeds.

mod common;

use common::{Fixture, ModelKind};
use dp_engine_tch::{BookKeeping, Ghost, Materialized, Microbatch, NormChoice};
use dp_engine_testkit::{F32_TOLERANCE, run_conformance_suite};

/// Seeds per layer type and engine (each seed draws new shapes and batch sizes).
const SEEDS: std::ops::Range<u64> = 0..8;

/// libtorch's random generator is process-global and the fixtures seed it: tests of this binary
/// run one at a time, or one test's draws would interleave with another's (seen as intermittent
/// disagreements of about 1e-3 on the transformer).
static LIBTORCH_RANDOM_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn conforms<E>(make_engine: fn() -> E)
where
    E: dp_engine::PerSampleGradEngine<
            Model = dp_engine_tch::DpModel,
            Batch = dp_engine_tch::TensorBatch,
        >,
{
    let _serial = LIBTORCH_RANDOM_STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::set_num_threads(1);
    if common::device().is_cuda() {
        // cuDNN convolutions use TF32 by default (about 1e-3 relative error), which the f32
        // tolerance of the comparisons would flag; libtorch's own kernels stay in f32.
        tch::Cuda::set_user_enabled_cudnn(false);
    }
    for kind in ModelKind::ALL {
        if let Err(failure) =
            run_conformance_suite(&Fixture::new(kind, make_engine), SEEDS, F32_TOLERANCE)
        {
            panic!("{kind:?}: {failure}");
        }
    }
}

#[test]
fn microbatch_conforms() {
    conforms(Microbatch::new);
}

#[test]
fn materialized_conforms() {
    conforms(Materialized::new);
}

#[test]
fn ghost_conforms() {
    conforms(Ghost::new);
}

#[test]
fn book_keeping_by_cost_conforms() {
    conforms(BookKeeping::new);
}

#[test]
fn book_keeping_all_ghost_conforms() {
    conforms(|| BookKeeping::with_norm_choice(NormChoice::Ghost));
}

#[test]
fn book_keeping_all_materialized_conforms() {
    conforms(|| BookKeeping::with_norm_choice(NormChoice::Materialized));
}
