//! Published reference values (DESIGN.md section 9), each with its source. All at
//! add/remove-one neighbours.

use dp_accountant::{
    AccountantKind, DpEvent, NeighbouringRelation, PrivacyAccountant, RdpAccountant, RdpConversion,
    dp_sgd_epsilon, dp_sgd_event,
};

/// TF Privacy MNIST tutorial: 60000 examples, batch 256, 60 epochs.
const MNIST_Q: f64 = 256.0 / 60000.0;
const MNIST_STEPS: u64 = 14063;

/// Opacus's RDP orders (`RDPAccountant.DEFAULT_ALPHAS`): 1.1 to 10.9 by 0.1, then 12 to 63.
fn opacus_orders() -> Vec<f64> {
    (1..100)
        .map(|x| 1.0 + f64::from(x) / 10.0)
        .chain((12..64).map(f64::from))
        .collect()
}

fn rdp_epsilon(
    orders: Vec<f64>,
    conversion: RdpConversion,
    event: &DpEvent,
    delta: f64,
) -> (f64, Option<f64>) {
    let mut accountant = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne)
        .with_orders(orders)
        .expect("valid orders")
        .with_conversion(conversion);
    accountant.compose(event).expect("supported");
    let report = accountant.epsilon(delta).expect("valid delta");
    (report.epsilon, report.optimal_order)
}

#[test]
fn opacus_rdp_accountant_test() {
    // Opacus `accountants_test.py::test_rdp_accountant`: q = 0.04, σ = 1.5, 2250 steps,
    // δ = 1e-5, `assertAlmostEqual(epsilon, 7.32911117143)` (7 decimal places).
    const TOLERANCE: f64 = 5e-8;
    let (epsilon, _) = rdp_epsilon(
        opacus_orders(),
        RdpConversion::Improved,
        &dp_sgd_event(1.5, 0.04, 2250),
        1e-5,
    );
    assert!((epsilon - 7.32911117143).abs() < TOLERANCE, "{epsilon}");
}

#[test]
fn dp_accounting_gaussian_conversion_test() {
    // dp_accounting `rdp_privacy_accountant_test.py::test_compute_epsilon_delta_gaussian`:
    // q = 1, σ = 4.530877117, orders 1.001 to 99.999 by 0.001 give (ε = 1, δ = 1e-6) through
    // the improved conversion (`assertAlmostEqual`, 7 places).
    const TOLERANCE: f64 = 5e-8;
    let orders: Vec<f64> = (1001..100_000).map(|i| f64::from(i) * 0.001).collect();
    let mut accountant = RdpAccountant::new(NeighbouringRelation::AddOrRemoveOne)
        .with_orders(orders)
        .expect("valid");
    accountant
        .compose(&DpEvent::gaussian(4.530_877_117))
        .expect("supported");
    let epsilon = accountant.epsilon(1e-6).expect("valid").epsilon;
    assert!((epsilon - 1.0).abs() < TOLERANCE, "{epsilon}");
    let delta = accountant.delta(1.0).expect("valid").delta;
    assert!((delta - 1e-6).abs() < TOLERANCE * 1e-6, "{delta}");
}

#[test]
fn tf_privacy_mnist_tutorial_classic_conversion() {
    // TF Privacy MNIST tutorial README: σ = 1.1, 60 epochs of batch 256, "ε = 3.01" (RDP,
    // classic conversion, δ = 1e-5). Opacus's classic analysis at its orders: 3.0083810468.
    let (epsilon, _) = rdp_epsilon(
        opacus_orders(),
        RdpConversion::Classic,
        &dp_sgd_event(1.1, MNIST_Q, MNIST_STEPS),
        1e-5,
    );
    assert!(
        (epsilon - 3.008_381_046_825_362_7).abs() < 1e-9,
        "{epsilon}"
    );
    assert!(
        (epsilon - 3.01).abs() < 0.005,
        "published 3.01, got {epsilon}"
    );
}

#[test]
fn tf_privacy_mnist_tutorial_improved_conversion() {
    // dp_accounting 0.6 `RdpAccountant().get_epsilon_and_optimal_order(1e-5)` on the same
    // setting: (2.596655529521983, 8.1). dp_accounting over-estimates the RDP at fractional
    // orders, so we must not be above it; the exact value at α = 8.1 (50-digit quadrature of
    // the MTZ integral) is 2.5966555286809167.
    const DP_ACCOUNTING: f64 = 2.596_655_529_521_983;
    const EXACT_AT_8_1: f64 = 2.596_655_528_680_916_7;
    let report =
        dp_sgd_epsilon(AccountantKind::Rdp, 1.1, MNIST_Q, MNIST_STEPS, 1e-5).expect("valid");
    assert!(
        report.epsilon <= DP_ACCOUNTING,
        "{} above dp_accounting",
        report.epsilon
    );
    assert!(
        report.epsilon >= EXACT_AT_8_1 * (1.0 - 1e-6),
        "{}",
        report.epsilon
    );
    assert_eq!(report.optimal_order, Some(8.1));
    // With Opacus's orders the optimum is the same order and matches the exact value.
    let (opacus, order) = rdp_epsilon(
        opacus_orders(),
        RdpConversion::Improved,
        &dp_sgd_event(1.1, MNIST_Q, MNIST_STEPS),
        1e-5,
    );
    assert_eq!(order, Some(8.1));
    assert!(
        (EXACT_AT_8_1..=EXACT_AT_8_1 * (1.0 + 1e-10)).contains(&opacus),
        "{opacus}"
    );
}

#[test]
fn pld_mnist_tutorial() {
    // dp_accounting 0.6 `PLDAccountant(value_discretization_interval=1e-4)`:
    // 2.381778813576912. Ours may be above it by at most 1% (issue target) and must not be
    // below its lower bound.
    const DP_ACCOUNTING: f64 = 2.381_778_813_576_912;
    let report =
        dp_sgd_epsilon(AccountantKind::Pld, 1.1, MNIST_Q, MNIST_STEPS, 1e-5).expect("valid");
    assert!(
        report.epsilon >= DP_ACCOUNTING * (1.0 - 1e-5),
        "{}",
        report.epsilon
    );
    assert!(report.epsilon <= DP_ACCOUNTING * 1.01, "{}", report.epsilon);
    let lower = report.epsilon_lower.expect("PLD reports a lower bound");
    assert!(
        lower <= DP_ACCOUNTING && lower > 0.97 * DP_ACCOUNTING,
        "lower bound {lower}"
    );
}

#[test]
fn opacus_mnist_readme() {
    // Opacus MNIST README: batch 240 of 60000, σ = 1.3, 15 epochs (3750 steps), "ε = 1.16"
    // (RDP, classic conversion as Opacus then used, δ = 1e-5). Opacus's classic analysis at its
    // orders: 1.1597493985896183.
    let (epsilon, _) = rdp_epsilon(
        opacus_orders(),
        RdpConversion::Classic,
        &dp_sgd_event(1.3, 240.0 / 60000.0, 3750),
        1e-5,
    );
    assert!(
        (epsilon - 1.159_749_398_589_618_3).abs() < 1e-9,
        "{epsilon}"
    );
    assert!(
        (epsilon - 1.16).abs() < 0.005,
        "published 1.16, got {epsilon}"
    );
}

#[test]
fn abadi_moments_accountant() {
    // Abadi et al. 2016, Sec. 3.1: q = 0.01, σ = 4, 10000 steps, δ = 1e-5: the moments
    // accountant (integer orders up to 32, classic conversion) gives ε ≈ 1.26.
    let orders: Vec<f64> = (2..=32).map(f64::from).collect();
    let (epsilon, order) = rdp_epsilon(
        orders,
        RdpConversion::Classic,
        &dp_sgd_event(4.0, 0.01, 10_000),
        1e-5,
    );
    assert!((epsilon - 1.26).abs() < 0.005, "{epsilon}");
    assert_eq!(order, Some(20.0));
    // The improved conversion at the default orders is tighter.
    let improved = dp_sgd_epsilon(AccountantKind::Rdp, 4.0, 0.01, 10_000, 1e-5)
        .expect("valid")
        .epsilon;
    assert!(improved < epsilon);
}

#[test]
fn opacus_gdp_accountant_test() {
    // Opacus `accountants_test.py::test_gdp_accountant`: q = 0.04, σ = 1.5, int(90 // 0.04)
    // = 2249 steps, δ = 1e-5: 6.59 < ε < 6.6; Opacus `compute_eps_poisson` at 2250 steps:
    // 6.6015670901582295, and for the MNIST tutorial 2.324361662835491.
    let report = dp_sgd_epsilon(AccountantKind::Gdp, 1.5, 0.04, 2249, 1e-5).expect("valid");
    assert!(
        report.epsilon > 6.59 && report.epsilon < 6.6,
        "{}",
        report.epsilon
    );
    let at_2250 = dp_sgd_epsilon(AccountantKind::Gdp, 1.5, 0.04, 2250, 1e-5)
        .expect("valid")
        .epsilon;
    assert!(
        (at_2250 - 6.601_567_090_158_229_5).abs() < 1e-8,
        "{at_2250}"
    );
    let mnist = dp_sgd_epsilon(AccountantKind::Gdp, 1.1, MNIST_Q, MNIST_STEPS, 1e-5)
        .expect("valid")
        .epsilon;
    assert!((mnist - 2.324_361_662_835_491).abs() < 1e-8, "{mnist}");
}
