//! Goodness-of-fit helpers shared by the statistical tests.
//!
//! Every test using them runs with a fixed seed, so it is deterministic; the stated
//! false-failure rate is the probability that the test would fail for a correct sampler
//! under a seed chosen at random.

// Each test binary includes this module and uses a subset of it.
#![allow(dead_code)]

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Per-test false-failure rate of the statistical tests.
pub const FALSE_FAILURE_RATE: f64 = 1e-4;

/// Pearson's chi-square test of `observed` counts against `expected_probability` (which
/// need not sum to one: the remainder forms one extra cell). Cells with an expected count
/// below 5 are merged into their neighbour, as the test's approximation requires.
/// Returns (statistic, critical value at [`FALSE_FAILURE_RATE`]).
pub fn chi_square(observed: &[u64], expected_probability: &[f64], total: u64) -> (f64, f64) {
    assert_eq!(observed.len(), expected_probability.len());
    let total_f = total as f64;
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let (mut pending_observed, mut pending_expected) = (0.0, 0.0);
    for (&o, &p) in observed.iter().zip(expected_probability) {
        pending_observed += o as f64;
        pending_expected += p * total_f;
        if pending_expected >= 5.0 {
            cells.push((pending_observed, pending_expected));
            pending_observed = 0.0;
            pending_expected = 0.0;
        }
    }
    let rest_observed = total_f - observed.iter().sum::<u64>() as f64 + pending_observed;
    let rest_expected =
        total_f - expected_probability.iter().sum::<f64>() * total_f + pending_expected;
    if rest_expected >= 5.0 {
        cells.push((rest_observed, rest_expected));
    } else if let Some(last) = cells.last_mut() {
        last.0 += rest_observed;
        last.1 += rest_expected;
    }
    let statistic: f64 = cells.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    let freedom = (cells.len() - 1) as f64;
    let critical = ChiSquared::new(freedom)
        .expect("df > 0")
        .inverse_cdf(1.0 - FALSE_FAILURE_RATE);
    (statistic, critical)
}

/// Kolmogorov-Smirnov distance between the sample and `cdf`, and the asymptotic critical
/// value sqrt(-ln(α/2)/(2n)) at α = [`FALSE_FAILURE_RATE`].
pub fn kolmogorov_smirnov(sample: &mut [f64], cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    sample.sort_by(f64::total_cmp);
    let n = sample.len() as f64;
    let distance = sample
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max);
    let critical = (-(FALSE_FAILURE_RATE / 2.0).ln() / (2.0 * n)).sqrt();
    (distance, critical)
}

/// z such that P[|N(0,1)| > z] = α / m: a two-sided Bonferroni bound over `m` comparisons.
pub fn bonferroni_z(m: usize) -> f64 {
    use statrs::distribution::Normal;
    let standard = Normal::new(0.0, 1.0).expect("valid");
    standard.inverse_cdf(1.0 - FALSE_FAILURE_RATE / (2.0 * m as f64))
}
