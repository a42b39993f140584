//! Shared helpers for the statistical tests.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// A fixed-seed generator per test and repetition.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The exact ε(δ) of the Gaussian mechanism with sensitivity 1 and noise standard deviation
/// `noise_multiplier` (Balle and Wang 2018, Theorem 8):
/// δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2), μ = 1 / noise_multiplier; solved by bisection.
pub fn gaussian_mechanism_epsilon(noise_multiplier: f64, delta: f64) -> f64 {
    let standard = Normal::standard();
    let mu = 1.0 / noise_multiplier;
    let delta_of = |eps: f64| {
        standard.cdf(-eps / mu + mu / 2.0) - eps.exp() * standard.cdf(-eps / mu - mu / 2.0)
    };
    let (mut lo, mut hi) = (0.0, 100.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if delta_of(mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The largest violation count that `repetitions` independent trials, each violating with
/// probability at most `rate`, exceed with probability below `false_failure_rate`.
pub fn allowed_violations(repetitions: u64, rate: f64, false_failure_rate: f64) -> u64 {
    let binomial = Binomial::new(rate, repetitions).expect("valid binomial");
    (0..=repetitions)
        .find(|&k| binomial.sf(k) < false_failure_rate)
        .unwrap_or(repetitions)
}
