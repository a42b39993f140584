//! The accountant contract: the trait, the kinds of accountant, and what they report.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{AccountantError, DpEvent, GdpAccountant, Ledger, PldAccountant, RdpAccountant};

/// Which datasets count as neighbours; every guarantee is stated under one of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighbouringRelation {
    /// D' is D with one record added or removed (the default; Poisson sampling, DP-SGD).
    #[default]
    AddOrRemoveOne,
    /// D' is D with one record replaced by another (fixed-size sampling, label DP).
    ReplaceOne,
}

impl fmt::Display for NeighbouringRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NeighbouringRelation::AddOrRemoveOne => "add_or_remove_one",
            NeighbouringRelation::ReplaceOne => "replace_one",
        })
    }
}

impl FromStr for NeighbouringRelation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "add_or_remove_one" | "add_remove" => Ok(NeighbouringRelation::AddOrRemoveOne),
            "replace_one" | "replace" => Ok(NeighbouringRelation::ReplaceOne),
            other => Err(format!(
                "unknown neighbouring relation {other:?} (expected add_or_remove_one or replace_one)"
            )),
        }
    }
}

/// The three accountants, as a value the trainer, the experiments and the CLI can pass around.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountantKind {
    /// Rényi DP ([`RdpAccountant`]): an upper bound, 8-12% looser than PLD for DP-SGD.
    Rdp,
    /// μ-Gaussian DP by the central limit theorem ([`GdpAccountant`]): an approximation.
    Gdp,
    /// Privacy loss distributions ([`PldAccountant`]): a tight upper bound.
    Pld,
}

impl AccountantKind {
    /// All kinds, in the order RDP, GDP, PLD.
    pub const ALL: [AccountantKind; 3] = [
        AccountantKind::Rdp,
        AccountantKind::Gdp,
        AccountantKind::Pld,
    ];

    /// A fresh accountant of this kind with its default settings under `relation`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dp_accountant::{AccountantKind, DpEvent, NeighbouringRelation};
    ///
    /// let mut accountant = AccountantKind::Rdp.accountant(NeighbouringRelation::AddOrRemoveOne);
    /// accountant.compose(&DpEvent::gaussian(1.1).poisson_sampled(0.01).repeated(1000))?;
    /// assert!(accountant.epsilon(1e-5)?.epsilon < 2.0);
    /// # Ok::<(), dp_accountant::AccountantError>(())
    /// ```
    pub fn accountant(self, relation: NeighbouringRelation) -> Box<dyn PrivacyAccountant + Send> {
        match self {
            AccountantKind::Rdp => Box::new(RdpAccountant::new(relation)),
            AccountantKind::Gdp => Box::new(GdpAccountant::new(relation)),
            AccountantKind::Pld => Box::new(PldAccountant::new(relation)),
        }
    }

    /// An accountant of this kind (default settings) holding exactly the events of `ledger`,
    /// under the ledger's neighbouring relation: what a checkpoint restore calls.
    ///
    /// # Errors
    ///
    /// Any error [`PrivacyAccountant::compose`] would raise for one of the ledger's events.
    pub fn restore(
        self,
        ledger: &Ledger,
    ) -> Result<Box<dyn PrivacyAccountant + Send>, AccountantError> {
        let mut accountant = self.accountant(ledger.neighbouring_relation());
        accountant.restore(ledger)?;
        Ok(accountant)
    }

    /// Whether this accountant's ε is an approximation rather than a guaranteed upper bound.
    pub fn is_approximate(self) -> bool {
        matches!(self, AccountantKind::Gdp)
    }
}

impl fmt::Display for AccountantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountantKind::Rdp => "rdp",
            AccountantKind::Gdp => "gdp",
            AccountantKind::Pld => "pld",
        })
    }
}

impl FromStr for AccountantKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rdp" => Ok(AccountantKind::Rdp),
            "gdp" => Ok(AccountantKind::Gdp),
            "pld" => Ok(AccountantKind::Pld),
            other => Err(format!(
                "unknown accountant {other:?} (expected rdp, gdp or pld)"
            )),
        }
    }
}

/// What kind of statement a reported ε or δ is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// A proven upper bound on the true privacy loss (RDP, PLD, exact GDP of plain Gaussians).
    UpperBound,
    /// An approximation that can be below the true value (GDP by the central limit theorem).
    /// Never report it as a guarantee.
    Approximate,
}

/// ε spent for a given δ, with how it was obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpsilonReport {
    /// The reported ε (`f64::INFINITY` when a non-private event was composed or δ is too small).
    pub epsilon: f64,
    /// The δ it was computed for.
    pub delta: f64,
    /// Which accountant produced it.
    pub accountant: AccountantKind,
    /// Whether `epsilon` is a guaranteed upper bound or an approximation.
    pub guarantee: Guarantee,
    /// RDP only: the Rényi order at which the conversion was tightest.
    pub optimal_order: Option<f64>,
    /// PLD only: a lower bound on the true ε of the composed mechanisms (the optimistic end).
    pub epsilon_lower: Option<f64>,
}

/// δ spent for a given ε, with how it was obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeltaReport {
    /// The reported δ, in [0, 1].
    pub delta: f64,
    /// The ε it was computed for.
    pub epsilon: f64,
    /// Which accountant produced it.
    pub accountant: AccountantKind,
    /// Whether `delta` is a guaranteed upper bound or an approximation.
    pub guarantee: Guarantee,
    /// RDP only: the Rényi order at which the conversion was tightest.
    pub optimal_order: Option<f64>,
    /// PLD only: a lower bound on the true δ(ε) of the composed mechanisms.
    pub delta_lower: Option<f64>,
}

/// A privacy accountant: it composes [`DpEvent`]s and converts what was spent to (ε, δ).
///
/// Object safe, so a trainer can hold `Box<dyn PrivacyAccountant + Send>`.
///
/// # Privacy
///
/// Every guarantee is under [`PrivacyAccountant::neighbouring_relation`]. `compose`
/// validates the event and checks support *before* changing state; an accountant never
/// silently ignores an event. Unless the report says [`Guarantee::Approximate`], the
/// reported ε (δ) is an upper bound on the true ε (δ) of the composed mechanisms.
pub trait PrivacyAccountant: fmt::Debug {
    /// Which accountant this is.
    fn kind(&self) -> AccountantKind;

    /// The neighbouring relation all reported guarantees hold under.
    fn neighbouring_relation(&self) -> NeighbouringRelation;

    /// `Ok` if `event` is valid and this accountant can account for it, else the reason.
    ///
    /// # Errors
    ///
    /// [`AccountantError::InvalidParameter`] or [`AccountantError::UnsupportedEvent`].
    fn check(&self, event: &DpEvent) -> Result<(), AccountantError>;

    /// Whether `event` is valid and this accountant can account for it.
    fn supports(&self, event: &DpEvent) -> bool {
        self.check(event).is_ok()
    }

    /// Adds `event` to the privacy spent.
    ///
    /// # Errors
    ///
    /// Whatever [`PrivacyAccountant::check`] returns, and [`AccountantError::CountOverflow`];
    /// the state is unchanged on error.
    fn compose(&mut self, event: &DpEvent) -> Result<(), AccountantError>;

    /// The ε spent at `delta`.
    ///
    /// # Errors
    ///
    /// [`AccountantError::InvalidParameter`] if `delta` is not in (0, 1).
    fn epsilon(&self, delta: f64) -> Result<EpsilonReport, AccountantError>;

    /// The δ spent at `epsilon`.
    ///
    /// # Errors
    ///
    /// [`AccountantError::InvalidParameter`] if `epsilon` is negative or not finite.
    fn delta(&self, epsilon: f64) -> Result<DeltaReport, AccountantError>;

    /// Every event composed so far: the accountant's whole state.
    fn ledger(&self) -> &Ledger;

    /// Replaces the state by `ledger` (a checkpoint restore). Composing the same events
    /// in the same order and restoring their ledger give bit-identical ε.
    ///
    /// # Errors
    ///
    /// [`AccountantError::RelationMismatch`], or whatever `compose` would raise for one of
    /// the ledger's events; the state is unchanged on error.
    fn restore(&mut self, ledger: &Ledger) -> Result<(), AccountantError>;
}

/// Checks that `ledger` is compatible with an accountant and every event passes `check`.
pub(crate) fn check_ledger(
    accountant: &dyn PrivacyAccountant,
    ledger: &Ledger,
) -> Result<(), AccountantError> {
    if ledger.neighbouring_relation() != accountant.neighbouring_relation() {
        return Err(AccountantError::RelationMismatch {
            ledger: ledger.neighbouring_relation(),
            accountant: accountant.neighbouring_relation(),
        });
    }
    ledger
        .entries()
        .iter()
        .try_for_each(|entry| accountant.check(&entry.event))
}

/// The error an accountant returns for an event it does not handle.
pub(crate) fn unsupported(
    accountant: AccountantKind,
    event: &DpEvent,
    reason: impl Into<String>,
) -> AccountantError {
    AccountantError::UnsupportedEvent {
        accountant,
        event: event.describe(),
        reason: reason.into(),
    }
}
