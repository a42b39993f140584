//! DP-SGD and non-private training of an MLP on the shipped MNIST subset (8,000 training and
//! 2,000 test images), through the pure-Rust engine. Run in release mode:
//!
//! ```text
//! cargo run --release -p dp-trainer --example mnist -- epsilon=3 hidden=64 epochs=15 batch=512 lr=1.0 seed=1
//! ```
//!
//! Prints the calibrated noise multiplier, ε spent, and both test accuracies.

use anyhow::Context;
use dp_accountant::{AccountantKind, NeighbouringRelation, RdpAccountant};
use dp_clip::FlatClip;
use dp_engine_ndarray::{Activation, ArrayDataset, BookKeepingEngine, Mlp};
use dp_trainer::{
    DpSgdConfig, DpTrainer, LearningRateSchedule, NonPrivateConfig, Optimizer, TerminalProgress,
    TrainerParts, TrainerRngs, train_non_private,
};
use rand::SeedableRng;
use std::collections::HashMap;

fn main() -> anyhow::Result<()> {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let get = |key: &str, default: f64| -> anyhow::Result<f64> {
        args.get(key).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{key}={v}"))
        })
    };
    let (epsilon, hidden, epochs, batch) = (
        get("epsilon", 3.0)?,
        get("hidden", 64.0)? as usize,
        get("epochs", 15.0)?,
        get("batch", 512.0)?,
    );
    let (learning_rate, max_grad_norm, seed) =
        (get("lr", 1.0)?, get("clip", 1.0)?, get("seed", 1.0)? as u64);
    let delta = 1e-5;

    let data = dp_data::load_shipped_mnist()?;
    let (train_x, train_y, _, _) = data.train.into_parts();
    let (test_x, test_y, _, _) = data.test.into_parts();
    let train = ArrayDataset::new(train_x, train_y)?;
    let n = train.labels().len();
    let mut init = rand::rngs::StdRng::seed_from_u64(seed);
    let model = Mlp::new(&[784, hidden, 10], Activation::Tanh, &mut init)?;

    let q = batch / n as f64;
    let steps = (epochs / q).ceil() as u64;
    let config = DpSgdConfig::calibrated(AccountantKind::Rdp, epsilon, q, steps, delta)?;
    println!(
        "N = {n}, q = {q:.4}, steps = {steps}, noise multiplier = {:.4}",
        config.noise_multiplier()
    );
    let progress = TerminalProgress::new(steps);
    let parts = TrainerParts {
        engine: BookKeepingEngine::new(),
        model: model.clone(),
        data: train.clone(),
        clip: FlatClip::new(max_grad_norm)?,
        accountant: RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne),
        optimizer: Optimizer::sgd(0.9)?,
        schedule: LearningRateSchedule::warmup_cosine(learning_rate, 0.0, steps / 20, steps)?,
    };
    let mut trainer = DpTrainer::new(parts, &config, TrainerRngs::seeded(seed))?
        .with_progress(progress.callback());
    trainer.run()?;
    progress.finish();
    let private_accuracy = trainer.model().accuracy(test_x.view(), &test_y)?;
    println!(
        "private: epsilon = {:.3} at delta = {delta}, test accuracy = {private_accuracy:.4}",
        trainer.epsilon()?
    );

    let mut model = model;
    let mut optimizer = Optimizer::sgd(0.9)?;
    let schedule = LearningRateSchedule::constant(0.05)?;
    let config = NonPrivateConfig {
        batch_size: 64,
        epochs: 15,
    };
    let mut engine = BookKeepingEngine::new();
    train_non_private(
        &mut engine,
        &mut model,
        &train,
        config,
        &mut optimizer,
        &schedule,
        &mut init,
    )?;
    println!(
        "non-private: test accuracy = {:.4}",
        model.accuracy(test_x.view(), &test_y)?
    );
    Ok(())
}
