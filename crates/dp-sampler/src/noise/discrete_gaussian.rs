//! The discrete Gaussian on the integers (Canonne, Kamath, Steinke 2020).

use rand::{Rng, RngCore};

use crate::SamplerError;
use crate::error::invalid;

/// Largest `sigma` accepted: keeps every intermediate integer below 2^63.
const MAX_SIGMA: f64 = (1u64 << 56) as f64;

/// `floor(e^-1 · 2^64)`: a `u64` below it is a Bernoulli(e^-1) success.
const EXP_MINUS_ONE_THRESHOLD: u64 = 6_786_177_901_268_885_274;

/// From this σ on, the proposal's scale t is a multiple of [`SLABS`], split into that many slabs.
const SLAB_MIN_SIGMA: f64 = 4096.0;

/// Number of slabs of a power-of-two proposal scale.
const SLABS: u64 = 256;

/// 2^64 as a float, to turn probabilities into 64-bit thresholds (exact scaling).
const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;

/// The discrete Gaussian N_Z(0, σ²): P[X = x] ∝ exp(-x²/(2σ²)) for integers x.
///
/// Sampled by rejection from a discrete Laplace proposal with scale t (Canonne, Kamath,
/// Steinke 2020, Algorithm 3; any t > 0 is valid, t near σ is efficient), using only uniform
/// integers and Bernoulli trials. The Laplace magnitude, geometric with ratio e^(-1/t), is
/// drawn as `t·V + w·J + O` from three independent parts: V geometric with ratio e^(-1)
/// (Algorithm 2 of the same paper), and, for σ ≥ 4096 where t is the multiple of 256 just
/// above σ and w = t/256, a slab J in [0, 256) from a cumulative table and an offset O in [0, w)
/// accepted with probability e^(-O/t), which is above e^(-1/256), so a cheap comparison
/// decides almost every trial without computing the exponential. Below 4096, t =
/// floor(σ) + 1 and there is a single slab.
///
/// The output is an exact integer, so adding it to an integer (or a point of a fixed grid)
/// leaks nothing through floating-point rounding (Mironov 2012).
///
/// # Privacy
///
/// Adding N_Z(0, σ²) to an integer-valued query of L2 sensitivity Δ satisfies the same
/// Rényi-DP bound α·Δ²/(2σ²) as the continuous Gaussian (Canonne, Kamath, Steinke 2020), so a
/// `Gaussian { noise_multiplier: σ/Δ }` event describes it. The Bernoulli probabilities and
/// the slab table are evaluated in `f64` and compared with 64-bit uniforms: each probability
/// is off by at most about 2^-52 absolute (2^-44 relative for a slab), so the pmf is within a
/// relative 1e-13 of the exact one wherever it exceeds 1e-3 of its peak; further out (beyond
/// ~3.7σ) it keeps the same absolute accuracy, and no integer is unreachable. This deviation
/// is not added to the accounted δ.
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
#[derive(Clone, Debug, PartialEq)]
pub struct DiscreteGaussian {
    sigma: f64,
    /// Scale t of the discrete Laplace proposal.
    laplace_scale: u64,
    /// Width w of a slab: t / 256, or t for a single slab.
    slab_width: u64,
    /// `floor(P[J <= j]·2^64)` for j in 0..255; empty for a single slab.
    slab_thresholds: Vec<u64>,
    /// High 32 bits below which an offset is accepted without computing e^(-O/t).
    quick_accept_high: u32,
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
        let (laplace_scale, slab_width, slab_thresholds) = if sigma >= SLAB_MIN_SIGMA {
            // The multiple of 256 just above σ: t/σ < 1.07 keeps the acceptance near 76%.
            let width = (sigma / SLABS as f64).floor() as u64 + 1;
            let t = width * SLABS;
            let ratio = (-(width as f64) / t as f64).exp();
            let total = 1.0 - ratio.powi(SLABS as i32);
            let thresholds = (1..SLABS as i32)
                .map(|j| ((1.0 - ratio.powi(j)) / total * TWO_TO_64) as u64)
                .collect();
            (t, width, thresholds)
        } else {
            let t = sigma.floor() as u64 + 1;
            (t, t, Vec::new())
        };
        // e^(-O/t) >= e^(-w/t) for every offset; the margin covers rounding in `exp`.
        let floor_probability = (-(slab_width as f64) / laplace_scale as f64).exp() * (1.0 - 1e-12);
        let quick_accept_high = (floor_probability * 4_294_967_296.0) as u32;
        Ok(DiscreteGaussian {
            sigma,
            laplace_scale,
            slab_width,
            slab_thresholds,
            quick_accept_high,
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
        let mut draws = Draws {
            rng,
            bits: 0,
            bits_left: 0,
        };
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
        loop {
            let offset = draws.rng.random_range(0..self.slab_width);
            let high = draws.rng.next_u32();
            if high >= self.quick_accept_high {
                let keep = (-(offset as f64) / t as f64).exp();
                if !draws.finish_bernoulli(high, probability_threshold(keep)) {
                    continue;
                }
            }
            let slab = if self.slab_thresholds.is_empty() {
                0
            } else {
                let uniform = draws.rng.next_u64();
                self.slab_thresholds
                    .partition_point(|&threshold| threshold <= uniform) as u64
            };
            let mut whole_scales = 0u64;
            while draws.bernoulli(EXP_MINUS_ONE_THRESHOLD) {
                whole_scales += 1;
            }
            let magnitude = offset
                .saturating_add(self.slab_width.saturating_mul(slab))
                .saturating_add(t.saturating_mul(whole_scales));
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
    (probability * TWO_TO_64) as u64
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
        self.finish_bernoulli(high, threshold)
    }

    /// Completes a Bernoulli trial whose uniform has high half `high`.
    fn finish_bernoulli(&mut self, high: u32, threshold: u64) -> bool {
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
    fn slab_table_is_increasing_and_quick_accept_is_safe() {
        let noise = DiscreteGaussian::new(3e12).expect("valid");
        assert_eq!(noise.laplace_scale, 256 * (3e12 as u64 / 256 + 1));
        assert_eq!(noise.slab_width * SLABS, noise.laplace_scale);
        assert_eq!(noise.slab_thresholds.len(), SLABS as usize - 1);
        assert!(noise.slab_thresholds.windows(2).all(|w| w[0] < w[1]));
        // The first slab has probability (1 - r)/(1 - r^256) with r = e^(-1/256).
        let r = (-1.0f64 / 256.0).exp();
        let first = noise.slab_thresholds[0] as f64 / TWO_TO_64;
        assert!((first - (1.0 - r) / (1.0 - r.powi(256))).abs() < 1e-15);
        // Quick acceptance never accepts where the exact comparison would reject.
        let t = noise.laplace_scale as f64;
        let worst = probability_threshold((-(noise.slab_width as f64 - 1.0) / t).exp());
        assert!(u64::from(noise.quick_accept_high) << 32 <= worst);
        let small = DiscreteGaussian::new(2.5).expect("valid");
        assert_eq!((small.laplace_scale, small.slab_width), (3, 3));
        assert!(small.slab_thresholds.is_empty());
    }

    #[test]
    fn refuses_bad_sigma() {
        for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e18] {
            assert!(DiscreteGaussian::new(sigma).is_err(), "{sigma}");
        }
    }
}
