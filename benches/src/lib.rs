//! Criterion benchmarks of the dp-rs crates.
//!
//! The benches live in `benches/benches/`; this library holds what they share.

/// Number of threads rayon (and so our parallel code) uses in this process, for bench labels.
pub fn thread_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
