//! Single mechanisms as discretized privacy loss distributions.
//!
//! For a pair (P, Q) the privacy loss distribution (PLD) is the law of L = ln(P(X)/Q(X)),
//! X ~ P, and the hockey-stick divergence is δ(ε) = E[(1 - e^{ε-L})_+] (+ the mass of
//! L = +∞). We discretize each mechanism by *connect-the-dots* (Doroshenko, Ghazi, Kamath,
//! Kumar, Manurangsi 2022): a PLD supported on the grid {i·h} whose δ-curve, as a function
//! of e^ε, is the chord interpolation of the true curve at the grid points. The true curve
//! is convex in e^ε, so the chords lie above it for every ε: the discretized PLD dominates
//! the mechanism (it is less private), and composition preserves domination.
//!
//! Equivalently, every atom of the true PLD at l ∈ (ε_i, ε_{i+1}) is split between ε_i and
//! ε_{i+1} keeping its P-mass and its Q-mass; the rounding is mean-positive and bounded by
//! h, which is what the optimistic estimate in [`super::pmf`] relies on.
//!
//! Poisson subsampling with probability q (add/remove-one) gives two directions (the
//! dominating pairs of the subsampled mechanism, as in dp_accounting and Zhu, Dong, Wang
//! 2022): for the base mechanism's divergence δ_b,
//! - remove (P = (1-q)Q + qP_b, Q): δ(ε) = q δ_b(ε'), e^{ε'} = 1 + (e^ε - 1)/q;
//! - add (Q, (1-q)Q + qP_b): δ(ε) = 1 - e^ε + q e^ε δ_b(ε''), e^{ε''} = 1 + (e^{-ε} - 1)/q.
//!
//! To keep relative precision we discretize r(ε) = δ(ε) - (1 - e^ε)_+, whose pieces are
//! small and computed without cancellation (the trivial part (1 - e^ε)_+ is the δ-curve of a
//! unit atom at loss 0 and is added exactly).

use crate::AccountantError;
use crate::special::{gaussian_delta, gaussian_psi, log_add_exp};

use super::pmf::DiscretePmf;

/// Standard-normal quantile of the noise tail we cut at: Φ̄(9) ≈ 1.1e-19. Privacy loss
/// beyond the cut is moved to +∞ (upper tail) or to the lowest grid point (lower tail);
/// both are pessimistic, and even 10^6 compositions add only 1e-13 to δ.
const TAIL_Z: f64 = 9.0;

/// Φ̄(TAIL_Z), the noise mass beyond the cut (an upper bound, for the optimistic estimate).
const TAIL_MASS: f64 = 1.2e-19;

/// Largest single-mechanism grid we build (2^24 points, 128 MiB of f64).
pub(crate) const MAX_GRID_POINTS: u64 = 1 << 24;

/// A mechanism the PLD accountant can discretize.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Elementary {
    /// The Gaussian mechanism (L2 sensitivity 1), Poisson-sampled with `q` (1: no sampling).
    Gaussian { noise_multiplier: f64, q: f64 },
    /// The Laplace mechanism (L1 sensitivity 1), Poisson-sampled with `q` (1: no sampling).
    Laplace { scale: f64, q: f64 },
    /// k-ary randomized response (replace-one).
    RandomizedResponse {
        noise_parameter: f64,
        num_buckets: f64,
    },
    /// Infinite privacy loss with probability one.
    NonPrivate,
}

/// The two directions of add/remove-one; symmetric mechanisms use one PLD for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// P = the dataset with the record, Q = without.
    Remove,
    /// P = the dataset without the record, Q = with.
    Add,
}

/// The base (unsampled) mechanisms whose divergence is symmetric in the two neighbours.
#[derive(Clone, Copy, Debug)]
enum Base {
    Gaussian { noise_multiplier: f64 },
    Laplace { epsilon: f64 },
}

impl Base {
    /// δ_b(t) for t >= 0.
    fn delta(self, t: f64) -> f64 {
        match self {
            Base::Gaussian { noise_multiplier } => gaussian_delta(noise_multiplier, t),
            Base::Laplace { epsilon } => {
                if t >= epsilon {
                    0.0
                } else {
                    -(0.5 * (t - epsilon)).exp_m1()
                }
            }
        }
    }

    /// ψ_b(t) = e^t - 1 + δ_b(t) for t <= 0.
    fn psi(self, t: f64) -> f64 {
        match self {
            Base::Gaussian { noise_multiplier } => gaussian_psi(noise_multiplier, t),
            Base::Laplace { epsilon } => {
                if t <= -epsilon {
                    0.0
                } else {
                    (0.5 * (t - epsilon)).exp() * (0.5 * (t + epsilon)).exp_m1()
                }
            }
        }
    }

    /// The range of the base privacy loss: (lowest, highest, mass below lowest).
    fn loss_range(self) -> (f64, f64, f64) {
        match self {
            Base::Gaussian { noise_multiplier } => {
                let centre = 0.5 / (noise_multiplier * noise_multiplier);
                let spread = TAIL_Z / noise_multiplier;
                (centre - spread, centre + spread, TAIL_MASS)
            }
            Base::Laplace { epsilon } => (-epsilon, epsilon, 0.0),
        }
    }
}

/// A base mechanism, Poisson-sampled with `q`, seen in one direction.
#[derive(Clone, Copy, Debug)]
struct Sampled {
    base: Base,
    q: f64,
    direction: Direction,
}

impl Sampled {
    /// r(ε) = δ(ε) - (1 - e^ε)_+.
    fn residual(&self, eps: f64) -> f64 {
        let q = self.q;
        match self.direction {
            Direction::Remove => {
                // e^{ε'} = 1 + (e^ε - 1)/q
                if eps >= 0.0 {
                    q * self.base.delta((eps.exp_m1() / q).ln_1p())
                } else {
                    let shifted = eps.exp_m1() / q;
                    if shifted <= -1.0 {
                        0.0
                    } else {
                        q * self.base.psi(shifted.ln_1p())
                    }
                }
            }
            Direction::Add => {
                // e^{ε''} = 1 + (e^{-ε} - 1)/q
                let shifted = (-eps).exp_m1() / q;
                if eps < 0.0 {
                    q * eps.exp() * self.base.delta(shifted.ln_1p())
                } else if shifted <= -1.0 {
                    0.0
                } else {
                    q * eps.exp() * self.base.psi(shifted.ln_1p())
                }
            }
        }
    }

    /// (lowest, highest, mass below lowest) of the privacy loss in this direction.
    fn loss_range(&self) -> (f64, f64, f64) {
        let (base_low, base_high, base_tail) = self.base.loss_range();
        let ln_q = self.q.ln();
        let ln_1mq = (-self.q).ln_1p();
        // The sampled loss is ±ln(1 - q + q e^{±base loss}), monotone in the base loss.
        let mix = |base_loss: f64| log_add_exp(ln_1mq, ln_q + base_loss);
        match self.direction {
            Direction::Remove => {
                let low = if self.q < 1.0 { ln_1mq } else { mix(base_low) };
                let tail = if self.q < 1.0 { 0.0 } else { base_tail };
                (low, mix(base_high), tail)
            }
            Direction::Add => (-mix(base_high), -mix(base_low), base_tail),
        }
    }

    fn discretize(&self, interval: f64) -> Result<DiscretePmf, AccountantError> {
        let (low, high, tail) = self.loss_range();
        connect_the_dots(interval, low, high, tail, |eps| self.residual(eps))
    }
}

impl Elementary {
    /// Whether the add and remove directions have the same PLD.
    pub(crate) fn is_symmetric(&self) -> bool {
        match self {
            Elementary::Gaussian { q, .. } | Elementary::Laplace { q, .. } => *q >= 1.0,
            Elementary::RandomizedResponse { .. } | Elementary::NonPrivate => true,
        }
    }

    fn sampled(&self, direction: Direction) -> Option<Sampled> {
        match *self {
            Elementary::Gaussian {
                noise_multiplier,
                q,
            } => Some(Sampled {
                base: Base::Gaussian { noise_multiplier },
                q,
                direction,
            }),
            Elementary::Laplace { scale, q } => Some(Sampled {
                base: Base::Laplace {
                    epsilon: scale.recip(),
                },
                q,
                direction,
            }),
            Elementary::RandomizedResponse { .. } | Elementary::NonPrivate => None,
        }
    }

    /// The number of grid points the discretization at `interval` needs.
    pub(crate) fn grid_points(&self, interval: f64) -> f64 {
        let directions = [Direction::Remove, Direction::Add];
        directions
            .iter()
            .filter_map(|&d| self.sampled(d))
            .map(|s| {
                let (low, high, _) = s.loss_range();
                (high - low) / interval + 3.0
            })
            .fold(3.0, f64::max)
    }

    /// The pessimistic discretized PLD in `direction` at grid step `interval`.
    pub(crate) fn discretize(
        &self,
        direction: Direction,
        interval: f64,
    ) -> Result<DiscretePmf, AccountantError> {
        match *self {
            Elementary::NonPrivate => Ok(DiscretePmf::non_private()),
            Elementary::RandomizedResponse {
                noise_parameter,
                num_buckets,
            } => Ok(randomized_response(noise_parameter, num_buckets, interval)),
            Elementary::Gaussian { .. } | Elementary::Laplace { .. } => {
                match self.sampled(direction) {
                    Some(sampled) => sampled.discretize(interval),
                    None => Ok(DiscretePmf::non_private()),
                }
            }
        }
    }
}

/// Connect-the-dots discretization on the grid i·h, i from ⌊low/h⌋ to ⌈high/h⌉, from the
/// residual r(ε) = δ(ε) - (1 - e^ε)_+ (see the module documentation).
fn connect_the_dots(
    interval: f64,
    low: f64,
    high: f64,
    tail_below: f64,
    residual: impl Fn(f64) -> f64,
) -> Result<DiscretePmf, AccountantError> {
    let first = ((low / interval).floor()).min(-1.0);
    let last = ((high / interval).ceil()).max(1.0);
    let points = last - first + 1.0;
    if !(points.is_finite() && points <= MAX_GRID_POINTS as f64) {
        return Err(AccountantError::TooLarge {
            what: "privacy loss grid",
            size: if points.is_finite() {
                points as u64
            } else {
                u64::MAX
            },
            limit: MAX_GRID_POINTS,
        });
    }
    // Both casts are exact: |first|, |last| < 2^24 by the check above.
    #[allow(clippy::cast_possible_truncation)]
    let (first, last) = (first as i64, last as i64);
    let r: Vec<f64> = (first..=last)
        .map(|i| residual(i as f64 * interval).max(0.0))
        .collect();
    let growth = interval.exp();
    let denominator = interval.exp_m1();
    let n = r.len();
    let mut probs = Vec::with_capacity(n);
    // Lowest point: p = (r_1 - e^h r_0)/(e^h - 1); it also collects the mass below `low`.
    probs.push((r[1] - growth * r[0]) / denominator);
    for i in 1..n - 1 {
        let mut p = (growth * (r[i - 1] - r[i]) - (r[i] - r[i + 1])) / denominator;
        if first + i as i64 == 0 {
            p += 1.0; // the unit atom of (1 - e^ε)_+
        }
        probs.push(p);
    }
    probs.push((r[n - 2] - r[n - 1]) * growth / denominator);
    // Negative values are rounding noise; raising them to 0 only adds mass (pessimistic), and
    // the added mass is counted in the error for the optimistic estimate.
    let mut clamped = 0.0;
    for p in &mut probs {
        if *p < 0.0 {
            clamped -= *p;
            *p = 0.0;
        }
    }
    let error = residual_rounding_error(&r) + clamped;
    Ok(DiscretePmf::new(
        first,
        probs,
        r[n - 1],
        error,
        1,
        tail_below,
    ))
}

/// A bound on how far the discretized δ-curve can be from the exact connect-the-dots curve
/// because of rounding in the residuals: the curve interpolates the r values, each with
/// relative error at most `RESIDUAL_ULPS` ulps. A perturbation of sup-norm η in one step's
/// δ-curve moves the composed δ by at most η to first order (the composed curve is an
/// average of shifted single-step curves), so these errors add up over steps.
fn residual_rounding_error(r: &[f64]) -> f64 {
    /// Relative accuracy assumed of each residual evaluation, in ulps: the normal tail is
    /// good to a few ulps, and the ln1p/expm1 change of variable amplifies its error by at
    /// most t²σ² < 100 in the range we use.
    const RESIDUAL_ULPS: f64 = 256.0;
    RESIDUAL_ULPS * f64::EPSILON * r.iter().fold(0.0, |max: f64, &x| max.max(x))
}

/// Randomized response (replace-one): atoms at ±ln((1-p+p/k)/(p/k)) and 0, each split
/// between its two neighbouring grid points keeping its P- and Q-mass.
fn randomized_response(noise_parameter: f64, num_buckets: f64, interval: f64) -> DiscretePmf {
    let (p, k) = (noise_parameter, num_buckets);
    if p == 0.0 {
        return DiscretePmf::non_private();
    }
    let ln_ratio = (k / p - k + 1.0).ln();
    let atoms = [
        (ln_ratio, 1.0 - p + p / k),
        (-ln_ratio, p / k),
        (0.0, (1.0 - 2.0 / k) * p),
    ];
    let mut lowest = i64::MAX;
    let mut highest = i64::MIN;
    let mut split = Vec::new();
    for &(loss, mass) in &atoms {
        // |loss| <= ln(k/p) is far below 2^24 grid steps for validated inputs.
        #[allow(clippy::cast_possible_truncation)]
        let below = (loss / interval).floor() as i64;
        let below_loss = below as f64 * interval;
        let share_above = if loss == below_loss {
            0.0
        } else {
            -(below_loss - loss).exp_m1() / -(-interval).exp_m1()
        };
        split.push((below, mass * (1.0 - share_above)));
        split.push((below + 1, mass * share_above));
        lowest = lowest.min(below);
        highest = highest.max(below + 1);
    }
    let width = usize::try_from(highest - lowest + 1).unwrap_or(0);
    let mut probs = vec![0.0; width];
    for (index, mass) in split {
        if let Ok(offset) = usize::try_from(index - lowest) {
            probs[offset] += mass;
        }
    }
    DiscretePmf::new(lowest, probs, 0.0, 8.0 * f64::EPSILON, 1, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Residuals of both directions are continuous at ε = 0 and vanish where they must.
    #[test]
    fn residual_pieces_join_up() {
        for direction in [Direction::Remove, Direction::Add] {
            let sampled = Sampled {
                base: Base::Gaussian {
                    noise_multiplier: 1.1,
                },
                q: 0.01,
                direction,
            };
            let left = sampled.residual(-1e-14);
            let right = sampled.residual(1e-14);
            assert!(
                (left - right).abs() < 1e-9 * left,
                "{direction:?}: {left} vs {right}"
            );
        }
        let remove = Sampled {
            base: Base::Gaussian {
                noise_multiplier: 1.0,
            },
            q: 0.1,
            direction: Direction::Remove,
        };
        assert_eq!(remove.residual((-0.1_f64).ln_1p() - 1e-3), 0.0);
        let add = Sampled {
            base: Base::Gaussian {
                noise_multiplier: 1.0,
            },
            q: 0.1,
            direction: Direction::Add,
        };
        assert_eq!(add.residual(-(-0.1_f64).ln_1p() + 1e-3), 0.0);
    }

    /// Subsampled δ against dp_accounting 0.6 (GaussianPrivacyLoss(1.1, sampling_prob=0.01)
    /// .get_delta_for_epsilon) for both adjacency types.
    #[test]
    fn subsampled_gaussian_delta_matches_dp_accounting() {
        let cases = crate::pld::tests::SUBSAMPLED_DELTA_REFERENCE;
        for &(direction, eps, expected) in cases {
            let sampled = Sampled {
                base: Base::Gaussian {
                    noise_multiplier: 1.1,
                },
                q: 0.01,
                direction,
            };
            let delta = sampled.residual(eps) + (-eps.exp_m1()).max(0.0);
            assert!(
                ((delta - expected) / expected).abs() < 1e-9,
                "{direction:?} ε={eps}: {delta} vs {expected}"
            );
        }
    }

    #[test]
    fn discretization_keeps_total_mass() {
        let gaussian = Elementary::Gaussian {
            noise_multiplier: 0.9,
            q: 0.05,
        };
        for direction in [Direction::Remove, Direction::Add] {
            let pmf = gaussian.discretize(direction, 1e-3).expect("small grid");
            let total = pmf.total_mass();
            assert!((total - 1.0).abs() < 1e-12, "{direction:?}: {total}");
        }
        let rr = randomized_response(0.3, 10.0, 1e-3);
        assert!((rr.total_mass() - 1.0).abs() < 1e-14);
    }
}
