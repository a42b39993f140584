//! `dp-experiments`: reproduces the field's results on the shipped data.
//!
//! Run it through `cargo xtask experiments [NAME ...] [--profile smoke|default|full]`. Each
//! experiment reads `experiments/<name>.toml`, and writes `target/experiments/<name>/` (results
//! and plots) and its section of `target/experiments/REPORT.md`.

mod experiments;
mod machine;
mod plot;
mod progress;
mod report;
mod training;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::experiments::{EXPERIMENTS, ExperimentContext};
use crate::machine::Machine;
use crate::report::Provenance;

/// How much work each experiment does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Seconds per experiment: what CI runs.
    Smoke,
    /// The whole suite in under 30 minutes on 2 CPU cores.
    Default,
    /// Hours; for a GPU machine.
    Full,
}

impl Profile {
    /// The profile's name, as in the TOML tables.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke",
            Profile::Default => "default",
            Profile::Full => "full",
        }
    }
}

/// Reproduce the field's results: accounting, accuracy, memorization and membership
/// inference against ε, on the data the project ships.
#[derive(Parser)]
#[command(name = "dp-experiments", version)]
struct Cli {
    /// Experiments to run (default: all, in the report's order).
    names: Vec<String>,
    /// How much work each experiment does.
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    profile: Profile,
    /// Per-sample gradient engine for the training runs. Only `ndarray` (the pure-Rust
    /// book-keeping engine) runs the experiments so far; the libtorch engines are measured by
    /// `cargo xtask bench`.
    #[arg(long, default_value = "ndarray")]
    engine: String,
    /// Folder with full data sets in the standard formats (MNIST IDX files); default: the
    /// subsets shipped in data/.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where results go.
    #[arg(long, default_value = "target/experiments")]
    out_dir: PathBuf,
    /// Folder holding the experiment configurations.
    #[arg(long, default_value = "experiments")]
    config_dir: PathBuf,
    /// Base seed; every run derives its own seed from it and records it.
    #[arg(long, default_value_t = 20_240_601)]
    seed: u64,
}

fn main() {
    if let Err(error) = run(Cli::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let names: Vec<String> = if cli.names.is_empty() {
        EXPERIMENTS
            .iter()
            .map(|experiment| experiment.name.to_owned())
            .collect()
    } else {
        cli.names.clone()
    };
    for name in &names {
        if !EXPERIMENTS.iter().any(|experiment| experiment.name == name) {
            let known: Vec<&str> = EXPERIMENTS
                .iter()
                .map(|experiment| experiment.name)
                .collect();
            bail!("unknown experiment `{name}`; known: {}", known.join(", "));
        }
    }
    if cli.engine != "ndarray" {
        bail!(
            "--engine {}: the experiments train with the pure-Rust `ndarray` engine only so far; \
             the libtorch engines (microbatch, materialized, ghost, bookkeeping) are tested by \
             `cargo xtask test` and timed by `cargo xtask bench`",
            cli.engine
        );
    }
    std::fs::create_dir_all(&cli.out_dir)
        .with_context(|| format!("cannot create {}", cli.out_dir.display()))?;
    let provenance = Provenance {
        profile: cli.profile.name().to_owned(),
        machine: Machine::current(),
        data: match &cli.data_dir {
            Some(dir) => format!("full data sets from {}", dir.display()),
            None => "the subsets shipped in data/ (see data/README.md)".to_owned(),
        },
    };
    let started = Instant::now();
    for name in &names {
        let experiment = EXPERIMENTS
            .iter()
            .find(|experiment| experiment.name == name)
            .expect("names were checked against EXPERIMENTS above");
        let config_path = cli.config_dir.join(format!("{name}.toml"));
        let config = experiments::load_config(&config_path, cli.profile)?;
        eprintln!("== {name} ({}): {}", cli.profile.name(), config.title);
        let context = ExperimentContext {
            name: name.clone(),
            data_dir: cli.data_dir.clone(),
            out_dir: cli.out_dir.join(name),
            seed: cli.seed,
        };
        std::fs::create_dir_all(&context.out_dir)?;
        let experiment_started = Instant::now();
        let output = (experiment.run)(&context, config.parameters)
            .with_context(|| format!("experiment `{name}` failed"))?;
        let seconds = experiment_started.elapsed().as_secs_f64();
        report::write_experiment(
            &cli.out_dir,
            name,
            &config.title,
            &output,
            &provenance,
            seconds,
        )?;
        eprintln!("   done in {seconds:.1} s -> {}", context.out_dir.display());
    }
    eprintln!(
        "all done in {:.1} s; report: {}",
        started.elapsed().as_secs_f64(),
        cli.out_dir.join("REPORT.md").display()
    );
    Ok(())
}
