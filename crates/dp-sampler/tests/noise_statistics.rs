//! Statistical tests of the noise (fixed seeds; false-failure rate in `common`).

mod common;

use common::{bonferroni_z, chi_square, kolmogorov_smirnov};
use dp_sampler::{DiscreteGaussian, NoiseElement, NoiseMode, SeededRng, add_gaussian_noise};
use statrs::distribution::{ContinuousCDF, Normal};

const SAMPLES: usize = 200_000;

/// Checks mean, variance (z-tests, Bonferroni over two) and the KS distance of
/// `values` against N(0, std²).
fn assert_gaussian(values: &mut [f64], std: f64) {
    let n = values.len() as f64;
    let z_limit = bonferroni_z(3);
    let mean = values.iter().sum::<f64>() / n;
    let z_mean = mean / (std / n.sqrt());
    assert!(z_mean.abs() < z_limit, "mean {mean}: z = {z_mean}");
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    // Var of the sample variance of a Gaussian: 2σ⁴/(n-1).
    let z_variance = (variance - std * std) / (std * std * (2.0 / (n - 1.0)).sqrt());
    assert!(
        z_variance.abs() < z_limit,
        "variance {variance}: z = {z_variance}"
    );
    let normal = Normal::new(0.0, std).expect("valid");
    let (distance, critical) = kolmogorov_smirnov(values, |x| normal.cdf(x));
    assert!(distance < critical, "KS distance {distance} >= {critical}");
}

fn noise_of<T: NoiseElement + Default>(std: f64, mode: NoiseMode, seed: u64) -> Vec<f64> {
    let mut buffer = vec![T::default(); SAMPLES];
    add_gaussian_noise(&mut buffer, std, mode, &mut SeededRng::new(seed)).expect("valid std");
    buffer.into_iter().map(NoiseElement::to_f64).collect()
}

/// Chi-square of `draws` in `bins` equal bins over ±`half_range` against N(0, std²) (draws
/// outside pool with the remaining probability): (statistic, critical value).
fn binned_against_normal(
    draws: impl ExactSizeIterator<Item = f64>,
    std: f64,
    bins: usize,
    half_range: f64,
) -> (f64, f64) {
    let total = draws.len() as u64;
    let normal = Normal::new(0.0, std).expect("valid");
    let bin_width = 2.0 * half_range / bins as f64;
    let mut counts = vec![0u64; bins];
    for draw in draws {
        let position = (draw + half_range) / bin_width;
        if (0.0..bins as f64).contains(&position) {
            counts[position as usize] += 1;
        }
    }
    let pmf: Vec<f64> = (0..bins)
        .map(|bin| {
            let start = bin as f64 * bin_width - half_range;
            normal.cdf(start + bin_width) - normal.cdf(start)
        })
        .collect();
    chi_square(&counts, &pmf, total)
}

#[test]
fn secure_noise_is_gaussian_f64() {
    assert_gaussian(&mut noise_of::<f64>(2.5, NoiseMode::Secure, 1), 2.5);
}

#[test]
fn secure_noise_is_gaussian_f32() {
    assert_gaussian(&mut noise_of::<f32>(0.01, NoiseMode::Secure, 2), 0.01);
}

#[test]
fn fast_noise_is_gaussian_f64() {
    assert_gaussian(&mut noise_of::<f64>(7.0, NoiseMode::Fast, 3), 7.0);
}

#[test]
fn fast_noise_is_gaussian_f32() {
    assert_gaussian(&mut noise_of::<f32>(1.0, NoiseMode::Fast, 4), 1.0);
}

/// Fast `f32` noise (Box-Muller on 31 + 24 bits, bounded by 6.56σ) bins like the normal out
/// into the tails: 4 million draws in bins of σ/4 over ±6σ, chi-square (cells with fewer than
/// 5 expected draws merged, so the outermost bins pool the tails beyond 4.75σ).
#[test]
fn fast_f32_noise_matches_the_normal_into_the_tails() {
    let mut buffer = vec![0.0f32; 4_000_000];
    add_gaussian_noise(&mut buffer, 3.0, NoiseMode::Fast, &mut SeededRng::new(6)).expect("ok");
    let draws = buffer.into_iter().map(f64::from);
    let (statistic, critical) = binned_against_normal(draws, 3.0, 48, 18.0);
    assert!(statistic < critical, "chi-square {statistic} >= {critical}");
}

/// The discrete Gaussian's pmf matches exp(-x²/2σ²)/Σ_y exp(-y²/2σ²) (chi-square), for a
/// small σ where the proposal's t = floor(σ)+1 is near σ and a non-integer one.
#[test]
fn discrete_gaussian_pmf_matches() {
    for (sigma, seed) in [(0.7, 11u64), (1.5, 12), (4.0, 13)] {
        let noise = DiscreteGaussian::new(sigma).expect("valid");
        let mut rng = SeededRng::new(seed);
        let support: i64 = 60;
        let mut counts = vec![0u64; (2 * support + 1) as usize];
        for _ in 0..SAMPLES {
            let draw = noise.sample(&mut rng);
            assert!(draw.abs() <= support, "σ = {sigma}: draw {draw}");
            counts[(draw + support) as usize] += 1;
        }
        let weights: Vec<f64> = (-support..=support)
            .map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp())
            .collect();
        let normalizer: f64 = weights.iter().sum();
        let pmf: Vec<f64> = weights.iter().map(|w| w / normalizer).collect();
        let (statistic, critical) = chi_square(&counts, &pmf, SAMPLES as u64);
        assert!(
            statistic < critical,
            "σ = {sigma}: chi-square {statistic} >= {critical}"
        );
    }
}

/// For σ ≥ 4096 draws come from the table of cells: check the pmf summed over bins of 250
/// integers (chi-square), at a non-integer σ and at a multiple of the cell width (16).
#[test]
fn discrete_gaussian_pmf_matches_on_the_cell_path() {
    for (sigma, seed) in [(5000.3f64, 21u64), (7168.0, 22)] {
        let noise = DiscreteGaussian::new(sigma).expect("valid");
        let mut rng = SeededRng::new(seed);
        let (bin_width, half_bins) = (250i64, 240i64);
        let support = bin_width * half_bins;
        let mut counts = vec![0u64; (2 * half_bins) as usize];
        for _ in 0..SAMPLES {
            let draw = noise.sample(&mut rng);
            assert!(draw.abs() < support, "σ = {sigma}: draw {draw}");
            counts[((draw + support) / bin_width) as usize] += 1;
        }
        let weight = |x: i64| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp();
        let normalizer: f64 = (-support..support).map(weight).sum();
        let pmf: Vec<f64> = (0..2 * half_bins)
            .map(|bin| {
                let start = bin * bin_width - support;
                (start..start + bin_width).map(weight).sum::<f64>() / normalizer
            })
            .collect();
        let (statistic, critical) = chi_square(&counts, &pmf, SAMPLES as u64);
        assert!(
            statistic < critical,
            "σ = {sigma}: chi-square {statistic} >= {critical}"
        );
    }
}

/// Secure noise draws σ in [2^40, 2^41) grid steps, where an offset and its Bernoulli trial
/// share one 64-bit word; above 2^41 they take separate words. Bins of σ/8 over ±5σ against
/// the normal distribution (chi-square; at this σ the discrete and continuous Gaussians differ
/// far below what 200,000 draws resolve).
#[test]
fn discrete_gaussian_matches_the_normal_at_grid_scale() {
    for (sigma, seed) in [
        (2f64.powi(40), 31u64),
        (1.37 * 2f64.powi(40), 32),
        (1.71 * 2f64.powi(45), 33),
    ] {
        let noise = DiscreteGaussian::new(sigma).expect("valid");
        let mut rng = SeededRng::new(seed);
        let draws = (0..SAMPLES).map(|_| noise.sample(&mut rng) as f64);
        let (statistic, critical) = binned_against_normal(draws, sigma, 80, 5.0 * sigma);
        assert!(
            statistic < critical,
            "σ = {sigma}: chi-square {statistic} >= {critical}"
        );
    }
}

/// Secure noise is exactly a multiple of the grid step (f64 output, values within 2^53 steps).
#[test]
fn secure_noise_lies_on_the_grid() {
    let mut buffer = vec![0.3f64; 1000];
    let report = add_gaussian_noise(&mut buffer, 1.0, NoiseMode::Secure, &mut SeededRng::new(5))
        .expect("ok");
    let step = report.grid_step.expect("secure mode has a grid");
    assert_eq!(step, 2f64.powi(-40));
    for value in buffer {
        let steps = value / step;
        assert_eq!(steps, steps.round(), "{value} is off the grid");
    }
    assert!(report.rounding_slack > 0.0 && report.rounding_slack < 1e-10);
}
