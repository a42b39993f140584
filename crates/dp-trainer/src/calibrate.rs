//! `make_private_with_epsilon`: the configuration whose noise multiplier meets a target ε.

use crate::TrainerError;
use crate::config::DpSgdConfig;
use dp_accountant::{AccountantKind, calibrate_noise_multiplier};

/// Relative headroom added to a calibrated noise multiplier. Secure noise rounds the gradient to
/// its grid, which lowers each step's effective multiplier by less than a relative
/// 2^-40·sqrt(number of parameters) (dp-sampler's `rounding_slack`): below 1e-6 for any model up
/// to 10^12 parameters, so the calibrated run stays within its budget to the last step.
pub const SECURE_NOISE_HEADROOM: f64 = 1e-6;

impl DpSgdConfig {
    /// `make_private_with_epsilon`: a configuration whose noise multiplier is the smallest (to a
    /// relative 1e-6, rounded up) for which `steps` Poisson-sampled steps with probability
    /// `sampling_probability` cost at most `target_epsilon` at `delta` under `kind`
    /// (`dp_accountant::calibrate_noise_multiplier`), raised by [`SECURE_NOISE_HEADROOM`], with
    /// the budget set to `target_epsilon`.
    ///
    /// # Privacy
    ///
    /// The calibrated σ was checked to meet the target; the budget is enforced during training
    /// as well. The GDP accountant is refused: it approximates and cannot certify a budget.
    ///
    /// # Errors
    ///
    /// [`TrainerError::InvalidParameter`] for the GDP accountant; calibration errors (invalid
    /// inputs, unreachable target) and those of [`DpSgdConfig::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_accountant::AccountantKind;
    /// use dp_trainer::DpSgdConfig;
    ///
    /// let config = DpSgdConfig::calibrated(AccountantKind::Rdp, 3.0, 0.01, 500, 1e-5)?;
    /// assert!(config.noise_multiplier() > 0.5 && config.epsilon_budget() == Some(3.0));
    /// # Ok::<(), dp_trainer::TrainerError>(())
    /// ```
    pub fn calibrated(
        kind: AccountantKind,
        target_epsilon: f64,
        sampling_probability: f64,
        steps: u64,
        delta: f64,
    ) -> Result<Self, TrainerError> {
        if kind.is_approximate() {
            return Err(TrainerError::invalid(
                "accountant",
                f64::NAN,
                "the GDP accountant is an approximation and cannot certify a budget; use RDP or PLD",
            ));
        }
        let noise_multiplier =
            calibrate_noise_multiplier(kind, target_epsilon, delta, sampling_probability, steps)?
                * (1.0 + SECURE_NOISE_HEADROOM);
        Self::new(noise_multiplier, sampling_probability, steps, delta)?
            .with_epsilon_budget(target_epsilon)
    }
}
