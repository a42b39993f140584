//! What an engine's test provides to the suite.

use dp_engine::PerSampleGradEngine;

/// Random models and batches for one engine, and the reference engine it must agree with.
///
/// `seed` values make every case reproducible; shapes (widths, depth, views) should vary with the
/// seed so that the suite covers random shapes.
pub trait ConformanceFixture {
    /// The model type shared by the engine and the reference.
    type Model: Clone;
    /// The batch type shared by the engine and the reference.
    type Batch: dp_engine::ExampleBatch;
    /// The engine under test.
    type Engine: PerSampleGradEngine<Model = Self::Model, Batch = Self::Batch>;
    /// The reference engine (one backward pass per example).
    type Reference: PerSampleGradEngine<Model = Self::Model, Batch = Self::Batch>;

    /// A fresh engine under test.
    fn engine(&self) -> Self::Engine;
    /// A fresh reference engine.
    fn reference(&self) -> Self::Reference;
    /// A random model whose shape depends on `seed`.
    fn random_model(&self, seed: u64) -> Self::Model;
    /// A random batch of `num_examples` examples fitting `model`.
    fn random_batch(&self, model: &Self::Model, num_examples: usize, seed: u64) -> Self::Batch;
    /// `batch` with example `index` replaced by a different random example (`seed`).
    fn replace_example(
        &self,
        model: &Self::Model,
        batch: &Self::Batch,
        index: usize,
        seed: u64,
    ) -> Self::Batch;
}

/// A tiny deterministic generator (SplitMix64, Steele et al. 2014) for random scales and sizes,
/// so the suite needs no RNG crate.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }
}
