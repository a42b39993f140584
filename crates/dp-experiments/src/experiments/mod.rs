//! The experiments: each reads its parameters from `experiments/<name>.toml` and returns
//! its runs, report section and plots.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use crate::Profile;
use crate::report::ExperimentOutput;

mod accounting;
mod audit;
mod canary;
mod engines;
mod label_dp;
mod mia;
mod mnist;
mod strong_composition;
mod tips;

/// What every experiment gets from the command line.
pub struct ExperimentContext {
    /// The experiment's name.
    pub name: String,
    /// Engine of the CNN runs (`--engine`; `ndarray`: no CNN runs).
    pub engine: crate::EngineChoice,
    /// Full data sets, if the user gave them.
    pub data_dir: Option<PathBuf>,
    /// Folder for this experiment's results and plots.
    pub out_dir: PathBuf,
    /// Base seed.
    pub seed: u64,
}

/// An experiment the binary knows.
pub struct Experiment {
    /// Name, also the stem of its TOML file and its output folder.
    pub name: &'static str,
    /// The data it reads, for the report.
    pub data: Data,
    /// Runs it with the profile's parameters.
    pub run: fn(&ExperimentContext, toml::Value) -> Result<ExperimentOutput>,
}

/// The data an experiment reads.
#[derive(Clone, Copy, Debug)]
pub enum Data {
    /// None: the experiment computes from formulas alone.
    None,
    /// MNIST: the shipped subset, or `--data-dir`.
    Mnist,
    /// Shakespeare's plays (fetched on first use), or the file in `DP_EXPERIMENTS_TEXT`.
    Shakespeare,
}

impl Data {
    /// How the report states the data source of an experiment.
    pub fn describe(self, data_dir: Option<&Path>) -> String {
        match (self, data_dir) {
            (Data::None, _) => "none (accounting only)".to_owned(),
            (Data::Mnist, Some(dir)) => format!("MNIST from {}", dir.display()),
            (Data::Mnist, None) => {
                "the MNIST subset shipped in data/mnist (8,000 train / 2,000 test, see data/README.md)"
                    .to_owned()
            }
            (Data::Shakespeare, _) => match std::env::var("DP_EXPERIMENTS_TEXT") {
                Ok(file) => format!("the text file {file} (DP_EXPERIMENTS_TEXT)"),
                Err(_) => "Shakespeare's plays, fetched on first use (see data/README.md)".to_owned(),
            },
        }
    }
}

/// Every experiment, in the order of the report.
pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "accounting",
        data: Data::None,
        run: accounting::run,
    },
    Experiment {
        name: "mnist",
        data: Data::Mnist,
        run: mnist::run,
    },
    Experiment {
        name: "canary",
        data: Data::Shakespeare,
        run: canary::run,
    },
    Experiment {
        name: "mia",
        data: Data::Mnist,
        run: mia::run,
    },
    Experiment {
        name: "audit",
        data: Data::Mnist,
        run: audit::run,
    },
    Experiment {
        name: "tips",
        data: Data::Mnist,
        run: tips::run,
    },
    Experiment {
        name: "label-dp",
        data: Data::Mnist,
        run: label_dp::run,
    },
    Experiment {
        name: "engines",
        data: Data::Mnist,
        run: engines::run,
    },
];

/// Position of an experiment in the report (unknown names last).
pub fn order_of(name: &str) -> usize {
    EXPERIMENTS
        .iter()
        .position(|experiment| experiment.name == name)
        .unwrap_or(usize::MAX)
}

/// An experiment's configuration for one profile.
pub struct Config {
    /// Title of the report section.
    pub title: String,
    /// The profile's parameter table.
    pub parameters: toml::Value,
}

/// Reads `path` and picks the table of `profile`.
pub fn load_config(path: &Path, profile: Profile) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the experiment configuration {}",
            path.display()
        )
    })?;
    let mut document: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let title = document
        .get("title")
        .and_then(toml::Value::as_str)
        .with_context(|| format!("{} has no `title`", path.display()))?
        .to_owned();
    let parameters = document
        .remove(profile.name())
        .with_context(|| format!("{} has no [{}] table", path.display(), profile.name()))?;
    Ok(Config { title, parameters })
}

/// Deserializes a profile table into an experiment's parameter struct.
pub fn parameters<T: DeserializeOwned>(value: toml::Value) -> Result<T> {
    value.try_into().context("invalid experiment parameters")
}

/// Seed of run number `index` of an experiment: distinct, reproducible, recorded.
pub fn run_seed(base: u64, experiment: &str, index: u64) -> u64 {
    // FNV-1a over the name, mixed with the base seed and the run index.
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in experiment.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^ base.rotate_left(17) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The MNIST train and test sets: `--data-dir` when given (full MNIST in IDX format), else
/// the shipped subset (checked against its recorded sha256 sums).
pub fn load_mnist(context: &ExperimentContext) -> Result<dp_data::TrainTest> {
    match &context.data_dir {
        Some(dir) => dp_data::load_mnist(dir)
            .with_context(|| format!("cannot load MNIST from {}", dir.display())),
        None => dp_data::load_shipped_mnist().context("cannot load the shipped MNIST subset"),
    }
}
