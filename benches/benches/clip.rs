//! Clip-factor computation (dp-clip) for a 4096 x 64 norm matrix, on the CPU (one thread).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dp_clip::{AutomaticClip, ClipPolicy, FlatClip, NormMatrix, PerLayerClip};

const BATCH: usize = 4096;
const GROUPS: usize = 64;

fn clip_factors(c: &mut Criterion) {
    // Deterministic norms spread over [0, 2) so that about half of them are clipped.
    let norms: Vec<f64> = (0..BATCH * GROUPS)
        .map(|i| ((i * 7919) % 2000) as f64 / 1000.0)
        .collect();
    let matrix = NormMatrix::new(&norms, BATCH, GROUPS).expect("consistent shape");
    let flat = FlatClip::new(8.0).expect("valid bound");
    let per_layer = PerLayerClip::new(vec![1.0; GROUPS]).expect("valid bounds");
    let automatic = AutomaticClip::new(1.0, 0.01).expect("valid parameters");
    let policies: [(&str, &dyn ClipPolicy); 3] = [
        ("flat", &flat),
        ("per_layer", &per_layer),
        ("automatic", &automatic),
    ];
    let mut group = c.benchmark_group("clip/factors");
    group.throughput(Throughput::Elements((BATCH * GROUPS) as u64));
    for (name, policy) in policies {
        group.bench_function(format!("{name}/batch=4096/groups=64/cpu-threads=1"), |b| {
            b.iter(|| policy.clip(black_box(&matrix)))
        });
    }
    group.finish();
}

criterion_group!(benches, clip_factors);
criterion_main!(benches);
