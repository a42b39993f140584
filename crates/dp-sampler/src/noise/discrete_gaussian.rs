//! The discrete Gaussian on the integers (Canonne, Kamath, Steinke 2020).

use rand::{Rng, RngCore};

use crate::SamplerError;
use crate::error::invalid;

/// Largest `sigma` accepted: keeps every intermediate integer below 2^63.
const MAX_SIGMA: f64 = (1u64 << 56) as f64;

/// `floor(e^-1 · 2^64)`: a `u64` below it is a Bernoulli(e^-1) success.
const EXP_MINUS_ONE_THRESHOLD: u64 = 6_786_177_901_268_885_274;

/// The discrete Gaussian N_Z(0, σ²): P[X = x] ∝ exp(-x²/(2σ²)) for integers x.
///
/// Sampled by rejection from a discrete Laplace proposal (Canonne, Kamath, Steinke 2020,
/// Algorithms 2 and 3, with `t = floor(σ) + 1`), using only uniform integers and Bernoulli
/// trials. The output is an exact integer, so adding it to an integer (or a point of a fixed
/// grid) leaks nothing through floating-point rounding (Mironov 2012).
///
/// # Privacy
///
/// Adding N_Z(0, σ²) to an integer-valued query of L2 sensitivity Δ satisfies the same
/// Rényi-DP bound α·Δ²/(2σ²) as the continuous Gaussian (Canonne, Kamath, Steinke 2020), so a
/// `Gaussian { noise_multiplier: σ/Δ }` event describes it. The Bernoulli probabilities
/// `exp(-u/t)` and `exp(-(|y| - σ²/t)²/(2σ²))` are evaluated in `f64` and compared with
/// 64-bit uniforms: each trial's probability is off by at most about 2^-52 absolute, so the
/// pmf is within a relative 1e-13 of the exact one wherever it exceeds 1e-3 of its peak; the
/// pmf further out (beyond ~3.7σ) keeps the same absolute accuracy, and no integer is
/// unreachable. This deviation is not added to the accounted δ.
///
/// # Examples
///
/// ```
/// use dp_sampler::{DiscreteGaussian, SeededRng};
///
/// let noise = DiscreteGaussian::new(3.0)?;
/// let draw: i64 = noise.sample(&mut SeededRng::new(0));
/// assert!(draw.abs() < 100);
/// # Ok::<(), dp_sampler::SamplerError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiscreteGaussian {
    sigma: f64,
    /// Scale of the discrete Laplace proposal, `floor(σ) + 1`.
    laplace_scale: u64,
    /// `σ²/t`, the centre of the rejection step.
    rejection_centre: f64,
    /// `1/(2σ²)`.
    half_inverse_variance: f64,
}

impl DiscreteGaussian {
    /// N_Z(0, σ²) for `sigma` σ in (0, 2^56].
    ///
    /// # Errors
    ///
    /// [`SamplerError::InvalidParameter`] for a non-finite, non-positive or too large σ.
    pub fn new(sigma: f64) -> Result<Self, SamplerError> {
        if !(sigma > 0.0 && sigma <= MAX_SIGMA) {
            return Err(invalid("sigma", sigma, "must be in (0, 2^56]"));
        }
        let laplace_scale = sigma.floor() as u64 + 1;
        Ok(DiscreteGaussian {
            sigma,
            laplace_scale,
            rejection_centre: sigma * sigma / laplace_scale as f64,
            half_inverse_variance: 0.5 / (sigma * sigma),
        })
    }

    /// The scale σ.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// One draw.
    pub fn sample<R: RngCore + ?Sized>(&self, rng: &mut R) -> i64 {
        let mut draws = Draws { rng, bits: 0, bits_left: 0 };
        loop {
            let candidate = self.discrete_laplace(&mut draws);
            let distance = candidate.unsigned_abs() as f64 - self.rejection_centre;
            let accept = (-distance * distance * self.half_inverse_variance).exp();
            if draws.bernoulli(probability_threshold(accept)) {
                return candidate;
            }
        }
    }

    /// Discrete Laplace with P[Y = y] ∝ exp(-|y|/t), t = `laplace_scale`.
    fn discrete_laplace<R: RngCore + ?Sized>(&self, draws: &mut Draws<'_, R>) -> i64 {
        let t = self.laplace_scale;
        let inverse_t = 1.0 / t as f64;
        loop {
            let remainder = draws.rng.random_range(0..t);
            let keep = (-(remainder as f64) * inverse_t).exp();
            if !draws.bernoulli(probability_threshold(keep)) {
                continue;
            }
            let mut whole_scales = 0u64;
            while draws.bernoulli(EXP_MINUS_ONE_THRESHOLD) {
                whole_scales += 1;
            }
            let magnitude = remainder.saturating_add(t.saturating_mul(whole_scales));
            let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
            let negative = draws.bit();
            if negative && magnitude == 0 {
                continue;
            }
            return if negative { -magnitude } else { magnitude };
        }
    }
}

/// `p` as a 64-bit fixed-point threshold: a uniform `u64` below it has probability
/// `floor(p·2^64)/2^64`, within 2^-64 of `p` (which itself carries 53 significant bits).
fn probability_threshold(probability: f64) -> u64 {
    // Scaling by 2^64 is exact; `as` saturates (p = 1 gives u64::MAX, off by 2^-64).
    (probability * 18_446_744_073_709_551_616.0) as u64
}

/// The random draws of one sample: Bernoulli trials decided lazily, 32 bits at a time, and
/// single bits from a pooled word. Both are exact: a uniform `u64` is drawn only as far as
/// needed to compare it with a threshold.
struct Draws<'a, R: ?Sized> {
    rng: &'a mut R,
    bits: u64,
    bits_left: u32,
}

impl<R: RngCore + ?Sized> Draws<'_, R> {
    /// True with probability `threshold / 2^64`.
    fn bernoulli(&mut self, threshold: u64) -> bool {
        let high = self.rng.next_u32();
        let threshold_high = (threshold >> 32) as u32;
        if high != threshold_high {
            return high < threshold_high;
        }
        // Probability 2^-32: the high halves tie and the low halves decide.
        self.rng.next_u32() < threshold as u32
    }

    /// A fair bit.
    fn bit(&mut self) -> bool {
        if self.bits_left == 0 {
            self.bits = self.rng.next_u64();
            self.bits_left = 64;
        }
        let bit = self.bits & 1 == 1;
        self.bits >>= 1;
        self.bits_left -= 1;
        bit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_e_to_the_minus_one() {
        let ratio = EXP_MINUS_ONE_THRESHOLD as f64 / 2f64.powi(64);
        assert!((ratio - (-1f64).exp()).abs() < 1e-16);
    }

    #[test]
    fn refuses_bad_sigma() {
        for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e18] {
            assert!(DiscreteGaussian::new(sigma).is_err(), "{sigma}");
        }
    }
}
