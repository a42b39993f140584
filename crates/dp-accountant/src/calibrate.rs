//! Calibration: the smallest noise multiplier, or the largest number of steps, that keeps
//! DP-SGD (Poisson-sampled Gaussian steps) within a target (ε, δ).
//!
//! Both searches bracket the answer and shrink the bracket (bisection with secant steps),
//! keeping as the answer only parameters whose ε was actually computed and found within
//! the target: the result is always on the conservative side of the exact threshold.

use crate::error::check_open_unit;
use crate::{AccountantError, AccountantKind, DpEvent, EpsilonReport, NeighbouringRelation};

/// Noise multipliers searched: below the first the PLD grid gets huge and RDP is
/// meaningless for DP-SGD; above the last no realistic target needs more noise.
const NOISE_MULTIPLIER_RANGE: (f64, f64) = (0.05, 1e4);

/// The calibrated noise multiplier is within this relative distance of the exact threshold.
const NOISE_MULTIPLIER_RELATIVE_TOLERANCE: f64 = 1e-6;

/// Step counts searched up to this bound.
const MAX_STEPS: u64 = 1 << 40;

/// Interpolation steps in a row that fail to halve the bracket before one bisection step
/// (Illinois usually closes the bracket from the stagnant side within three).
const SLOW_STEPS_BEFORE_BISECTION: u32 = 4;

/// Iteration cap of the noise search (each iteration halves the bracket at worst every
/// other step, so this is never reached for the tolerance above).
const MAX_SEARCH_ITERATIONS: u32 = 200;

/// ε spent by `steps` Poisson-sampled Gaussian steps (DP-SGD) under add/remove-one, computed
/// by a fresh accountant of `kind` with its default settings.
///
/// # Errors
///
/// [`AccountantError::InvalidParameter`] for a noise multiplier that is not finite and > 0,
/// q outside (0, 1], zero steps, or δ outside (0, 1); [`AccountantError::TooLarge`] if the
/// PLD grid for a tiny noise multiplier would not fit in memory.
///
/// # Privacy
///
/// The guarantee is that of the accountant: an upper bound for RDP and PLD, an
/// approximation for GDP (see [`EpsilonReport::guarantee`]).
///
/// # Examples
///
/// ```
/// use dp_accountant::{AccountantKind, dp_sgd_epsilon};
///
/// // TF Privacy's MNIST tutorial: 60 epochs of batch 256 out of 60000, σ = 1.1.
/// let report = dp_sgd_epsilon(AccountantKind::Pld, 1.1, 256.0 / 60000.0, 14063, 1e-5)?;
/// assert!((report.epsilon - 2.382).abs() < 0.03);
/// # Ok::<(), dp_accountant::AccountantError>(())
/// ```
pub fn dp_sgd_epsilon(
    kind: AccountantKind,
    noise_multiplier: f64,
    sampling_probability: f64,
    steps: u64,
    delta: f64,
) -> Result<EpsilonReport, AccountantError> {
    check_steps(steps)?;
    check_open_unit("delta", delta)?;
    let mut accountant = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
    accountant.compose(&dp_sgd_event(noise_multiplier, sampling_probability, steps))?;
    accountant.epsilon(delta)
}

/// The event of `steps` DP-SGD steps: `gaussian(σ).poisson_sampled(q).repeated(steps)`.
pub fn dp_sgd_event(noise_multiplier: f64, sampling_probability: f64, steps: u64) -> DpEvent {
    DpEvent::gaussian(noise_multiplier)
        .poisson_sampled(sampling_probability)
        .repeated(steps)
}

fn check_steps(steps: u64) -> Result<(), AccountantError> {
    if steps == 0 {
        Err(AccountantError::invalid("steps", 0.0, "must be at least 1"))
    } else {
        Ok(())
    }
}

fn check_target(target_epsilon: f64) -> Result<(), AccountantError> {
    if target_epsilon.is_finite() && target_epsilon > 0.0 {
        Ok(())
    } else {
        Err(AccountantError::invalid(
            "target_epsilon",
            target_epsilon,
            "must be finite and > 0",
        ))
    }
}

fn check_sampling_probability(q: f64) -> Result<(), AccountantError> {
    if q.is_finite() && q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(AccountantError::invalid(
            "sampling_probability",
            q,
            "must lie in (0, 1]",
        ))
    }
}

/// The smallest noise multiplier σ (to a relative 1e-6, rounded up) such that `steps`
/// Poisson-sampled Gaussian steps with probability `sampling_probability` spend at most
/// `target_epsilon` at `delta` according to `kind`.
///
/// # Errors
///
/// [`AccountantError::InvalidParameter`] for invalid inputs; [`AccountantError::Unreachable`]
/// if no σ in [0.05, 1e4] meets the target (or every σ down to 0.05 does).
///
/// # Privacy
///
/// The returned σ was checked: ε(σ) <= target. With RDP or PLD that is a guarantee; with
/// GDP it is an approximation (never calibrate a release with GDP alone).
///
/// # Examples
///
/// ```
/// use dp_accountant::{AccountantKind, calibrate_noise_multiplier, dp_sgd_epsilon};
///
/// let sigma = calibrate_noise_multiplier(AccountantKind::Rdp, 2.0, 1e-5, 0.01, 1000)?;
/// assert!(dp_sgd_epsilon(AccountantKind::Rdp, sigma, 0.01, 1000, 1e-5)?.epsilon <= 2.0);
/// # Ok::<(), dp_accountant::AccountantError>(())
/// ```
pub fn calibrate_noise_multiplier(
    kind: AccountantKind,
    target_epsilon: f64,
    delta: f64,
    sampling_probability: f64,
    steps: u64,
) -> Result<f64, AccountantError> {
    check_target(target_epsilon)?;
    check_open_unit("delta", delta)?;
    check_sampling_probability(sampling_probability)?;
    check_steps(steps)?;
    let epsilon = |sigma: f64| -> Result<f64, AccountantError> {
        dp_sgd_epsilon(kind, sigma, sampling_probability, steps, delta).map(|r| r.epsilon)
    };
    // A cheap starting point: RDP's answer is close (and for PLD an over-estimate).
    let start = match kind {
        AccountantKind::Pld => calibrate_noise_multiplier(
            AccountantKind::Rdp,
            target_epsilon,
            delta,
            sampling_probability,
            steps,
        )
        .unwrap_or(1.0),
        AccountantKind::Rdp | AccountantKind::Gdp => 1.0,
    };
    let (low, high) = bracket_noise(start, target_epsilon, &epsilon)?;
    // Shrink the bracket in (ln σ, ln ε), where the curve is nearly a straight line.
    let ln_target = target_epsilon.ln();
    let mut search = Bracket::new(
        (low.0.ln(), low.1.ln() - ln_target),
        (high.0.ln(), high.1.ln() - ln_target),
    );
    for _ in 0..MAX_SEARCH_ITERATIONS {
        let (ln_low, ln_high) = (search.fails.0, search.meets.0);
        if ln_high - ln_low <= NOISE_MULTIPLIER_RELATIVE_TOLERANCE {
            break;
        }
        let sigma = search.candidate().exp();
        let value = epsilon(sigma)?;
        search.update(sigma.ln(), value.ln() - ln_target);
    }
    Ok(search.meets.0.exp())
}

/// A bracket [fails, meets] of a decreasing-or-increasing function f (f > 0 fails the
/// target, f <= 0 meets it), shrunk by the Illinois variant of regula falsi (Dowell and
/// Jarratt 1971), which converges superlinearly and keeps the bracket; after
/// `SLOW_STEPS_BEFORE_BISECTION` steps that did not halve the bracket, one bisection step.
struct Bracket {
    /// (x, f(x)) with f > 0.
    fails: (f64, f64),
    /// (x, f(x)) with f <= 0.
    meets: (f64, f64),
    /// The f values used for interpolation (one may be halved by the Illinois rule).
    weights: (f64, f64),
    last_moved_meets: Option<bool>,
    slow_steps: u32,
}

impl Bracket {
    fn new(fails: (f64, f64), meets: (f64, f64)) -> Self {
        Bracket {
            fails,
            meets,
            weights: (fails.1, meets.1),
            last_moved_meets: None,
            slow_steps: 0,
        }
    }

    fn candidate(&self) -> f64 {
        let (a, b) = (self.fails.0, self.meets.0);
        let (fa, fb) = self.weights;
        let interpolated = (a * fb - b * fa) / (fb - fa);
        let width = b - a;
        if self.slow_steps >= SLOW_STEPS_BEFORE_BISECTION || !interpolated.is_finite() {
            0.5 * (a + b)
        } else {
            // Stay strictly inside, so that every step shrinks the bracket.
            let margin = 1e-3 * width.abs();
            interpolated.clamp(a.min(b) + margin, a.max(b) - margin)
        }
    }

    fn update(&mut self, x: f64, value: f64) {
        let before = (self.meets.0 - self.fails.0).abs();
        let moved_meets = value <= 0.0;
        if moved_meets {
            self.meets = (x, value);
            self.weights.1 = value;
            if self.last_moved_meets == Some(true) {
                self.weights.0 *= 0.5;
            }
        } else {
            self.fails = (x, value);
            self.weights.0 = value;
            if self.last_moved_meets == Some(false) {
                self.weights.1 *= 0.5;
            }
        }
        self.last_moved_meets = Some(moved_meets);
        let after = (self.meets.0 - self.fails.0).abs();
        self.slow_steps = if after > 0.5 * before {
            self.slow_steps + 1
        } else {
            0
        };
    }
}

/// A parameter and the ε it gives.
type Evaluated = (f64, f64);

/// Finds (σ_low, ε_low), (σ_high, ε_high) with ε_low > target >= ε_high, starting at `start`.
fn bracket_noise(
    start: f64,
    target: f64,
    epsilon: &dyn Fn(f64) -> Result<f64, AccountantError>,
) -> Result<(Evaluated, Evaluated), AccountantError> {
    let (min, max) = NOISE_MULTIPLIER_RANGE;
    let start = start.clamp(min, max);
    let first = (start, epsilon(start)?);
    if first.1 <= target {
        let mut high = first;
        let mut sigma = start;
        loop {
            sigma = (sigma * 0.8).max(min);
            let value = epsilon(sigma)?;
            if value > target {
                return Ok(((sigma, value), high));
            }
            high = (sigma, value);
            if sigma <= min {
                return Err(AccountantError::Unreachable {
                    parameter: "noise_multiplier",
                    reason: format!(
                        "every noise multiplier down to {min} already meets ε <= {target}"
                    ),
                });
            }
        }
    }
    let mut low = first;
    let mut sigma = start;
    loop {
        sigma = (sigma * 1.5).min(max);
        let value = epsilon(sigma)?;
        if value <= target {
            return Ok((low, (sigma, value)));
        }
        low = (sigma, value);
        if sigma >= max {
            return Err(AccountantError::Unreachable {
                parameter: "noise_multiplier",
                reason: format!("even noise multiplier {max} gives ε = {value} > {target}"),
            });
        }
    }
}

/// The largest number of Poisson-sampled Gaussian steps with `noise_multiplier` and
/// `sampling_probability` whose ε at `delta` stays within `target_epsilon` under `kind`.
///
/// # Errors
///
/// [`AccountantError::InvalidParameter`] for invalid inputs; [`AccountantError::Unreachable`]
/// if even one step exceeds the target, or more than 2^40 steps fit.
///
/// # Privacy
///
/// The returned step count was checked: ε(steps) <= target (an approximation for GDP).
///
/// # Examples
///
/// ```
/// use dp_accountant::{AccountantKind, calibrate_steps, dp_sgd_epsilon};
///
/// let steps = calibrate_steps(AccountantKind::Rdp, 1.1, 3.0, 1e-5, 256.0 / 60000.0)?;
/// assert!(dp_sgd_epsilon(AccountantKind::Rdp, 1.1, 256.0 / 60000.0, steps, 1e-5)?.epsilon <= 3.0);
/// assert!(dp_sgd_epsilon(AccountantKind::Rdp, 1.1, 256.0 / 60000.0, steps + 1, 1e-5)?.epsilon > 3.0);
/// # Ok::<(), dp_accountant::AccountantError>(())
/// ```
pub fn calibrate_steps(
    kind: AccountantKind,
    noise_multiplier: f64,
    target_epsilon: f64,
    delta: f64,
    sampling_probability: f64,
) -> Result<u64, AccountantError> {
    check_target(target_epsilon)?;
    check_open_unit("delta", delta)?;
    check_sampling_probability(sampling_probability)?;
    DpEvent::gaussian(noise_multiplier).validate()?;
    let epsilon = |steps: u64| -> Result<f64, AccountantError> {
        dp_sgd_epsilon(kind, noise_multiplier, sampling_probability, steps, delta)
            .map(|r| r.epsilon)
    };
    if epsilon(1)? > target_epsilon {
        return Err(AccountantError::Unreachable {
            parameter: "steps",
            reason: format!("a single step already exceeds ε = {target_epsilon}"),
        });
    }
    let too_many = || AccountantError::Unreachable {
        parameter: "steps",
        reason: format!("more than {MAX_STEPS} steps stay within ε = {target_epsilon}"),
    };
    // Bracket by doubling from 1 (or from RDP's answer for PLD: PLD is the tighter bound,
    // so RDP's step count is a good, cheap starting point).
    let start = match kind {
        AccountantKind::Pld => calibrate_steps(
            AccountantKind::Rdp,
            noise_multiplier,
            target_epsilon,
            delta,
            sampling_probability,
        )
        .unwrap_or(1)
        .max(1),
        AccountantKind::Rdp | AccountantKind::Gdp => 1,
    };
    let ln_target = target_epsilon.ln();
    let mut good = (1_u64, epsilon(1)?);
    if start > 1 {
        let value = epsilon(start)?;
        if value <= target_epsilon {
            good = (start, value);
        }
    }
    let mut bad = loop {
        let next = good.0.saturating_mul(2);
        if next > MAX_STEPS {
            return Err(too_many());
        }
        let value = epsilon(next)?;
        if value > target_epsilon {
            break (next, value);
        }
        good = (next, value);
    };
    // Invariant: ε(good) <= target < ε(bad); interpolate in (ln T, ln ε).
    let as_point = |(steps, value): (u64, f64)| ((steps as f64).ln(), value.ln() - ln_target);
    let mut search = Bracket::new(as_point(bad), as_point(good));
    while bad.0 - good.0 > 1 {
        // Round the candidate into the open interval (good, bad).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let steps = (search.candidate().exp().round() as u64).clamp(good.0 + 1, bad.0 - 1);
        let value = epsilon(steps)?;
        if value > target_epsilon {
            bad = (steps, value);
        } else {
            good = (steps, value);
        }
        search.update((steps as f64).ln(), value.ln() - ln_target);
    }
    Ok(good.0)
}
