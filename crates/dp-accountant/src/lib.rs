//! Privacy accounting for differentially private machine learning: how much (ε, δ) a
//! sequence of mechanisms spends.
//!
//! ```
//! use dp_accountant::{AccountantKind, DpEvent, NeighbouringRelation, PrivacyAccountant};
//!
//! // DP-SGD on MNIST (TF Privacy tutorial): batch 256 of 60000, σ = 1.1, 60 epochs.
//! let step = DpEvent::gaussian(1.1).poisson_sampled(256.0 / 60000.0);
//! let mut accountant = AccountantKind::Pld.accountant(NeighbouringRelation::AddOrRemoveOne);
//! accountant.compose(&step.repeated(14063))?;
//! let report = accountant.epsilon(1e-5)?;
//! assert!(report.epsilon > 2.3 && report.epsilon < 2.45);
//!
//! // The ledger is the whole state: serialize it into a checkpoint, restore it later.
//! let restored = AccountantKind::Pld.restore(accountant.ledger())?;
//! assert_eq!(restored.epsilon(1e-5)?.epsilon, report.epsilon);
//! # Ok::<(), dp_accountant::AccountantError>(())
//! ```
//!
//! # What is here
//!
//! - [`DpEvent`]: what a mechanism did, as data (after dp_accounting's `dp_event`).
//! - [`PrivacyAccountant`]: compose events, read ε(δ) or δ(ε), keep a [`Ledger`].
//!   Three implementations, chosen by [`AccountantKind`]:
//!   [`RdpAccountant`] (Rényi DP, upper bound), [`PldAccountant`] (privacy loss
//!   distributions, tight upper bound plus a lower bound), [`GdpAccountant`] (μ-GDP by the
//!   central limit theorem, an approximation labelled as such).
//! - Calibration: [`calibrate_noise_multiplier`], [`calibrate_steps`], [`dp_sgd_epsilon`].
//!
//! The math, with references, is in `docs/accounting.md` of the repository.
//!
//! # Where it sits
//!
//! This crate has no tensor dependency and depends on no other crate of the workspace: it
//! can be embedded alone (budget planning, audit trails). `dp-sampler` produces the events
//! its samplers justify, `dp-clip` composes the budget adaptive clipping spends, and
//! `dp-trainer` holds a `Box<dyn PrivacyAccountant + Send>` and checkpoints its ledger.
//! The optional `cli` feature builds the `dp-accountant` command-line tool.
//!
//! # Privacy
//!
//! Every guarantee is stated under a [`NeighbouringRelation`] (add/remove-one by default).
//! Invalid input (NaN, q outside (0, 1], σ <= 0, δ outside (0, 1)) is an error, never a
//! NaN or a silent clamp, and an accountant refuses an event it cannot handle before
//! changing state. Reports say whether ε is an upper bound or an approximation.

mod accountant;
mod calibrate;
mod error;
mod event;
mod gdp;
mod ledger;
mod pld;
mod rdp;
mod special;

pub use accountant::{
    AccountantKind, DeltaReport, EpsilonReport, Guarantee, NeighbouringRelation, PrivacyAccountant,
};
pub use calibrate::{calibrate_noise_multiplier, calibrate_steps, dp_sgd_epsilon, dp_sgd_event};
pub use error::AccountantError;
pub use event::DpEvent;
pub use gdp::GdpAccountant;
pub use ledger::{Ledger, LedgerEntry};
pub use pld::{DEFAULT_VALUE_DISCRETIZATION_INTERVAL, PldAccountant};
pub use rdp::{RdpAccountant, RdpConversion, default_orders};
pub use special::normal_mills_ratio;

// The Rust examples of the repository's README are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
