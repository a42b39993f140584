//! RDP of the Gaussian mechanism on a subset sampled without replacement, under the
//! replace-one relation (Wang, Balle, Kasiviswanathan 2019, "Subsampled Rényi Differential
//! Privacy and Analytical Moments Accountant", Theorem 9 with the Gaussian-specific
//! strengthening of Theorem 27; the same bound as dp_accounting).
//!
//! For sampling ratio γ = m/n, base RDP ε(α) = α/(2σ²) (σ relative to the replace-one
//! sensitivity of the query on the subset), and integer α >= 2:
//!
//! ε'(α) <= ln(1 + γ² C(α,2) min{4(e^{ε(2)} - 1), 2e^{ε(2)}}
//!             + Σ_{j=3..α} γ^j C(α,j) min{4 √(Δ_{2⌊j/2⌋} Δ_{2⌈j/2⌉}), 2 e^{(j-1)ε(j)}}) / (α-1),
//!
//! where Δ_m = E_{μ0}[(L - 1)^m] = Σ_i (-1)^{m-i} C(m,i) e^{i(i-1)/(2σ²)} is the m-th forward
//! difference of the Gaussian's moment function. Fractional orders interpolate the cumulant
//! (α-1)ε'(α) linearly between the neighbouring integers, an upper bound by its convexity
//! (WBK 2019, Corollary 10).
//!
//! Δ_m is an alternating sum with heavy cancellation; we bound its rounding error and use
//! the first branch of the minimum only where the computed value is an upper bound with
//! most of its digits, falling back to the second (always safe) branch otherwise.

use crate::special::{SignedLogSum, ln_exp_m1, log_add_exp};

/// Forward differences are used for j up to this order (as dp_accounting); above it only the
/// second branch of the minimum, which keeps the cost O(α).
const MAX_FORWARD_DIFFERENCE_ORDER: u64 = 256;

/// Relative rounding error per term of the alternating sum, in units of f64 epsilon, times
/// the number of terms: a generous bound for `ln C + i(i-1)/(2σ²)` then `exp`.
const ROUNDING_ULPS_PER_TERM: f64 = 8.0;

/// RDP at every order in `orders` of the Gaussian with noise multiplier `sigma` on a subset
/// of `sample_size` out of `source_dataset_size` records sampled without replacement.
pub(crate) fn rdp_curve(ratio: f64, sigma: f64, orders: &[f64]) -> Vec<f64> {
    if sigma == f64::INFINITY {
        return vec![0.0; orders.len()];
    }
    if ratio >= 1.0 {
        return orders
            .iter()
            .map(|alpha| alpha / (2.0 * sigma * sigma))
            .collect();
    }
    let max_integer = orders
        .iter()
        .fold(2.0_f64, |acc, alpha| acc.max(alpha.ceil()));
    // The cast is exact: orders are validated finite and the CLI caps them.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let differences = ForwardDifferences::new(
        sigma,
        (max_integer as u64).min(MAX_FORWARD_DIFFERENCE_ORDER + 1),
    );
    orders
        .iter()
        .map(|&alpha| {
            let cumulant = |order: f64| -> f64 {
                if order <= 1.0 {
                    0.0
                } else {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let integer = order as u64;
                    ln_a_integer(ratio, sigma, integer, &differences)
                }
            };
            if alpha.fract() == 0.0 {
                cumulant(alpha) / (alpha - 1.0)
            } else {
                let (lower, upper) = (alpha.floor(), alpha.ceil());
                let t = alpha - lower;
                ((1.0 - t) * cumulant(lower) + t * cumulant(upper)) / (alpha - 1.0)
            }
        })
        .collect()
}

/// ln of upper bounds on the even forward differences Δ_m, m = 0, 2, 4, ... (None where
/// cancellation leaves no reliable digits).
struct ForwardDifferences {
    ln_upper_bounds: Vec<Option<f64>>,
}

impl ForwardDifferences {
    fn new(sigma: f64, max_order: u64) -> Self {
        let two_variance = 2.0 * sigma * sigma;
        let max_even = max_order + max_order % 2;
        let ln_upper_bounds = (0..=max_even)
            .map(|m| {
                if m % 2 == 1 {
                    return None;
                }
                let m_f = m as f64;
                let mut sum = SignedLogSum::new();
                let mut ln_binomial = 0.0;
                for i in 0..=m {
                    let i_f = i as f64;
                    if i > 0 {
                        ln_binomial += ((m_f - i_f + 1.0) / i_f).ln();
                    }
                    sum.add(
                        (m - i) % 2 == 0,
                        ln_binomial + i_f * (i_f - 1.0) / two_variance,
                    );
                }
                let ln_error = sum.ln_total_magnitude()
                    + (ROUNDING_ULPS_PER_TERM * (m_f + 2.0) * f64::EPSILON).ln();
                let ln_value = sum.ln_positive()?;
                // Trust the value only if the error bound is below a tenth of it.
                (ln_error < ln_value - 10.0_f64.ln()).then(|| log_add_exp(ln_value, ln_error))
            })
            .collect();
        ForwardDifferences { ln_upper_bounds }
    }

    fn ln_upper_bound(&self, m: u64) -> Option<f64> {
        usize::try_from(m)
            .ok()
            .and_then(|index| self.ln_upper_bounds.get(index).copied().flatten())
    }
}

/// ln A for integer α >= 2, where ε'(α) = ln(A)/(α-1).
fn ln_a_integer(ratio: f64, sigma: f64, alpha: u64, differences: &ForwardDifferences) -> f64 {
    let two_variance = 2.0 * sigma * sigma;
    let ln_ratio = ratio.ln();
    let alpha_f = alpha as f64;
    let ln_two = std::f64::consts::LN_2;
    let ln_four = 2.0 * ln_two;
    let eps2 = 2.0 / two_variance;
    let mut ln_a = 0.0; // the leading 1
    let mut ln_binomial = alpha_f.ln(); // ln C(α, 1)
    for j in 2..=alpha {
        let j_f = j as f64;
        ln_binomial += ((alpha_f - j_f + 1.0) / j_f).ln();
        let bound = if j == 2 {
            (ln_four + ln_exp_m1(eps2)).min(eps2 + ln_two)
        } else {
            let second = ln_two + (j_f - 1.0) * j_f / two_variance;
            let first = if j <= MAX_FORWARD_DIFFERENCE_ORDER {
                let low = differences.ln_upper_bound(2 * (j / 2));
                let high = differences.ln_upper_bound(2 * j.div_ceil(2));
                low.zip(high)
                    .map(|(low, high)| ln_four + 0.5 * (low + high))
            } else {
                None
            };
            first.map_or(second, |first| first.min(second))
        };
        ln_a = log_add_exp(ln_a, j_f * ln_ratio + ln_binomial + bound);
    }
    ln_a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dp_accounting_at_integer_orders() {
        // dp_accounting 0.6 `_compute_rdp_sample_wor_gaussian(q=0.01, noise_multiplier=1.0,
        // orders=[2, 3, 8, 32])`.
        let orders = [2.0, 3.0, 8.0, 32.0];
        let expected = crate::rdp::tests::WITHOUT_REPLACEMENT_REFERENCE;
        let actual = rdp_curve(0.01, 1.0, &orders);
        for ((alpha, a), e) in orders.iter().zip(&actual).zip(expected) {
            assert!(((a - e) / e).abs() < 1e-9, "α={alpha}: {a} vs {e}");
        }
    }

    #[test]
    fn full_sample_is_the_gaussian() {
        let curve = rdp_curve(1.0, 2.0, &[2.0, 4.5]);
        assert_eq!(curve, vec![2.0 / 8.0, 4.5 / 8.0]);
    }
}
