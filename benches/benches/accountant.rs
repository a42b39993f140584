//! Privacy accounting speed (dp-accountant), single-threaded: RDP and PLD ε for DP-SGD, and
//! noise calibration. Issue targets: RDP ε for any step count under 1 ms, PLD ε for the
//! MNIST tutorial setting under 100 ms, PLD calibration for that setting under 2 s.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dp_accountant::{
    AccountantKind, NeighbouringRelation, PrivacyAccountant, RdpAccountant,
    calibrate_noise_multiplier, dp_sgd_epsilon, dp_sgd_event,
};

/// TF Privacy MNIST tutorial: batch 256 of 60000, σ = 1.1, 60 epochs.
const MNIST_Q: f64 = 256.0 / 60000.0;
const MNIST_STEPS: u64 = 14063;
const DELTA: f64 = 1e-5;

/// RDP ε from scratch (RDP curve at the default orders, then the conversion), and the ε
/// query alone on an accountant that already composed the steps.
fn rdp(c: &mut Criterion) {
    let mut group = c.benchmark_group("accountant/rdp_epsilon");
    for steps in [1_000_u64, 1_000_000] {
        group.bench_function(
            format!("from_scratch/q=0.01/sigma=1.1/steps={steps}/cpu-threads=1"),
            |b| b.iter(|| dp_sgd_epsilon(AccountantKind::Rdp, 1.1, 0.01, black_box(steps), DELTA)),
        );
        let mut accountant = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne);
        accountant
            .compose(&dp_sgd_event(1.1, 0.01, steps))
            .expect("supported");
        group.bench_function(
            format!("query/q=0.01/sigma=1.1/steps={steps}/cpu-threads=1"),
            |b| b.iter(|| accountant.epsilon(black_box(DELTA))),
        );
    }
    group.finish();
}

/// PLD ε from scratch (discretization, FFT composition, ε and its lower bound).
fn pld(c: &mut Criterion) {
    let mut group = c.benchmark_group("accountant/pld_epsilon");
    group.sample_size(20);
    group.bench_function(
        "mnist/q=256|60000/sigma=1.1/steps=14063/interval=1e-4/cpu-threads=1",
        |b| {
            b.iter(|| {
                dp_sgd_epsilon(
                    AccountantKind::Pld,
                    1.1,
                    MNIST_Q,
                    black_box(MNIST_STEPS),
                    DELTA,
                )
            })
        },
    );
    group.finish();
}

/// Smallest noise multiplier for ε = 3 at δ = 1e-5 in the MNIST tutorial setting.
fn calibration(c: &mut Criterion) {
    let mut group = c.benchmark_group("accountant/calibrate_noise_multiplier");
    group.sample_size(10);
    for kind in [AccountantKind::Rdp, AccountantKind::Pld] {
        group.bench_function(
            format!("{kind}/mnist/target_epsilon=3/cpu-threads=1"),
            |b| {
                b.iter(|| {
                    calibrate_noise_multiplier(kind, black_box(3.0), DELTA, MNIST_Q, MNIST_STEPS)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, rdp, pld, calibration);
criterion_main!(benches);
