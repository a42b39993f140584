//! Provisioning of the CPU libtorch that `tch` links against (DESIGN.md section 5).
//!
//! Three wheels installed with pip into one folder of a cache shared by every clone
//! (`$DP_RS_CACHE`, else `$XDG_CACHE_HOME/dp-rs`, else `~/.cache/dp-rs`), then linked into the
//! workspace as `.libtorch`, which `.cargo/config.toml` points `LIBTORCH` at. A `LIBTORCH` that
//! the user set to another folder wins and is only checked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::step;

/// The libtorch version tch 0.24.0 is built against.
const TORCH_VERSION: &str = "2.11.0";
/// The wheels that make up a CPU libtorch: torch itself and the two CUDA libraries that
/// `libtorch_cpu.so` links (found through its RPATH, `$ORIGIN/../../nvidia/cu13/lib`).
const WHEELS: [&str; 3] = [
    "torch==2.11.0",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cupti==13.0.85",
];
/// Written last into a complete installation, so an interrupted one is never used.
const COMPLETE_MARKER: &str = ".complete";

/// Makes sure libtorch is available and returns the folder to use as `LIBTORCH`.
pub fn provision(root: &Path) -> Result<PathBuf> {
    let link = root.join(".libtorch");
    if let Some(user_dir) = user_libtorch(&link) {
        check_installation(&user_dir).with_context(|| {
            format!(
                "LIBTORCH is set to {} but that is not a usable libtorch; unset it to let \
                 `cargo xtask libtorch` provision one",
                user_dir.display()
            )
        })?;
        step(&format!(
            "using LIBTORCH={} (set by you)",
            user_dir.display()
        ));
        return Ok(user_dir);
    }

    let cached = cache_dir()?.join(format!("libtorch-{TORCH_VERSION}-cpu"));
    if cached.join(COMPLETE_MARKER).is_file() && check_installation(&cached.join("torch")).is_ok() {
        step(&format!(
            "libtorch {TORCH_VERSION} (CPU) cached at {}",
            cached.display()
        ));
    } else {
        install(&cached)?;
    }
    link_into_workspace(&link, &cached)?;
    Ok(link.join("torch"))
}

/// The user's own `LIBTORCH`, unless it is the workspace default that `.cargo/config.toml`
/// sets for every process cargo starts (this one included).
fn user_libtorch(link: &Path) -> Option<PathBuf> {
    let value = std::env::var_os("LIBTORCH")?;
    let dir = PathBuf::from(value);
    (dir != link.join("torch")).then_some(dir)
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("DP_RS_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("dp-rs"));
    }
    let home = std::env::var_os("HOME")
        .context("neither DP_RS_CACHE, XDG_CACHE_HOME nor HOME is set: set DP_RS_CACHE")?;
    Ok(PathBuf::from(home).join(".cache").join("dp-rs"))
}

/// Checks that `dir` holds the shared libraries tch links against, at the right version.
fn check_installation(dir: &Path) -> Result<()> {
    let library = dir.join("lib").join("libtorch_cpu.so");
    if !library.is_file() {
        bail!("{} is missing", library.display());
    }
    let version_file = dir.join("build-version");
    if let Ok(version) = fs::read_to_string(&version_file) {
        let version = version.trim();
        if !version.starts_with(TORCH_VERSION) {
            bail!(
                "{} says {version}; tch 0.24.0 needs libtorch {TORCH_VERSION}",
                version_file.display()
            );
        }
    }
    Ok(())
}

/// Installs the wheels into a fresh temporary folder next to `target`, then renames it into
/// place, so that a crash or a second process never sees half an installation.
fn install(target: &Path) -> Result<()> {
    check_pip()?;
    let parent = target.parent().context("the cache folder has no parent")?;
    fs::create_dir_all(parent)
        .with_context(|| format!("cannot create the cache folder {}", parent.display()))?;
    let partial = parent.join(format!(
        "{}.partial-{}",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("libtorch"),
        std::process::id()
    ));
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    step(&format!(
        "downloading libtorch {TORCH_VERSION} for CPU with pip (about 545 MB, once per machine) into {}",
        target.display()
    ));
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&partial)
        .args(WHEELS)
        .status()
        .context("cannot run python3 -m pip")?;
    if !status.success() {
        let _ = fs::remove_dir_all(&partial);
        bail!(
            "pip could not install {} ({status}). Check that this machine reaches the Python \
             package index (or a mirror configured in pip.conf), or set LIBTORCH to an existing \
             libtorch {TORCH_VERSION} folder (one holding lib/libtorch_cpu.so)",
            WHEELS.join(" ")
        );
    }
    fs::write(
        partial.join("torch").join("build-version"),
        format!("{TORCH_VERSION}\n"),
    )
    .context("cannot write torch/build-version")?;
    check_installation(&partial.join("torch"))?;
    fs::write(partial.join(COMPLETE_MARKER), "")?;
    if target.exists() {
        fs::remove_dir_all(target)
            .with_context(|| format!("cannot replace the incomplete {}", target.display()))?;
    }
    fs::rename(&partial, target)
        .with_context(|| format!("cannot move {} into place", partial.display()))?;
    step(&format!(
        "libtorch {TORCH_VERSION} (CPU) installed at {}",
        target.display()
    ));
    Ok(())
}

fn check_pip() -> Result<()> {
    let output = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output();
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(_) => bail!(
            "python3 is installed but has no pip, which provisions libtorch: install it \
             (e.g. `apt-get install python3-pip`) or set LIBTORCH to an existing libtorch \
             {TORCH_VERSION} folder (one holding lib/libtorch_cpu.so)"
        ),
        Err(error) => bail!(
            "python3 was not found ({error}); it provisions libtorch with pip: install python3 \
             and pip (e.g. `apt-get install python3 python3-pip`) or set LIBTORCH to an \
             existing libtorch {TORCH_VERSION} folder (one holding lib/libtorch_cpu.so)"
        ),
    }
}

/// Points `link` (the workspace's `.libtorch`) at the cached installation. The whole folder
/// is linked, not single files, so that libtorch's `$ORIGIN` RPATH resolves inside the cache.
fn link_into_workspace(link: &Path, cached: &Path) -> Result<()> {
    match fs::read_link(link) {
        Ok(existing) if existing == cached => return Ok(()),
        Ok(_) => fs::remove_file(link)?,
        Err(_) if link.exists() => bail!(
            "{} exists and is not a link made by `cargo xtask libtorch`: remove it, or set \
             LIBTORCH to the libtorch folder inside it",
            link.display()
        ),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(cached, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), cached.display()))?;
    step(&format!(
        "linked {} -> {}",
        link.display(),
        cached.display()
    ));
    Ok(())
}
