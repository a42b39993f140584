//! Property tests: monotonicity of ε in the steps, the sampling probability and the noise
//! multiplier, and composition (composing a then b equals composing both at once).

use dp_accountant::{
    AccountantKind, DpEvent, NeighbouringRelation, PldAccountant, PrivacyAccountant, dp_sgd_epsilon,
};
use proptest::prelude::*;

/// Relative slack for "equal" ε computed through different but equivalent paths.
const EQUALITY_TOLERANCE: f64 = 1e-9;

/// PLD is discretized: its ε may wiggle by floating-point noise where theory says "equal";
/// monotonicity is checked up to this relative slack.
const PLD_MONOTONICITY_SLACK: f64 = 1e-9;

fn eps(kind: AccountantKind, sigma: f64, q: f64, steps: u64) -> f64 {
    dp_sgd_epsilon(kind, sigma, q, steps, 1e-5)
        .expect("valid parameters")
        .epsilon
}

/// Grid step of the PLD accountant in these tests: coarser than the default to keep debug
/// builds fast; the properties hold at any step.
const PLD_INTERVAL: f64 = 1e-3;

/// A fresh accountant of `kind` (PLD at `PLD_INTERVAL`).
fn accountant(kind: AccountantKind) -> Box<dyn PrivacyAccountant + Send> {
    match kind {
        AccountantKind::Pld => Box::new(
            PldAccountant::new(NeighbouringRelation::AddOrRemoveOne)
                .with_value_discretization_interval(PLD_INTERVAL)
                .expect("valid interval"),
        ),
        AccountantKind::Rdp | AccountantKind::Gdp => {
            kind.accountant(NeighbouringRelation::AddOrRemoveOne)
        }
    }
}

fn pld_eps(sigma: f64, q: f64, steps: u64) -> f64 {
    let mut pld = accountant(AccountantKind::Pld);
    pld.compose(&DpEvent::gaussian(sigma).poisson_sampled(q).repeated(steps))
        .expect("supported");
    pld.epsilon(1e-5).expect("valid").epsilon
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn rdp_and_gdp_are_monotone(
        sigma in 0.5_f64..8.0,
        q in 1e-4_f64..0.5,
        steps in 1_u64..100_000,
        factor in 1.01_f64..3.0,
    ) {
        for kind in [AccountantKind::Rdp, AccountantKind::Gdp] {
            let base = eps(kind, sigma, q, steps);
            prop_assert!(eps(kind, sigma, q, steps + 1 + steps / 2) >= base, "{} steps", kind);
            prop_assert!(eps(kind, sigma, (q * factor).min(1.0), steps) >= base, "{} q", kind);
            prop_assert!(eps(kind, sigma * factor, q, steps) <= base, "{} σ", kind);
        }
    }
}

proptest! {
    // PLD is slower (a composition per case); fewer, smaller cases.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn pld_is_monotone(
        sigma in 0.8_f64..3.0,
        q in 0.01_f64..0.2,
        steps in 1_u64..200,
        factor in 1.05_f64..2.0,
    ) {
        let reference = pld_eps(sigma, q, steps);
        let base = reference * (1.0 - PLD_MONOTONICITY_SLACK);
        prop_assert!(pld_eps(sigma, q, steps * 2) >= base);
        prop_assert!(pld_eps(sigma, (q * factor).min(1.0), steps) >= base);
        prop_assert!(pld_eps(sigma * factor, q, steps) <= reference * (1.0 + PLD_MONOTONICITY_SLACK));
    }

    #[test]
    fn composing_a_then_b_equals_composing_both(
        sigma_a in 0.8_f64..3.0,
        sigma_b in 0.8_f64..3.0,
        q_a in 0.01_f64..0.2,
        steps_a in 1_u64..100,
        steps_b in 1_u64..100,
    ) {
        let a = DpEvent::gaussian(sigma_a).poisson_sampled(q_a).repeated(steps_a);
        let b = DpEvent::gaussian(sigma_b).repeated(steps_b);
        for kind in AccountantKind::ALL {
            let mut separately = accountant(kind);
            separately.compose(&a).expect("supported");
            separately.compose(&b).expect("supported");
            let mut together = accountant(kind);
            together.compose(&a.clone().then(b.clone())).expect("supported");
            let x = separately.epsilon(1e-5).expect("valid").epsilon;
            let y = together.epsilon(1e-5).expect("valid").epsilon;
            prop_assert!((x - y).abs() <= EQUALITY_TOLERANCE * x.max(1.0), "{}: {} vs {}", kind, x, y);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Repeating an event by composing it n times or composing `repeated(n)` once agree.
    #[test]
    fn repeated_equals_composed_n_times(sigma in 0.5_f64..5.0, q in 1e-3_f64..1.0, n in 1_u64..50) {
        let step = DpEvent::gaussian(sigma).poisson_sampled(q);
        for kind in [AccountantKind::Rdp, AccountantKind::Gdp] {
            let mut one_by_one = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
            for _ in 0..n {
                one_by_one.compose(&step).expect("supported");
            }
            let mut at_once = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
            at_once.compose(&step.clone().repeated(n)).expect("supported");
            let x = one_by_one.epsilon(1e-5).expect("valid").epsilon;
            let y = at_once.epsilon(1e-5).expect("valid").epsilon;
            prop_assert!((x - y).abs() <= EQUALITY_TOLERANCE * x.max(1.0), "{}: {} vs {}", kind, x, y);
        }
    }

    /// Invalid parameters are refused by every accountant, and leave it unchanged.
    #[test]
    fn invalid_events_are_refused_before_any_change(
        bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(0.0), -10.0_f64..0.0, 1.0000001_f64..10.0],
    ) {
        for kind in AccountantKind::ALL {
            let mut accountant = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
            accountant.compose(&DpEvent::gaussian(2.0).poisson_sampled(0.1)).expect("supported");
            let before = accountant.epsilon(1e-5).expect("valid").epsilon;
            let bad_sampling = DpEvent::gaussian(1.0).poisson_sampled(bad);
            prop_assert!(accountant.compose(&bad_sampling).is_err());
            if !(bad > 0.0 && bad.is_finite()) {
                prop_assert!(accountant.compose(&DpEvent::gaussian(bad)).is_err());
            }
            prop_assert!(accountant.epsilon(bad).is_err() || bad > 0.0 && bad < 1.0);
            prop_assert_eq!(accountant.ledger().entries().len(), 1);
            prop_assert_eq!(accountant.epsilon(1e-5).expect("valid").epsilon, before);
        }
    }
}
