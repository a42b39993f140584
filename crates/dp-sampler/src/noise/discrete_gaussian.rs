//! The discrete Gaussian on the integers (Canonne, Kamath, Steinke 2020).

use std::sync::LazyLock;

use rand::{Rng, RngCore};

use crate::SamplerError;
use crate::error::invalid;

/// Largest `sigma` accepted: keeps every intermediate integer below 2^63.
const MAX_SIGMA: f64 = (1u64 << 56) as f64;

/// From this σ on, draws come from the table of cells; below it, from Laplace rejection.
const CELL_MIN_SIGMA: f64 = 4096.0;

/// A cell is 2^-8 of the power of two just below σ wide: σ spans 256 to 512 cells.
const CELL_WIDTH_SHIFT: i32 = 8;

/// The cells cover magnitudes below (at least) this many σ; beyond is the tail.
const CELL_COVERAGE_SIGMAS: f64 = 5.0;

/// Bits of a uniform that index the guide table of the cell distribution.
const GUIDE_BITS: u32 = 12;

/// Powers e^-k, k = 1..=16, of the geometric part with ratio e^-1, decided by one uniform.
const GEOMETRIC_TABLE_LEN: usize = 16;

/// Buckets of x per unit in the table that decides most Bernoulli(e^-x) trials without `exp`.
const EXP_BUCKETS_PER_UNIT: f64 = 64.0;

/// The table covers x in [0, 16); beyond it `exp` is always evaluated.
const EXP_TABLE_LEN: usize = 16 * 64;

/// Relative margin between a tabulated bound and `exp`'s result; far above `exp`'s rounding
/// error (a few 2^-53) and far below the bucket width.
const TABLE_MARGIN: f64 = 1e-12;

/// 2^64 and 2^32 as floats, to turn probabilities into fixed-point thresholds (exact scaling).
const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;
const TWO_TO_32: f64 = 4_294_967_296.0;

/// `floor(e^-k · 2^64)` for k = 1..=16: a uniform `u64` below entry k-1 has probability e^-k.
static GEOMETRIC_THRESHOLDS: LazyLock<[u64; GEOMETRIC_TABLE_LEN]> = LazyLock::new(|| {
    std::array::from_fn(|index| probability_threshold((-(index as f64 + 1.0)).exp()))
});

/// For x in bucket k, `[k/64, (k+1)/64)`: the high 32 bits of a uniform below the first entry
/// accept a Bernoulli(e^-x) trial, at or above the second they reject it, whatever x is in the
/// bucket and whatever the low bits are.
static EXP_TABLE: LazyLock<Vec<(u32, u64)>> = LazyLock::new(|| {
    (0..EXP_TABLE_LEN)
        .map(|bucket| {
            let lowest = (-(bucket as f64 + 1.0) / EXP_BUCKETS_PER_UNIT).exp();
            let highest = (-(bucket as f64) / EXP_BUCKETS_PER_UNIT).exp();
            let accept_below = (lowest * (1.0 - TABLE_MARGIN) * TWO_TO_32) as u32;
            let reject_from = (highest * (1.0 + TABLE_MARGIN) * TWO_TO_32).ceil() as u64;
            (accept_below, reject_from)
        })
        .collect()
});

/// The discrete Gaussian N_Z(0, σ²): P[X = x] ∝ exp(-x²/(2σ²)) for integers x.
///
/// Every draw is an exact integer, so adding it to an integer (or a point of a fixed grid)
/// leaks nothing through floating-point rounding (Mironov 2012). A magnitude M ≥ 0 is drawn
/// with weight exp(-M²/(2σ²)) and a fair sign attached, rejecting "-0" so that 0 is not
/// counted twice. Two exact methods draw the magnitude:
///
/// - σ < 4096: rejection from a discrete Laplace proposal of scale t = floor(σ) + 1
///   (Canonne, Kamath, Steinke 2020, Algorithm 3), the Laplace magnitude drawn as
///   `O + t·V` with O in [0, t) accepted with probability e^(-O/t) and V geometric with
///   ratio e^-1 (their Algorithm 2).
/// - σ ≥ 4096 (secure noise uses σ in [2^40, 2^41)): the magnitudes below about 5σ are cut
///   into cells of w integers, w a power of two with σ/w in [256, 512). A step envelope,
///   constant on each cell at the weight of its first integer, is sampled exactly: a cell
///   from a cumulative table of 64-bit thresholds (found through a guide table), an offset
///   from plain random bits, and acceptance with probability exp(-(M² - m₀²)/(2σ²)) ≥ 0.98
///   for the cell's first integer m₀. The mass beyond the cells (about 6e-7) forms one more
///   entry of the table, equal to the exact tail sum (Mills ratio and Euler-Maclaurin terms);
///   the tail is drawn from its own exponential envelope with rejection. One draw uses about
///   three 32-bit words of ChaCha20 output.
///
/// Every Bernoulli trial compares a uniform with a 64-bit threshold lazily: the high 32 bits
/// almost always decide. V is read from one uniform against the table of e^-1..e^-16 (the
/// tail beyond 16 is geometric again), and a trial with probability e^(-x) is first
/// bracketed by a table of e^(-k/64); `exp` is evaluated only when the uniform falls between
/// the brackets. The brackets carry a margin, so every decision is exactly that of comparing
/// with `floor(exp(-x)·2^64)`.
///
/// # Privacy
///
/// Adding N_Z(0, σ²) to an integer-valued query of L2 sensitivity Δ satisfies the same
/// Rényi-DP bound α·Δ²/(2σ²) as the continuous Gaussian (Canonne, Kamath, Steinke 2020), so a
/// `Gaussian { noise_multiplier: σ/Δ }` event describes it. The probabilities are evaluated in
/// `f64` and compared with 64-bit uniforms: each acceptance probability is off by at most
/// about 2^-52 relative (plus 2^-64 absolute), and each cell's probability by about 1e-15
/// relative plus 2^-64 absolute (at least 2e-11 relative, for the least likely cell). No
/// integer is unreachable. This deviation is not added to the accounted δ.
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
    /// `1/(2σ²)`.
    half_inverse_variance: f64,
    method: Method,
}

/// How the magnitude of a draw is sampled.
#[derive(Clone, Debug, PartialEq)]
enum Method {
    /// Rejection from the discrete Laplace of scale `laplace_scale`, centred at `σ²/t`.
    LaplaceRejection {
        laplace_scale: u64,
        rejection_centre: f64,
    },
    /// The table of cells and its tail.
    Cells(Cells),
}

/// The step envelope of the cell method.
#[derive(Clone, Debug, PartialEq)]
struct Cells {
    /// log2 of the cell width w.
    width_bits: u32,
    /// Entry j: `2^64·P[cell <= j]`, rounded down, for cells 0..K-1; a uniform at or above
    /// the last entry selects the tail.
    thresholds: Vec<u64>,
    /// Entry b: the number of thresholds at most `b·2^(64-GUIDE_BITS)`, where the search for
    /// a uniform with top bits b starts.
    guide: Vec<u16>,
    /// The tail's first magnitude, K·w.
    tail_start: u64,
    /// Scale s of the tail's geometric proposal, `ceil(σ²/tail_start)`.
    tail_scale: u64,
    /// `tail_start/σ² - 1/s` ≥ 0: the proposal's excess rate, paid in the acceptance.
    tail_excess_rate: f64,
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
        let method = if sigma >= CELL_MIN_SIGMA {
            Method::Cells(Cells::new(sigma))
        } else {
            let laplace_scale = sigma.floor() as u64 + 1;
            Method::LaplaceRejection {
                laplace_scale,
                rejection_centre: sigma * sigma / laplace_scale as f64,
            }
        };
        Ok(DiscreteGaussian {
            sigma,
            half_inverse_variance: 0.5 / (sigma * sigma),
            method,
        })
    }

    /// The scale σ.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// One draw.
    pub fn sample<R: RngCore + ?Sized>(&self, rng: &mut R) -> i64 {
        self.draw(&mut Draws::new(rng))
    }

    /// Independent draws without end, sharing the random words between them (the sign bits
    /// come from one pooled word), as [`DiscreteGaussian::sample`] would give them one by one
    /// in distribution.
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_sampler::{DiscreteGaussian, SeededRng};
    ///
    /// let noise = DiscreteGaussian::new(2f64.powi(40))?;
    /// let mut rng = SeededRng::new(0);
    /// let draws: Vec<i64> = noise.samples(&mut rng).take(1000).collect();
    /// assert!(draws.iter().all(|draw| draw.unsigned_abs() < 1 << 45));
    /// # Ok::<(), dp_sampler::SamplerError>(())
    /// ```
    pub fn samples<'a, R: RngCore + ?Sized>(
        &'a self,
        rng: &'a mut R,
    ) -> impl Iterator<Item = i64> + 'a {
        let mut draws = Draws::new(rng);
        std::iter::repeat_with(move || self.draw(&mut draws))
    }

    fn draw<R: RngCore + ?Sized>(&self, draws: &mut Draws<'_, R>) -> i64 {
        loop {
            let magnitude = match &self.method {
                Method::LaplaceRejection {
                    laplace_scale,
                    rejection_centre,
                } => {
                    let magnitude = draws.geometric(*laplace_scale);
                    let distance = magnitude as f64 - rejection_centre;
                    let x = distance * distance * self.half_inverse_variance;
                    let high = draws.rng.next_u32();
                    draws.bernoulli_exp_minus(high, x).then_some(magnitude)
                }
                Method::Cells(cells) => cells.magnitude(draws, self.half_inverse_variance),
            };
            let Some(magnitude) = magnitude else {
                continue;
            };
            // Both signs of a positive magnitude, and 0 once.
            let negative = draws.bit();
            if negative && magnitude == 0 {
                continue;
            }
            let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
            return if negative { -magnitude } else { magnitude };
        }
    }
}

impl Cells {
    /// The cells of σ ≥ 4096 (a normal `f64` below 2^57).
    fn new(sigma: f64) -> Self {
        // The biased exponent field of a normal f64 is floor(log2 σ) + 1023.
        let exponent = ((sigma.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let width_bits = (exponent - CELL_WIDTH_SHIFT) as u32;
        let width = (1u64 << width_bits) as f64;
        let cells = (CELL_COVERAGE_SIGMAS * sigma / width).ceil() as u64;
        let tail_start = cells << width_bits;
        // Weights relative to the tail's first integer M: cell j carries
        // w·exp(-((jw)² - M²)/(2σ²)), the tail `tail_weight`.
        let half_inverse_variance = 0.5 / (sigma * sigma);
        let start = tail_start as f64;
        let log_weight = |m: f64| -(m * m - start * start) * half_inverse_variance;
        let tail_weight = tail_weight(sigma, start);
        // Suffix sums, smallest first and compensated, so each threshold is near exact.
        let mut suffix = vec![0.0; cells as usize + 1];
        let mut sum = CompensatedSum::new(tail_weight);
        suffix[cells as usize] = sum.value();
        for cell in (0..cells).rev() {
            sum.add(width * log_weight((cell << width_bits) as f64).exp());
            suffix[cell as usize] = sum.value();
        }
        let total = suffix[0];
        let thresholds: Vec<u64> = suffix[1..]
            .iter()
            .map(|&rest| u64::MAX - probability_threshold(rest / total))
            .collect();
        let guide = (0..1u64 << GUIDE_BITS)
            .map(|bucket| {
                let start = bucket << (64 - GUIDE_BITS);
                thresholds.partition_point(|&threshold| threshold <= start) as u16
            })
            .collect();
        // One above the ceiling, so that 1/s < M/σ² despite rounding.
        let tail_scale = (sigma * sigma / start).ceil() as u64 + 1;
        Cells {
            width_bits,
            thresholds,
            guide,
            tail_start,
            tail_scale,
            tail_excess_rate: start / (sigma * sigma) - 1.0 / tail_scale as f64,
        }
    }

    /// One trial: a magnitude drawn from the envelope, or `None` when rejected.
    fn magnitude<R: RngCore + ?Sized>(
        &self,
        draws: &mut Draws<'_, R>,
        half_inverse_variance: f64,
    ) -> Option<u64> {
        let cell = draws.count_thresholds_at_most(&self.thresholds, &self.guide, GUIDE_BITS);
        if cell == self.thresholds.len() {
            return Some(self.tail_start + self.tail_excess(draws, half_inverse_variance));
        }
        let mask = (1u64 << self.width_bits) - 1;
        let (offset, high) = if self.width_bits <= 32 {
            // The low bits give the offset and the disjoint high half the acceptance trial.
            let word = draws.rng.next_u64();
            (word & mask, (word >> 32) as u32)
        } else {
            (draws.rng.next_u64() & mask, draws.rng.next_u32())
        };
        let first = (cell as u64) << self.width_bits;
        // exp(-(M² - m₀²)/(2σ²)) with M = m₀ + offset: the weight relative to the envelope.
        let x = offset as f64 * (offset + 2 * first) as f64 * half_inverse_variance;
        draws.bernoulli_exp_minus(high, x).then_some(first + offset)
    }

    /// Y ≥ 0 with P[Y = y] ∝ exp(-(2My + y²)/(2σ²)): the tail's magnitude minus its start M,
    /// by rejection from the geometric proposal exp(-y/s), s ≥ σ²/M.
    fn tail_excess<R: RngCore + ?Sized>(
        &self,
        draws: &mut Draws<'_, R>,
        half_inverse_variance: f64,
    ) -> u64 {
        loop {
            let excess = draws.geometric(self.tail_scale);
            let y = excess as f64;
            let x = self.tail_excess_rate * y + y * y * half_inverse_variance;
            let high = draws.rng.next_u32();
            if draws.bernoulli_exp_minus(high, x) {
                return excess;
            }
        }
    }
}

/// Σ_{m ≥ M} exp(-(m² - M²)/(2σ²)) for M = `start`: the integral σ·R(M/σ) through the
/// Mills ratio R, plus the Euler-Maclaurin corrections 1/2 + M/(12σ²); the next term is
/// below 1e-12 of the last one for σ ≥ 4096 and M near 5σ.
fn tail_weight(sigma: f64, start: f64) -> f64 {
    sigma * dp_accountant::normal_mills_ratio(start / sigma) + 0.5 + start / (12.0 * sigma * sigma)
}

/// Kahan-Babuška (Neumaier) summation: a running sum with its rounding error carried along.
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    fn new(first: f64) -> Self {
        CompensatedSum {
            sum: first,
            compensation: 0.0,
        }
    }

    fn add(&mut self, value: f64) {
        let sum = self.sum + value;
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - sum) + value
        } else {
            (value - sum) + self.sum
        };
        self.sum = sum;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
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

impl<'a, R: RngCore + ?Sized> Draws<'a, R> {
    fn new(rng: &'a mut R) -> Self {
        Draws {
            rng,
            bits: 0,
            bits_left: 0,
        }
    }

    /// Completes a Bernoulli trial whose uniform has high half `high`: true with probability
    /// `threshold / 2^64`.
    fn finish_bernoulli(&mut self, high: u32, threshold: u64) -> bool {
        let threshold_high = (threshold >> 32) as u32;
        if high != threshold_high {
            return high < threshold_high;
        }
        // Probability 2^-32: the high halves tie and the low halves decide.
        self.rng.next_u32() < threshold as u32
    }

    /// Completes a trial, whose uniform has high half `high`, that is true with probability
    /// `floor(exp(-x)·2^64)/2^64` for `x >= 0`, computing `exp` only when [`EXP_TABLE`]
    /// cannot decide.
    fn bernoulli_exp_minus(&mut self, high: u32, x: f64) -> bool {
        // x·64 is exact; `as` truncates (and saturates far beyond the table).
        let bucket = (x * EXP_BUCKETS_PER_UNIT) as usize;
        if let Some(&(accept_below, reject_from)) = EXP_TABLE.get(bucket) {
            if high < accept_below {
                return true;
            }
            if u64::from(high) >= reject_from {
                return false;
            }
        }
        self.finish_bernoulli(high, probability_threshold((-x).exp()))
    }

    /// The number of `thresholds` (increasing) at most a fresh uniform `u64` U, starting from
    /// the `guide` entry of U's top `guide_bits` bits and comparing the high half first.
    fn count_thresholds_at_most(
        &mut self,
        thresholds: &[u64],
        guide: &[u16],
        guide_bits: u32,
    ) -> usize {
        let high = self.rng.next_u32();
        let mut low = None;
        let mut count = usize::from(guide[(high >> (32 - guide_bits)) as usize]);
        while let Some(&threshold) = thresholds.get(count) {
            let threshold_high = (threshold >> 32) as u32;
            let at_most = threshold_high < high
                || (threshold_high == high
                    && threshold as u32 <= *low.get_or_insert_with(|| self.rng.next_u32()));
            if !at_most {
                break;
            }
            count += 1;
        }
        count
    }

    /// Y ≥ 0 with P[Y = y] ∝ exp(-y/scale): `O + scale·V` with O uniform in [0, scale)
    /// accepted with probability e^(-O/scale) and V geometric with ratio e^-1 (Canonne,
    /// Kamath, Steinke 2020, Algorithm 2, without the sign).
    fn geometric(&mut self, scale: u64) -> u64 {
        let offset = loop {
            let offset = self.rng.random_range(0..scale);
            let high = self.rng.next_u32();
            if self.bernoulli_exp_minus(high, offset as f64 / scale as f64) {
                break offset;
            }
        };
        offset.saturating_add(scale.saturating_mul(self.geometric_exp_minus_one()))
    }

    /// V with P[V >= k] = e^-k: the number of the thresholds e^-1, e^-2, ... that one uniform
    /// lies below; past the table's last entry the rest is geometric again (memoryless).
    fn geometric_exp_minus_one(&mut self) -> u64 {
        let table = &*GEOMETRIC_THRESHOLDS;
        let mut whole_tables = 0;
        loop {
            let high = self.rng.next_u32();
            let mut below = table
                .iter()
                .filter(|&&threshold| high < (threshold >> 32) as u32)
                .count();
            if table
                .iter()
                .any(|&threshold| high == (threshold >> 32) as u32)
            {
                // Probability about 2^-28: a tie of the high halves; compare whole uniforms.
                let uniform = u64::from(high) << 32 | u64::from(self.rng.next_u32());
                below = table
                    .iter()
                    .filter(|&&threshold| uniform < threshold)
                    .count();
            }
            if below < GEOMETRIC_TABLE_LEN {
                return whole_tables + below as u64;
            }
            whole_tables += GEOMETRIC_TABLE_LEN as u64;
        }
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
    use std::collections::VecDeque;

    use super::*;

    /// Replays a script of `u32` words (a `u64` is two of them, high half first).
    struct Script(VecDeque<u32>);

    impl RngCore for Script {
        fn next_u32(&mut self) -> u32 {
            self.0.pop_front().expect("script too short")
        }

        fn next_u64(&mut self) -> u64 {
            let high = u64::from(self.next_u32());
            high << 32 | u64::from(self.next_u32())
        }

        fn fill_bytes(&mut self, _: &mut [u8]) {
            unreachable!("not used by the sampler")
        }
    }

    #[test]
    fn geometric_thresholds_are_powers_of_e_to_the_minus_one() {
        for (index, &threshold) in GEOMETRIC_THRESHOLDS.iter().enumerate() {
            let expected = (-(index as f64 + 1.0)).exp();
            // Within `exp`'s rounding and the floor's 2^-64.
            let error = (threshold as f64 / TWO_TO_64 - expected).abs();
            assert!(
                error <= expected * 2f64.powi(-52) + 2f64.powi(-64),
                "e^-{}",
                index + 1
            );
        }
    }

    #[test]
    fn geometric_reads_one_uniform_and_continues_past_the_table() {
        let e2_high = (GEOMETRIC_THRESHOLDS[1] >> 32) as u32;
        let e2_low = GEOMETRIC_THRESHOLDS[1] as u32;
        let cases: [(&[u32], u64); 5] = [
            (&[u32::MAX], 0),
            (&[e2_high + 1], 1),
            (&[e2_high - 1], 2),
            // Ties of the high half are decided by the low half.
            (&[e2_high, e2_low], 1),
            (&[e2_high, e2_low - 1], 2),
        ];
        for (words, expected) in cases {
            let mut script = Script(words.iter().copied().collect());
            assert_eq!(
                Draws::new(&mut script).geometric_exp_minus_one(),
                expected,
                "{words:?}"
            );
            assert!(script.0.is_empty(), "{words:?} not consumed");
        }
        // Below every threshold: 16 and a fresh geometric draw.
        let mut script = Script([0, 0, u32::MAX].into_iter().collect());
        assert_eq!(Draws::new(&mut script).geometric_exp_minus_one(), 32);
    }

    #[test]
    fn exp_table_brackets_agree_with_the_exact_comparison() {
        for step in 0..EXP_TABLE_LEN * 16 {
            for x in [
                step as f64 / 1024.0,
                (step as f64 / 1024.0).next_up(),
                (step as f64 + 0.5) / 1024.0,
            ] {
                let (accept_below, reject_from) = EXP_TABLE[(x * EXP_BUCKETS_PER_UNIT) as usize];
                let threshold = probability_threshold((-x).exp());
                // Every uniform with a high half below `accept_below` is below the threshold.
                assert!(u64::from(accept_below) << 32 <= threshold, "x = {x}");
                // Every uniform with a high half at or above `reject_from` is not.
                assert!(
                    u128::from(reject_from) << 32 >= u128::from(threshold),
                    "x = {x}"
                );
                assert!(reject_from > u64::from(accept_below));
            }
        }
    }

    fn cells(sigma: f64) -> Cells {
        match DiscreteGaussian::new(sigma).expect("valid").method {
            Method::Cells(cells) => cells,
            Method::LaplaceRejection { .. } => panic!("σ = {sigma} uses Laplace rejection"),
        }
    }

    #[test]
    fn cells_of_a_large_sigma() {
        let sigma = 3e12;
        let cells = cells(sigma);
        // 2^41 <= σ < 2^42: cells of 2^33 up to the first multiple at or above 5σ.
        assert_eq!(cells.width_bits, 33);
        let count = (5.0 * sigma / 2f64.powi(33)).ceil() as u64;
        assert_eq!(cells.thresholds.len() as u64, count);
        assert_eq!(cells.tail_start, count << 33);
        assert!(cells.thresholds.windows(2).all(|w| w[0] < w[1]));
        // The envelope's mass is about σ·√(π/2) + w/2 (a left Riemann sum of the density):
        // the first cell holds w of it, the tail about 2·P[Z > M/σ] of the magnitude's mass
        // (relative corrections of order w²/σ² and 1/σ).
        let width = 2f64.powi(33);
        let first = cells.thresholds[0] as f64 / TWO_TO_64;
        let expected_first = width / (sigma * (std::f64::consts::PI / 2.0).sqrt() + width / 2.0);
        assert!(
            (first / expected_first - 1.0).abs() < 1e-5,
            "{first} vs {expected_first}"
        );
        let tail = (TWO_TO_64 - *cells.thresholds.last().expect("cells") as f64) / TWO_TO_64;
        let z = cells.tail_start as f64 / sigma;
        let normal_tail = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
            * dp_accountant::normal_mills_ratio(z);
        // The cells' Riemann sum exceeds the integral by (w/2)·(1 - e^(-z²/2)) (Euler-Maclaurin).
        let integral = sigma * (std::f64::consts::PI / 2.0).sqrt();
        let envelope_share = integral / (integral + width / 2.0 * (1.0 - (-0.5 * z * z).exp()));
        let expected_tail = 2.0 * normal_tail * envelope_share;
        assert!(
            (tail / expected_tail - 1.0).abs() < 1e-9,
            "{tail} vs {expected_tail}"
        );
        // A guide entry counts the thresholds at or below its bucket's start.
        for (bucket, &guide) in cells.guide.iter().enumerate() {
            let start = (bucket as u64) << (64 - GUIDE_BITS);
            let guide = usize::from(guide);
            assert!(cells.thresholds[..guide].iter().all(|&t| t <= start));
            assert!(cells.thresholds.get(guide).is_none_or(|&t| t > start));
        }
        assert!(cells.tail_excess_rate > 0.0);
        assert!(matches!(
            DiscreteGaussian::new(4095.9).expect("valid").method,
            Method::LaplaceRejection {
                laplace_scale: 4096,
                ..
            }
        ));
    }

    #[test]
    fn tail_weight_matches_the_direct_sum() {
        for sigma in [4096.0f64, 5000.3, 70000.0] {
            let start = (5.0 * sigma).ceil();
            let direct: f64 = (0..(60.0 * sigma) as u64)
                .map(|y| {
                    let m = start + y as f64;
                    (-(m * m - start * start) / (2.0 * sigma * sigma)).exp()
                })
                .sum();
            let weight = tail_weight(sigma, start);
            assert!(
                (weight / direct - 1.0).abs() < 1e-11,
                "σ = {sigma}: {weight} vs {direct}"
            );
        }
    }

    /// The tail's excess over its start follows exp(-(2My + y²)/(2σ²)) (Kolmogorov-Smirnov at
    /// a false-failure rate of 1e-4, fixed seed).
    #[test]
    fn tail_excess_follows_the_gaussian_tail() {
        use rand::SeedableRng;

        let sigma = 5000.3;
        let cells = cells(sigma);
        let half_inverse_variance = 0.5 / (sigma * sigma);
        let start = cells.tail_start as f64;
        let weights: Vec<f64> = (0..(10.0 * sigma) as usize)
            .map(|y| {
                let y = y as f64;
                (-(2.0 * start * y + y * y) * half_inverse_variance).exp()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let cdf: Vec<f64> = weights
            .iter()
            .scan(0.0, |sum, w| {
                *sum += w / total;
                Some(*sum)
            })
            .collect();
        let samples = 100_000;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(41);
        let mut draws = Draws::new(&mut rng);
        let mut excesses: Vec<usize> = (0..samples)
            .map(|_| cells.tail_excess(&mut draws, half_inverse_variance) as usize)
            .collect();
        excesses.sort_unstable();
        // Discrete KS: compare the empirical cdf with the exact one at every observed value.
        let mut distance = 0.0f64;
        for (index, &excess) in excesses.iter().enumerate() {
            let below = if excess == 0 { 0.0 } else { cdf[excess - 1] };
            let empirical_after = (index + 1) as f64 / samples as f64;
            let empirical_before = index as f64 / samples as f64;
            distance = distance
                .max((cdf[excess] - empirical_after).abs())
                .max((below - empirical_before).abs());
        }
        let critical = (-(1e-4f64 / 2.0).ln() / (2.0 * samples as f64)).sqrt();
        assert!(distance < critical, "KS distance {distance} >= {critical}");
    }

    #[test]
    fn cell_search_compares_whole_uniforms() {
        let cells = cells(5000.0);
        for (index, &threshold) in cells.thresholds.iter().enumerate() {
            // Exactly at a threshold: counted. One below: not counted.
            for (uniform, expected) in [(threshold, index + 1), (threshold - 1, index)] {
                let words = [(uniform >> 32) as u32, uniform as u32];
                let mut script = Script(words.into_iter().collect());
                let count = Draws::new(&mut script).count_thresholds_at_most(
                    &cells.thresholds,
                    &cells.guide,
                    GUIDE_BITS,
                );
                assert_eq!(count, expected, "threshold {index}");
            }
        }
    }

    #[test]
    fn refuses_bad_sigma() {
        for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e18] {
            assert!(DiscreteGaussian::new(sigma).is_err(), "{sigma}");
        }
    }
}
