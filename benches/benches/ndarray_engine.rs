//! DP step vs non-private step of the pure-Rust engine, side by side in one run
//! (DESIGN.md section 7): a 784-256-10 ReLU MLP at batch 256 on the CPU, rayon's default
//! thread count (state it with the figures: `RAYON_NUM_THREADS`).
//!
//! - `non_private`: one forward/backward and the summed gradient (`batch_gradient`).
//! - `dp_clipped_sum`: per-sample norms, flat clip factors, the clipped sum (`norms` +
//!   `accumulate_scaled`).
//! - `dp_step_fast_noise`: the same plus Gaussian noise on every coordinate in fast mode.
//! - `dp_step_secure_noise`: the same with secure (discrete Gaussian) noise.
//!
//! The DP overhead is the ratio of a `dp_*` time to `non_private`.

use criterion::{Criterion, criterion_group, criterion_main};
use dp_engine::{PerSampleGradEngine, ScaleVector};
use dp_engine_ndarray::{Activation, Batch, BookKeepingEngine, Mlp};
use dp_sampler::{NoiseMode, SeededRng, add_gaussian_noise};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const BATCH: usize = 256;
const MAX_GRAD_NORM: f64 = 1.0;
const NOISE_MULTIPLIER: f64 = 1.1;

fn dp_step(
    engine: &mut BookKeepingEngine,
    model: &mut Mlp,
    batch: &Batch,
    noise: Option<(NoiseMode, &mut SeededRng)>,
) {
    engine.zero_grad(model);
    let phase1 = engine.norms(model, batch).expect("batch fits the model");
    let scales = phase1
        .norms
        .flat_norms()
        .iter()
        .map(|n| {
            if n.is_finite() && *n > MAX_GRAD_NORM {
                MAX_GRAD_NORM / n
            } else if n.is_finite() {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let scales = ScaleVector::new(scales).expect("finite factors");
    engine
        .accumulate_scaled(model, &scales)
        .expect("tape present");
    if let Some((mode, rng)) = noise {
        engine
            .visit_gradients(model, &mut |_, gradient| {
                add_gaussian_noise(gradient, NOISE_MULTIPLIER * MAX_GRAD_NORM, mode, rng)
                    .expect("valid std");
            })
            .expect("host buffers");
    }
}

fn bench_ndarray_engine(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut model = Mlp::new(&[784, 256, 10], Activation::Relu, &mut rng).expect("valid widths");
    let features = Array2::from_shape_simple_fn((BATCH, 784), || rng.random_range(0.0..1.0f32));
    let labels = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    let batch = Batch::new(features, labels).expect("consistent batch");
    let mut engine = BookKeepingEngine::new();
    let mut noise_rng = SeededRng::new(1);

    let mut group = c.benchmark_group("ndarray_engine/mlp784-256-10/batch256/cpu");
    group.sample_size(20);
    group.bench_function("non_private", |b| {
        b.iter(|| {
            engine.zero_grad(&mut model);
            black_box(
                engine
                    .batch_gradient(&mut model, &batch)
                    .expect("batch fits"),
            );
        })
    });
    group.bench_function("dp_clipped_sum", |b| {
        b.iter(|| dp_step(&mut engine, &mut model, &batch, None))
    });
    group.bench_function("dp_step_fast_noise", |b| {
        b.iter(|| {
            dp_step(
                &mut engine,
                &mut model,
                &batch,
                Some((NoiseMode::Fast, &mut noise_rng)),
            )
        })
    });
    group.bench_function("dp_step_secure_noise", |b| {
        b.iter(|| {
            dp_step(
                &mut engine,
                &mut model,
                &batch,
                Some((NoiseMode::Secure, &mut noise_rng)),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ndarray_engine);
criterion_main!(benches);
