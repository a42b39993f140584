//! Progress output: a bar on a terminal, a line per finished run otherwise (CI logs).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of one run (a training run, an attack, a sweep).
pub struct RunProgress {
    bar: ProgressBar,
    label: String,
}

impl RunProgress {
    /// A bar of `length` units for the run `label`. An empty label makes a silent progress:
    /// no bar and no summary line (for the many small runs inside one reported run).
    pub fn new(label: &str, length: u64) -> Self {
        let bar = if std::io::stderr().is_terminal() && !label.is_empty() {
            let bar = ProgressBar::new(length);
            bar.set_style(
                ProgressStyle::with_template(
                    "   {msg:28} [{bar:30}] {pos}/{len} {elapsed} {prefix}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_message(label.to_owned());
        Self {
            bar,
            label: label.to_owned(),
        }
    }

    /// Advances the bar to `position` and shows `status` (e.g. loss and ε so far).
    pub fn update(&self, position: u64, status: &str) {
        self.bar.set_position(position);
        self.bar.set_prefix(status.to_owned());
    }

    /// Advances the bar by one unit (safe to call from several threads).
    pub fn advance(&self) {
        self.bar.inc(1);
    }

    /// Ends the bar and prints the run's summary line (nothing for a silent progress).
    pub fn finish(self, summary: &str) {
        self.bar.finish_and_clear();
        if !self.label.is_empty() {
            eprintln!("   {:28} {summary}", self.label);
        }
    }
}
