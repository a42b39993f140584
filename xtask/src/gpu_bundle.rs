//! `cargo xtask gpu-bundle`: the dp-engine-tch tests, the `engines` example and the
//! `engines_tch` benchmark linked for CUDA (DESIGN.md section 5), stripped, in
//! `target/gpu-bundle/` with a `run.sh` for a machine that has PyTorch 2.11.0+cu130 and a GPU but
//! no Rust toolchain.
//!
//! The build links against the provisioned libtorch with `DP_RS_CUDA=1` (the build script then
//! keeps `libtorch_cuda` linked), in its own target folder (`target/gpu-build`) so that the CPU
//! builds never link CUDA. `--target-torch-lib DIR` puts the GPU machine's `torch/lib` first in
//! the binaries' RUNPATH (`DP_RS_EXTRA_RPATH`); `run.sh` also sets `LD_LIBRARY_PATH` to the
//! `torch/lib` of the Python it finds, so the bundle runs without that option too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{libtorch, step};

/// The bundle must fit in this many bytes.
const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;

/// The run script of the bundle.
const RUN_SCRIPT: &str = r#"#!/bin/sh
# dp-engine-tch GPU checks: conformance tests on the GPU, the engines example, the engines
# benchmark; results in OUTPUT_DIR (default: ./results next to this script), summary in
# OUTPUT_DIR/results.json. Needs python3 with PyTorch 2.11.0 (CUDA build) and a visible GPU.
# Usage: ./run.sh [OUTPUT_DIR]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/results}
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)

version=$(python3 -c 'import torch; print(torch.__version__, torch.cuda.is_available())') || {
    echo "run.sh: python3 cannot import torch; install PyTorch 2.11.0+cu130" >&2
    exit 2
}
echo "torch: $version"
case "$version" in
    "2.11.0"*" True") ;;
    *)
        echo "run.sh: needs PyTorch 2.11.0 with CUDA available, found: $version" >&2
        exit 2
        ;;
esac
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
# Fallback for the binaries' RUNPATH (which holds the build machine's libtorch folder, and the
# GPU machine's when the bundle was built with --target-torch-lib).
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DP_RS_MNIST_DIR="$here/data/mnist"
export CRITERION_HOME="$out/criterion"
export DP_RS_BENCH_OUT="$out"

(cd "$here/data/mnist" && sha256sum -c --quiet SHA256SUMS) || {
    echo "run.sh: the bundled MNIST files do not match data/mnist/SHA256SUMS" >&2
    exit 2
}

status=0
: >"$out/steps.txt"
run() {
    name=$1
    shift
    echo "== $name"
    start=$(date +%s)
    if "$@" >"$out/$name.log" 2>&1; then code=0; else code=$?; status=1; fi
    end=$(date +%s)
    echo "$name $code $((end - start))" >>"$out/steps.txt"
    tail -n 8 "$out/$name.log"
}
for test in "$here"/tests/*; do
    run "test-$(basename "$test")" "$test"
done
run example-engines "$here/bin/engines"
run bench-engines_tch "$here/bin/engines_tch" --bench

python3 - "$out" <<'PYTHON'
import glob, json, os, re, sys

import torch

out = sys.argv[1]

steps = []
for line in open(os.path.join(out, "steps.txt")):
    name, code, seconds = line.split()
    log = open(os.path.join(out, name + ".log"), errors="replace").read()
    steps.append({
        "name": name,
        "exit_code": int(code),
        "seconds": int(seconds),
        "test_results": re.findall(r"^test result: .*$", log, re.M),
    })
criterion = []
for path in sorted(glob.glob(os.path.join(out, "criterion", "**", "new", "estimates.json"), recursive=True)):
    folder = os.path.dirname(path)
    benchmark = json.load(open(os.path.join(folder, "benchmark.json")))
    mean = json.load(open(path))["mean"]
    criterion.append({
        "id": benchmark.get("full_id"),
        "mean_ns": mean["point_estimate"],
        "ci_low_ns": mean["confidence_interval"]["lower_bound"],
        "ci_high_ns": mean["confidence_interval"]["upper_bound"],
    })
engines_path = os.path.join(out, "engines.json")
example_log = os.path.join(out, "example-engines.log")
results = {
    "torch": torch.__version__,
    "cuda_available": torch.cuda.is_available(),
    "gpu": torch.cuda.get_device_name(0),
    "steps": steps,
    "example": open(example_log).read().splitlines() if os.path.exists(example_log) else None,
    "engines": json.load(open(engines_path)) if os.path.exists(engines_path) else None,
    "criterion": criterion,
}
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)
print("results:", os.path.join(out, "results.json"))
PYTHON
exit $status
"#;

/// One executable cargo built.
struct Artifact {
    /// The target's name (test file, example or bench name).
    name: String,
    /// `test`, `example` or `bench`.
    kind: String,
    executable: PathBuf,
}

/// Builds the bundle into `target/gpu-bundle/`.
pub fn build(root: &Path, target_torch_lib: Option<&Path>) -> Result<()> {
    let libtorch = libtorch::provision(root)?;
    let cuda_library = libtorch.join("lib").join("libtorch_cuda.so");
    if !cuda_library.is_file() {
        bail!(
            "{} is missing: a CUDA build links against libtorch_cuda.so, which this libtorch \
             lacks. Point LIBTORCH at the `torch` folder of a CUDA build of PyTorch 2.11.0 (the \
             Linux wheel `torch==2.11.0` is one: `python3 -m pip install --no-deps --target DIR \
             torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85`, then \
             `LIBTORCH=DIR/torch cargo xtask gpu-bundle`)",
            cuda_library.display()
        );
    }
    let build_dir = root.join("target").join("gpu-build");
    let cargo_runs: [&[&str]; 3] = [
        &[
            "test",
            "--package",
            "dp-engine-tch",
            "--release",
            "--no-run",
        ],
        &[
            "build",
            "--package",
            "dp-engine-tch",
            "--release",
            "--example",
            "engines",
        ],
        &[
            "bench",
            "--package",
            "dp-benches",
            "--features",
            "torch",
            "--bench",
            "engines_tch",
            "--no-run",
        ],
    ];
    let mut artifacts = Vec::new();
    for args in cargo_runs {
        artifacts.extend(cargo_artifacts(
            args,
            &libtorch,
            &build_dir,
            target_torch_lib,
        )?);
    }

    let bundle = root.join("target").join("gpu-bundle");
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle)
            .with_context(|| format!("cannot empty {}", bundle.display()))?;
    }
    for folder in ["bin", "tests", "data/mnist"] {
        std::fs::create_dir_all(bundle.join(folder))?;
    }
    for artifact in &artifacts {
        let folder = match artifact.kind.as_str() {
            "test" => "tests",
            "example" | "bench" => "bin",
            _ => continue,
        };
        let destination = bundle.join(folder).join(&artifact.name);
        std::fs::copy(&artifact.executable, &destination).with_context(|| {
            format!(
                "cannot copy {} to {}",
                artifact.executable.display(),
                destination.display()
            )
        })?;
        strip(&destination)?;
    }
    for name in ["engines", "engines_tch"] {
        if !bundle.join("bin").join(name).is_file() {
            bail!("cargo built no `{name}` executable; the bundle would be incomplete");
        }
    }
    let data = root.join("data").join("mnist");
    for entry in
        std::fs::read_dir(&data).with_context(|| format!("cannot read {}", data.display()))?
    {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, bundle.join("data/mnist").join(name))?;
        }
    }
    let script = bundle.join("run.sh");
    std::fs::write(&script, RUN_SCRIPT)?;
    make_executable(&script)?;

    let size = folder_size(&bundle)?;
    if size > MAX_BUNDLE_BYTES {
        bail!(
            "the bundle in {} takes {:.1} MiB, more than the {} MiB allowed",
            bundle.display(),
            size as f64 / (1024.0 * 1024.0),
            MAX_BUNDLE_BYTES / (1024 * 1024)
        );
    }
    step(&format!(
        "GPU bundle in {} ({:.1} MiB): copy it to the GPU machine and run ./run.sh there",
        bundle.display(),
        size as f64 / (1024.0 * 1024.0)
    ));
    Ok(())
}

/// Runs cargo with the CUDA link switch and returns the executables it reports.
fn cargo_artifacts(
    args: &[&str],
    libtorch: &Path,
    build_dir: &Path,
    target_torch_lib: Option<&Path>,
) -> Result<Vec<Artifact>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    step(&format!("DP_RS_CUDA=1 cargo {}", args.join(" ")));
    let mut command = Command::new(cargo);
    command
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .env("LIBTORCH", libtorch)
        .env("DP_RS_CUDA", "1")
        .env("CARGO_TARGET_DIR", build_dir)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped());
    match target_torch_lib {
        Some(dir) => command.env("DP_RS_EXTRA_RPATH", dir),
        None => command.env_remove("DP_RS_EXTRA_RPATH"),
    };
    let output = command
        .spawn()
        .context("cannot start cargo")?
        .wait_with_output()?;
    if !output.status.success() {
        bail!(
            "`DP_RS_CUDA=1 cargo {}` failed ({}); see cargo's messages above (a link error \
             naming libtorch_cuda or a CUDA library means LIBTORCH is not a complete CUDA build \
             of PyTorch 2.11.0)",
            args.join(" "),
            output.status
        );
    }
    let mut artifacts = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(executable), Some(name), Some(kind)) = (
            message["executable"].as_str(),
            message["target"]["name"].as_str(),
            message["target"]["kind"][0].as_str(),
        ) else {
            continue;
        };
        artifacts.push(Artifact {
            name: name.to_owned(),
            kind: kind.to_owned(),
            executable: PathBuf::from(executable),
        });
    }
    Ok(artifacts)
}

/// Strips symbols and debug information in place.
fn strip(path: &Path) -> Result<()> {
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg(path)
        .status()
        .context("cannot start `strip` (binutils); install it to build the bundle")?;
    if !status.success() {
        bail!("`strip --strip-all {}` failed ({status})", path.display());
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

fn folder_size(folder: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            folder_size(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}
