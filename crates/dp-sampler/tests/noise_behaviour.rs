//! Deterministic behaviour of the noise functions: reproducibility, thread-count invariance,
//! reports, adversarial inputs.

use dp_sampler::{
    NoiseMode, RngProvenance, SamplerError, SecureRng, SeededRng, add_gaussian_noise,
    sample_gaussian,
};

fn noised_in_pool(threads: usize, mode: NoiseMode) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    pool.install(|| {
        let mut buffer = vec![1.0f32; 100_000];
        add_gaussian_noise(&mut buffer, 0.5, mode, &mut SeededRng::new(77)).expect("ok");
        buffer
    })
}

#[test]
fn seeded_noise_does_not_depend_on_the_thread_count() {
    for mode in [NoiseMode::Secure, NoiseMode::Fast] {
        assert_eq!(noised_in_pool(1, mode), noised_in_pool(3, mode), "{mode:?}");
    }
}

#[test]
fn different_seeds_give_different_noise_and_reports_record_the_seed() {
    let mut a = vec![0.0f64; 64];
    let mut b = vec![0.0f64; 64];
    let report =
        add_gaussian_noise(&mut a, 1.0, NoiseMode::Fast, &mut SeededRng::new(1)).expect("ok");
    add_gaussian_noise(&mut b, 1.0, NoiseMode::Fast, &mut SeededRng::new(2)).expect("ok");
    assert_ne!(a, b);
    assert_eq!(report.rng, RngProvenance::Seeded { seed: 1 });
    assert_eq!(report.mode, NoiseMode::Fast);
    assert_eq!(report.grid_step, None);
    assert_eq!(report.len, 64);
    let json = serde_json::to_string(&report).expect("serializes");
    assert!(json.contains("\"mode\":\"fast\""), "{json}");
}

#[test]
fn secure_rng_report_says_os_seeded() {
    let mut rng = SecureRng::new().expect("os entropy");
    let (_, report) = sample_gaussian(1.0, NoiseMode::Secure, &mut rng).expect("ok");
    assert_eq!(report.rng, RngProvenance::OsSeeded);
}

#[test]
fn invalid_std_is_an_error() {
    for std in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e300] {
        let mut buffer = [0.0f32; 4];
        let err = add_gaussian_noise(&mut buffer, std, NoiseMode::Secure, &mut SeededRng::new(0))
            .expect_err("invalid std");
        assert!(
            matches!(err, SamplerError::InvalidParameter { name: "std", .. }),
            "{err}"
        );
        assert_eq!(buffer, [0.0; 4], "buffer untouched on error");
    }
}

#[test]
fn non_finite_and_extreme_inputs_are_defined_and_counted() {
    let mut buffer = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        -1e300,
        0.0,
        1e20,
    ];
    let report = add_gaussian_noise(&mut buffer, 1.0, NoiseMode::Secure, &mut SeededRng::new(9))
        .expect("ok");
    assert_eq!(report.out_of_range_inputs, 5);
    assert!(
        (buffer[6] - 1e20).abs() < 1e6,
        "1e20 is inside the range: {}",
        buffer[6]
    );
    assert!(buffer.iter().all(|v| v.is_finite()), "{buffer:?}");
    assert!(buffer[0].abs() < 100.0, "NaN treated as 0: {}", buffer[0]);
    let mut buffer = [f32::NAN, 1.0];
    let report =
        add_gaussian_noise(&mut buffer, 1.0, NoiseMode::Fast, &mut SeededRng::new(9)).expect("ok");
    assert_eq!(report.out_of_range_inputs, 1);
}

#[test]
fn empty_buffers_are_fine() {
    let mut buffer: [f32; 0] = [];
    for mode in [NoiseMode::Secure, NoiseMode::Fast] {
        let report =
            add_gaussian_noise(&mut buffer, 1.0, mode, &mut SeededRng::new(0)).expect("ok");
        assert_eq!(report.len, 0);
        assert_eq!(report.out_of_range_inputs, 0);
    }
}

#[test]
fn secure_noise_adds_to_the_buffer() {
    // With std 1e-6 the noise is tiny: the values stay near their inputs.
    // Inputs up to 2^85·std are represented exactly on the grid before the noise is added.
    let inputs = [3.0f64, -2.0, 1e6, 1e25 * 1e-6];
    let mut buffer = inputs.to_vec();
    let report = add_gaussian_noise(&mut buffer, 1e-6, NoiseMode::Secure, &mut SeededRng::new(3))
        .expect("ok");
    assert_eq!(report.out_of_range_inputs, 0);
    for (value, input) in buffer.iter().zip(inputs) {
        assert!(
            (value - input).abs() <= 1e-4 + input.abs() * 1e-15,
            "{value} vs {input}"
        );
    }
}
