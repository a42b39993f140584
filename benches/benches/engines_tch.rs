//! libtorch engines: one DP-SGD step per engine against one non-private step of the same model,
//! batch and device, side by side (DESIGN.md section 7: the figure is the ratio).
//!
//! Models: the MLP 784-256-10 and the Opacus MNIST CNN, batch 256, random MNIST-shaped data.
//! Bench ids carry model, batch, device and the libtorch thread count (`OMP_NUM_THREADS`).
//! A step is: zero the gradients, (norms, flat clipping at 1.0, clipped sum, Gaussian noise)
//! or the batch gradient, then plain SGD.

use criterion::{Criterion, criterion_group, criterion_main};
use dp_engine::{PerSampleGradEngine, ScaleVector};
use dp_engine_tch::tch::{self, Device, Kind, Tensor, nn};
use dp_engine_tch::{
    BookKeeping, DpModel, Ghost, Loss, Materialized, Microbatch, Sequential, TensorBatch, models,
};

const BATCH_SIZE: i64 = 256;
const MAX_GRAD_NORM: f64 = 1.0;
const NOISE_MULTIPLIER: f64 = 1.0;
const LEARNING_RATE: f64 = 0.01;
const SEED: i64 = 7;

type BenchResult = Result<(), Box<dyn std::error::Error>>;

fn device() -> Device {
    match std::env::var("DP_RS_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

fn sgd(model: &DpModel) -> BenchResult {
    tch::no_grad(|| -> BenchResult {
        for (parameter, gradient) in model.parameters().iter().zip(model.gradients()) {
            let mut parameter = parameter.tensor.shallow_clone();
            let step = gradient.f_mul_scalar(LEARNING_RATE / BATCH_SIZE as f64)?;
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

fn non_private_step<E>(engine: &mut E, model: &mut DpModel, batch: &TensorBatch) -> BenchResult
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    engine.zero_grad(model);
    engine.batch_gradient(model, batch)?;
    sgd(model)?;
    synchronize(model.device());
    Ok(())
}

fn dp_step<E>(engine: &mut E, model: &mut DpModel, batch: &TensorBatch) -> BenchResult
where
    E: PerSampleGradEngine<Model = DpModel, Batch = TensorBatch>,
{
    engine.zero_grad(model);
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
    engine.accumulate_scaled(model, &ScaleVector::new(scales)?)?;
    for gradient in model.gradients_mut() {
        let noise = gradient
            .f_randn_like()?
            .f_mul_scalar(NOISE_MULTIPLIER * MAX_GRAD_NORM)?;
        let _ = gradient.f_add_(&noise)?;
    }
    sgd(model)?;
    synchronize(model.device());
    Ok(())
}

struct Workload {
    name: &'static str,
    build: fn(&nn::Path<'_>) -> dp_engine_tch::Result<Sequential>,
    input_shape: [i64; 3],
}

fn mlp(path: &nn::Path<'_>) -> dp_engine_tch::Result<Sequential> {
    models::mlp(path, &[784, 256, 10])
}

fn bench_workload(criterion: &mut Criterion, workload: &Workload) -> BenchResult {
    let device = device();
    tch::manual_seed(SEED);
    let store = nn::VarStore::new(device);
    let mut model = DpModel::new(&store, (workload.build)(&store.root())?, Loss::CrossEntropy)?;
    let mut shape = vec![BATCH_SIZE];
    shape.extend(workload.input_shape.iter().filter(|&&size| size > 0));
    let batch = TensorBatch::new(
        Tensor::f_randn(shape.as_slice(), (Kind::Float, device))?,
        Tensor::f_randint(10, [BATCH_SIZE], (Kind::Int64, device))?,
    )?;
    let label = format!(
        "engines_tch/{}/batch{BATCH_SIZE}/{device:?}/threads{}",
        workload.name,
        tch::get_num_threads()
    );
    let mut group = criterion.benchmark_group(label);
    group.sample_size(10);
    let mut reference = BookKeeping::new();
    group.bench_function("non_private", |bencher| {
        bencher.iter(|| non_private_step(&mut reference, &mut model, &batch).expect("step"));
    });
    macro_rules! dp {
        ($name:literal, $engine:expr) => {
            let mut engine = $engine;
            group.bench_function($name, |bencher| {
                bencher.iter(|| dp_step(&mut engine, &mut model, &batch).expect("step"));
            });
        };
    }
    dp!("book_keeping", BookKeeping::new());
    dp!("ghost", Ghost::new());
    dp!("materialized", Materialized::new());
    dp!("microbatch", Microbatch::new());
    group.finish();
    Ok(())
}

fn engines(criterion: &mut Criterion) {
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        tch::set_num_threads(1);
    }
    let workloads = [
        Workload {
            name: "mlp784-256-10",
            build: mlp,
            input_shape: [784, 0, 0],
        },
        Workload {
            name: "opacus_mnist_cnn",
            build: models::mnist_cnn,
            input_shape: [1, 28, 28],
        },
    ];
    for workload in &workloads {
        bench_workload(criterion, workload).expect("benchmark set-up");
    }
}

criterion_group!(benches, engines);
criterion_main!(benches);
