//! The ledger is the accountant's state: serialized (JSON) and restored, it reproduces ε
//! bit for bit, whatever sequence of events produced it.

use dp_accountant::{AccountantKind, DpEvent, Ledger, NeighbouringRelation, PrivacyAccountant};
use proptest::prelude::*;

/// A DP-SGD-like event: a Poisson-sampled Gaussian step, or a plain Gaussian release
/// (e.g. an adaptive-clipping count), or a no-op.
fn step_event() -> impl Strategy<Value = DpEvent> {
    prop_oneof![
        (0.6_f64..4.0, 1e-3_f64..0.3)
            .prop_map(|(sigma, q)| DpEvent::gaussian(sigma).poisson_sampled(q)),
        (5.0_f64..50.0).prop_map(DpEvent::gaussian),
        Just(DpEvent::NoOp),
    ]
}

/// A sequence of (event, how many times in a row it is composed).
fn history() -> impl Strategy<Value = Vec<(DpEvent, u64)>> {
    prop::collection::vec((step_event(), 1_u64..20), 1..8)
}

fn replay(kind: AccountantKind, history: &[(DpEvent, u64)]) -> Box<dyn PrivacyAccountant + Send> {
    let mut accountant = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
    for (event, times) in history {
        for _ in 0..*times {
            accountant.compose(event).expect("supported");
        }
    }
    accountant
}

fn round_trip(ledger: &Ledger) -> Ledger {
    let json = serde_json::to_string(ledger).expect("serializes");
    serde_json::from_str(&json).expect("deserializes")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn restored_ledger_reproduces_epsilon_bit_for_bit(history in history()) {
        for kind in [AccountantKind::Rdp, AccountantKind::Gdp] {
            let original = replay(kind, &history);
            let ledger = round_trip(original.ledger());
            prop_assert_eq!(&ledger, original.ledger());
            let restored = kind.restore(&ledger).expect("valid ledger");
            for delta in [1e-3, 1e-5, 1e-9] {
                let a = original.epsilon(delta).expect("valid").epsilon;
                let b = restored.epsilon(delta).expect("valid").epsilon;
                prop_assert_eq!(a.to_bits(), b.to_bits(), "{}: {} vs {}", kind, a, b);
            }
            // Composing more after a restore continues exactly as without the restore.
            let extra = DpEvent::gaussian(1.0).poisson_sampled(0.05);
            let mut continued = kind.restore(&ledger).expect("valid ledger");
            let mut uninterrupted = replay(kind, &history);
            continued.compose(&extra).expect("supported");
            uninterrupted.compose(&extra).expect("supported");
            prop_assert_eq!(
                continued.epsilon(1e-5).expect("valid").epsilon.to_bits(),
                uninterrupted.epsilon(1e-5).expect("valid").epsilon.to_bits()
            );
        }
    }
}

proptest! {
    // PLD composes by FFT at every query: fewer cases.
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn restored_pld_ledger_reproduces_epsilon_bit_for_bit(history in history()) {
        let original = replay(AccountantKind::Pld, &history);
        let restored = AccountantKind::Pld.restore(&round_trip(original.ledger())).expect("valid ledger");
        let a = original.epsilon(1e-5).expect("valid");
        let b = restored.epsilon(1e-5).expect("valid");
        prop_assert_eq!(a.epsilon.to_bits(), b.epsilon.to_bits());
        prop_assert_eq!(a.epsilon_lower.map(f64::to_bits), b.epsilon_lower.map(f64::to_bits));
    }
}

#[test]
fn consecutive_identical_events_share_one_entry() {
    let mut accountant = AccountantKind::Rdp.accountant(NeighbouringRelation::AddOrRemoveOne);
    let step = DpEvent::gaussian(1.1).poisson_sampled(0.01);
    let clip = DpEvent::gaussian(10.0);
    for _ in 0..3 {
        for _ in 0..100 {
            accountant.compose(&step).expect("supported");
        }
        accountant.compose(&clip).expect("supported");
    }
    let counts: Vec<u64> = accountant
        .ledger()
        .entries()
        .iter()
        .map(|e| e.count)
        .collect();
    assert_eq!(counts, vec![100, 1, 100, 1, 100, 1]);
}

#[test]
fn ledger_json_is_readable_and_keeps_the_relation() {
    let mut accountant = AccountantKind::Rdp.accountant(NeighbouringRelation::ReplaceOne);
    accountant
        .compose(&DpEvent::randomized_response(0.5, 10).repeated(3))
        .expect("supported");
    let json = serde_json::to_value(accountant.ledger()).expect("serializes");
    assert_eq!(json["neighbouring_relation"], "replace_one");
    assert_eq!(json["entries"][0]["count"], 1);
    assert_eq!(json["entries"][0]["event"]["self_composed"]["count"], 3);
    // A ledger restores only into an accountant of the same relation.
    let ledger: Ledger = serde_json::from_value(json).expect("deserializes");
    let mut other = AccountantKind::Rdp.accountant(NeighbouringRelation::AddOrRemoveOne);
    assert!(other.restore(&ledger).is_err());
    assert!(other.ledger().is_empty());
    assert!(AccountantKind::Rdp.restore(&ledger).is_ok());
}

#[test]
fn unsupported_ledger_is_refused_whole() {
    let mut good = AccountantKind::Rdp.accountant(NeighbouringRelation::AddOrRemoveOne);
    good.compose(&DpEvent::gaussian(1.0).poisson_sampled(0.1))
        .expect("supported");
    good.compose(&DpEvent::laplace(1.0)).expect("supported");
    // GDP does not handle Laplace: restoring fails and leaves the GDP accountant empty.
    let mut gdp = AccountantKind::Gdp.accountant(NeighbouringRelation::AddOrRemoveOne);
    assert!(gdp.restore(good.ledger()).is_err());
    assert!(gdp.ledger().is_empty());
}
