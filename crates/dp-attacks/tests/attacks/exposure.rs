//! Exposure and extraction on synthetic models with known ranks.

use dp_attacks::{
    ExposureConfig, ExposureMethod, ExtractionSearch, Extrapolation, NextTokenScorer,
    RandomnessSpace, canary_exposure, exact_exposure, extract_secret, sampled_exposure,
};

use crate::common;

/// A character model with a fixed, pseudo-random next-digit distribution per context (a hash of
/// the context), so that log-perplexities of different secrets differ. Implements the batched
/// method the way a neural model would: one "forward pass" per context.
struct HashedModel;

impl HashedModel {
    fn weights(context: &[u8]) -> [f64; 10] {
        let mut state = context.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut weights = [0.0; 10];
        for w in &mut weights {
            state ^= state >> 33;
            state = state.wrapping_mul(0xff51_afd7_ed55_8ccd);
            *w = 0.2 + (state >> 11) as f64 / (1_u64 << 53) as f64;
        }
        weights
    }
}

impl NextTokenScorer<u8> for HashedModel {
    fn log_probability(&self, context: &[u8], next: &u8) -> f64 {
        let weights = Self::weights(context);
        (weights[usize::from(next - b'0')] / weights.iter().sum::<f64>()).ln()
    }
}

fn digits(length: usize) -> RandomnessSpace<u8> {
    RandomnessSpace::new(b"0123456789".to_vec(), length).expect("ten distinct digits")
}

#[test]
fn exposure_of_rank_one_is_log2_of_the_space() {
    let space = digits(4);
    let secret = b"3141".to_vec();
    let memorized = |context: &[u8], next: &u8| {
        if *next == secret[context.len() - 2] {
            0.91_f64.ln()
        } else {
            0.01_f64.ln()
        }
    };
    let config = ExposureConfig {
        max_exact_space_size: 10_000,
        sample_size: 1,
        extrapolation: Extrapolation::SampleRank,
    };
    let exposure = canary_exposure(
        &memorized,
        b"> ",
        &secret,
        &space,
        &config,
        &mut common::rng(0),
    )
    .unwrap();
    assert_eq!(exposure.method, ExposureMethod::Exact);
    assert_eq!(exposure.rank, 1.0);
    assert_eq!(exposure.exposure, 10_000_f64.log2());
    assert_eq!(exposure.candidates_scored, 10_000);
    // A model that knows nothing: every sequence ties, and ties count against the canary.
    let uniform = |_: &[u8], _: &u8| 0.1_f64.ln();
    let exposure = canary_exposure(
        &uniform,
        b"> ",
        &secret,
        &space,
        &config,
        &mut common::rng(0),
    )
    .unwrap();
    assert_eq!((exposure.rank, exposure.exposure), (10_000.0, 0.0));
}

#[test]
fn exact_rank_matches_brute_force_and_sampling_agrees() {
    let space = digits(4);
    let prefix = b"secret: ";
    let all: Vec<f64> = (0..10_000)
        .map(|i| {
            dp_attacks::log_perplexity(&HashedModel, prefix, &space.sequence_at(i).unwrap())
                .unwrap()
        })
        .collect();
    // A canary of middling rank, and the brute-force rank from an independent computation.
    let secret = space.sequence_at(4242).unwrap();
    let canary = all[4242];
    let brute_rank = all.iter().filter(|&&lp| lp <= canary).count() as f64;
    let exact_config = ExposureConfig {
        max_exact_space_size: 10_000,
        sample_size: 1,
        extrapolation: Extrapolation::SampleRank,
    };
    let exact = canary_exposure(
        &HashedModel,
        prefix,
        &secret,
        &space,
        &exact_config,
        &mut common::rng(1),
    )
    .unwrap();
    assert_eq!(exact.rank, brute_rank);
    assert!((exact.canary_log_perplexity - canary).abs() < 1e-9);
    // The enumeration's log-perplexities are the ones `log_perplexity` gives, bit for bit.
    let from_all = exact_exposure(exact.canary_log_perplexity, &all).unwrap();
    assert_eq!(
        (from_all.rank, from_all.exposure),
        (exact.rank, exact.exposure)
    );
    // Sampling 20000 candidates: the fraction p = rank / |R| is estimated with standard error
    // sqrt(p (1 - p) / n); allow 5 standard errors (false-failure rate < 6e-7).
    let sampled_config = ExposureConfig {
        max_exact_space_size: 0,
        sample_size: 20_000,
        ..exact_config
    };
    let sampled = canary_exposure(
        &HashedModel,
        prefix,
        &secret,
        &space,
        &sampled_config,
        &mut common::rng(2),
    )
    .unwrap();
    let p = brute_rank / 10_000.0;
    let tolerance = 5.0 * (p * (1.0 - p) / 20_000.0).sqrt() * 10_000.0;
    assert!(
        (sampled.rank - brute_rank).abs() < tolerance,
        "{} vs {brute_rank}",
        sampled.rank
    );
    assert_eq!(
        sampled.method,
        ExposureMethod::Sampled(Extrapolation::SampleRank)
    );
}

#[test]
fn normal_fit_extrapolates_a_normal_population_exactly() {
    // Candidates' log-perplexities ~ N(30, 2²) exactly (quantiles); canary at 30 - 2·4.753424
    // has Φ(z) = 1e-6, so exposure = log2(1e6) = 19.93.
    let standard = statrs::distribution::Normal::standard();
    use statrs::distribution::ContinuousCDF;
    let sample: Vec<f64> = (1..=9999)
        .map(|i| 30.0 + 2.0 * standard.inverse_cdf(f64::from(i) / 10_000.0))
        .collect();
    let z = standard.inverse_cdf(1e-6);
    let e = sampled_exposure(30.0 + 2.0 * z, &sample, 40.0, Extrapolation::NormalFit).unwrap();
    assert!((e.exposure - 1e6_f64.log2()).abs() < 0.05, "{}", e.exposure);
    // The rank scaling cannot see beyond its sample: log2(10^4).
    let r = sampled_exposure(30.0 + 2.0 * z, &sample, 40.0, Extrapolation::SampleRank).unwrap();
    assert!((r.exposure - 10_000_f64.log2()).abs() < 1e-12);
}

#[test]
fn beam_search_recovers_the_most_likely_secret() {
    let space = digits(3);
    let prefix = b"code ";
    // The most likely sequence under the hashed model is rank 1 of the exact enumeration.
    let all: Vec<(u128, f64)> = (0..1000)
        .map(|i| {
            (
                i,
                dp_attacks::log_perplexity(&HashedModel, prefix, &space.sequence_at(i).unwrap())
                    .unwrap(),
            )
        })
        .collect();
    let best = all.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
    let secret = space.sequence_at(best).unwrap();
    let outcome = extract_secret(
        &HashedModel,
        prefix,
        &space,
        &ExtractionSearch::beam(1000, 1).unwrap(),
        &secret,
    )
    .unwrap();
    // A beam as wide as the space is exhaustive: the top candidate is the true optimum.
    assert!(outcome.recovered);
    assert_eq!(outcome.candidates.len(), 1000);
    // A narrow beam costs few scorer calls: 1 + 5 + 5 contexts.
    let narrow = extract_secret(
        &HashedModel,
        prefix,
        &space,
        &ExtractionSearch::beam(5, 5).unwrap(),
        &secret,
    )
    .unwrap();
    assert_eq!(narrow.scorer_calls, 11);
    assert!(
        narrow
            .candidates
            .windows(2)
            .all(|w| w[0].log_perplexity <= w[1].log_perplexity)
    );
}
