//! A description of the machine the experiments ran on, for the report.

use serde::Serialize;

/// Processor, core count and threads used.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Processor model, from /proc/cpuinfo where available.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// Operating system and architecture.
    pub os: String,
}

impl Machine {
    /// Reads the current machine.
    pub fn current() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split(':').nth(1))
                    .map(|model| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown processor".to_owned());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }

    /// One line for a report.
    pub fn summary(&self) -> String {
        format!("{} ({} cores, {})", self.cpu, self.cores, self.os)
    }
}
