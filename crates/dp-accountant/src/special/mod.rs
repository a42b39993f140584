//! Numerics shared by the accountants: the normal distribution in log space, the Gaussian
//! mechanism's hockey-stick divergence, and log-domain sums.
//!
//! Accuracy matters more than speed here: these functions feed privacy bounds. The normal
//! tail is computed through the Mills ratio R(t) = Φ̄(t)/φ(t), which stays accurate far
//! into the tail where Φ̄ itself underflows.

mod mills;

pub(crate) use mills::mills_ratio;

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_7;

/// ln φ(t) for the standard normal density φ.
pub(crate) fn ln_normal_pdf(t: f64) -> f64 {
    -0.5 * t * t - LN_SQRT_2PI
}

/// The Mills ratio R(t) = P(Z > t)/φ(t) of the standard normal distribution, to full double
/// precision for `t >= 0` (stored Taylor expansions below 5, a continued fraction above);
/// NaN for a negative or NaN `t`. Public for samplers that need normal tail masses exactly,
/// such as dp-sampler's discrete Gaussian.
///
/// # Examples
///
/// ```
/// // R(0) = P(Z > 0)/φ(0) = √(π/2).
/// let ratio = dp_accountant::normal_mills_ratio(0.0);
/// assert!((ratio - (std::f64::consts::PI / 2.0).sqrt()).abs() < 1e-15);
/// ```
pub fn normal_mills_ratio(t: f64) -> f64 {
    if t >= 0.0 { mills_ratio(t) } else { f64::NAN }
}

/// Φ̄(t) = P(Z > t), Z standard normal.
pub(crate) fn normal_sf(t: f64) -> f64 {
    if t >= 0.0 {
        (ln_normal_pdf(t)).exp() * mills_ratio(t)
    } else {
        1.0 - normal_sf(-t)
    }
}

/// The hockey-stick divergence of the Gaussian mechanism (sensitivity 1, noise multiplier
/// `sigma`) at privacy loss `eps`: δ(ε) = Φ̄(εσ - 1/(2σ)) - e^ε Φ̄(εσ + 1/(2σ))
/// (Balle and Wang 2018, Theorem 8). Symmetric in the two neighbours.
pub(crate) fn gaussian_delta(sigma: f64, eps: f64) -> f64 {
    if eps == f64::INFINITY {
        return 0.0;
    }
    if eps == f64::NEG_INFINITY {
        return 1.0;
    }
    let a = eps * sigma - 0.5 / sigma;
    let b = a + sigma.recip();
    // e^ε φ(b) = φ(a), so e^ε Φ̄(b) = φ(a) R(b) without overflow.
    let value = if a >= 0.0 {
        ln_normal_pdf(a).exp() * (mills_ratio(a) - mills_ratio(b))
    } else {
        let shifted = if b >= 0.0 {
            ln_normal_pdf(a).exp() * mills_ratio(b)
        } else {
            eps.exp() * normal_sf(b)
        };
        normal_sf(a) - shifted
    };
    value.clamp(0.0, 1.0)
}

/// ψ(t) = e^t - 1 + δ(t) = e^t Φ(b) - Φ(a) for the Gaussian mechanism, with
/// a = tσ - 1/(2σ), b = a + 1/σ: the reversed hockey-stick term, computed without the
/// cancellation of the left-hand form when t is very negative.
pub(crate) fn gaussian_psi(sigma: f64, t: f64) -> f64 {
    if t == f64::NEG_INFINITY {
        return 0.0;
    }
    if t > 0.0 {
        return t.exp_m1() + gaussian_delta(sigma, t);
    }
    let a = t * sigma - 0.5 / sigma;
    let b = a + sigma.recip();
    let value = if b <= 0.0 {
        // e^t Φ(b) = e^t φ(b) R(-b) = φ(a) R(-b) and Φ(a) = φ(a) R(-a).
        ln_normal_pdf(a).exp() * (mills_ratio(-b) - mills_ratio(-a))
    } else {
        t.exp() * (1.0 - normal_sf(b)) - ln_normal_pdf(a).exp() * mills_ratio(-a)
    };
    value.max(0.0)
}

/// ln(e^a + e^b).
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// ln(1 + e^y), without overflow.
pub(crate) fn ln_1p_exp(y: f64) -> f64 {
    if y > 0.0 {
        y + (-y).exp().ln_1p()
    } else {
        y.exp().ln_1p()
    }
}

/// ln(e^x - 1) for x > 0.
pub(crate) fn ln_exp_m1(x: f64) -> f64 {
    if x > 1.0 {
        x + (-(-x).exp()).ln_1p()
    } else {
        x.exp_m1().ln()
    }
}

/// A sum of signed terms given by their logarithms, kept as ln(positive part) and
/// ln(negative part) so that huge and tiny terms mix without overflow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignedLogSum {
    positive: f64,
    negative: f64,
}

impl SignedLogSum {
    pub(crate) fn new() -> Self {
        SignedLogSum {
            positive: f64::NEG_INFINITY,
            negative: f64::NEG_INFINITY,
        }
    }

    /// Adds `sign * exp(log_magnitude)`.
    pub(crate) fn add(&mut self, positive: bool, log_magnitude: f64) {
        if positive {
            self.positive = log_add_exp(self.positive, log_magnitude);
        } else {
            self.negative = log_add_exp(self.negative, log_magnitude);
        }
    }

    /// ln of the sum, or `None` if the sum is not positive (cancellation or a negative sum).
    pub(crate) fn ln_positive(&self) -> Option<f64> {
        if self.positive > self.negative {
            Some(self.positive + (-(self.negative - self.positive).exp()).ln_1p())
        } else {
            None
        }
    }

    /// ln of the sum of the absolute values of the terms (a scale for error estimates).
    pub(crate) fn ln_total_magnitude(&self) -> f64 {
        log_add_exp(self.positive, self.negative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative tolerance against 40-digit reference values (mpmath).
    const RELATIVE_TOLERANCE: f64 = 1e-13;

    fn assert_close(actual: f64, expected: f64) {
        let error = ((actual - expected) / expected).abs();
        assert!(
            error < RELATIVE_TOLERANCE,
            "{actual} vs {expected}: relative error {error}"
        );
    }

    #[test]
    fn normal_tail_matches_high_precision_values() {
        // mpmath: ncdf(-t) at 40 digits.
        assert_close(normal_sf(0.0), 0.5);
        assert_close(normal_sf(1.0), 0.158_655_253_931_457_05);
        assert_close(normal_sf(5.5), 1.898_956_246_588_771_9e-8);
        assert_close(normal_sf(10.0), 7.619_853_024_160_526e-24);
        assert_close(
            ln_normal_pdf(40.0) + mills_ratio(40.0).ln(),
            -804.608_442_013_753_8,
        );
        assert_close(normal_sf(-2.0), 0.977_249_868_051_820_8);
    }

    #[test]
    fn mills_ratio_matches_high_precision_values() {
        // mpmath at 40 digits: erfc(t/√2)/2/npdf(t), across the table pieces and the
        // continued fraction.
        for &(t, expected) in &[
            (0.0, 1.253_314_137_315_500_3),
            (0.999_999_999, 0.655_679_542_763_118_9),
            (1.0, 0.655_679_542_418_798_5),
            (2.5, 0.354_265_111_329_793_7),
            (4.999_999_999_9, 0.192_808_104_718_911_7),
            (5.0, 0.192_808_104_715_315_8),
            (12.0, 0.082_766_286_501_369_18),
        ] {
            assert_close(mills_ratio(t), expected);
        }
    }

    #[test]
    fn gaussian_delta_matches_analytic_gaussian_mechanism() {
        // Balle and Wang 2018, Theorem 8, evaluated at 40 digits with mpmath.
        assert_close(
            gaussian_delta(4.530_877_117, 1.0),
            2.158_667_766_222_416_8e-7,
        );
        assert_close(gaussian_delta(0.5, 3.0), 0.183_813_076_544_472_16);
        assert_close(gaussian_delta(2.0, 8.0), 1.048_659_178_912_874_7e-57);
    }

    #[test]
    fn psi_is_the_shifted_delta() {
        for &sigma in &[0.3, 1.0, 5.0] {
            for &t in &[-3.0_f64, -0.5, -1e-3] {
                let direct = t.exp_m1() + gaussian_delta(sigma, t);
                let psi = gaussian_psi(sigma, t);
                assert!(
                    (psi - direct).abs() < 1e-14,
                    "σ={sigma} t={t}: {psi} vs {direct}"
                );
            }
        }
    }
}
