use std::time::Instant;
use dp_engine::{PerSampleGradEngine, ScaleVector};
use dp_engine_tch::{BookKeeping, DpModel, Loss, TensorBatch, models};
use tch::{Device, Kind, Tensor, nn};

fn time<F: FnMut()>(name: &str, mut f: F) {
    for _ in 0..3 { f(); }
    let n = 30;
    let start = Instant::now();
    for _ in 0..n { f(); }
    println!("{name:<30} {:.3} ms", start.elapsed().as_secs_f64() * 1e3 / n as f64);
}

fn main() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    let cnn = std::env::args().nth(1).is_some();
    let store = nn::VarStore::new(Device::Cpu);
    let module = if cnn { models::mnist_cnn(&store.root())? } else { models::mlp(&store.root(), &[784, 256, 10])? };
    let mut model = DpModel::new(&store, module, Loss::CrossEntropy)?;
    let shape: Vec<i64> = if cnn { vec![256, 1, 28, 28] } else { vec![256, 784] };
    let batch = TensorBatch::new(Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)), Tensor::randint(10, [256], (Kind::Int64, Device::Cpu)))?;
    let mut engine = BookKeeping::new();
    time("batch_gradient", || { engine.batch_gradient(&mut model, &batch).unwrap(); });
    time("norms", || { engine.norms(&model, &batch).unwrap(); });
    time("accumulate", || { engine.accumulate_scaled(&mut model, &ScaleVector::ones(256)).unwrap(); });
    time("noise", || { for g in model.gradients_mut() { let _ = g.f_add_(&g.randn_like()).unwrap(); } });
    time("forward only", || { let _ = model.forward(batch.inputs()).unwrap(); });
    Ok(())
}
