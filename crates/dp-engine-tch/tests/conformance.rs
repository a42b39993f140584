//! Every engine against the one-backward-per-example reference, on every layer type: the
//! dp-engine-testkit suite (sum equals batch gradient, example independence, norms of the summed
//! gradients, zero scale drops an example, agreement with `Microbatch` for flat and per-group
//! scales, empty batches, contract errors, gradient access) with random shapes from several
//! seeds; and the per-sample gradients `Materialized` and `Microbatch` expose against what the
//! trait sums.

mod common;

use common::{Fixture, ModelKind};
use dp_engine::{EngineError, PerSampleGradEngine};
use dp_engine_tch::tch::{Kind, Tensor};
use dp_engine_tch::{BookKeeping, Ghost, Materialized, Microbatch, NormChoice};
use dp_engine_testkit::{
    ConformanceFixture, F32_TOLERANCE, per_sample_gradients, run_conformance_suite,
};

/// Seeds per layer type and engine (each seed draws new shapes and batch sizes).
const SEEDS: std::ops::Range<u64> = 0..8;

/// libtorch's random generator is process-global and the fixtures seed it: tests of this binary
/// run one at a time, or one test's draws would interleave with another's (seen as intermittent
/// disagreements of about 1e-3 on the transformer).
static LIBTORCH_RANDOM_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn conforms<E>(make_engine: fn() -> E)
where
    E: PerSampleGradEngine<Model = dp_engine_tch::DpModel, Batch = dp_engine_tch::TensorBatch>,
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

/// Example by example, group by group, the flattened values of `[batch, ...]` tensors.
fn by_example(per_group: &[Tensor]) -> Vec<Vec<Vec<f32>>> {
    let batch = per_group.first().map_or(0, |tensor| tensor.size()[0]);
    (0..batch)
        .map(|example| {
            per_group
                .iter()
                .map(|tensor| {
                    let row = tensor.get(example).to_kind(Kind::Float).reshape([-1]);
                    Vec::<f32>::try_from(row).expect("f32 values")
                })
                .collect()
        })
        .collect()
}

#[test]
fn exposed_per_sample_gradients_are_the_gradients_the_engines_sum() {
    let _serial = LIBTORCH_RANDOM_STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::set_num_threads(1);
    for kind in ModelKind::ALL {
        let fixture = Fixture::new(kind, Microbatch::new);
        let mut model = fixture.random_model(5);
        let batch = fixture.random_batch(&model, 4, 6);
        // What the trait sums: one-hot scales through the reference engine.
        let summed = per_sample_gradients(&mut Microbatch::new(), &mut model, &batch).unwrap();
        let mut microbatch = Microbatch::new();
        let mut materialized = Materialized::new();
        assert!(matches!(
            materialized.per_sample_gradients(&model),
            Err(EngineError::MissingTape)
        ));
        microbatch.norms(&model, &batch).unwrap();
        materialized.norms(&model, &batch).unwrap();
        for exposed in [
            microbatch.per_sample_gradients(&model).unwrap(),
            materialized.per_sample_gradients(&model).unwrap(),
        ] {
            for (tensor, parameter) in exposed.iter().zip(model.parameters()) {
                let mut shape = vec![4];
                shape.extend(parameter.tensor.size());
                assert_eq!(tensor.size(), shape, "{kind:?} {}", parameter.name);
            }
            let exposed = by_example(&exposed);
            assert_eq!(exposed.len(), summed.len(), "{kind:?}");
            for (got, want) in exposed.iter().zip(&summed) {
                F32_TOLERANCE
                    .compare(
                        "exposed per-sample gradients",
                        got.iter().flatten().map(|&v| f64::from(v)),
                        want.iter().flatten().map(|&v| f64::from(v)),
                    )
                    .unwrap_or_else(|failure| panic!("{kind:?}: {failure}"));
            }
        }
        let empty = fixture.random_batch(&model, 0, 7);
        materialized.norms(&model, &empty).unwrap();
        for (tensor, parameter) in materialized
            .per_sample_gradients(&model)
            .unwrap()
            .iter()
            .zip(model.parameters())
        {
            assert_eq!(tensor.size()[0], 0);
            assert_eq!(tensor.size()[1..], parameter.tensor.size());
        }
    }
}
