//! Non-private training through the same engine: the baseline DP results are compared with.

use crate::{LearningRateSchedule, Optimizer, TrainerError};
use dp_engine::{ExampleSource, PerSampleGradEngine};
use rand::RngCore;
use rand::seq::SliceRandom;

/// Mini-batch size and epoch count of a non-private run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonPrivateConfig {
    /// Examples per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Passes over the data.
    pub epochs: usize,
}

/// Trains `model` without privacy: shuffled mini-batches, mean gradient from the engine's
/// batch path, `optimizer` with `schedule` indexed by step. Returns the mean loss of the last
/// epoch.
///
/// # Privacy
///
/// None: the result is not differentially private (an accountant would record
/// `DpEvent::NonPrivate`). Use it for baselines, or on data that is already private (noisy
/// labels from [`crate::RandomizedResponseWithPrior`]).
///
/// # Errors
///
/// [`TrainerError::InvalidParameter`] for a zero batch size; engine errors.
pub fn train_non_private<E, D>(
    engine: &mut E,
    model: &mut E::Model,
    data: &D,
    config: NonPrivateConfig,
    optimizer: &mut Optimizer,
    schedule: &LearningRateSchedule,
    rng: &mut dyn RngCore,
) -> Result<f64, TrainerError>
where
    E: PerSampleGradEngine,
    D: ExampleSource<Batch = E::Batch>,
{
    if config.batch_size == 0 {
        return Err(TrainerError::invalid("batch_size", 0.0, "must be positive"));
    }
    let mut order: Vec<usize> = (0..data.num_examples()).collect();
    let mut step = 0;
    let mut last_epoch_loss = f64::NAN;
    for _ in 0..config.epochs {
        order.shuffle(rng);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(config.batch_size) {
            let batch = data.gather(chunk)?;
            engine.zero_grad(model);
            loss_sum += engine.batch_gradient(model, &batch)?.iter().sum::<f64>();
            let learning_rate = schedule.learning_rate(step);
            let divisor = chunk.len() as f32;
            optimizer.begin_step();
            engine.visit_parameters(model, &mut |view| {
                view.gradient.iter_mut().for_each(|g| *g /= divisor);
                optimizer.update(view.group, view.values, view.gradient, learning_rate);
            })?;
            step += 1;
        }
        last_epoch_loss = loss_sum / order.len().max(1) as f64;
    }
    Ok(last_epoch_loss)
}
