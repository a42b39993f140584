//! Accountants agree where theory says they must: for the plain Gaussian mechanism the
//! exact ε is known (Balle and Wang 2018), PLD must bracket it tightly and RDP must lie
//! above it; for sampled mechanisms the PLD interval must lie below RDP's upper bound.

use dp_accountant::{
    AccountantKind, DpEvent, GdpAccountant, NeighbouringRelation, PldAccountant, PrivacyAccountant,
};

/// How far above the exact ε the PLD upper bound may be at interval 1e-4 for a few
/// compositions (the discretization error is O(h) per composition at worst).
const PLD_SLACK: f64 = 2e-3;

fn epsilon(
    kind: AccountantKind,
    relation: NeighbouringRelation,
    event: &DpEvent,
    delta: f64,
) -> (f64, Option<f64>) {
    let mut accountant = kind.accountant(relation);
    accountant.compose(event).expect("supported");
    let report = accountant.epsilon(delta).expect("valid");
    (report.epsilon, report.epsilon_lower)
}

#[test]
fn gaussian_mechanism_rdp_pld_and_analytic_agree() {
    for &(sigma, count) in &[(0.8, 1_u64), (2.0, 1), (5.0, 10), (1.0, 4)] {
        let event = DpEvent::gaussian(sigma).repeated(count);
        let delta = 1e-5;
        // k Gaussians with multiplier σ are one with σ/√k; GDP is exact for plain Gaussians.
        let mut gdp = GdpAccountant::new(NeighbouringRelation::AddOrRemoveOne);
        gdp.compose(&event).expect("supported");
        let exact = gdp.epsilon(delta).expect("valid").epsilon;
        let (rdp, _) = epsilon(
            AccountantKind::Rdp,
            NeighbouringRelation::AddOrRemoveOne,
            &event,
            delta,
        );
        let (pld, lower) = epsilon(
            AccountantKind::Pld,
            NeighbouringRelation::AddOrRemoveOne,
            &event,
            delta,
        );
        let lower = lower.expect("PLD lower bound");
        assert!(
            rdp >= exact,
            "σ={sigma}×{count}: RDP {rdp} below exact {exact}"
        );
        assert!(
            pld >= exact - 1e-9,
            "σ={sigma}×{count}: PLD {pld} below exact {exact}"
        );
        assert!(
            pld <= exact + PLD_SLACK,
            "σ={sigma}×{count}: PLD {pld} too far above exact {exact}"
        );
        assert!(
            lower <= exact + 1e-9,
            "σ={sigma}×{count}: lower bound {lower} above exact {exact}"
        );
        // The same under replace-one (sensitivity normalized to the relation).
        let (replace, _) = epsilon(
            AccountantKind::Pld,
            NeighbouringRelation::ReplaceOne,
            &event,
            delta,
        );
        assert_eq!(replace, pld);
    }
}

#[test]
fn laplace_mechanism_pld_matches_its_closed_form() {
    // One Laplace mechanism with ε0 = 1/b: δ(ε) = 1 - e^{(ε - ε0)/2}, so ε(δ) = ε0 + 2 ln(1 - δ).
    for &scale in &[0.5_f64, 1.0, 4.0] {
        let delta: f64 = 1e-3;
        let exact = scale.recip() + 2.0 * (-delta).ln_1p();
        let (pld, lower) = epsilon(
            AccountantKind::Pld,
            NeighbouringRelation::AddOrRemoveOne,
            &DpEvent::laplace(scale),
            delta,
        );
        assert!(
            pld >= exact - 1e-9 && pld <= exact + PLD_SLACK,
            "b={scale}: {pld} vs {exact}"
        );
        assert!(lower.expect("lower bound") <= exact);
        let (rdp, _) = epsilon(
            AccountantKind::Rdp,
            NeighbouringRelation::AddOrRemoveOne,
            &DpEvent::laplace(scale),
            delta,
        );
        assert!(rdp >= exact, "b={scale}: RDP {rdp} below exact {exact}");
    }
}

#[test]
fn randomized_response_pld_matches_its_exact_divergence() {
    // k-ary randomized response, replace-one: the privacy losses are ±ln r and 0 with
    // r = (1-p+p/k)/(p/k); at δ = 0.01 the exact ε solves Σ_j P_j (1 - e^{ε - l_j})_+ = δ on
    // the top atom: ε = ln r + ln(1 - δ/(1-p+p/k)).
    let (p, k) = (0.3_f64, 10_u64);
    let top = 1.0 - p + p / k as f64;
    let ln_ratio = (top / (p / k as f64)).ln();
    let delta = 0.01;
    let exact = ln_ratio + (-delta / top).ln_1p();
    let event = DpEvent::randomized_response(p, k);
    let (pld, lower) = epsilon(
        AccountantKind::Pld,
        NeighbouringRelation::ReplaceOne,
        &event,
        delta,
    );
    assert!(
        pld >= exact - 1e-9 && pld <= exact + PLD_SLACK,
        "{pld} vs {exact}"
    );
    assert!(lower.expect("lower bound") <= exact);
    let (rdp, _) = epsilon(
        AccountantKind::Rdp,
        NeighbouringRelation::ReplaceOne,
        &event,
        delta,
    );
    assert!(rdp >= exact, "RDP {rdp} below exact {exact}");
    // Label DP is a replace-one notion: add/remove-one accountants refuse it.
    for kind in AccountantKind::ALL {
        assert!(
            !kind
                .accountant(NeighbouringRelation::AddOrRemoveOne)
                .supports(&event),
            "{kind}"
        );
    }
}

#[test]
fn sampled_gaussian_pld_interval_lies_below_rdp() {
    for &(sigma, q, steps) in &[(1.0, 0.01, 1000_u64), (0.8, 0.05, 200), (2.0, 0.2, 50)] {
        let event = DpEvent::gaussian(sigma).poisson_sampled(q).repeated(steps);
        let (rdp, _) = epsilon(
            AccountantKind::Rdp,
            NeighbouringRelation::AddOrRemoveOne,
            &event,
            1e-6,
        );
        let (pld, lower) = epsilon(
            AccountantKind::Pld,
            NeighbouringRelation::AddOrRemoveOne,
            &event,
            1e-6,
        );
        let lower = lower.expect("lower bound");
        assert!(lower <= pld, "σ={sigma} q={q}: {lower} > {pld}");
        assert!(pld <= rdp, "σ={sigma} q={q}: PLD {pld} above RDP {rdp}");
        assert!(
            pld - lower < 0.05 * pld,
            "σ={sigma} q={q}: interval [{lower}, {pld}] too wide"
        );
    }
}

#[test]
fn heterogeneous_composition_is_order_independent() {
    let a = DpEvent::gaussian(1.2).poisson_sampled(0.01).repeated(500);
    let b = DpEvent::gaussian(0.9).poisson_sampled(0.02).repeated(300);
    let mut first = PldAccountant::new(NeighbouringRelation::AddOrRemoveOne);
    first.compose(&a).expect("supported");
    first.compose(&b).expect("supported");
    let mut second = PldAccountant::new(NeighbouringRelation::AddOrRemoveOne);
    second.compose(&b).expect("supported");
    second.compose(&a).expect("supported");
    let x = first.epsilon(1e-5).expect("valid").epsilon;
    let y = second.epsilon(1e-5).expect("valid").epsilon;
    assert!((x - y).abs() < 1e-9 * x, "{x} vs {y}");
    // Composing more never helps.
    let mut only_a = PldAccountant::new(NeighbouringRelation::AddOrRemoveOne);
    only_a.compose(&a).expect("supported");
    assert!(only_a.epsilon(1e-5).expect("valid").epsilon < x);
}

#[test]
fn sampling_without_replacement_is_rdp_under_replace_one_only() {
    let event = DpEvent::gaussian(1.0)
        .sampled_without_replacement(60_000, 256)
        .repeated(1000);
    let mut rdp = AccountantKind::Rdp.accountant(NeighbouringRelation::ReplaceOne);
    rdp.compose(&event).expect("supported under replace-one");
    let epsilon = rdp.epsilon(1e-5).expect("valid").epsilon;
    assert!(epsilon.is_finite() && epsilon > 0.0);
    assert!(
        !AccountantKind::Rdp
            .accountant(NeighbouringRelation::AddOrRemoveOne)
            .supports(&event)
    );
    assert!(
        !AccountantKind::Pld
            .accountant(NeighbouringRelation::ReplaceOne)
            .supports(&event)
    );
    assert!(
        !AccountantKind::Gdp
            .accountant(NeighbouringRelation::ReplaceOne)
            .supports(&event)
    );
}

#[test]
fn non_private_events_give_infinite_epsilon_everywhere() {
    for kind in AccountantKind::ALL {
        let mut accountant = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
        accountant
            .compose(&DpEvent::gaussian(2.0))
            .expect("supported");
        accountant.compose(&DpEvent::NonPrivate).expect("supported");
        let report = accountant.epsilon(1e-5).expect("valid");
        assert_eq!(report.epsilon, f64::INFINITY, "{kind}");
        assert_eq!(accountant.delta(10.0).expect("valid").delta, 1.0, "{kind}");
    }
}

#[test]
fn no_op_costs_nothing() {
    for kind in AccountantKind::ALL {
        let mut accountant = kind.accountant(NeighbouringRelation::AddOrRemoveOne);
        accountant
            .compose(&DpEvent::NoOp.repeated(1000))
            .expect("supported");
        assert_eq!(
            accountant.epsilon(1e-5).expect("valid").epsilon,
            0.0,
            "{kind}"
        );
    }
}
