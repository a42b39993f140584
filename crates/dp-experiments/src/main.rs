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
#[cfg(feature = "torch")]
mod torch_training;
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

/// The `--engine` choice: which per-sample gradient engine trains the CNN runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// No libtorch: the CNN runs are skipped (the MLP runs use the ndarray engine anyway).
    Ndarray,
    /// libtorch, one backward pass per example (the reference; slow).
    Microbatch,
    /// libtorch, per-sample gradients materialized layer by layer.
    Materialized,
    /// libtorch, ghost norms and a second backward pass (Li et al. 2021).
    Ghost,
    /// libtorch, book-keeping: one backward pass, ghost or materialized norms per layer
    /// (Bu et al. 2023).
    Bookkeeping,
}

impl EngineChoice {
    /// The engine's name as `--engine` spells it.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Ndarray => "ndarray",
            EngineChoice::Microbatch => "microbatch",
            EngineChoice::Materialized => "materialized",
            EngineChoice::Ghost => "ghost",
            EngineChoice::Bookkeeping => "bookkeeping",
        }
    }

    /// Why the CNN runs are skipped with this engine, if they are: `--engine ndarray`, or a
    /// binary built without the `torch` feature.
    pub fn cnn_skip_reason(self) -> Option<&'static str> {
        if !cfg!(feature = "torch") {
            Some(
                "this binary was built without the `torch` feature (`cargo xtask experiments` \
                 enables it)",
            )
        } else if self == EngineChoice::Ndarray {
            Some("`--engine ndarray` was given")
        } else {
            None
        }
    }

    /// The engine of the CNN runs: `requested`, else `bookkeeping` when the binary has the
    /// `torch` feature and `ndarray` (no CNN runs) when it has not.
    ///
    /// # Errors
    ///
    /// A libtorch engine requested from a binary built without the `torch` feature.
    fn resolve(requested: Option<EngineChoice>) -> Result<EngineChoice> {
        let torch = cfg!(feature = "torch");
        match requested {
            Some(engine) if engine != EngineChoice::Ndarray && !torch => bail!(
                "--engine {}: this binary was built without the `torch` feature; run \
                 `cargo xtask experiments` (it provisions libtorch and enables the feature) or \
                 build with `--features torch`",
                engine.name()
            ),
            Some(engine) => Ok(engine),
            None if torch => Ok(EngineChoice::Bookkeeping),
            None => {
                eprintln!(
                    "note: built without the `torch` feature: the CNN runs are skipped (run \
                     `cargo xtask experiments` to include them)"
                );
                Ok(EngineChoice::Ndarray)
            }
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
    /// Per-sample gradient engine of the CNN runs (`mnist`, `tips`): a libtorch engine
    /// (default `bookkeeping`; needs the `torch` feature, which `cargo xtask experiments`
    /// enables), or `ndarray` to skip the CNN runs. The MLP runs always use the pure-Rust
    /// ndarray book-keeping engine. Every result records its engine.
    #[arg(long, value_enum)]
    engine: Option<EngineChoice>,
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
    let engine = EngineChoice::resolve(cli.engine)?;
    std::fs::create_dir_all(&cli.out_dir)
        .with_context(|| format!("cannot create {}", cli.out_dir.display()))?;
    let machine = Machine::current();
    let started = Instant::now();
    for name in &names {
        let experiment = EXPERIMENTS
            .iter()
            .find(|experiment| experiment.name == name)
            .expect("names were checked against EXPERIMENTS above");
        let config_path = cli.config_dir.join(format!("{name}.toml"));
        let config = experiments::load_config(&config_path, cli.profile)?;
        let provenance = Provenance {
            profile: cli.profile.name().to_owned(),
            machine: machine.clone(),
            data: experiment.data.describe(cli.data_dir.as_deref()),
        };
        eprintln!("== {name} ({}): {}", cli.profile.name(), config.title);
        let context = ExperimentContext {
            name: name.clone(),
            engine,
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
