//! RDP of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar, Zhang 2019,
//! "Rényi Differential Privacy of the Sampled Gaussian Mechanism", Sec. 3).
//!
//! With μ0 = N(0, σ²), μ1 = N(1, σ²) and μ = (1-q)μ0 + qμ1, the RDP at order α is
//! ln(A_α)/(α-1) with A_α = E_{z~μ0}[(μ(z)/μ0(z))^α]. Both neighbouring directions of the
//! add/remove relation are bounded by this quantity (MTZ 2019, Sec. 3).
//!
//! We compute A_α - 1 rather than A_α, so that tiny sampling probabilities keep full
//! relative precision (A_α - 1 is O(q²) and would drown in the rounding of 1 + O(q²)):
//! - integer α: A_α - 1 = Σ_{k=2..α} C(α,k) (1-q)^{α-k} q^k (e^{(k²-k)/(2σ²)} - 1), a sum of
//!   positive terms (the k = 0, 1 terms of the binomial expansion cancel the 1 exactly);
//! - fractional α: A_α - 1 = E_{x~N(0,1)}[g(q(L - 1))] with L = e^{x/σ - 1/(2σ²)} the
//!   likelihood ratio and g(u) = (1+u)^α - 1 - αu >= 0 (the subtracted αu has mean zero).
//!   The integrand is positive (no cancellation) and analytic in the strip |Im x| < πσ, so
//!   the trapezoidal rule converges geometrically (Trefethen and Weideman 2014, "The
//!   exponentially convergent trapezoidal rule", Theorem 5.1): with step h = d/8 for a strip
//!   of half-width d = min(πσ/2, 3) the relative error is below e^{-2πd/h} e^{d²/2} < 1e-19.
//!   MTZ's series for fractional orders is equivalent, but its alternating tail decays only
//!   polynomially for α near 1 (thousands of terms), and dropping the signs of its
//!   generalized binomial coefficients, as dp_accounting 0.6 does, over-estimates the RDP.

use std::sync::OnceLock;

use crate::special::{ln_1p_exp, ln_exp_m1, ln_normal_pdf};

/// Relative safety margin added to the quadrature for fractional orders (its error is
/// below 1e-19 by the bound in the module documentation; this covers the rounding of g and
/// of the sum).
const QUADRATURE_RELATIVE_MARGIN: f64 = 1e-12;

/// The quadrature walks away from the integrand's peak until the integrand is below this
/// fraction of the running sum and still decreasing.
const QUADRATURE_NEGLIGIBLE: f64 = 1e-20;

/// Integer orders up to this value use the integer formula; it is exact for any integer
/// but costs O(α).
const MAX_INTEGER_ORDER: f64 = 1e7;

/// Rounding allowance of the integer-order sum, in ulps per term.
const INTEGER_SUM_ULPS_PER_TERM: f64 = 4.0;

/// Terms of the integer-order sum more than this far (in log space) below the running
/// maximum are not exponentiated; their largest possible total is added instead.
const NEGLIGIBLE_TERM_LN: f64 = -60.0;

/// The RDP at each of `orders` (each > 1) of the Gaussian mechanism with noise multiplier
/// `sigma` on a Poisson subsample with probability `q` in (0, 1], under add/remove-one.
pub(crate) fn rdp_curve(q: f64, sigma: f64, orders: &[f64]) -> Vec<f64> {
    if sigma == f64::INFINITY {
        return vec![0.0; orders.len()];
    }
    if q >= 1.0 {
        return orders
            .iter()
            .map(|alpha| alpha / (2.0 * sigma * sigma))
            .collect();
    }
    let mut lattice = Lattice::new(q, sigma, orders);
    orders
        .iter()
        .map(|&alpha| {
            let ln_a_minus_1 = if alpha.fract() == 0.0 && alpha <= MAX_INTEGER_ORDER {
                // The guard makes the conversion exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let order = alpha as u64;
                ln_a_minus_1_integer(q, sigma, order)
            } else {
                lattice.ln_a_minus_1(alpha)
            };
            ln_1p_exp(ln_a_minus_1) / (alpha - 1.0)
        })
        .collect()
}

/// ln n for small integers, computed once per process.
fn ln_integer(n: u64) -> f64 {
    const TABLE_LEN: usize = 4097;
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..TABLE_LEN).map(|n| (n as f64).ln()).collect());
    usize::try_from(n)
        .ok()
        .and_then(|i| table.get(i).copied())
        .unwrap_or_else(|| (n as f64).ln())
}

/// ln(A_α - 1) for integer α >= 2, as a streaming log-sum-exp of positive terms.
fn ln_a_minus_1_integer(q: f64, sigma: f64, alpha: u64) -> f64 {
    let ln_odds = q.ln() - (-q).ln_1p();
    let two_variance = 2.0 * sigma * sigma;
    // ln of the k-th term without the e^x - 1 factor: ln C(α,k) + k ln q + (α-k) ln(1-q),
    // updated by ln((α-k+1)/k) + ln(q/(1-q)) from k = 1.
    let mut ln_binomial_mass = (alpha as f64) * (-q).ln_1p() + ln_integer(alpha) + ln_odds;
    let mut max = f64::NEG_INFINITY;
    let mut scaled_sum = 0.0;
    let mut skipped = 0.0;
    for k in 2..=alpha {
        ln_binomial_mass += ln_integer(alpha - k + 1) - ln_integer(k) + ln_odds;
        let k_f = k as f64;
        let exponent = (k_f * k_f - k_f) / two_variance;
        // ln(e^x - 1) = x to double precision once x > 40.
        let term = ln_binomial_mass
            + if exponent > 40.0 {
                exponent
            } else {
                ln_exp_m1(exponent)
            };
        if term > max {
            // Rescale the running sum to the new maximum; when it drops below e^-60 of it,
            // keep only an upper bound and skip the exponential.
            let shrink = if max - term < NEGLIGIBLE_TERM_LN {
                NEGLIGIBLE_TERM_LN.exp()
            } else {
                (max - term).exp()
            };
            skipped = (scaled_sum + skipped) * shrink;
            scaled_sum = 1.0;
            max = term;
        } else if term - max > NEGLIGIBLE_TERM_LN {
            scaled_sum += (term - max).exp();
        } else {
            skipped += NEGLIGIBLE_TERM_LN.exp();
        }
    }
    // Each of the α terms carries a few ulps of rounding (binomial increments, the exponent,
    // the rescaling); add that much so the sum is not below the exact one.
    let rounding_margin = INTEGER_SUM_ULPS_PER_TERM * alpha as f64 * f64::EPSILON;
    max + (scaled_sum + skipped).ln() + rounding_margin.ln_1p()
}

/// ln g(u) for g(u) = (1+u)^α - 1 - αu, u > -1, α > 1 (g >= 0 by convexity).
fn ln_binomial_remainder(u: f64, alpha: f64) -> f64 {
    let v = alpha * u.ln_1p();
    if v < 700.0 {
        binomial_remainder(u, alpha, v).ln()
    } else {
        // (1+u)^α dominates: ln((1+u)^α (1 - (1 + αu)(1+u)^{-α})).
        v + (-(1.0 + alpha * u) * (-v).exp()).ln_1p()
    }
}

/// g(u) = (1+u)^α - 1 - αu given v = α ln(1+u) < 700.
fn binomial_remainder(u: f64, alpha: f64, v: f64) -> f64 {
    if (alpha * u).abs() < 0.01 {
        // Σ_{k>=2} C(α,k) u^k: each term is at most |αu|/2 < 1/200 of the previous one, so
        // eight terms reach 1e-18. (Above the threshold the closed form below loses at most
        // 2 ulps / |αu| < 5e-14 relative to cancellation, within the quadrature margin.)
        let mut term = alpha * (alpha - 1.0) * 0.5 * u * u;
        let mut sum = term;
        let mut k = 2.0;
        while term.abs() > sum.abs() * 1e-18 && k < 400.0 {
            k += 1.0;
            term *= (alpha - k + 1.0) / k * u;
            sum += term;
        }
        sum
    } else {
        v.exp_m1() - alpha * u
    }
}

/// A quadrature node x = k·h with the order-independent parts of the integrand.
#[derive(Clone, Copy, Debug)]
struct Node {
    ln_pdf: f64,
    pdf: f64,
    u: f64,
    ln_1p_u: f64,
}

/// The trapezoidal lattice for E_{x~N(0,1)}[g(q(L(x) - 1))], shared by the fractional
/// orders of one curve (the nodes do not depend on α).
struct Lattice {
    q: f64,
    sigma: f64,
    step: f64,
    shift: f64,
    first: i64,
    nodes: Vec<Node>,
}

impl Lattice {
    fn new(q: f64, sigma: f64, orders: &[f64]) -> Self {
        let strip = (0.5 * std::f64::consts::PI * sigma).min(3.0);
        let step = strip / 8.0;
        let shift = 0.5 / (sigma * sigma);
        // Precompute the nodes every fractional order will likely visit; others are computed
        // on the fly.
        let highest = orders
            .iter()
            .filter(|a| a.fract() != 0.0)
            .fold(2.0_f64, |m, &a| m.max(a));
        let low = -12.0_f64;
        let high = (highest / sigma).min(60.0) + 12.0;
        // |low|, |high| / step < 2^31: step >= 0.003 for σ >= 0.01 is not assumed; clamp.
        #[allow(clippy::cast_possible_truncation)]
        let (first, last) = (
            (low / step).floor().max(-1e6) as i64,
            (high / step).ceil().min(1e6) as i64,
        );
        let mut lattice = Lattice {
            q,
            sigma,
            step,
            shift,
            first,
            nodes: Vec::new(),
        };
        lattice.nodes = (first..=last).map(|k| lattice.compute(k)).collect();
        lattice
    }

    fn compute(&self, k: i64) -> Node {
        let x = k as f64 * self.step;
        let u = self.q * (x / self.sigma - self.shift).exp_m1();
        let ln_pdf = ln_normal_pdf(x);
        // Below e^-700 the linear path is not used (see `linear_sum`); skip the slow underflow.
        let pdf = if ln_pdf < -700.0 { 0.0 } else { ln_pdf.exp() };
        Node {
            ln_pdf,
            pdf,
            u,
            ln_1p_u: u.ln_1p(),
        }
    }

    fn node(&self, k: i64) -> Node {
        usize::try_from(k - self.first)
            .ok()
            .and_then(|i| self.nodes.get(i).copied())
            .unwrap_or_else(|| self.compute(k))
    }

    /// ln(A_α - 1) for fractional α by the trapezoidal rule.
    fn ln_a_minus_1(&mut self, alpha: f64) -> f64 {
        // Linear-space sum when every term is representable, log space otherwise.
        self.linear_sum(alpha)
            .unwrap_or_else(|| self.log_sum(alpha))
            + self.step.ln()
            + QUADRATURE_RELATIVE_MARGIN.ln_1p()
    }

    /// The lattice index to start the walk from: the integrand is unimodal with its peak
    /// between 0 and max(α, 2)/σ.
    fn centre(&self, alpha: f64) -> i64 {
        let start = (alpha.max(2.0) / self.sigma).min(40.0);
        // |start / step| < 1e6.
        #[allow(clippy::cast_possible_truncation)]
        let centre = (start / self.step).round() as i64;
        centre
    }

    /// ln Σ_k φ(x_k) g(u_k) in linear arithmetic, or `None` if a term would overflow or
    /// underflow.
    fn linear_sum(&self, alpha: f64) -> Option<f64> {
        let term = |node: Node| -> Option<f64> {
            let v = alpha * node.ln_1p_u;
            if v >= 700.0 || node.ln_pdf < -700.0 {
                return None;
            }
            Some(node.pdf * binomial_remainder(node.u, alpha, v))
        };
        let centre = self.centre(alpha);
        let mut sum = term(self.node(centre))?;
        for direction in [-1, 1] {
            let mut previous = f64::INFINITY;
            let mut k = centre + direction;
            loop {
                let value = term(self.node(k))?;
                sum += value;
                if value <= sum * QUADRATURE_NEGLIGIBLE && value <= previous {
                    break;
                }
                previous = value;
                k += direction;
            }
        }
        (sum > 0.0).then(|| sum.ln())
    }

    /// ln Σ_k φ(x_k) g(u_k) in log space (huge orders, tiny noise).
    fn log_sum(&self, alpha: f64) -> f64 {
        let ln_term = |node: Node| node.ln_pdf + ln_binomial_remainder(node.u, alpha);
        let centre = self.centre(alpha);
        let mut max = ln_term(self.node(centre));
        let mut scaled_sum = 1.0;
        let negligible = QUADRATURE_NEGLIGIBLE.ln();
        for direction in [-1, 1] {
            let mut previous = f64::INFINITY;
            let mut k = centre + direction;
            loop {
                let value = ln_term(self.node(k));
                if value > max {
                    scaled_sum = scaled_sum * (max - value).exp() + 1.0;
                    max = value;
                } else {
                    scaled_sum += (value - max).exp();
                }
                let small = value < max + scaled_sum.ln() + negligible;
                if (small && value <= previous) || value == f64::NEG_INFINITY {
                    break;
                }
                previous = value;
                k += direction;
            }
        }
        max + scaled_sum.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative agreement required with 50-digit quadrature of A_α - 1 (mpmath).
    const RELATIVE_TOLERANCE: f64 = 1e-9;

    fn rdp(q: f64, sigma: f64, alpha: f64) -> f64 {
        rdp_curve(q, sigma, &[alpha])[0]
    }

    fn assert_rdp(q: f64, sigma: f64, alpha: f64, expected: f64) {
        let actual = rdp(q, sigma, alpha);
        let error = ((actual - expected) / expected).abs();
        assert!(
            error < RELATIVE_TOLERANCE,
            "q={q} σ={sigma} α={alpha}: {actual} vs {expected} ({error:e})"
        );
    }

    #[test]
    fn matches_high_precision_quadrature() {
        // Reference: mpmath quad of E_{μ0}[(1-q+qL)^α] - 1 at 50 digits, then ln1p(.)/(α-1).
        for &(q, sigma, alpha, expected) in crate::rdp::tests::SAMPLED_GAUSSIAN_REFERENCE {
            assert_rdp(q, sigma, alpha, expected);
        }
    }

    #[test]
    fn fractional_orders_interpolate_integer_orders() {
        // The RDP curve is continuous in α: α = 3 ± 1e-9 against the integer formula.
        for &(q, sigma) in &[(0.01, 1.0), (1e-6, 0.8), (0.3, 2.0)] {
            let exact = rdp(q, sigma, 3.0);
            for alpha in [3.0 - 1e-9, 3.0 + 1e-9] {
                let near = rdp(q, sigma, alpha);
                assert!(
                    ((near - exact) / exact).abs() < 1e-6,
                    "q={q} σ={sigma}: {near} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn binomial_remainder_agrees_with_direct_formula() {
        for &(u, alpha) in &[
            (0.01_f64, 2.5),
            (-0.001, 10.5),
            (0.2, 1.5),
            (3.0, 4.5),
            (-0.5, 1.1),
        ] {
            let direct = (1.0 + u).powf(alpha) - 1.0 - alpha * u;
            let ours = ln_binomial_remainder(u, alpha).exp();
            assert!(
                ((binomial_remainder(u, alpha, alpha * u.ln_1p()) - direct) / direct).abs() < 1e-9
            );
            assert!(
                ((ours - direct) / direct).abs() < 1e-9,
                "u={u} α={alpha}: {ours} vs {direct}"
            );
        }
    }
}
