//! bfloat16 storage ([`Precision::Bf16`]) against f32 storage and the one-backward-per-example
//! reference, on an MLP, a CNN, a transformer, a character LSTM and the random models of every
//! layer type of the conformance suite: per-sample norms and the clipped update within bounds set
//! by bfloat16's 8-bit significand, visibly different from f32 (so the reduced storage is really
//! used), and clipped contributions exactly at the reported norms (the clipping bound holds).
//!
//! Tolerances: bfloat16 rounds each stored input and output gradient with relative error at most
//! u = 2⁻⁹ ≈ 2e-3, so one product in a per-sample gradient is off by at most 2u ≈ 4e-3 of its
//! size. Sums over positions and features mostly average these independent roundings out, but
//! cancellation (a sum much smaller than its terms) amplifies them relative to the sum; norms
//! may be off by 2e-2 of the batch's largest norm (five times the product bound) and the clipped
//! update by 3e-2 (Euclidean, relative), which also carries the error of the clipping factors
//! computed from the norms. A wrong formula or a capture in the wrong kind is off by O(1) and
//! fails.

mod common;

use common::{Fixture, ModelKind};
use dp_engine::{PerSampleGradEngine, PerSampleNorms, ScaleVector};
use dp_engine_tch::{
    BookKeeping, DpModel, Ghost, Loss, Microbatch, NormChoice, Precision, TensorBatch, models,
};
use dp_engine_testkit::ConformanceFixture;
use tch::{Device, Kind, Tensor, nn};

/// Largest relative error of per-sample norms allowed for bfloat16 storage.
const NORM_TOLERANCE: f64 = 2e-2;
/// Largest relative error (Euclidean, over all parameters) of the clipped update.
const UPDATE_TOLERANCE: f64 = 3e-2;
/// Smallest norm error that shows the captures were rounded to bfloat16 (f32 storage agrees with
/// the reference to about 1e-6).
const BF16_VISIBLE: f64 = 1e-5;
/// Examples per batch.
const BATCH: i64 = 16;

/// The global random generator of libtorch is seeded per test: run the tests one at a time.
static LIBTORCH_RANDOM_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the generator for one test.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    LIBTORCH_RANDOM_STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn device() -> Device {
    match std::env::var("DP_RS_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

/// What one engine produced on one batch: its norms and its clipped update.
struct Outcome {
    norms: PerSampleNorms,
    update: Vec<Vec<f64>>,
}

fn to_host(tensor: &Tensor) -> anyhow::Result<Vec<f64>> {
    let host = tensor
        .f_to_kind(Kind::Double)?
        .f_to_device(Device::Cpu)?
        .f_reshape([-1])?;
    Ok(Vec::<f64>::try_from(host)?)
}

/// Flat clipping at `max_grad_norm` (per-group clipping at `max_grad_norm` / sqrt(groups) per
/// group when `per_group`), with the scale factors from the engine's own norms, as a trainer
/// computes them.
fn run<E>(
    mut engine: E,
    model: &DpModel,
    batch: &TensorBatch,
    max_grad_norm: f64,
    per_group: bool,
) -> anyhow::Result<Outcome>
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    let mut model = model.clone();
    engine.zero_grad(&mut model);
    let norms = engine.norms(&model, batch)?;
    let scales = if per_group {
        let groups = norms.norms.num_groups();
        let bound = max_grad_norm / (groups as f64).sqrt();
        let factors = norms
            .norms
            .as_slice()
            .iter()
            .map(|norm| (bound / norm).min(1.0))
            .collect();
        ScaleVector::per_group(factors, groups)?
    } else {
        let factors = norms
            .norms
            .flat_norms()
            .iter()
            .map(|norm| (max_grad_norm / norm).min(1.0))
            .collect();
        ScaleVector::new(factors)?
    };
    engine.accumulate_scaled(&mut model, &scales)?;
    let update = model
        .gradients()
        .iter()
        .map(to_host)
        .collect::<anyhow::Result<_>>()?;
    Ok(Outcome { norms, update })
}

/// Largest error of the per-sample norms (flat and per group) relative to the largest flat norm
/// of the batch: the max-norm relative error of the norm vectors. A norm is not compared with
/// itself: rounding errors scale with the terms of a per-sample gradient (products of inputs and
/// output gradients over positions), and a norm can be small by cancellation of such terms,
/// where no relative bound holds. Examples: an example whose per-position gradients cancel (an
/// LSTM example with norm 0.02 in a batch of norms near 0.5: 2.7e-2 off relative to itself,
/// 1e-3 relative to the batch), the gradient of an attention key bias or of a convolution bias
/// followed by GroupNorm (zero in exact arithmetic; f32 computes it as about 1e-8 of the largest
/// norm, bfloat16 storage as about 1e-4).
fn norm_error(actual: &PerSampleNorms, expected: &PerSampleNorms) -> f64 {
    let scale = expected
        .norms
        .flat_norms()
        .into_iter()
        .fold(f64::MIN_POSITIVE, f64::max);
    let largest_difference = |a: &[f64], e: &[f64]| {
        a.iter()
            .zip(e)
            .map(|(a, e)| (a - e).abs())
            .fold(0.0, f64::max)
    };
    let flat = largest_difference(&actual.norms.flat_norms(), &expected.norms.flat_norms());
    let per_group = largest_difference(actual.norms.as_slice(), expected.norms.as_slice());
    flat.max(per_group) / scale
}

/// ||actual - expected|| / ||expected|| over all parameters.
fn update_error(actual: &[Vec<f64>], expected: &[Vec<f64>]) -> f64 {
    let (mut difference, mut reference) = (0.0, 0.0);
    for (a, e) in actual.iter().flatten().zip(expected.iter().flatten()) {
        difference += (a - e) * (a - e);
        reference += e * e;
    }
    (difference / reference).sqrt()
}

/// Compares bfloat16 book-keeping (each norm choice) and ghost clipping with f32 book-keeping
/// and with the reference, for flat and per-group clipping at the median norm.
fn bf16_agrees_with_f32(name: &str, model: &DpModel, batch: &TensorBatch) -> anyhow::Result<()> {
    let probe = BookKeeping::new().norms(model, batch)?;
    let mut flat = probe.norms.flat_norms();
    flat.sort_by(f64::total_cmp);
    // The median: about half the examples are clipped.
    let max_grad_norm = flat[flat.len() / 2];
    for per_group in [false, true] {
        let reference = run(Microbatch::new(), model, batch, max_grad_norm, per_group)?;
        let f32_storage = run(BookKeeping::new(), model, batch, max_grad_norm, per_group)?;
        let mut bf16_engines: Vec<(String, Outcome)> = Vec::new();
        for choice in [
            NormChoice::ByCost,
            NormChoice::Ghost,
            NormChoice::Materialized,
        ] {
            let engine = BookKeeping::with_norm_choice(choice).with_precision(Precision::Bf16);
            let label = format!("book-keeping {choice:?} {}", engine.precision());
            bf16_engines.push((label, run(engine, model, batch, max_grad_norm, per_group)?));
        }
        let ghost = Ghost::new().with_precision(Precision::Bf16);
        let label = format!("ghost {}", ghost.precision());
        bf16_engines.push((label, run(ghost, model, batch, max_grad_norm, per_group)?));

        let f32_norms = norm_error(&f32_storage.norms, &reference.norms);
        let f32_update = update_error(&f32_storage.update, &reference.update);
        println!(
            "{name} per_group={per_group}: f32 book-keeping vs microbatch: norms {f32_norms:.2e}, \
             update {f32_update:.2e}"
        );
        for (label, outcome) in &bf16_engines {
            let norms_vs_f32 = norm_error(&outcome.norms, &f32_storage.norms);
            let norms_vs_reference = norm_error(&outcome.norms, &reference.norms);
            let update_vs_f32 = update_error(&outcome.update, &f32_storage.update);
            let update_vs_reference = update_error(&outcome.update, &reference.update);
            println!(
                "{name} per_group={per_group}: {label}: norms {norms_vs_f32:.2e} vs f32, \
                 {norms_vs_reference:.2e} vs microbatch; update {update_vs_f32:.2e} vs f32, \
                 {update_vs_reference:.2e} vs microbatch"
            );
            for (what, error, tolerance) in [
                ("norms vs f32", norms_vs_f32, NORM_TOLERANCE),
                ("norms vs microbatch", norms_vs_reference, NORM_TOLERANCE),
                ("update vs f32", update_vs_f32, UPDATE_TOLERANCE),
                (
                    "update vs microbatch",
                    update_vs_reference,
                    UPDATE_TOLERANCE,
                ),
            ] {
                assert!(
                    error <= tolerance,
                    "{name} {label} per_group={per_group}: {what} {error:.3e} > {tolerance:.0e}"
                );
            }
            assert!(
                norms_vs_f32 > BF16_VISIBLE,
                "{name} {label}: norms equal f32's ({norms_vs_f32:.1e}): nothing stored in bf16?"
            );
        }
    }
    Ok(())
}

fn classification_batch(inputs: &[i64], classes: i64) -> anyhow::Result<TensorBatch> {
    let mut shape = vec![BATCH];
    shape.extend(inputs);
    Ok(TensorBatch::new(
        Tensor::f_randn(shape.as_slice(), (Kind::Float, device()))?,
        Tensor::f_randint(classes, [BATCH], (Kind::Int64, device()))?,
    )?)
}

fn token_batch(vocabulary: i64, length: i64) -> anyhow::Result<TensorBatch> {
    let tokens = Tensor::f_randint(vocabulary, [BATCH, length + 1], (Kind::Int64, device()))?;
    Ok(TensorBatch::new(
        tokens.f_narrow(1, 0, length)?,
        tokens.f_narrow(1, 1, length)?,
    )?)
}

#[test]
fn bf16_mlp_agrees_with_f32() -> anyhow::Result<()> {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(11);
    let store = nn::VarStore::new(device());
    let module = models::mlp(&store.root(), &[32, 64, 64, 10])?;
    let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
    bf16_agrees_with_f32("mlp", &model, &classification_batch(&[32], 10)?)
}

#[test]
fn bf16_cnn_agrees_with_f32() -> anyhow::Result<()> {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(12);
    let store = nn::VarStore::new(device());
    let module = models::mnist_cnn(&store.root())?;
    let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
    bf16_agrees_with_f32("cnn", &model, &classification_batch(&[1, 28, 28], 10)?)
}

/// A causal 2-layer transformer (d = 32, 4 heads) over 40 tokens of context 16.
fn small_transformer(store: &nn::VarStore) -> anyhow::Result<DpModel> {
    let config = models::TransformerConfig {
        vocabulary: 40,
        max_length: 16,
        model_dim: 32,
        num_heads: 4,
        num_layers: 2,
        mlp_dim: 64,
        causal: true,
    };
    let module = models::transformer_encoder(&store.root(), &config)?;
    Ok(DpModel::new(store, module, Loss::CrossEntropy)?)
}

#[test]
fn bf16_transformer_agrees_with_f32() -> anyhow::Result<()> {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(13);
    let store = nn::VarStore::new(device());
    let model = small_transformer(&store)?;
    bf16_agrees_with_f32("transformer", &model, &token_batch(40, 16)?)
}

#[test]
fn bf16_char_lstm_agrees_with_f32() -> anyhow::Result<()> {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(14);
    let store = nn::VarStore::new(device());
    let module = models::char_lstm(&store.root(), &models::CharLstmConfig::reference(30))?;
    let model = DpModel::new(&store, module, Loss::CrossEntropy)?;
    bf16_agrees_with_f32("char-lstm", &model, &token_batch(30, 12)?)
}

/// Relative slack of the clipping bound: f32 rounding (observed about 4e-8 here); computing the
/// norm from rounded values and the sum from unrounded ones misses by about 1e-4.
const CLIPPING_TOLERANCE: f64 = 1e-6;

/// One example's clipped contribution, scaled to norm 1 by the engine's own reported norm, has
/// norm 1 up to f32 rounding: norms and clipped sum come from the same stored values, so the
/// rounding to bfloat16 does not loosen the clipping bound (a clipped sum from unrounded values
/// misses it by the norms' error, about 1e-4 here).
fn contribution_has_reported_norm<E>(
    mut engine: E,
    model: &DpModel,
    batch: &TensorBatch,
) -> anyhow::Result<()>
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    let mut model = model.clone();
    let norms = engine.norms(&model, batch)?.norms.flat_norms();
    for example in 0..3 {
        let factors = (0..norms.len())
            .map(|other| {
                if other == example {
                    1.0 / norms[other]
                } else {
                    0.0
                }
            })
            .collect();
        engine.zero_grad(&mut model);
        engine.accumulate_scaled(&mut model, &ScaleVector::new(factors)?)?;
        let squared: f64 = model
            .gradients()
            .iter()
            .map(to_host)
            .collect::<anyhow::Result<Vec<_>>>()?
            .iter()
            .flatten()
            .map(|value| value * value)
            .sum();
        let deviation = (squared.sqrt() - 1.0).abs();
        assert!(
            deviation <= CLIPPING_TOLERANCE,
            "example {example}: clipped contribution has norm off by {deviation:.2e}"
        );
    }
    Ok(())
}

#[test]
fn bf16_clipped_contributions_respect_the_bound() -> anyhow::Result<()> {
    let _serial = serial();
    tch::set_num_threads(1);
    tch::manual_seed(15);
    let store = nn::VarStore::new(device());
    let model = small_transformer(&store)?;
    let batch = token_batch(40, 16)?;
    // The engine's tape is reused for every example's contribution (accumulate_scaled may be
    // called again on the same tape).
    contribution_has_reported_norm(
        BookKeeping::new().with_precision(Precision::Bf16),
        &model,
        &batch,
    )?;
    contribution_has_reported_norm(Ghost::new().with_precision(Precision::Bf16), &model, &batch)
}

/// Every layer type of the conformance suite (random small models, several seeds): recurrent,
/// grouped and strided convolutions, GroupNorm, RMSNorm, tied layers and attention included.
#[test]
fn bf16_agrees_with_f32_on_every_layer_type() -> anyhow::Result<()> {
    let _serial = serial();
    tch::set_num_threads(1);
    for kind in ModelKind::ALL {
        let fixture = Fixture::new(kind, BookKeeping::new);
        for seed in 0..3 {
            let model = fixture.random_model(seed);
            let batch = fixture.random_batch(&model, 12, seed + 100);
            bf16_agrees_with_f32(&format!("{kind:?} seed {seed}"), &model, &batch)?;
        }
    }
    Ok(())
}

#[test]
fn precision_names() {
    let names: Vec<String> = Precision::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["f32", "bf16"]);
    assert_eq!(BookKeeping::new().precision(), Precision::F32);
    assert_eq!(Ghost::new().precision(), Precision::F32);
}
