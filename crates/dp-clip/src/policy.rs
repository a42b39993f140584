//! The [`ClipPolicy`] trait and the noise source adaptive policies draw from.

use dp_accountant::DpEvent;

use crate::{ClipError, ClipOutcome, NormMatrix};

/// Gaussian noise for a policy's own releases, supplied by the caller (dp-sampler's secure
/// noise in a trainer). Closures `FnMut(f64) -> Result<f64, E>` taking the std implement it.
pub trait NoiseSource {
    /// One draw from N(0, std²).
    ///
    /// # Errors
    ///
    /// [`ClipError::NoiseSource`] when the source fails.
    fn gaussian(&mut self, std: f64) -> Result<f64, ClipError>;
}

impl<F, E> NoiseSource for F
where
    F: FnMut(f64) -> Result<f64, E>,
    E: std::error::Error,
{
    fn gaussian(&mut self, std: f64) -> Result<f64, ClipError> {
        self(std).map_err(|err| ClipError::NoiseSource {
            reason: err.to_string(),
        })
    }
}

/// A clipping policy: per-sample norms in, scale factors and sensitivity out.
///
/// Each step the trainer calls [`ClipPolicy::clip`], lets the engine accumulate the scaled
/// gradients, adds noise calibrated to [`ClipOutcome::sensitivity`], then calls
/// [`ClipPolicy::update`] and composes the event it returns.
///
/// # Privacy
///
/// Non-finite norms get factor 0 and are counted; they never change which code runs nor make
/// `clip` fail, so a poisoned example cannot stop or steer a step.
pub trait ClipPolicy {
    /// The scale factors for one batch under the current state.
    ///
    /// # Errors
    ///
    /// [`ClipError::ShapeMismatch`] when the matrix has a number of groups the policy cannot
    /// serve.
    fn clip(&self, norms: &NormMatrix<'_>) -> Result<ClipOutcome, ClipError>;

    /// The L2 sensitivity the next [`ClipPolicy::clip`] will report.
    fn sensitivity(&self) -> f64;

    /// Updates the policy after the step whose clipping gave `outcome`, drawing any noise it
    /// needs from `noise`, and returns the privacy event of what it released: `NoOp` for
    /// policies that learn nothing from the data.
    ///
    /// # Errors
    ///
    /// [`ClipError::StaleOutcome`] for an outcome computed under another state;
    /// [`ClipError::NoiseSource`] when the noise source fails.
    fn update(
        &mut self,
        outcome: &ClipOutcome,
        noise: &mut dyn NoiseSource,
    ) -> Result<DpEvent, ClipError>;
}
