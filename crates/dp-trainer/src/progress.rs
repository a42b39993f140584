//! Progress reporting: what each step reports, and a terminal progress bar for binaries.

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// What the trainer reports after each logical step.
///
/// # Privacy
///
/// `mean_loss` is computed from the private batch without noise: it is for monitoring and is
/// not covered by the guarantee. Do not publish it (or the realized batch size) as a DP output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Logical steps completed, including this one.
    pub step: u64,
    /// Mean per-example loss over the realized batch (NaN for an empty batch).
    pub mean_loss: f64,
    /// ε spent so far at the configured δ (`None` for non-private training).
    pub epsilon: Option<f64>,
    /// Learning rate used in this step.
    pub learning_rate: f64,
    /// Examples whose norms were not finite in this step (they were given scale 0).
    pub non_finite_norms: usize,
}

/// A terminal progress bar that shows step, loss and ε; pass [`TerminalProgress::callback`]
/// as the trainer's progress callback.
///
/// # Examples
///
/// ```
/// use dp_trainer::{StepReport, TerminalProgress};
///
/// let progress = TerminalProgress::new(100);
/// let mut callback = progress.callback();
/// callback(&StepReport {
///     step: 1,
///     mean_loss: 2.3,
///     epsilon: Some(0.1),
///     learning_rate: 0.1,
///     non_finite_norms: 0,
/// });
/// progress.finish();
/// ```
#[derive(Clone, Debug)]
pub struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    /// A bar for `total_steps` steps, drawn on stderr (hidden when stderr is not a terminal).
    pub fn new(total_steps: u64) -> Self {
        let bar = ProgressBar::new(total_steps);
        let style =
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps, {msg} [{elapsed_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self { bar }
    }

    /// A callback that advances the bar and shows the latest loss and ε.
    pub fn callback(&self) -> impl FnMut(&StepReport) + use<> {
        let bar = self.bar.clone();
        move |report: &StepReport| {
            bar.set_position(report.step);
            let epsilon = report
                .epsilon
                .map_or_else(|| "non-private".to_string(), |e| format!("ε = {e:.3}"));
            bar.set_message(format!("loss {:.4}, {epsilon}", report.mean_loss));
        }
    }

    /// Leaves the bar at its final state.
    pub fn finish(&self) {
        self.bar.finish();
    }
}
