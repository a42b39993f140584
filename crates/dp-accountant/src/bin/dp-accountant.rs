//! `dp-accountant`: privacy accounting for DP-SGD from the command line.
//!
//! ```text
//! dp-accountant epsilon --accountant pld --noise-multiplier 1.1 --sampling-probability 0.0042667 --steps 14063 --delta 1e-5
//! dp-accountant delta   --accountant rdp --noise-multiplier 1.1 --sampling-probability 0.0042667 --steps 14063 --epsilon 3
//! dp-accountant noise   --accountant pld --target-epsilon 3 --sampling-probability 0.0042667 --steps 14063 --delta 1e-5
//! dp-accountant steps   --accountant pld --noise-multiplier 1.1 --target-epsilon 3 --sampling-probability 0.0042667 --delta 1e-5
//! dp-accountant ledger  checkpoint-ledger.json --delta 1e-5
//! ```
//!
//! With `--json` the tool prints exactly one JSON object on stdout. Bad input prints one
//! line on stderr and exits with status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use dp_accountant::{
    AccountantKind, DpEvent, EpsilonReport, GdpAccountant, Guarantee, Ledger, NeighbouringRelation,
    PldAccountant, PrivacyAccountant, RdpAccountant, RdpConversion, calibrate_noise_multiplier,
    calibrate_steps, dp_sgd_event,
};
use serde_json::{Map, Value, json};

/// Exit status for every error: bad input, unsupported events, unreachable targets.
const EXIT_BAD_INPUT: u8 = 2;

/// Privacy accounting for differentially private training (RDP, GDP, PLD).
#[derive(Debug, Parser)]
#[command(name = "dp-accountant", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// ε spent by DP-SGD (Poisson-sampled Gaussian steps) at a given δ.
    Epsilon {
        #[command(flatten)]
        training: Training,
        /// Target δ, in (0, 1).
        #[arg(long)]
        delta: f64,
        #[command(flatten)]
        settings: Settings,
    },
    /// δ spent by DP-SGD at a given ε.
    Delta {
        #[command(flatten)]
        training: Training,
        /// ε, finite and >= 0.
        #[arg(long)]
        epsilon: f64,
        #[command(flatten)]
        settings: Settings,
    },
    /// The smallest noise multiplier meeting (target ε, δ).
    Noise {
        /// rdp or pld (gdp is an approximation and is not used to calibrate).
        #[arg(long)]
        accountant: AccountantKind,
        /// Target ε, finite and > 0.
        #[arg(long)]
        target_epsilon: f64,
        /// Poisson sampling probability q, in (0, 1].
        #[arg(long)]
        sampling_probability: f64,
        /// Number of steps, at least 1.
        #[arg(long)]
        steps: u64,
        /// Target δ, in (0, 1).
        #[arg(long)]
        delta: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The largest number of steps meeting (target ε, δ) at a given noise multiplier.
    Steps {
        /// rdp or pld (gdp is an approximation and is not used to calibrate).
        #[arg(long)]
        accountant: AccountantKind,
        /// Noise multiplier σ, finite and > 0.
        #[arg(long)]
        noise_multiplier: f64,
        /// Target ε, finite and > 0.
        #[arg(long)]
        target_epsilon: f64,
        /// Poisson sampling probability q, in (0, 1].
        #[arg(long)]
        sampling_probability: f64,
        /// Target δ, in (0, 1).
        #[arg(long)]
        delta: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// ε of a saved ledger (a JSON-serialized `dp_accountant::Ledger`).
    Ledger {
        /// The ledger file.
        file: PathBuf,
        /// Target δ, in (0, 1).
        #[arg(long)]
        delta: f64,
        #[command(flatten)]
        settings: Settings,
    },
}

/// The DP-SGD run being accounted.
#[derive(Debug, Args)]
struct Training {
    /// Noise multiplier σ (noise std over clipping norm), finite and > 0.
    #[arg(long)]
    noise_multiplier: f64,
    /// Poisson sampling probability q, in (0, 1].
    #[arg(long)]
    sampling_probability: f64,
    /// Number of steps, at least 1.
    #[arg(long)]
    steps: u64,
}

/// Which accountant, with which settings, and the output format.
#[derive(Debug, Args)]
struct Settings {
    /// rdp, gdp or pld.
    #[arg(long, default_value = "rdp")]
    accountant: AccountantKind,
    /// RDP only: the Rényi orders, comma-separated (default: a superset of dp_accounting's).
    #[arg(long, value_delimiter = ',')]
    orders: Option<Vec<f64>>,
    /// RDP only: improved (default) or classic conversion to (ε, δ).
    #[arg(long)]
    conversion: Option<RdpConversion>,
    /// PLD only: the privacy loss grid step (default 1e-4).
    #[arg(long)]
    value_discretization_interval: Option<f64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Settings {
    /// A configured accountant, refusing settings that do not apply to it.
    fn accountant(
        &self,
        relation: NeighbouringRelation,
    ) -> anyhow::Result<Box<dyn PrivacyAccountant + Send>> {
        let rdp_only = self.orders.is_some() || self.conversion.is_some();
        if rdp_only && self.accountant != AccountantKind::Rdp {
            bail!("--orders and --conversion apply to the rdp accountant only");
        }
        if self.value_discretization_interval.is_some() && self.accountant != AccountantKind::Pld {
            bail!("--value-discretization-interval applies to the pld accountant only");
        }
        Ok(match self.accountant {
            AccountantKind::Rdp => {
                let mut accountant = RdpAccountant::new(relation);
                if let Some(orders) = &self.orders {
                    accountant = accountant.with_orders(orders.clone())?;
                }
                Box::new(accountant.with_conversion(self.conversion.unwrap_or_default()))
            }
            AccountantKind::Gdp => Box::new(GdpAccountant::new(relation)),
            AccountantKind::Pld => {
                let mut accountant = PldAccountant::new(relation);
                if let Some(interval) = self.value_discretization_interval {
                    accountant = accountant.with_value_discretization_interval(interval)?;
                }
                Box::new(accountant)
            }
        })
    }

    /// The settings as JSON fields.
    fn describe(&self, object: &mut Map<String, Value>) {
        object.insert("accountant".into(), json!(self.accountant.to_string()));
        match self.accountant {
            AccountantKind::Rdp => {
                object.insert(
                    "conversion".into(),
                    json!(self.conversion.unwrap_or_default().to_string()),
                );
                if let Some(orders) = &self.orders {
                    object.insert("orders".into(), json!(orders));
                }
            }
            AccountantKind::Pld => {
                let interval = self
                    .value_discretization_interval
                    .unwrap_or(dp_accountant::DEFAULT_VALUE_DISCRETIZATION_INTERVAL);
                object.insert("value_discretization_interval".into(), json!(interval));
            }
            AccountantKind::Gdp => {}
        }
    }
}

impl Training {
    fn event(&self) -> anyhow::Result<DpEvent> {
        if self.steps == 0 {
            bail!("invalid steps = 0: must be at least 1");
        }
        let event = dp_sgd_event(self.noise_multiplier, self.sampling_probability, self.steps);
        event.validate()?;
        Ok(event)
    }

    fn describe(&self, object: &mut Map<String, Value>) {
        object.insert("noise_multiplier".into(), json!(self.noise_multiplier));
        object.insert(
            "sampling_probability".into(),
            json!(self.sampling_probability),
        );
        object.insert("steps".into(), json!(self.steps));
    }
}

/// A finite number, or `null` for +∞ (JSON has no infinity).
fn number(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

fn guarantee_note(guarantee: Guarantee) -> &'static str {
    match guarantee {
        Guarantee::UpperBound => "upper bound",
        Guarantee::Approximate => {
            "APPROXIMATE (central limit theorem; can be below the true value, not a guarantee)"
        }
    }
}

fn insert_epsilon_report(object: &mut Map<String, Value>, report: &EpsilonReport) {
    object.insert("epsilon".into(), number(report.epsilon));
    if !report.epsilon.is_finite() {
        object.insert("epsilon_is_infinite".into(), json!(true));
    }
    object.insert("guarantee".into(), json!(report.guarantee));
    if let Some(order) = report.optimal_order {
        object.insert("order".into(), json!(order));
    }
    if let Some(lower) = report.epsilon_lower {
        object.insert("epsilon_lower".into(), number(lower));
    }
    if report.guarantee == Guarantee::Approximate {
        object.insert("note".into(), json!(guarantee_note(report.guarantee)));
    }
}

fn print_epsilon_text(report: &EpsilonReport, context: &str) {
    let mut line = format!(
        "epsilon = {} at delta = {} ({}, {})",
        report.epsilon,
        report.delta,
        report.accountant,
        guarantee_note(report.guarantee)
    );
    if let Some(order) = report.optimal_order {
        line.push_str(&format!(", optimal order {order}"));
    }
    if let Some(lower) = report.epsilon_lower {
        line.push_str(&format!(", lower bound {lower}"));
    }
    println!("{line}{context}");
}

fn emit(json_output: bool, object: Map<String, Value>, text: impl FnOnce()) -> anyhow::Result<()> {
    if json_output {
        println!("{}", serde_json::to_string(&Value::Object(object))?);
    } else {
        text();
    }
    Ok(())
}

fn refuse_approximate_calibration(kind: AccountantKind) -> anyhow::Result<()> {
    if kind.is_approximate() {
        bail!("--accountant {kind} is an approximation; calibrate with rdp or pld");
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Epsilon {
            training,
            delta,
            settings,
        } => {
            let mut accountant = settings.accountant(NeighbouringRelation::AddOrRemoveOne)?;
            accountant.compose(&training.event()?)?;
            let report = accountant.epsilon(delta)?;
            let mut object = Map::new();
            object.insert("command".into(), json!("epsilon"));
            settings.describe(&mut object);
            training.describe(&mut object);
            object.insert("delta".into(), json!(delta));
            insert_epsilon_report(&mut object, &report);
            let context = format!(
                " after {} steps, noise multiplier {}, sampling probability {}",
                training.steps, training.noise_multiplier, training.sampling_probability
            );
            emit(settings.json, object, || {
                print_epsilon_text(&report, &context)
            })
        }
        Command::Delta {
            training,
            epsilon,
            settings,
        } => {
            let mut accountant = settings.accountant(NeighbouringRelation::AddOrRemoveOne)?;
            accountant.compose(&training.event()?)?;
            let report = accountant.delta(epsilon)?;
            let mut object = Map::new();
            object.insert("command".into(), json!("delta"));
            settings.describe(&mut object);
            training.describe(&mut object);
            object.insert("epsilon".into(), json!(epsilon));
            object.insert("delta".into(), json!(report.delta));
            object.insert("guarantee".into(), json!(report.guarantee));
            if let Some(order) = report.optimal_order {
                object.insert("order".into(), json!(order));
            }
            if let Some(lower) = report.delta_lower {
                object.insert("delta_lower".into(), json!(lower));
            }
            emit(settings.json, object, || {
                println!(
                    "delta = {} at epsilon = {} ({}, {})",
                    report.delta,
                    epsilon,
                    report.accountant,
                    guarantee_note(report.guarantee)
                );
            })
        }
        Command::Noise {
            accountant,
            target_epsilon,
            sampling_probability,
            steps,
            delta,
            json: json_output,
        } => {
            refuse_approximate_calibration(accountant)?;
            let sigma = calibrate_noise_multiplier(
                accountant,
                target_epsilon,
                delta,
                sampling_probability,
                steps,
            )?;
            let object = json!({
                "command": "noise",
                "accountant": accountant.to_string(),
                "target_epsilon": target_epsilon,
                "sampling_probability": sampling_probability,
                "steps": steps,
                "delta": delta,
                "noise_multiplier": sigma,
            });
            let Value::Object(object) = object else {
                bail!("internal: JSON object expected")
            };
            emit(json_output, object, || {
                println!(
                    "noise multiplier = {sigma} ({accountant}; smallest meeting epsilon <= {target_epsilon} at delta = {delta})"
                );
            })
        }
        Command::Steps {
            accountant,
            noise_multiplier,
            target_epsilon,
            sampling_probability,
            delta,
            json: json_output,
        } => {
            refuse_approximate_calibration(accountant)?;
            let steps = calibrate_steps(
                accountant,
                noise_multiplier,
                target_epsilon,
                delta,
                sampling_probability,
            )?;
            let object = json!({
                "command": "steps",
                "accountant": accountant.to_string(),
                "noise_multiplier": noise_multiplier,
                "target_epsilon": target_epsilon,
                "sampling_probability": sampling_probability,
                "delta": delta,
                "steps": steps,
            });
            let Value::Object(object) = object else {
                bail!("internal: JSON object expected")
            };
            emit(json_output, object, || {
                println!(
                    "steps = {steps} ({accountant}; largest meeting epsilon <= {target_epsilon} at delta = {delta})"
                );
            })
        }
        Command::Ledger {
            file,
            delta,
            settings,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read ledger {}", file.display()))?;
            let ledger: Ledger = serde_json::from_str(&text)
                .with_context(|| format!("malformed ledger {}", file.display()))?;
            let mut accountant = settings.accountant(ledger.neighbouring_relation())?;
            accountant
                .restore(&ledger)
                .with_context(|| format!("cannot account for ledger {}", file.display()))?;
            let report = accountant.epsilon(delta)?;
            let mut object = Map::new();
            object.insert("command".into(), json!("ledger"));
            settings.describe(&mut object);
            object.insert("ledger".into(), json!(file.display().to_string()));
            object.insert("entries".into(), json!(ledger.entries().len()));
            object.insert(
                "neighbouring_relation".into(),
                json!(ledger.neighbouring_relation()),
            );
            object.insert("delta".into(), json!(delta));
            insert_epsilon_report(&mut object, &report);
            let context = format!(
                " for ledger {} ({} entries)",
                file.display(),
                ledger.entries().len()
            );
            emit(settings.json, object, || {
                print_epsilon_text(&report, &context)
            })
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            if matches!(
                error.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                print!("{error}");
                return ExitCode::SUCCESS;
            }
            // clap renders several lines (usage, hints); keep the first, which says what is wrong.
            let rendered = error.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("dp-accountant: {first}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = format!("{error:#}").replace('\n', " ");
            eprintln!("dp-accountant: error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
