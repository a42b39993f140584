//! Integration tests of dp-attacks on synthetic data with known answers.

mod auditing;
mod common;
mod exposure;
mod membership;
