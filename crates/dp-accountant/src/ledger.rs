//! The ledger: an accountant's whole state, as serializable data.

use serde::{Deserialize, Serialize};

use crate::{AccountantError, DpEvent, NeighbouringRelation};

/// One line of a ledger: `event` composed `count` times in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The event.
    pub event: DpEvent,
    /// How many consecutive times it was composed (at least 1).
    pub count: u64,
}

/// Every event an accountant composed, in order, with the neighbouring relation.
///
/// Consecutive compositions of an identical event share one entry (its `count` grows), so
/// a trainer that composes its step event once per step keeps a one-line ledger.
/// Accountants compute ε from the ledger alone, so restoring a serialized ledger into an
/// accountant with the same settings reproduces ε bit for bit (on the same platform; with
/// serde_json enable its `float_roundtrip` feature so that floats are read back exactly).
///
/// # Examples
///
/// ```
/// use dp_accountant::{AccountantKind, DpEvent, NeighbouringRelation, PrivacyAccountant, RdpAccountant};
///
/// let mut accountant = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne);
/// let step = DpEvent::gaussian(1.1).poisson_sampled(0.01);
/// for _ in 0..100 {
///     accountant.compose(&step)?;
/// }
/// assert_eq!(accountant.ledger().entries().len(), 1);
/// assert_eq!(accountant.ledger().entries()[0].count, 100);
///
/// let restored = AccountantKind::Rdp.restore(accountant.ledger())?;
/// assert_eq!(
///     restored.epsilon(1e-5)?.epsilon.to_bits(),
///     accountant.epsilon(1e-5)?.epsilon.to_bits()
/// );
/// # Ok::<(), dp_accountant::AccountantError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    neighbouring_relation: NeighbouringRelation,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// An empty ledger under `neighbouring_relation`.
    pub fn new(neighbouring_relation: NeighbouringRelation) -> Self {
        Ledger {
            neighbouring_relation,
            entries: Vec::new(),
        }
    }

    /// The relation the events were accounted under.
    pub fn neighbouring_relation(&self) -> NeighbouringRelation {
        self.neighbouring_relation
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// Whether nothing was composed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The whole ledger as one event (a composition of self-compositions).
    pub fn to_event(&self) -> DpEvent {
        DpEvent::Composed(
            self.entries
                .iter()
                .map(|entry| match entry.count {
                    1 => entry.event.clone(),
                    count => entry.event.clone().repeated(count),
                })
                .collect(),
        )
    }

    /// Where `push(event)` would put the event: `Some(index)` of the entry whose count grows,
    /// or `None` for a new entry. Errors if the count would overflow.
    pub(crate) fn merge_target(&self, event: &DpEvent) -> Result<Option<usize>, AccountantError> {
        match self.entries.last() {
            Some(last) if last.event == *event => {
                last.count
                    .checked_add(1)
                    .ok_or(AccountantError::CountOverflow)?;
                Ok(Some(self.entries.len() - 1))
            }
            _ => Ok(None),
        }
    }

    /// Appends `event`, merging it into the last entry if identical. Call `merge_target`
    /// first: this cannot fail after it succeeded.
    pub(crate) fn push(&mut self, event: &DpEvent) {
        match self.entries.last_mut() {
            Some(last) if last.event == *event => last.count = last.count.saturating_add(1),
            _ => self.entries.push(LedgerEntry {
                event: event.clone(),
                count: 1,
            }),
        }
    }

    /// Appends `entry` as a new line, never merging (restoring a ledger verbatim).
    pub(crate) fn append(&mut self, entry: LedgerEntry) {
        self.entries.push(entry);
    }

    /// Checks the shape of a deserialized ledger: no zero counts.
    pub(crate) fn check_counts(&self) -> Result<(), AccountantError> {
        match self.entries.iter().find(|entry| entry.count == 0) {
            Some(_) => Err(AccountantError::invalid(
                "count",
                0.0,
                "ledger entries need count >= 1",
            )),
            None => Ok(()),
        }
    }
}
