//! libtorch engines: one DP-SGD step per engine against one non-private step of the same model,
//! batch and device, side by side (DESIGN.md section 7: the figure is the ratio).
//!
//! Models: the MLP 784-256-10, the Opacus MNIST CNN (random MNIST-shaped data), the character
//! LSTM (embedding 64, hidden 128) and the 2-block transformer encoder (width 128, 4 heads,
//! MLP 512, causal) over random sequences of 64 tokens from a vocabulary of 96 (printable
//! ASCII), a loss at every position. Bench ids carry model, batch, device and the libtorch
//! thread count (`OMP_NUM_THREADS`, 1 when unset). A step is the batch gradient (into zeroed
//! buffers) or a DP step (norms, flat clipping at 1.0, Gaussian noise and the clipped sum),
//! then plain SGD.
//!
//! Precision: `book_keeping_bf16` and `ghost_bf16` store what the engine keeps on top of
//! autograd (captured inputs and output gradients; output gradients only for ghost) in bfloat16
//! (`Precision::Bf16`), the other rows in f32.
//!
//! Noise: the DP steps named after an engine add it the way `dp-trainer` does, through
//! `visit_gradients` (in place on CPU buffers, staged through host memory on a GPU) with
//! dp-sampler's fast noise, on a rayon pool of libtorch's thread count (so no row uses more
//! cores than the non-private step). `book_keeping_secure_noise` adds dp-sampler's secure
//! noise (discrete Gaussian) the same way, and `book_keeping_libtorch_noise` draws it with
//! libtorch's generator on the gradient tensors (`normal_` into the buffers, then the clipped sum
//! is added: fast float noise, as other libraries add it), so their ratios show what the noise
//! source costs. `book_keeping_without_noise` adds none (not a private step): the engine's own
//! cost, clipping included.
//!
//! After the criterion groups, every (model, engine) configuration runs again in fresh
//! processes of this binary (`DP_RS_ENGINES_CONFIG=<model>/<engine>`). The timing process runs
//! one warm-up step, then timed steps (at least 3, more within a 5 s budget, at most 50) and
//! reports their median; a DP configuration's process alternates each DP step with a
//! non-private step of the same model and batch and reports the median of the pairs' ratios,
//! the figure the table's `time_ratio` gives. The timing process runs with glibc told to keep
//! freed memory (`MALLOC_TRIM_THRESHOLD_` 4 GiB, `MALLOC_TOP_PAD_` 1 GiB) unless
//! `DP_RS_ENGINES_GLIBC_DEFAULTS` is set: by default glibc hands freed heap back to the system
//! and faults it in again, at moments that differ from run to run, so that one configuration
//! read two ratios (the CNN's Ghost step 1.5x or 2.0x; in a probe of 600 step pairs, the MLP's
//! book-keeping step without noise 1.33x with 225,000 page faults or 1.25x with 59,000, against
//! 1.17x-1.19x with 18,000, the set-up's, when memory is kept). The criterion groups run in
//! this process, with whatever settings it was started with. The memory process runs the
//! warm-up and one step
//! with glibc's `MALLOC_MMAP_THRESHOLD_` at 64 KiB, so freed tensors leave the resident set at once, and
//! reports its resident-set high-water mark (`VmHWM` of `/proc/self/status`) before and after
//! the steps. Their difference is the step's peak host memory above the set-up (model, batch,
//! libtorch); on CUDA it covers host memory only. The table goes to `engines.json` in `DP_RS_BENCH_OUT`
//! (default `target/bench/`), with the ratios DP / non-private per model. Positional arguments
//! (criterion's filter) restrict both parts to ids that contain one of them; `--test` and
//! `--list` skip the second part.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dp_engine::{PerSampleGradEngine, ScaleVector};
use dp_engine_tch::models::{self, CharLstmConfig, TransformerConfig};
use dp_engine_tch::tch::{self, Device, Kind, Tensor, nn};
use dp_engine_tch::{
    BookKeeping, DpModel, Ghost, Loss, Materialized, Microbatch, Precision, Sequential, TensorBatch,
};
use dp_sampler::{NoiseMode, SeededRng, add_gaussian_noise};

const MAX_GRAD_NORM: f64 = 1.0;
const NOISE_MULTIPLIER: f64 = 1.0;
const LEARNING_RATE: f64 = 0.01;
const SEED: i64 = 7;
/// Printable ASCII: the character models' vocabulary.
const VOCABULARY: i64 = 96;
/// Tokens per sequence of the character models.
const SEQUENCE_LENGTH: i64 = 64;
/// Timed steps per configuration in the memory and ratio runs (after one warm-up step): at
/// least [`MIN_TIMED_STEPS`], then more until [`TIMING_BUDGET`] is spent, at most
/// [`MAX_TIMED_STEPS`].
const MIN_TIMED_STEPS: usize = 3;
/// See [`MIN_TIMED_STEPS`].
const MAX_TIMED_STEPS: usize = 50;
/// See [`MIN_TIMED_STEPS`].
const TIMING_BUDGET: Duration = Duration::from_secs(5);
/// With [`CONFIG_VARIABLE`]: measure memory (one step after the warm-up) rather than time.
const MEMORY_VARIABLE: &str = "DP_RS_ENGINES_MEMORY";
/// The environment variable that makes this binary measure one configuration and exit.
const CONFIG_VARIABLE: &str = "DP_RS_ENGINES_CONFIG";
/// Set: the timing processes run with glibc's default allocator settings rather than
/// [`KEEP_FREED_MEMORY`].
const GLIBC_DEFAULTS_VARIABLE: &str = "DP_RS_ENGINES_GLIBC_DEFAULTS";
/// glibc settings of the timing processes: freed memory stays with the process (no trimming
/// of the heap, 1 GiB of padding when it grows), so steps do not fault pages back in.
const KEEP_FREED_MEMORY: [(&str, &str); 2] = [
    ("MALLOC_TRIM_THRESHOLD_", "4294967296"),
    ("MALLOC_TOP_PAD_", "1073741824"),
];

type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn device() -> Device {
    match std::env::var("DP_RS_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

/// What a model eats.
#[derive(Clone, Copy)]
enum Input {
    /// Gaussian features of this shape (after the batch dimension), one of 10 classes.
    Features(&'static [i64]),
    /// Token sequences of [`SEQUENCE_LENGTH`] from [`VOCABULARY`], a target per position.
    Tokens,
}

struct Workload {
    name: &'static str,
    batch_size: i64,
    build: fn(&nn::Path<'_>) -> dp_engine_tch::Result<Sequential>,
    input: Input,
}

fn mlp(path: &nn::Path<'_>) -> dp_engine_tch::Result<Sequential> {
    models::mlp(path, &[784, 256, 10])
}

fn char_lstm(path: &nn::Path<'_>) -> dp_engine_tch::Result<Sequential> {
    models::char_lstm(path, &CharLstmConfig::reference(VOCABULARY))
}

fn transformer(path: &nn::Path<'_>) -> dp_engine_tch::Result<Sequential> {
    models::transformer_encoder(path, &TransformerConfig::reference(VOCABULARY))
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "mlp784-256-10",
        batch_size: 256,
        build: mlp,
        input: Input::Features(&[784]),
    },
    Workload {
        name: "opacus_mnist_cnn",
        batch_size: 256,
        build: models::mnist_cnn,
        input: Input::Features(&[1, 28, 28]),
    },
    Workload {
        name: "char_lstm_e64_h128_t64",
        batch_size: 256,
        build: char_lstm,
        input: Input::Tokens,
    },
    Workload {
        name: "transformer_2x128_h4_t64",
        batch_size: 256,
        build: transformer,
        input: Input::Tokens,
    },
];

/// The step kinds, in bench order: the non-private reference first. `_bf16` rows store the
/// engine's tape in bfloat16 ([`Precision::Bf16`]).
const ENGINES: [&str; 10] = [
    "non_private",
    "book_keeping",
    "book_keeping_without_noise",
    "book_keeping_libtorch_noise",
    "book_keeping_secure_noise",
    "book_keeping_bf16",
    "ghost",
    "ghost_bf16",
    "materialized",
    "microbatch",
];

/// Where a DP step's Gaussian noise comes from.
#[derive(Clone, Copy)]
enum NoiseSource {
    /// No noise: the clipped sum only, to show the engine's own cost (not a private step).
    Omitted,
    /// libtorch's generator, drawn into the gradient buffers on their device.
    Libtorch,
    /// dp-sampler through `visit_gradients`, as `dp-trainer` adds it.
    Sampler(NoiseMode),
}

impl Workload {
    fn label(&self, device: Device) -> String {
        format!(
            "engines_tch/{}/batch{}/{device:?}/threads{}",
            self.name,
            self.batch_size,
            tch::get_num_threads()
        )
    }

    fn set_up(&self, device: Device) -> BenchResult<(DpModel, TensorBatch)> {
        tch::manual_seed(SEED);
        let store = nn::VarStore::new(device);
        let model = DpModel::new(&store, (self.build)(&store.root())?, Loss::CrossEntropy)?;
        let batch = match self.input {
            Input::Features(shape) => {
                let mut full = vec![self.batch_size];
                full.extend(shape);
                TensorBatch::new(
                    Tensor::f_randn(full.as_slice(), (Kind::Float, device))?,
                    Tensor::f_randint(10, [self.batch_size], (Kind::Int64, device))?,
                )?
            }
            Input::Tokens => {
                let shape = [self.batch_size, SEQUENCE_LENGTH];
                let text = Tensor::f_randint(VOCABULARY, shape, (Kind::Int64, device))?;
                let next = Tensor::f_randint(VOCABULARY, shape, (Kind::Int64, device))?;
                TensorBatch::new(text, next)?
            }
        };
        Ok((model, batch))
    }
}

/// One training step on a model and batch.
type Step = Box<dyn FnMut(&mut DpModel, &TensorBatch) -> BenchResult>;

/// The step of `engine` (one of [`ENGINES`]): the batch gradient for `non_private`, DP-SGD
/// otherwise.
fn stepper(engine: &str, batch_size: i64) -> BenchResult<Step> {
    fn dp<E>(mut engine: E, batch_size: i64, noise: NoiseSource) -> Step
    where
        E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch> + 'static,
    {
        let mut rng = SeededRng::new(SEED as u64);
        Box::new(move |model, batch| {
            dp_step(&mut engine, model, batch, batch_size, noise, &mut rng)
        })
    }
    let fast = NoiseSource::Sampler(NoiseMode::Fast);
    Ok(match engine {
        "non_private" => {
            let mut engine = BookKeeping::new();
            Box::new(move |model, batch| non_private_step(&mut engine, model, batch, batch_size))
        }
        "book_keeping" => dp(BookKeeping::new(), batch_size, fast),
        "book_keeping_without_noise" => dp(BookKeeping::new(), batch_size, NoiseSource::Omitted),
        "book_keeping_libtorch_noise" => dp(BookKeeping::new(), batch_size, NoiseSource::Libtorch),
        "book_keeping_secure_noise" => dp(
            BookKeeping::new(),
            batch_size,
            NoiseSource::Sampler(NoiseMode::Secure),
        ),
        "book_keeping_bf16" => dp(
            BookKeeping::new().with_precision(Precision::Bf16),
            batch_size,
            fast,
        ),
        "ghost" => dp(Ghost::new(), batch_size, fast),
        "ghost_bf16" => dp(
            Ghost::new().with_precision(Precision::Bf16),
            batch_size,
            fast,
        ),
        "materialized" => dp(Materialized::new(), batch_size, fast),
        "microbatch" => dp(Microbatch::new(), batch_size, fast),
        other => return Err(format!("unknown engine `{other}`").into()),
    })
}

fn sgd(model: &DpModel, batch_size: i64) -> BenchResult {
    tch::no_grad(|| -> BenchResult {
        for (parameter, gradient) in model.parameters().iter().zip(model.gradients()) {
            let mut parameter = parameter.tensor.shallow_clone();
            let step = gradient.f_mul_scalar(LEARNING_RATE / batch_size as f64)?;
            let _ = parameter.f_sub_(&step)?;
        }
        Ok(())
    })
}

fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

fn non_private_step<E>(
    engine: &mut E,
    model: &mut DpModel,
    batch: &TensorBatch,
    batch_size: i64,
) -> BenchResult
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    engine.zero_grad(model);
    engine.batch_gradient(model, batch)?;
    sgd(model, batch_size)?;
    synchronize(model.device());
    Ok(())
}

fn dp_step<E>(
    engine: &mut E,
    model: &mut DpModel,
    batch: &TensorBatch,
    batch_size: i64,
    noise: NoiseSource,
    rng: &mut SeededRng,
) -> BenchResult
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    let std = NOISE_MULTIPLIER * MAX_GRAD_NORM;
    let phase1 = engine.norms(model, batch)?;
    let scales = phase1
        .norms
        .flat_norms()
        .iter()
        .map(|norm| {
            if norm.is_finite() {
                (MAX_GRAD_NORM / norm).min(1.0)
            } else {
                0.0
            }
        })
        .collect();
    match noise {
        NoiseSource::Omitted => {
            engine.zero_grad(model);
            engine.accumulate_scaled(model, &ScaleVector::new(scales)?)?;
        }
        NoiseSource::Libtorch => {
            // The noise overwrites the buffers (so no zeroing), then the clipped sum is added.
            for gradient in model.gradients_mut() {
                let _ = gradient.f_normal_(0.0, std)?;
            }
            engine.accumulate_scaled(model, &ScaleVector::new(scales)?)?;
        }
        NoiseSource::Sampler(mode) => {
            engine.zero_grad(model);
            engine.accumulate_scaled(model, &ScaleVector::new(scales)?)?;
            let mut noise_result = Ok(());
            engine.visit_gradients(model, &mut |_, gradient| {
                if noise_result.is_ok() {
                    noise_result = add_gaussian_noise(gradient, std, mode, rng).map(|_| ());
                }
            })?;
            noise_result?;
        }
    }
    sgd(model, batch_size)?;
    synchronize(model.device());
    Ok(())
}

/// Criterion's positional arguments: the filters.
fn filters() -> Vec<String> {
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg.starts_with("--") {
            // Criterion's options that take a value.
            if matches!(
                arg.as_str(),
                "--save-baseline"
                    | "--baseline"
                    | "--load-baseline"
                    | "--sample-size"
                    | "--warm-up-time"
                    | "--measurement-time"
                    | "--profile-time"
                    | "--color"
                    | "--output-format"
                    | "--plotting-backend"
                    | "--noise-threshold"
                    | "--confidence-level"
                    | "--significance-level"
                    | "--nresamples"
                    | "--format"
            ) {
                let _ = args.next();
            }
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters
}

fn selected(filters: &[String], id: &str) -> bool {
    filters.is_empty() || filters.iter().any(|filter| id.contains(filter.as_str()))
}

fn bench_workload(
    criterion: &mut Criterion,
    workload: &Workload,
    filters: &[String],
) -> BenchResult {
    let device = device();
    let label = workload.label(device);
    if !ENGINES
        .iter()
        .any(|engine| selected(filters, &format!("{label}/{engine}")))
    {
        return Ok(());
    }
    let (mut model, batch) = workload.set_up(device)?;
    let mut group = criterion.benchmark_group(label);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for engine in ENGINES {
        let mut step = stepper(engine, workload.batch_size)?;
        group.bench_function(engine, |bencher| {
            bencher.iter(|| step(&mut model, &batch).expect("step"));
        });
    }
    group.finish();
    Ok(())
}

/// `VmHWM` (peak resident set) of this process in bytes.
fn peak_resident_bytes() -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kilobytes: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kilobytes * 1024)
}

/// One configuration's figures, as measured in its own process.
struct Measurement {
    model: String,
    engine: String,
    batch_size: i64,
    median_step_s: f64,
    /// The median ratio of DP step to the non-private step timed next to it (DP rows).
    paired_ratio: Option<f64>,
    set_up_peak_bytes: u64,
    peak_bytes: u64,
}

impl Measurement {
    fn step_memory(&self) -> u64 {
        self.peak_bytes.saturating_sub(self.set_up_peak_bytes)
    }

    /// One line: model, engine, batch, seconds, paired ratio (`-` for none), bytes.
    fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.model,
            self.engine,
            self.batch_size,
            self.median_step_s,
            self.paired_ratio
                .map_or_else(|| "-".to_owned(), |ratio| ratio.to_string()),
            self.set_up_peak_bytes,
            self.peak_bytes
        )
    }

    fn from_line(line: &str) -> BenchResult<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [model, engine, batch_size, seconds, ratio, set_up, peak] = fields.as_slice() else {
            return Err(format!("unexpected measurement line `{line}`").into());
        };
        Ok(Self {
            model: (*model).to_owned(),
            engine: (*engine).to_owned(),
            batch_size: batch_size.parse()?,
            median_step_s: seconds.parse()?,
            paired_ratio: match *ratio {
                "-" => None,
                ratio => Some(ratio.parse()?),
            },
            set_up_peak_bytes: set_up.parse()?,
            peak_bytes: peak.parse()?,
        })
    }
}

/// Runs one configuration in this process (the child side). A DP configuration's timing
/// process alternates its step with the non-private step of the same model and batch, so that
/// every DP step has a non-private step timed next to it: the ratio is the median of those
/// pairs' ratios, which cancels the slow spells of a shared machine (medians taken in separate
/// processes minutes apart can differ by 30% on the 2-core CI machine).
fn measure(config: &str) -> BenchResult<Measurement> {
    let (model_name, engine) = config
        .split_once('/')
        .ok_or_else(|| format!("{CONFIG_VARIABLE} must be <model>/<engine>, got `{config}`"))?;
    let workload = WORKLOADS
        .iter()
        .find(|workload| workload.name == model_name)
        .ok_or_else(|| format!("unknown model `{model_name}`"))?;
    let (mut model, batch) = workload.set_up(device())?;
    let memory = std::env::var_os(MEMORY_VARIABLE).is_some();
    let mut step = stepper(engine, workload.batch_size)?;
    let mut reference = if memory || engine == "non_private" {
        None
    } else {
        Some(stepper("non_private", workload.batch_size)?)
    };
    let set_up_peak_bytes = peak_resident_bytes()?;
    let timed = |step: &mut Step, model: &mut DpModel| -> BenchResult<f64> {
        let started = Instant::now();
        step(model, &batch)?;
        Ok(started.elapsed().as_secs_f64())
    };
    timed(&mut step, &mut model)?;
    if let Some(reference) = &mut reference {
        timed(reference, &mut model)?;
    }
    let (minimum, maximum) = if memory {
        (1, 1)
    } else {
        (MIN_TIMED_STEPS, MAX_TIMED_STEPS)
    };
    let mut times = Vec::with_capacity(maximum);
    let mut ratios = Vec::with_capacity(maximum);
    let timing = Instant::now();
    while times.len() < minimum || (times.len() < maximum && timing.elapsed() < TIMING_BUDGET) {
        let time = timed(&mut step, &mut model)?;
        times.push(time);
        if let Some(reference) = &mut reference {
            ratios.push(time / timed(reference, &mut model)?);
        }
    }
    Ok(Measurement {
        model: workload.name.to_owned(),
        engine: engine.to_owned(),
        batch_size: workload.batch_size,
        median_step_s: median(times),
        paired_ratio: (!ratios.is_empty()).then(|| median(ratios)),
        set_up_peak_bytes,
        peak_bytes: peak_resident_bytes()?,
    })
}

/// The median (the upper one of an even count) of a non-empty list.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs one configuration in a child process: timed with the default allocator, or, for
/// `memory`, one step with every allocation above 64 KiB mapped on its own (glibc's
/// `MALLOC_MMAP_THRESHOLD_`), so that freed tensors leave the resident set at once and its
/// high-water mark follows the live tensors instead of the heap glibc keeps.
fn run_child(executable: &std::path::Path, config: &str, memory: bool) -> BenchResult<Measurement> {
    let mut command = Command::new(executable);
    command.env(CONFIG_VARIABLE, config);
    if memory {
        command
            .env(MEMORY_VARIABLE, "1")
            .env("MALLOC_MMAP_THRESHOLD_", "65536");
    } else if std::env::var_os(GLIBC_DEFAULTS_VARIABLE).is_none() {
        command.envs(KEEP_FREED_MEMORY);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "measuring {config} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Measurement::from_line(String::from_utf8(output.stdout)?.trim())
}

/// Runs every selected configuration in child processes (the parent side).
fn measure_all(filters: &[String]) -> BenchResult<Vec<Measurement>> {
    let executable = std::env::current_exe()?;
    let device = device();
    let mut measurements = Vec::new();
    for workload in &WORKLOADS {
        let label = workload.label(device);
        for engine in ENGINES {
            if !selected(filters, &format!("{label}/{engine}")) {
                continue;
            }
            let config = format!("{}/{engine}", workload.name);
            let timed = run_child(&executable, &config, false)?;
            let memory = run_child(&executable, &config, true)?;
            let measurement = Measurement {
                set_up_peak_bytes: memory.set_up_peak_bytes,
                peak_bytes: memory.peak_bytes,
                ..timed
            };
            eprintln!(
                "engines_tch memory/{}/{engine}: median step {:.1} ms{}, step peak {:.1} MiB",
                workload.name,
                measurement.median_step_s * 1e3,
                measurement
                    .paired_ratio
                    .map_or_else(String::new, |ratio| format!(
                        " ({ratio:.2}x the non-private step next to it)"
                    )),
                measurement.step_memory() as f64 / (1024.0 * 1024.0)
            );
            measurements.push(measurement);
        }
    }
    Ok(measurements)
}

/// The folder `engines.json` goes to: `DP_RS_BENCH_OUT`, or `target/bench` next to this binary
/// (`target/release/deps/engines_tch-*`).
fn output_folder() -> BenchResult<PathBuf> {
    if let Some(folder) = std::env::var_os("DP_RS_BENCH_OUT") {
        return Ok(PathBuf::from(folder));
    }
    let executable = std::env::current_exe()?;
    let target = executable
        .ancestors()
        .nth(3)
        .ok_or("cannot locate the target folder; set DP_RS_BENCH_OUT")?;
    Ok(target.join("bench"))
}

fn write_engines_json(measurements: &[Measurement]) -> BenchResult<PathBuf> {
    let device = device();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("unknown");
    let mut json = String::from("{\n");
    writeln!(json, "  \"device\": \"{device:?}\",")?;
    writeln!(json, "  \"libtorch_threads\": {},", tch::get_num_threads())?;
    writeln!(
        json,
        "  \"rayon_threads\": {},",
        rayon::current_num_threads()
    )?;
    writeln!(json, "  \"cores\": {cores},")?;
    let allocator = if std::env::var_os(GLIBC_DEFAULTS_VARIABLE).is_some() {
        "glibc defaults".to_owned()
    } else {
        KEEP_FREED_MEMORY
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    writeln!(json, "  \"timing_allocator\": \"{allocator}\",")?;
    writeln!(json, "  \"load_average_1min_at_end\": \"{load}\",")?;
    writeln!(
        json,
        "  \"method\": \"each configuration in its own processes: time is the median of \
         {MIN_TIMED_STEPS} to {MAX_TIMED_STEPS} timed steps ({} s budget) after 1 warm-up step, \
         a DP configuration's steps alternating with non-private steps of the same model and \
         batch in the same process; time_ratio is the median of the ratios of each DP step to \
         the non-private step after it; \
         memory from a second process (warm-up and 1 step, MALLOC_MMAP_THRESHOLD_=65536); noise: \
         dp-sampler's fast mode through visit_gradients, as dp-trainer adds it, on rayon_threads \
         threads, except book_keeping_secure_noise (dp-sampler's secure mode the same way) and \
         book_keeping_libtorch_noise (libtorch's normal_ on the gradient tensors); step_peak_bytes = VmHWM after the steps \
         minus VmHWM after set-up (host memory; GPU memory is not included); ratios are DP / \
         non-private of the same model; criterion's statistics for the same ids are in \
         benches.json\",",
        TIMING_BUDGET.as_secs()
    )?;
    json.push_str("  \"configurations\": [\n");
    for (index, measurement) in measurements.iter().enumerate() {
        let reference = measurements
            .iter()
            .find(|other| other.model == measurement.model && other.engine == "non_private");
        let ratio = |value: f64, base: Option<f64>| match base {
            Some(base) if base > 0.0 => format!("{:.4}", value / base),
            _ => "null".to_owned(),
        };
        let comma = if index + 1 < measurements.len() {
            ","
        } else {
            ""
        };
        writeln!(
            json,
            "    {{\"model\": \"{}\", \"engine\": \"{}\", \"batch_size\": {}, \
             \"median_step_s\": {:.6}, \"set_up_peak_bytes\": {}, \"peak_bytes\": {}, \
             \"step_peak_bytes\": {}, \"time_ratio\": {}, \"memory_ratio\": {}}}{comma}",
            measurement.model,
            measurement.engine,
            measurement.batch_size,
            measurement.median_step_s,
            measurement.set_up_peak_bytes,
            measurement.peak_bytes,
            measurement.step_memory(),
            match (measurement.engine.as_str(), measurement.paired_ratio) {
                ("non_private", _) => "1.0000".to_owned(),
                (_, Some(paired)) => format!("{paired:.4}"),
                (_, None) => "null".to_owned(),
            },
            ratio(
                measurement.step_memory() as f64,
                reference.map(|reference| reference.step_memory() as f64)
            ),
        )?;
    }
    json.push_str("  ]\n}\n");
    let folder = output_folder()?;
    std::fs::create_dir_all(&folder)?;
    let path = folder.join("engines.json");
    std::fs::write(&path, json)?;
    Ok(path)
}

fn main() -> BenchResult {
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        tch::set_num_threads(1);
    }
    // dp-sampler's noise runs on rayon's pool: give it libtorch's thread count, so that no DP
    // step uses more cores than the non-private step it is compared with.
    let libtorch_threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(libtorch_threads)
        .build_global()?;
    if let Ok(config) = std::env::var(CONFIG_VARIABLE) {
        println!("{}", measure(&config)?.to_line());
        return Ok(());
    }
    let filters = filters();
    let mut criterion = Criterion::default().configure_from_args();
    for workload in &WORKLOADS {
        bench_workload(&mut criterion, workload, &filters)?;
    }
    criterion.final_summary();
    let skip = std::env::args().any(|arg| matches!(arg.as_str(), "--test" | "--list"));
    if !skip {
        let measurements = measure_all(&filters)?;
        if !measurements.is_empty() {
            let path = write_engines_json(&measurements)?;
            eprintln!("engines_tch: wrote {}", path.display());
        }
    }
    Ok(())
}
