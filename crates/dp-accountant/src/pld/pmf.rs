//! Discretized privacy loss distributions: composition by FFT and the hockey-stick queries.
//!
//! Composition of independent mechanisms adds their privacy losses, so the composed PLD is
//! the convolution of the PLDs. We compose every group (a PLD and its count) at once in
//! the Fourier domain: X = Π_j FFT(p_j)^{c_j}, the powers taken by binary exponentiation
//! (repeated squaring) of each coefficient, then one inverse FFT. The FFT length covers the
//! window where all but τ of the mass lies on each side (Chernoff bounds on the composed
//! loss); the mass outside the window is moved to the infinite-loss atom, so δ stays an
//! upper bound. Floating-point error of the transforms is estimated and added to δ.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use crate::AccountantError;

/// Mass allowed outside the composition window on each side (moved to +∞).
const WINDOW_TAIL_MASS: f64 = 1e-18;

/// Largest FFT we run (2^26 points, 1 GiB of complex f64).
const MAX_FFT_LEN: usize = 1 << 26;

/// Error growth constant of a floating-point FFT: the RMS error of each coefficient is at
/// most this times ε_machine · log2(N) · ‖input‖₂ (Schatzman 1996 measured about 1; we take
/// a margin).
const FFT_ERROR_CONSTANT: f64 = 8.0;

/// Fourier coefficients whose power is below e^-this are set to zero (their total is
/// counted in the error).
const NEGLIGIBLE_LN_POWER: f64 = 60.0;

/// Steps of the golden-section search for the Chernoff exponent.
const CHERNOFF_SEARCH_STEPS: u32 = 28;

/// A PLD on the grid {(offset + i)·h}: `probs[i]` is the P-mass of loss (offset + i)·h.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DiscretePmf {
    offset: i64,
    probs: Vec<f64>,
    /// Mass of infinite privacy loss (always counts fully in δ).
    infinity_mass: f64,
    /// A bound on |δ_computed(ε) - δ_exact(ε)| over all ε, δ_exact being the δ-curve of the
    /// exact (pessimistic, discretized) composition; added to the upper bound and
    /// subtracted from the lower one.
    error: f64,
    /// How many discretized mechanisms were composed (each rounded its loss by at most h).
    rounding_steps: u64,
    /// Total probability that some step's loss fell below its grid (rounded by more than h).
    rounding_tail: f64,
}

impl DiscretePmf {
    pub(crate) fn new(
        offset: i64,
        probs: Vec<f64>,
        infinity_mass: f64,
        error: f64,
        rounding_steps: u64,
        rounding_tail: f64,
    ) -> Self {
        DiscretePmf {
            offset,
            probs,
            infinity_mass,
            error,
            rounding_steps,
            rounding_tail,
        }
    }

    /// Infinite loss with probability one.
    pub(crate) fn non_private() -> Self {
        DiscretePmf::new(0, Vec::new(), 1.0, 0.0, 0, 0.0)
    }

    /// The PLD of a mechanism that releases nothing: loss 0 with probability one.
    pub(crate) fn identity() -> Self {
        DiscretePmf::new(0, vec![1.0], 0.0, 0.0, 0, 0.0)
    }

    #[cfg(test)]
    pub(crate) fn total_mass(&self) -> f64 {
        self.probs.iter().sum::<f64>() + self.infinity_mass
    }

    /// Number of grid points carrying finite loss.
    pub(crate) fn len(&self) -> usize {
        self.probs.len()
    }

    fn loss(&self, index: usize, interval: f64) -> f64 {
        (self.offset + index as i64) as f64 * interval
    }

    /// `constant + Σ_{l_i > ε} p_i (1 - e^{ε - l_i})`.
    fn hockey_stick(&self, interval: f64, epsilon: f64, constant: f64) -> f64 {
        let mut sum = 0.0;
        for (i, &p) in self.probs.iter().enumerate().rev() {
            let loss = self.loss(i, interval);
            if loss <= epsilon {
                break;
            }
            sum += p * -(epsilon - loss).exp_m1();
        }
        constant + sum
    }

    /// The smallest ε >= 0 with `constant + Σ_{l_i > ε} p_i (1 - e^{ε - l_i}) <= target`
    /// (`f64::INFINITY` if even ε = ∞ does not reach it).
    fn epsilon_for(&self, interval: f64, target: f64, constant: f64) -> f64 {
        if constant > target {
            return f64::INFINITY;
        }
        // Between consecutive losses l_{k-1} < ε <= l_k the curve is constant + S - e^ε E
        // with S, E the sums of p_i and p_i e^{-l_i} over i >= k; scan down from the top.
        let mut mass = 0.0;
        let mut weighted = 0.0;
        for k in (0..self.probs.len()).rev() {
            let loss_k = self.loss(k, interval);
            mass += self.probs[k];
            weighted += self.probs[k] * (-loss_k).exp();
            let below = if k > 0 {
                self.loss(k - 1, interval)
            } else {
                f64::NEG_INFINITY
            };
            let floor = below.max(0.0);
            let value_at_floor = constant + mass - floor.exp() * weighted;
            if value_at_floor > target {
                // The root lies in (floor, loss_k].
                let epsilon = ((constant + mass - target) / weighted).ln();
                return epsilon.clamp(floor, loss_k);
            }
            if below < 0.0 {
                return 0.0;
            }
        }
        0.0
    }

    /// The deviation η of the total rounding Σ U_i beyond its mean, exceeded with
    /// probability at most `failure` (Hoeffding: each U_i lies in an interval of length h),
    /// plus the mean itself (at most h²/8 per step).
    fn rounding_deviation(&self, interval: f64, failure: f64) -> f64 {
        let steps = self.rounding_steps as f64;
        interval * (0.5 * steps * (1.0 / failure).ln()).sqrt() + steps * interval * interval / 8.0
    }

    /// An upper bound on δ(ε) of the composed mechanisms.
    pub(crate) fn delta_upper(&self, interval: f64, epsilon: f64) -> f64 {
        self.hockey_stick(interval, epsilon, self.infinity_mass + self.error)
            .min(1.0)
    }

    /// An upper bound on ε(δ) of the composed mechanisms.
    pub(crate) fn epsilon_upper(&self, interval: f64, delta: f64) -> f64 {
        self.epsilon_for(interval, delta, self.infinity_mass + self.error)
    }

    /// Failure probabilities tried for the optimistic estimate, as fractions of δ.
    const FAILURE_FRACTIONS: [f64; 4] = [0.3, 0.1, 1e-2, 1e-3];

    /// A lower bound on ε(δ) of the composed mechanisms.
    ///
    /// The exact composed loss L and the discretized one L' satisfy L' = L + Σ U_i with U_i
    /// in an interval of length h, mean in [0, h²/8] (connect-the-dots splits each atom
    /// between its neighbours keeping P- and Q-mass). So, except with probability β (plus
    /// the mass that fell below some grid), L >= L' - η(β), and
    /// δ_L(ε) >= δ_{L'}(ε + η) - β. The infinite-loss mass is ignored (optimistic) and the
    /// numerical error subtracted.
    pub(crate) fn epsilon_lower(&self, interval: f64, delta: f64) -> f64 {
        Self::FAILURE_FRACTIONS
            .iter()
            .map(|&fraction| {
                let failure = fraction * delta;
                let target = delta + failure + self.rounding_tail + self.error;
                let eta = self.rounding_deviation(interval, failure);
                self.epsilon_for(interval, target, 0.0) - eta
            })
            .fold(0.0, f64::max)
    }

    /// A lower bound on δ(ε) of the composed mechanisms (see [`Self::epsilon_lower`]).
    pub(crate) fn delta_lower(&self, interval: f64, epsilon: f64) -> f64 {
        Self::FAILURE_FRACTIONS
            .iter()
            .map(|&fraction| {
                let failure = fraction * self.hockey_stick(interval, epsilon, 0.0);
                if failure <= 0.0 {
                    return 0.0;
                }
                let eta = self.rounding_deviation(interval, failure);
                self.hockey_stick(interval, epsilon + eta, 0.0)
                    - failure
                    - self.rounding_tail
                    - self.error
            })
            .fold(0.0, f64::max)
    }
}

/// Forward and inverse FFT plans of length `len`, from a planner shared by the process so
/// that repeated compositions (calibration) reuse twiddle factors.
fn plans(len: usize) -> (Arc<dyn rustfft::Fft<f64>>, Arc<dyn rustfft::Fft<f64>>) {
    static PLANNER: OnceLock<Mutex<FftPlanner<f64>>> = OnceLock::new();
    let planner = PLANNER.get_or_init(|| Mutex::new(FftPlanner::new()));
    // A panic while planning cannot leave the planner's cache inconsistent: use it anyway.
    let mut planner = planner.lock().unwrap_or_else(PoisonError::into_inner);
    (planner.plan_fft_forward(len), planner.plan_fft_inverse(len))
}

/// One FFT of `pmf` zero-padded to the plan's length.
fn transform(fft: &Arc<dyn rustfft::Fft<f64>>, pmf: &DiscretePmf, len: usize) -> Vec<Complex<f64>> {
    let mut buffer = vec![Complex::new(0.0, 0.0); len];
    for (slot, &p) in buffer.iter_mut().zip(&pmf.probs) {
        slot.re = p;
    }
    fft.process(&mut buffer);
    buffer
}

/// z^n by binary exponentiation.
fn complex_power(z: Complex<f64>, mut n: u64) -> Complex<f64> {
    let mut result = Complex::new(1.0, 0.0);
    let mut base = z;
    while n > 0 {
        if n & 1 == 1 {
            result *= base;
        }
        n >>= 1;
        if n > 0 {
            base = base * base;
        }
    }
    result
}

/// ln Σ_i p_i e^{λ i} (natural-log moment generating function, index units), λ != 0,
/// scaled so that no term overflows; an upper bound (underflowed terms are re-added).
fn ln_mgf(probs: &[f64], lambda: f64) -> f64 {
    let step = (-lambda.abs()).exp();
    let sum = if lambda > 0.0 {
        geometric_weighted_sum(probs.iter().rev(), step)
    } else {
        geometric_weighted_sum(probs.iter(), step)
    };
    let reference = if lambda > 0.0 {
        lambda * (probs.len() - 1) as f64
    } else {
        0.0
    };
    reference + sum.ln()
}

/// Σ_i p_i step^i over `terms`, stopping once the weight is negligible and adding the most
/// the remaining terms could contribute (their total mass is at most 1). Four interleaved
/// accumulators break the multiply chain.
fn geometric_weighted_sum<'a>(terms: impl Iterator<Item = &'a f64>, step: f64) -> f64 {
    const NEGLIGIBLE_WEIGHT: f64 = 1e-300;
    let step4 = step.powi(4);
    let mut weights = [1.0, step, step * step, step * step * step];
    let mut sums = [0.0; 4];
    let mut chunks = ChunksOf4 { inner: terms };
    while let Some(chunk) = chunks.next_chunk() {
        for ((sum, weight), p) in sums.iter_mut().zip(&mut weights).zip(chunk) {
            *sum += p * *weight;
            *weight *= step4;
        }
        if weights[0] < NEGLIGIBLE_WEIGHT {
            return sums.iter().sum::<f64>() + NEGLIGIBLE_WEIGHT;
        }
    }
    sums.iter().sum()
}

/// Groups an iterator of probabilities into chunks of four (the last padded with zeros).
struct ChunksOf4<I> {
    inner: I,
}

impl<'a, I: Iterator<Item = &'a f64>> ChunksOf4<I> {
    fn next_chunk(&mut self) -> Option<[f64; 4]> {
        let first = *self.inner.next()?;
        let mut chunk = [first, 0.0, 0.0, 0.0];
        for slot in chunk.iter_mut().skip(1) {
            match self.inner.next() {
                Some(&p) => *slot = p,
                None => break,
            }
        }
        Some(chunk)
    }
}

/// The composition window [low, high] (relative index, from Σ c_j·offset_j) outside which
/// each side holds at most `WINDOW_TAIL_MASS` (Chernoff: P(S >= m) <= e^{-λm} E e^{λS}).
fn chernoff_window(groups: &[(&DiscretePmf, u64)], span: u64) -> (u64, u64) {
    let ln_inverse_tail = (1.0 / WINDOW_TAIL_MASS).ln();
    // Moments of the composed (finite part of the) loss, in index units.
    let mut variance = 0.0;
    for (pmf, count) in groups {
        let mass: f64 = pmf.probs.iter().sum();
        if mass <= 0.0 {
            continue;
        }
        let mean = pmf
            .probs
            .iter()
            .enumerate()
            .map(|(i, p)| i as f64 * p)
            .sum::<f64>()
            / mass;
        let var = pmf
            .probs
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64 - mean).powi(2) * p)
            .sum::<f64>()
            / mass;
        variance += *count as f64 * var;
    }
    let span_f = span as f64;
    if variance <= 0.0 {
        return (0, span);
    }
    let centre = (2.0 * ln_inverse_tail / variance).sqrt();
    let bound = |lambda: f64| -> f64 {
        // lambda > 0: upper bound on the window's top; lambda < 0: on its bottom.
        let cumulant: f64 = groups
            .iter()
            .map(|(pmf, count)| *count as f64 * ln_mgf(&pmf.probs, lambda))
            .sum();
        (cumulant + ln_inverse_tail) / lambda
    };
    let minimize = |sign: f64| -> f64 {
        // The bound is unimodal in λ > 0; golden-section search on ln λ.
        let (mut low, mut high) = ((centre / 300.0).ln(), (centre * 300.0).ln());
        let ratio = 0.5 * (5.0_f64.sqrt() - 1.0);
        let objective = |x: f64| sign * bound(sign * x.exp());
        let mut a = high - ratio * (high - low);
        let mut b = low + ratio * (high - low);
        let (mut fa, mut fb) = (objective(a), objective(b));
        for _ in 0..CHERNOFF_SEARCH_STEPS {
            if fa < fb {
                high = b;
                b = a;
                fb = fa;
                a = high - ratio * (high - low);
                fa = objective(a);
            } else {
                low = a;
                a = b;
                fa = fb;
                b = low + ratio * (high - low);
                fb = objective(b);
            }
        }
        sign * fa.min(fb)
    };
    let top = minimize(1.0).ceil().clamp(0.0, span_f);
    let bottom = minimize(-1.0).floor().clamp(0.0, top);
    // Both are integral and within [0, span].
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (bottom as u64, top as u64)
}

/// An FFT length >= `minimum` whose factors are 2 and 3 only (fast in rustfft).
fn fast_len(minimum: usize) -> usize {
    let mut best = minimum.next_power_of_two();
    let mut power_of_three = 1usize;
    while power_of_three < best {
        let mut candidate = power_of_three;
        while candidate < minimum {
            candidate *= 2;
        }
        best = best.min(candidate);
        power_of_three *= 3;
    }
    best
}

/// The composition of `pmf_j` taken `count_j` times each.
pub(crate) fn compose(groups: &[(&DiscretePmf, u64)]) -> Result<DiscretePmf, AccountantError> {
    let groups: Vec<(&DiscretePmf, u64)> = groups
        .iter()
        .copied()
        .filter(|(_, count)| *count > 0)
        .collect();
    if groups.is_empty() {
        return Ok(DiscretePmf::identity());
    }
    if groups
        .iter()
        .any(|(pmf, _)| pmf.infinity_mass >= 1.0 || pmf.probs.is_empty())
    {
        return Ok(DiscretePmf::non_private());
    }
    if let [(pmf, 1)] = groups[..] {
        return Ok(pmf.clone());
    }
    let overflow = || AccountantError::CountOverflow;
    let mut base_offset: i64 = 0;
    let mut span: u64 = 0;
    let mut ln_finite = 0.0;
    let mut error = 0.0;
    let mut rounding_steps: u64 = 0;
    let mut rounding_tail = 0.0;
    for (pmf, count) in &groups {
        let count_i = i64::try_from(*count).map_err(|_| overflow())?;
        base_offset = count_i
            .checked_mul(pmf.offset)
            .and_then(|x| x.checked_add(base_offset))
            .ok_or_else(overflow)?;
        let width = (pmf.probs.len() - 1) as u64;
        span = count
            .checked_mul(width)
            .and_then(|x| x.checked_add(span))
            .ok_or_else(overflow)?;
        ln_finite += *count as f64 * (-pmf.infinity_mass).ln_1p();
        error += *count as f64 * pmf.error;
        rounding_steps = count
            .checked_mul(pmf.rounding_steps)
            .and_then(|x| x.checked_add(rounding_steps))
            .ok_or_else(overflow)?;
        rounding_tail += *count as f64 * pmf.rounding_tail;
    }
    let (low, high) = chernoff_window(&groups, span);
    let window = usize::try_from(high - low + 1).map_err(|_| overflow())?;
    let longest = groups.iter().map(|(pmf, _)| pmf.len()).max().unwrap_or(1);
    let len = fast_len(window.max(longest));
    if len > MAX_FFT_LEN {
        return Err(AccountantError::TooLarge {
            what: "PLD composition FFT",
            size: len as u64,
            limit: MAX_FFT_LEN as u64,
        });
    }
    let (forward, inverse) = plans(len);
    let log2_len = (len as f64).log2();
    // Per coefficient, ln of an upper bound on |X_k| allowing for the forward FFTs' error
    // (-∞ where that bound is negligible).
    let mut ln_perturbed = vec![0.0; len];
    let mut product: Option<Vec<Complex<f64>>> = None;
    for (pmf, count) in &groups {
        let mut spectrum = transform(&forward, pmf, len);
        let norm = pmf.probs.iter().map(|p| p * p).sum::<f64>().sqrt();
        let coefficient_error = FFT_ERROR_CONSTANT * f64::EPSILON * log2_len * norm;
        let count_f = *count as f64;
        // (|z| + e)^c < e^-NEGLIGIBLE_LN_POWER needs no logarithm.
        let threshold = (-NEGLIGIBLE_LN_POWER / count_f).exp() - coefficient_error;
        let threshold_squared = if threshold > 0.0 {
            threshold * threshold
        } else {
            -1.0
        };
        for (z, perturbed) in spectrum.iter_mut().zip(ln_perturbed.iter_mut()) {
            if *perturbed == f64::NEG_INFINITY || z.norm_sqr() < threshold_squared {
                *z = Complex::new(0.0, 0.0);
                *perturbed = f64::NEG_INFINITY;
            } else {
                *perturbed += count_f * (z.norm() + coefficient_error).ln();
                *z = complex_power(*z, *count);
            }
        }
        product = Some(match product {
            None => spectrum,
            Some(mut accumulated) => {
                for (value, z) in accumulated.iter_mut().zip(&spectrum) {
                    *value *= z;
                }
                accumulated
            }
        });
    }
    let product = product.unwrap_or_else(|| vec![Complex::new(1.0, 0.0); len]);
    // ℓ1 error of the output <= Σ_k |ΔX_k| (each output is a 1/len-weighted sum of the X_k),
    // with |ΔX_k| <= Π(|X_jk| + e_j)^{c_j} - |X_k| plus the rounding of the powers; the
    // coefficients set to zero above contribute at most e^-NEGLIGIBLE_LN_POWER each.
    let power_rounding = 4.0
        * f64::EPSILON
        * groups
            .iter()
            .map(|(_, c)| (*c as f64).log2() + 1.0)
            .sum::<f64>();
    let mut transform_error = 0.0;
    for (value, &perturbed) in product.iter().zip(&ln_perturbed) {
        if perturbed == f64::NEG_INFINITY {
            transform_error += (-NEGLIGIBLE_LN_POWER).exp();
        } else {
            let magnitude = value.norm();
            transform_error += (perturbed.exp() - magnitude).max(0.0) + power_rounding * magnitude;
        }
    }
    let mut output = product;
    inverse.process(&mut output);
    let scale = 1.0 / len as f64;
    let mut probs = Vec::with_capacity(window);
    let mut clamped = 0.0;
    let low_index = usize::try_from(low).map_err(|_| overflow())?;
    for m in 0..window {
        let value = output[(low_index + m) % len].re * scale;
        if value < 0.0 {
            clamped -= value;
        }
        probs.push(value.max(0.0));
    }
    let output_norm = probs.iter().map(|p| p * p).sum::<f64>().sqrt();
    let inverse_error =
        FFT_ERROR_CONSTANT * f64::EPSILON * log2_len * output_norm * (len as f64).sqrt();
    let offset = base_offset
        .checked_add(i64::try_from(low).map_err(|_| overflow())?)
        .ok_or_else(overflow)?;
    // Mass beyond the window goes to +∞ (pessimistic); it also aliased into the window.
    let truncated = 2.0 * WINDOW_TAIL_MASS;
    let infinity_mass = (-ln_finite.exp_m1() + truncated).min(1.0);
    let error = error + transform_error + inverse_error + clamped + truncated;
    Ok(DiscretePmf::new(
        offset,
        probs,
        infinity_mass,
        error,
        rounding_steps,
        rounding_tail,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pmf(offset: i64, probs: &[f64]) -> DiscretePmf {
        DiscretePmf::new(offset, probs.to_vec(), 0.0, 0.0, 1, 0.0)
    }

    #[test]
    fn composition_is_the_convolution() {
        let a = pmf(-1, &[0.25, 0.5, 0.25]);
        let b = pmf(2, &[0.5, 0.5]);
        let composed = compose(&[(&a, 2), (&b, 1)]).expect("small");
        // a*a = [1,4,6,4,1]/16 at offsets -2..2, then * b at 2..3.
        let expected = [1.0, 5.0, 10.0, 10.0, 5.0, 1.0].map(|x| x / 32.0);
        let first = usize::try_from(0 - composed.offset).ok();
        assert_eq!(
            first,
            Some(0),
            "the window keeps everything: offset {}",
            composed.offset
        );
        for (i, e) in expected.iter().enumerate() {
            assert!(
                (composed.probs[i] - e).abs() < 1e-15,
                "{i}: {} vs {e}",
                composed.probs[i]
            );
        }
        assert!(composed.infinity_mass < 1e-17);
    }

    #[test]
    fn infinity_mass_composes_multiplicatively() {
        let a = DiscretePmf::new(0, vec![0.9, 0.05], 0.05, 0.0, 1, 0.0);
        let composed = compose(&[(&a, 3)]).expect("small");
        let expected = 1.0 - 0.95_f64.powi(3);
        assert!((composed.infinity_mass - expected).abs() < 1e-15);
    }

    #[test]
    fn hockey_stick_and_epsilon_are_inverse() {
        let a = pmf(-2, &[0.1, 0.2, 0.3, 0.25, 0.15]);
        let interval = 0.5;
        for target in [0.3, 0.1, 0.01] {
            let epsilon = a.epsilon_for(interval, target, 0.0);
            let delta = a.hockey_stick(interval, epsilon, 0.0);
            assert!(delta <= target + 1e-15, "δ({epsilon}) = {delta} > {target}");
            if epsilon > 0.0 {
                assert!(a.hockey_stick(interval, epsilon - 1e-9, 0.0) > target);
            }
        }
    }

    #[test]
    fn fast_len_is_smooth_and_large_enough() {
        for n in [1, 2, 3, 5, 7, 100, 1000, 152_539] {
            let len = fast_len(n);
            assert!(len >= n);
            let mut m = len;
            while m.is_multiple_of(2) {
                m /= 2;
            }
            while m.is_multiple_of(3) {
                m /= 3;
            }
            assert_eq!(m, 1, "{len} has other factors");
            assert!(len < 2 * n.max(2), "{len} too large for {n}");
        }
    }
}
