//! Batch sampling and noise throughput (dp-sampler), on the CPU with rayon's default pool.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dp_benches::thread_count;
use dp_sampler::{BatchSampler, NoiseMode, Poisson, SeededRng, add_gaussian_noise};

/// Poisson sampling over a billion examples: geometric skips touch only the ~1e4 kept ones.
fn poisson(c: &mut Criterion) {
    let mut sampler = Poisson::new(1_000_000_000, 1e-5).expect("valid parameters");
    let mut rng = SeededRng::new(0);
    c.bench_function("sampler/poisson/n=1e9/q=1e-5/cpu", |b| {
        b.iter(|| black_box(sampler.sample(&mut rng)))
    });
}

/// Gaussian noise added to 1e7 `f32` values, both modes.
fn noise(c: &mut Criterion) {
    const LEN: usize = 10_000_000;
    let mut group = c.benchmark_group("sampler/noise");
    group.throughput(Throughput::Elements(LEN as u64));
    group.sample_size(10);
    let mut buffer = vec![0.0f32; LEN];
    let mut rng = SeededRng::new(1);
    for (mode, name) in [(NoiseMode::Secure, "secure"), (NoiseMode::Fast, "fast")] {
        let id = format!("{name}/f32/len=1e7/cpu-threads={}", thread_count());
        group.bench_function(id, |b| {
            b.iter(|| add_gaussian_noise(black_box(&mut buffer), 1.0, mode, &mut rng))
        });
    }
    group.finish();
}

criterion_group!(benches, poisson, noise);
criterion_main!(benches);
