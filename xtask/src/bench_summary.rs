//! Collects criterion's per-benchmark estimates into one JSON file and one markdown table
//! (`target/bench/benches.json`, `target/bench/benches.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::step;

/// One benchmark's result as criterion estimated it.
struct Estimate {
    id: String,
    mean_ns: f64,
    low_ns: f64,
    high_ns: f64,
}

/// Reads `target/criterion/**/new/{benchmark,estimates}.json` and writes the summary.
pub fn write(target: &Path) -> Result<()> {
    let mut estimates = Vec::new();
    collect(&target.join("criterion"), &mut estimates)?;
    estimates.sort_by(|a, b| a.id.cmp(&b.id));
    let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "unset".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let out = target.join("bench");
    std::fs::create_dir_all(&out)?;

    let mut json = String::from("{\n");
    writeln!(
        json,
        "  \"cores\": {cores},\n  \"omp_num_threads\": \"{threads}\",\n  \"benches\": ["
    )?;
    for (index, estimate) in estimates.iter().enumerate() {
        let comma = if index + 1 < estimates.len() { "," } else { "" };
        writeln!(
            json,
            "    {{\"id\": {:?}, \"mean_ns\": {}, \"ci_low_ns\": {}, \"ci_high_ns\": {}}}{comma}",
            estimate.id, estimate.mean_ns, estimate.low_ns, estimate.high_ns
        )?;
    }
    json.push_str("  ]\n}\n");
    std::fs::write(out.join("benches.json"), json)?;

    let mut table = format!(
        "Criterion means on {cores} cores, OMP_NUM_THREADS={threads}.\n\n| bench | mean | 95% CI |\n|---|---|---|\n"
    );
    for estimate in &estimates {
        writeln!(
            table,
            "| {} | {} | {} – {} |",
            estimate.id,
            human(estimate.mean_ns),
            human(estimate.low_ns),
            human(estimate.high_ns)
        )?;
    }
    std::fs::write(out.join("benches.md"), table)?;
    step(&format!(
        "{} bench results in {}",
        estimates.len(),
        out.display()
    ));
    Ok(())
}

fn collect(dir: &Path, estimates: &mut Vec<Estimate>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.filter_map(|entry| entry.ok()) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let new = path.join("new");
        if new.join("estimates.json").is_file() && new.join("benchmark.json").is_file() {
            estimates.push(read_estimate(&new)?);
        } else {
            collect(&path, estimates)?;
        }
    }
    Ok(())
}

fn read_estimate(dir: &Path) -> Result<Estimate> {
    let read = |name: &str| -> Result<serde_json::Value> {
        let path: PathBuf = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    };
    let benchmark = read("benchmark.json")?;
    let estimates = read("estimates.json")?;
    let mean = &estimates["mean"];
    let number = |value: &serde_json::Value| value.as_f64().unwrap_or(f64::NAN);
    Ok(Estimate {
        id: benchmark["full_id"]
            .as_str()
            .map_or_else(|| dir.display().to_string(), str::to_owned),
        mean_ns: number(&mean["point_estimate"]),
        low_ns: number(&mean["confidence_interval"]["lower_bound"]),
        high_ns: number(&mean["confidence_interval"]["upper_bound"]),
    })
}

fn human(nanoseconds: f64) -> String {
    match nanoseconds {
        ns if ns >= 1e9 => format!("{:.3} s", ns / 1e9),
        ns if ns >= 1e6 => format!("{:.3} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.3} µs", ns / 1e3),
        ns => format!("{ns:.1} ns"),
    }
}
