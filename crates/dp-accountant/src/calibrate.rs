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
    DpEvent::gaussian(noise_multiplier).poisson_sampled(sampling_probability).repeated(steps)
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
        Err(AccountantError::invalid("target_epsilon", target_epsilon, "must be finite and > 0"))
    }
}

fn check_sampling_probability(q: f64) -> Result<(), AccountantError> {
    if q.is_finite() && q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(AccountantError::invalid("sampling_probability", q, "must lie in (0, 1]"))
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
        AccountantKind::Pld => calibrate_noise_multiplier(AccountantKind::Rdp, target_epsilon, delta, sampling_probability, steps)
            .unwrap_or(1.0),
        AccountantKind::Rdp | AccountantKind::Gdp => 1.0,
    };
    let (mut low, mut high) = bracket_noise(start, target_epsilon, &epsilon)?;
    // Invariant: ε(low.0) > target >= ε(high.0); shrink with secant steps in ln σ,
    // falling back to bisection when the secant step stalls.
    let mut bisect_next = false;
    for _ in 0..MAX_SEARCH_ITERATIONS {
        if high.0 - low.0 <= NOISE_MULTIPLIER_RELATIVE_TOLERANCE * high.0 {
            return Ok(high.0);
        }
        let (ln_low, ln_high) = (low.0.ln(), high.0.ln());
        let midpoint = 0.5 * (ln_low + ln_high);
        let secant = ln_low + (low.1 - target_epsilon) / (low.1 - high.1) * (ln_high - ln_low);
        let width = ln_high - ln_low;
        let candidate = if bisect_next || !secant.is_finite() {
            midpoint
        } else {
            // Keep the point inside the middle of the bracket, nudged towards the safe side.
            secant.clamp(ln_low + 0.02 * width, ln_high - 0.02 * width)
        };
        let sigma = candidate.exp();
        let value = epsilon(sigma)?;
        let previous_width = high.0 - low.0;
        if value > target_epsilon {
            low = (sigma, value);
        } else {
            high = (sigma, value);
        }
        // Bisect next time if this step removed less than half the bracket.
        bisect_next = (high.0 - low.0) > 0.5 * previous_width;
    }
    Ok(high.0)
}

/// Finds (σ_low, ε_low), (σ_high, ε_high) with ε_low > target >= ε_high, starting at `start`.
fn bracket_noise(
    start: f64,
    target: f64,
    epsilon: &dyn Fn(f64) -> Result<f64, AccountantError>,
) -> Result<((f64, f64), (f64, f64)), AccountantError> {
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
                    reason: format!("every noise multiplier down to {min} already meets ε <= {target}"),
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
        dp_sgd_epsilon(kind, noise_multiplier, sampling_probability, steps, delta).map(|r| r.epsilon)
    };
    if epsilon(1)? > target_epsilon {
        return Err(AccountantError::Unreachable {
            parameter: "steps",
            reason: format!("a single step already exceeds ε = {target_epsilon}"),
        });
    }
    // Invariant: ε(good) <= target < ε(bad).
    let mut good = 1_u64;
    let mut bad = loop {
        let next = good.saturating_mul(2);
        if next > MAX_STEPS {
            return Err(AccountantError::Unreachable {
                parameter: "steps",
                reason: format!("more than {MAX_STEPS} steps stay within ε = {target_epsilon}"),
            });
        }
        if epsilon(next)? > target_epsilon {
            break next;
        }
        good = next;
    };
    while bad - good > 1 {
        let middle = good + (bad - good) / 2;
        if epsilon(middle)? > target_epsilon {
            bad = middle;
        } else {
            good = middle;
        }
    }
    Ok(good)
}
