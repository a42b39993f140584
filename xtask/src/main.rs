//! Project automation for dp-rs, run as `cargo xtask <command>`.
//!
//! Depends on no workspace crate: everything here shells out to `cargo` and `python3 -m pip`,
//! so it builds in seconds and keeps working when a library crate does not compile.
//!
//! - `libtorch`: provisions the CPU libtorch that `tch` links against (DESIGN.md section 5).
//! - `test`: provisions libtorch, then runs every test of the workspace (dp-engine-tch included),
//!   with proptest's generator seeded by [`PROPTEST_SEED`] unless `PROPTEST_RNG_SEED` is set, so
//!   that a run is reproducible (plain `cargo test` keeps exploring with random seeds).
//! - `ci`: formatting, lints, tests, benches compiled, experiments smoke run: what `.ci/run` calls.
//! - `experiments`: runs the dp-experiments binary (release build).
//! - `bench`: runs the criterion benches.
//! - `gpu-bundle`: dp-engine-tch tests, example and bench linked for CUDA, with a run script.

mod bench_summary;
mod gpu_bundle;
mod libtorch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// Features that the full test and lint runs enable: everything but the CUDA link switch.
const FULL_FEATURES: &str = "dp-accountant/cli,dp-benches/torch,dp-experiments/torch";

#[derive(Parser)]
#[command(name = "cargo xtask", about = "dp-rs project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Provision libtorch 2.11.0 (CPU) into the shared cache and link it as `.libtorch`.
    Libtorch,
    /// Provision libtorch, then run all tests (dp-engine-tch included) and doc tests.
    Test {
        /// Extra arguments passed to `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Everything CI checks, cheapest first.
    Ci,
    /// Run the experiments (arguments go to the dp-experiments binary).
    Experiments {
        /// Arguments for dp-experiments, e.g. `accounting --profile smoke`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the criterion benches (arguments go to `cargo bench`).
    Bench {
        /// Extra arguments passed to `cargo bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the dp-engine-tch tests, example and bench for CUDA into target/gpu-bundle/.
    GpuBundle {
        /// The GPU machine's `torch/lib` folder, put first in the binaries' RUNPATH.
        #[arg(long)]
        target_torch_lib: Option<PathBuf>,
    },
}

fn main() {
    if let Err(error) = run(Cli::parse()) {
        eprintln!("{} {error:#}", paint("1;31", "[xtask] error:"));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root)
        .with_context(|| format!("cannot enter the workspace root {}", root.display()))?;
    match cli.command {
        Task::Libtorch => {
            libtorch::provision(&root)?;
        }
        Task::Test { cargo_args } => test(&root, &cargo_args)?,
        Task::Ci => ci(&root)?,
        Task::Experiments { args } => experiments(&root, &args)?,
        Task::Bench { args } => bench(&root, &args)?,
        Task::GpuBundle { target_torch_lib } => {
            gpu_bundle::build(&root, target_torch_lib.as_deref())?;
        }
    }
    Ok(())
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The seed of proptest's generator in `cargo xtask test` (and so in CI).
const PROPTEST_SEED: &str = "20261129";

fn test(root: &Path, cargo_args: &[String]) -> Result<()> {
    let libtorch = libtorch::provision(root)?;
    let mut args = vec!["test", "--workspace", "--features", FULL_FEATURES];
    args.extend(cargo_args.iter().map(String::as_str));
    // A seed the caller set is inherited; otherwise the fixed one.
    let seed: &[(&str, &str)] = match std::env::var_os("PROPTEST_RNG_SEED") {
        Some(_) => &[],
        None => &[("PROPTEST_RNG_SEED", PROPTEST_SEED)],
    };
    cargo_with(&args, Some(&libtorch), seed)
}

fn ci(root: &Path) -> Result<()> {
    let started = Instant::now();
    cargo(&["fmt", "--all", "--", "--check"], None)?;
    // Lint the default members first: it needs no libtorch and fails fast.
    cargo(&["clippy", "--all-targets", "--", "-D", "warnings"], None)?;
    let libtorch = libtorch::provision(root)?;
    cargo(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            FULL_FEATURES,
            "--",
            "-D",
            "warnings",
        ],
        Some(&libtorch),
    )?;
    test(root, &[])?;
    cargo(
        &[
            "bench",
            "--workspace",
            "--no-run",
            "--features",
            FULL_FEATURES,
        ],
        Some(&libtorch),
    )?;
    experiments(root, &["--profile".into(), "smoke".into()])?;
    step(&format!(
        "ci passed in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Runs dp-experiments (release build) with `args`. Its CNN runs train on a libtorch engine
/// (`--engine`, default `bookkeeping`), so unless `--engine ndarray` is given this provisions
/// libtorch and builds with the `torch` feature.
/// Experiments of dp-experiments that never train on libtorch, whatever `--engine` says.
const EXPERIMENTS_WITHOUT_LIBTORCH: &[&str] = &["accounting", "mia", "audit", "label-dp"];

/// dp-experiments' options that take a value (as `--option VALUE` or `--option=VALUE`).
const EXPERIMENT_OPTIONS_WITH_VALUE: &[&str] = &[
    "--profile",
    "--engine",
    "--data-dir",
    "--out-dir",
    "--config-dir",
    "--seed",
];

fn experiments(root: &Path, args: &[String]) -> Result<()> {
    let mut cargo_args = vec!["run", "--release", "--package", "dp-experiments"];
    let names = experiment_names(args);
    let libtorch = if engine_argument(args) == Some("ndarray") {
        step("--engine ndarray: no libtorch, the CNN runs are skipped");
        None
    } else if !names.is_empty()
        && names
            .iter()
            .all(|name| EXPERIMENTS_WITHOUT_LIBTORCH.contains(name))
    {
        step(&format!("{}: no libtorch needed", names.join(", ")));
        None
    } else {
        cargo_args.extend(["--features", "torch"]);
        Some(libtorch::provision(root)?)
    };
    cargo_args.push("--");
    cargo_args.extend(args.iter().map(String::as_str));
    cargo(&cargo_args, libtorch.as_deref())
}

/// The experiment names among dp-experiments' arguments (its positional arguments).
fn experiment_names(args: &[String]) -> Vec<&str> {
    let mut names = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if EXPERIMENT_OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
            iter.next();
        } else if !arg.starts_with('-') {
            names.push(arg.as_str());
        }
    }
    names
}

/// The value of dp-experiments' `--engine` option in `args` (`--engine X` or `--engine=X`).
fn engine_argument(args: &[String]) -> Option<&str> {
    args.iter().enumerate().find_map(|(index, arg)| {
        if arg == "--engine" {
            args.get(index + 1).map(String::as_str)
        } else {
            arg.strip_prefix("--engine=")
        }
    })
}

fn bench(root: &Path, args: &[String]) -> Result<()> {
    let libtorch = libtorch::provision(root)?;
    let mut cargo_args = vec!["bench", "--package", "dp-benches", "--features", "torch"];
    if !args.is_empty() {
        cargo_args.push("--");
        cargo_args.extend(args.iter().map(String::as_str));
    }
    cargo(&cargo_args, Some(&libtorch))?;
    bench_summary::write(&root.join("target"))
}

/// Prints a step header the way cargo prints its own progress.
fn step(message: &str) {
    eprintln!("{} {message}", paint("1;32", "[xtask]"));
}

/// `text` in the ANSI colour `code` on a terminal, plain otherwise (CI logs).
fn paint(code: &str, text: &str) -> String {
    if std::io::stderr().is_terminal() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Runs cargo with `args`, one OpenMP thread (libtorch thrashes on busy small machines) and,
/// when given, the provisioned libtorch.
fn cargo(args: &[&str], libtorch: Option<&Path>) -> Result<()> {
    cargo_with(args, libtorch, &[])
}

/// [`cargo`] with more environment variables.
fn cargo_with(args: &[&str], libtorch: Option<&Path>, variables: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    step(&format!("cargo {}", args.join(" ")));
    let mut command = Command::new(cargo);
    command.args(args).env("OMP_NUM_THREADS", "1");
    command.envs(variables.iter().copied());
    if let Some(dir) = libtorch {
        command.env("LIBTORCH", dir);
    }
    let status = command.status().context("cannot start cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|&arg| arg.to_owned()).collect()
    }

    #[test]
    fn the_engine_argument_is_found_in_both_spellings() {
        let separate = strings(&["mnist", "--engine", "ndarray", "--profile", "smoke"]);
        assert_eq!(engine_argument(&separate), Some("ndarray"));
        let joined = strings(&["--profile", "smoke", "--engine=ghost"]);
        assert_eq!(engine_argument(&joined), Some("ghost"));
        assert_eq!(
            engine_argument(&strings(&["tips", "--profile", "smoke"])),
            None
        );
        // A trailing `--engine` without a value: dp-experiments reports the error.
        assert_eq!(engine_argument(&strings(&["--engine"])), None);
    }

    #[test]
    fn experiment_names_skip_option_values() {
        let args = strings(&[
            "accounting",
            "--profile",
            "smoke",
            "--seed=3",
            "--data-dir",
            "mia",
            "audit",
        ]);
        assert_eq!(experiment_names(&args), ["accounting", "audit"]);
        assert!(experiment_names(&strings(&["--profile", "smoke"])).is_empty());
    }
}
