//! Numerical building blocks: log of the normal CDF, binomial probabilities and Clopper-Pearson
//! bounds computed by bisection on the exact binomial tail.

use statrs::function::beta::checked_beta_reg;
use statrs::function::erf::erfc;
use statrs::function::gamma::ln_gamma;

use crate::error::{AttackError, Result};

/// Bisection steps for Clopper-Pearson bounds: 2^-200 is far below f64 resolution at any scale
/// that matters, so the bracket stops shrinking well before the loop ends.
const BISECTION_STEPS: usize = 200;

/// Relative margin by which Clopper-Pearson ends are pushed outward, covering the ~1e-13
/// relative error of the incomplete beta function so that intervals never come out too narrow.
const CLOPPER_PEARSON_SAFETY_MARGIN: f64 = 1e-12;

/// Below this z the erfc route underflows; the asymptotic series is used instead.
const ASYMPTOTIC_LOG_CDF_BELOW: f64 = -30.0;

/// ln Φ(z) for the standard normal, accurate in both tails.
pub(crate) fn normal_log_cdf(z: f64) -> f64 {
    if z > 0.0 {
        // Φ(z) = 1 - Φ(-z): keep the small complement exact.
        (-0.5 * erfc(z / std::f64::consts::SQRT_2)).ln_1p()
    } else if z > ASYMPTOTIC_LOG_CDF_BELOW {
        (0.5 * erfc(-z / std::f64::consts::SQRT_2)).ln()
    } else {
        // Mills ratio: Φ(z) = φ(z)/|z| (1 - 1/z² + 3/z⁴ - 15/z⁶ + ...), relative error < 1e-9 at |z| >= 30.
        let z2 = z * z;
        let series = 1.0 - 1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2);
        -0.5 * z2 - (-z).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + series.ln()
    }
}

/// ln C(n, k) for every k in 0..=n.
pub(crate) fn ln_binomial_coefficients(n: u64) -> Vec<f64> {
    let ln_n_factorial = ln_gamma(n as f64 + 1.0);
    (0..=n)
        .map(|k| ln_n_factorial - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0))
        .collect()
}

/// P[Binomial(n, p) >= k], exact through the regularized incomplete beta function.
fn binomial_upper_tail(n: u64, k: u64, p: f64) -> Result<f64> {
    if k == 0 {
        return Ok(1.0);
    }
    if k > n {
        return Ok(0.0);
    }
    regularized_beta(k as f64, (n - k + 1) as f64, p)
}

/// P[Binomial(n, p) <= k], computed as I_{1-p}(n-k, k+1) so that small tails keep their digits.
fn binomial_lower_tail(n: u64, k: u64, p: f64) -> Result<f64> {
    if k >= n {
        return Ok(1.0);
    }
    regularized_beta((n - k) as f64, (k + 1) as f64, 1.0 - p)
}

fn regularized_beta(a: f64, b: f64, x: f64) -> Result<f64> {
    checked_beta_reg(a, b, x.clamp(0.0, 1.0)).map_err(|_| AttackError::InvalidParameter {
        name: "beta_reg",
        value: x,
        reason: "regularized incomplete beta function rejected its arguments",
    })
}

/// One-sided Clopper-Pearson upper bound: the largest p with P[Binomial(trials, p) <= successes]
/// >= `tail`. Rounded up (by bisection, then by [`CLOPPER_PEARSON_SAFETY_MARGIN`]).
pub(crate) fn clopper_pearson_upper(successes: u64, trials: u64, tail: f64) -> Result<f64> {
    if successes >= trials {
        return Ok(1.0);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if binomial_lower_tail(trials, successes, mid)? > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((hi * (1.0 + CLOPPER_PEARSON_SAFETY_MARGIN)).min(1.0))
}

/// One-sided Clopper-Pearson lower bound: the smallest p with P[Binomial(trials, p) >= successes]
/// >= `tail`. Rounded down (by bisection, then by [`CLOPPER_PEARSON_SAFETY_MARGIN`]).
pub(crate) fn clopper_pearson_lower(successes: u64, trials: u64, tail: f64) -> Result<f64> {
    if successes == 0 {
        return Ok(0.0);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if binomial_upper_tail(trials, successes, mid)? < tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo * (1.0 - CLOPPER_PEARSON_SAFETY_MARGIN))
}

/// Sample mean and unbiased standard deviation (n - 1 in the denominator; 0 for one value).
pub(crate) fn mean_and_standard_deviation(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let sum_squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (sum_squares / (n - 1.0)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative tolerance for closed-form comparisons.
    const RELATIVE_TOLERANCE: f64 = 1e-9;

    #[test]
    fn log_cdf_matches_known_values_and_is_continuous_at_the_switch() {
        // Φ(0) = 1/2; Φ(-1.959963984540054) = 0.025 (standard table value).
        assert!((normal_log_cdf(0.0) - 0.5_f64.ln()).abs() < RELATIVE_TOLERANCE);
        assert!((normal_log_cdf(-1.959_963_984_540_054) - 0.025_f64.ln()).abs() < 1e-9);
        let left = normal_log_cdf(ASYMPTOTIC_LOG_CDF_BELOW - 1e-9);
        let right = normal_log_cdf(ASYMPTOTIC_LOG_CDF_BELOW + 1e-9);
        assert!(((left - right) / right).abs() < 1e-8, "{left} vs {right}");
        // Upper tail: ln Φ(10) ≈ -Φ(-10) = -7.619853024160527e-24.
        assert!((normal_log_cdf(10.0) / -7.619_853_024_160_527e-24 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn clopper_pearson_zero_successes_has_closed_form() {
        // P[Bin(n,p) <= 0] = (1-p)^n = a  =>  p = 1 - a^(1/n).
        for &(n, a) in &[(10_u64, 0.025), (100, 0.05), (1000, 1e-6)] {
            let upper = clopper_pearson_upper(0, n, a).unwrap();
            let expected = 1.0 - a.powf(1.0 / n as f64);
            assert!(
                (upper / expected - 1.0).abs() < RELATIVE_TOLERANCE,
                "{upper} {expected}"
            );
            assert!(upper >= expected, "not rounded up: {upper} < {expected}");
            let lower = clopper_pearson_lower(n, n, a).unwrap();
            let expected_lower = a.powf(1.0 / n as f64);
            assert!((lower / expected_lower - 1.0).abs() < RELATIVE_TOLERANCE);
            assert!(
                lower <= expected_lower,
                "not rounded down: {lower} > {expected_lower}"
            );
        }
    }
}
