//! Gaussian noise added to buffers, in a secure (discrete, grid-exact) or fast (float) mode.

mod box_muller;
mod discrete_gaussian;

pub use discrete_gaussian::DiscreteGaussian;

use std::cell::RefCell;
use std::sync::Arc;

use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::invalid;
use crate::rng::{derive_stream_key, derived_fast_stream, derived_stream};
use crate::{DpRng, RngProvenance, SamplerError};

/// Secure noise lives on the grid `2^(floor(log2 std) - GRID_BITS)·Z`: the integer noise has a
/// scale σ in [2^40, 2^41) grid steps.
const GRID_BITS: i32 = 40;

/// Largest grid coordinate (in steps) secure noise represents exactly, 2^125.
const GRID_LIMIT: f64 = 4.253_529_586_511_731e37;

/// Below 2^51 steps the input is rounded with [`ROUNDING_SHIFT`] and noised in `i64`.
const FAST_ROUNDING_LIMIT: f64 = 2_251_799_813_685_248.0;

/// 1.5·2^52: adding and subtracting it rounds an `f64` below 2^51 to an integer.
const ROUNDING_SHIFT: f64 = 6_755_399_441_055_744.0;

/// Elements per chunk; chunk `i` draws from stream `i` (ChaCha20 for secure noise, ChaCha8 for
/// fast noise), whatever thread runs it.
const CHUNK_LEN: usize = 1 << 14;

/// Smallest and largest standard deviation accepted: keeps grid steps and sums normal `f64`s.
const MIN_STD: f64 = 1e-200;
const MAX_STD: f64 = 1e200;

/// How Gaussian noise is generated; recorded in every [`NoiseReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMode {
    /// Discrete Gaussian on a fine power-of-two grid (Canonne, Kamath, Steinke 2020), with the
    /// input rounded to the same grid: resistant to floating-point attacks (Mironov 2012).
    Secure,
    /// Float standard normals scaled by the std and added in `f64`, from ChaCha8: for `f32`
    /// buffers single-precision Box-Muller on 31 + 24 bits per pair (draws bounded by 6.56,
    /// vectorized), for `f64` buffers rand_distr's `f64` ziggurat. Fast, but float noise's
    /// rounding pattern can leak (Mironov 2012); for experiments and benchmarks.
    Fast,
}

/// What an [`add_gaussian_noise`] call did, to be stored with its result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseReport {
    /// The mode used.
    pub mode: NoiseMode,
    /// The noise standard deviation requested.
    pub std: f64,
    /// Number of values noised.
    pub len: usize,
    /// Grid step of secure noise (the output is a multiple of it before conversion to the
    /// buffer's type); `None` for fast noise.
    pub grid_step: Option<f64>,
    /// Secure noise rounds the input to the grid first, which can increase the L2
    /// sensitivity of the query by at most this much (`grid_step·sqrt(len)`, rounded up);
    /// 0 for fast noise.
    pub rounding_slack: f64,
    /// Inputs that were NaN, infinite or (secure mode) beyond 2^85·std in magnitude. Secure
    /// mode replaces NaN by 0 and clamps the others to ±2^85·std before adding noise; fast
    /// mode leaves them as they are.
    pub out_of_range_inputs: usize,
    /// The generator the noise came from.
    pub rng: RngProvenance,
}

/// A buffer element noise can be added to: `f32` or `f64`.
pub trait NoiseElement: Copy + Send + Sync + sealed::Sealed {
    /// Widens to `f64` (exact for both types).
    fn to_f64(self) -> f64;
    /// Narrows from `f64`, rounding to nearest.
    fn from_f64(value: f64) -> Self;
}

mod sealed {
    use rand_chacha::ChaCha8Rng;

    pub trait Sealed: Sized {
        /// Adds fast-mode noise of `std` to `chunk` from `stream`; returns how many values
        /// were not finite.
        fn add_fast_noise(chunk: &mut [Self], std: f64, stream: &mut ChaCha8Rng) -> usize;
    }

    impl Sealed for f32 {
        fn add_fast_noise(chunk: &mut [Self], std: f64, stream: &mut ChaCha8Rng) -> usize {
            super::box_muller::add_normals(chunk, std, stream)
        }
    }

    impl Sealed for f64 {
        fn add_fast_noise(chunk: &mut [Self], std: f64, stream: &mut ChaCha8Rng) -> usize {
            super::add_ziggurat_normals(chunk, std, stream)
        }
    }
}

impl NoiseElement for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl NoiseElement for f64 {
    fn to_f64(self) -> f64 {
        self
    }

    fn from_f64(value: f64) -> Self {
        value
    }
}

/// Adds independent N(0, std²) noise to every element of `buffer`, in place.
///
/// The work is split into chunks of fixed length, each drawing from its own ChaCha stream
/// (20 rounds for secure noise, 8 for fast noise) keyed by 256 bits from `rng`; chunks run in
/// parallel on rayon's pool (in order on the calling thread when the pool has one thread or
/// the buffer one chunk), and a seeded run gives the same result whatever the number of
/// threads.
///
/// # Privacy
///
/// With `std = noise_multiplier·Δ` for a query of L2 sensitivity Δ, the release is a
/// `Gaussian { noise_multiplier }` event. In [`NoiseMode::Secure`] each value `x` becomes
/// `(round(x/g) + Z)·g`, with `g` the report's `grid_step` and `Z` discrete Gaussian with
/// σ = std/g; the integer `round(x/g) + Z` is exact, and the conversion back to floats is
/// post-processing. Rounding can raise the sensitivity to `Δ + rounding_slack`; the slack is
/// below `std·2^-40·sqrt(len)` (about 1e-7·std for a 10^8-element buffer), so the effective
/// noise multiplier is `std/(Δ + rounding_slack)`. Values beyond 2^85·std in magnitude are
/// clamped (and NaN replaced by 0) before noising, which cannot increase sensitivity; the
/// report counts them. [`NoiseMode::Fast`] carries no such protection.
///
/// # Errors
///
/// [`SamplerError::InvalidParameter`] when `std` is not a finite number in [1e-200, 1e200]
/// (zero noise is not DP noise).
///
/// # Examples
///
/// ```
/// use dp_sampler::{NoiseMode, SeededRng, add_gaussian_noise};
///
/// let mut gradient = vec![0.5f32; 1000];
/// let report = add_gaussian_noise(&mut gradient, 1.1, NoiseMode::Secure, &mut SeededRng::new(0))?;
/// assert_eq!(report.mode, NoiseMode::Secure);
/// assert!(gradient.iter().any(|&g| g != 0.5));
/// # Ok::<(), dp_sampler::SamplerError>(())
/// ```
pub fn add_gaussian_noise<T: NoiseElement, R: DpRng + ?Sized>(
    buffer: &mut [T],
    std: f64,
    mode: NoiseMode,
    rng: &mut R,
) -> Result<NoiseReport, SamplerError> {
    if !(MIN_STD..=MAX_STD).contains(&std) {
        return Err(invalid("std", std, "must be finite and in [1e-200, 1e200]"));
    }
    let key = derive_stream_key(rng);
    let (grid_step, rounding_slack, out_of_range_inputs) = match mode {
        NoiseMode::Secure => {
            let grid = Grid::cached(std)?;
            let non_finite = for_each_chunk(buffer, key, derived_stream, |chunk, stream| {
                grid.add_noise(chunk, stream)
            });
            (
                Some(grid.step),
                grid.rounding_slack(buffer.len()),
                non_finite,
            )
        }
        NoiseMode::Fast => {
            let non_finite = for_each_chunk(buffer, key, derived_fast_stream, |chunk, stream| {
                T::add_fast_noise(chunk, std, stream)
            });
            (None, 0.0, non_finite)
        }
    };
    Ok(NoiseReport {
        mode,
        std,
        len: buffer.len(),
        grid_step,
        rounding_slack,
        out_of_range_inputs,
        rng: rng.provenance(),
    })
}

/// One N(0, std²) draw in the given mode (for scalar releases such as the noisy count of
/// adaptive clipping), with its report.
///
/// # Privacy
///
/// As [`add_gaussian_noise`] on a one-element buffer holding 0.
///
/// # Errors
///
/// As [`add_gaussian_noise`].
pub fn sample_gaussian<R: DpRng + ?Sized>(
    std: f64,
    mode: NoiseMode,
    rng: &mut R,
) -> Result<(f64, NoiseReport), SamplerError> {
    let mut value = [0.0f64];
    let report = add_gaussian_noise(&mut value, std, mode, rng)?;
    Ok((value[0], report))
}

/// Runs `work` over fixed-length chunks, chunk `i` with `stream(key, i)`; returns the sum of
/// the counts `work` returns. With one thread in rayon's pool, or one chunk, the chunks run in
/// order on the calling thread: handing them to a pool thread of a caller outside the pool
/// cost the benchmark MLP's four gradient buffers about 0.3 ms per step (0.86-0.90 ms
/// against 1.16-1.21 ms for their noise).
fn for_each_chunk<T, S, F>(
    buffer: &mut [T],
    key: [u8; 32],
    stream: fn([u8; 32], u64) -> S,
    work: F,
) -> usize
where
    T: Send,
    F: Fn(&mut [T], &mut S) -> usize + Sync,
{
    let noise_chunk =
        |(index, chunk): (usize, &mut [T])| work(chunk, &mut stream(key, index as u64));
    if buffer.len() <= CHUNK_LEN || rayon::current_num_threads() == 1 {
        buffer
            .chunks_mut(CHUNK_LEN)
            .enumerate()
            .map(noise_chunk)
            .sum()
    } else {
        buffer
            .par_chunks_mut(CHUNK_LEN)
            .enumerate()
            .map(noise_chunk)
            .sum()
    }
}

/// Fast noise for `f64` buffers: `f64` standard normals by rand_distr's ziggurat.
fn add_ziggurat_normals(chunk: &mut [f64], std: f64, stream: &mut ChaCha8Rng) -> usize {
    let mut non_finite = 0;
    for value in chunk {
        non_finite += usize::from(!value.is_finite());
        let z: f64 = StandardNormal.sample(stream);
        *value += std * z;
    }
    non_finite
}

/// The power-of-two grid of secure noise and its discrete Gaussian.
#[derive(Clone, Debug, PartialEq)]
struct Grid {
    step: f64,
    inverse_step: f64,
    noise: DiscreteGaussian,
}

impl Grid {
    fn for_std(std: f64) -> Result<Self, SamplerError> {
        // The biased exponent field of a normal f64 is floor(log2) + 1023.
        let exponent = ((std.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let step = power_of_two(exponent - GRID_BITS);
        let inverse_step = power_of_two(GRID_BITS - exponent);
        // Division by a power of two is exact, so σ lies in [2^40, 2^41).
        Ok(Grid {
            step,
            inverse_step,
            noise: DiscreteGaussian::new(std / step)?,
        })
    }

    /// The grid for `std`, the calling thread's last one when `std` is the same (a pure
    /// function of `std`, so reuse changes no draw). A trainer noises every parameter group of
    /// every step with one std, and building the discrete Gaussian's table takes 0.07-0.10 ms
    /// (measured for std 1), paid once per group and step without the reuse: about 0.4 ms of
    /// the MLP 784-256-10's four groups, against 2.7 ms for drawing their 200,704 values.
    fn cached(std: f64) -> Result<Arc<Self>, SamplerError> {
        thread_local! {
            static LAST: RefCell<Option<(u64, Arc<Grid>)>> = const { RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some((bits, grid)) = last.as_ref()
                && *bits == std.to_bits()
            {
                return Ok(Arc::clone(grid));
            }
            let grid = Arc::new(Self::for_std(std)?);
            *last = Some((std.to_bits(), Arc::clone(&grid)));
            Ok(grid)
        })
    }

    fn rounding_slack(&self, len: usize) -> f64 {
        // Each coordinate moves by at most step/2 in each of two neighbouring inputs.
        (self.step * (len as f64).sqrt()).next_up()
    }

    fn add_noise<T: NoiseElement>(&self, chunk: &mut [T], stream: &mut ChaCha20Rng) -> usize {
        let mut out_of_range = 0;
        for (value, noise) in chunk.iter_mut().zip(self.noise.samples(stream)) {
            let scaled = value.to_f64() * self.inverse_step;
            // The integer `round(x/g) + Z` is exact on both paths; converting it back to a
            // float is post-processing. Either rounding (ties to even, or away from zero)
            // moves a coordinate by at most half a step.
            let noisy = if scaled.abs() < FAST_ROUNDING_LIMIT {
                // Adding and subtracting 1.5·2^52 rounds to the nearest integer.
                let on_grid = ((scaled + ROUNDING_SHIFT) - ROUNDING_SHIFT) as i64;
                (on_grid + noise) as f64
            } else {
                // Grid points span ±2^125 steps = ±2^85·std; NaN maps to 0 and larger
                // magnitudes clamp, which never increases a distance between inputs.
                let representable = scaled.abs() <= GRID_LIMIT;
                out_of_range += usize::from(!representable);
                let on_grid = scaled.round().clamp(-GRID_LIMIT, GRID_LIMIT) as i128;
                (on_grid + i128::from(noise)) as f64
            };
            *value = T::from_f64(noisy * self.step);
        }
        out_of_range
    }
}

/// 2^exponent for exponents of normal `f64`s.
fn power_of_two(exponent: i32) -> f64 {
    f64::from_bits(((exponent + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    #[test]
    fn the_cached_grid_is_the_grid_of_its_std() {
        for std in [1.0, 0.75, 1.0, 1.0, 3e5, 0.75] {
            assert_eq!(*Grid::cached(std).unwrap(), Grid::for_std(std).unwrap());
        }
    }

    #[test]
    fn secure_noise_with_a_reused_grid_is_the_noise_of_a_fresh_one() {
        let noised = |std: f64| {
            let mut buffer = vec![0.25f32; 300];
            add_gaussian_noise(&mut buffer, std, NoiseMode::Secure, &mut SeededRng::new(9))
                .unwrap();
            buffer
        };
        // The first call after another std builds the grid, the second reuses it.
        let _ = noised(2.0);
        let fresh = noised(1.5);
        let reused = noised(1.5);
        assert_eq!(fresh, reused);
        assert_ne!(fresh, noised(2.0));
    }
}
