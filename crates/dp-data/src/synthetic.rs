//! Seeded synthetic data for fast tests: Gaussian mixtures for classification, random token
//! sequences and random text.

use ndarray::{Array1, Array2};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::StandardNormal;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// A mixture of isotropic Gaussians, one per class.
///
/// Class `c` has mean `class_separation * u_c`, with `u_c` a uniformly random unit vector, and
/// covariance `noise_std^2 I`; classes are balanced (their sizes differ by at most one).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixtureConfig {
    num_examples: usize,
    num_features: usize,
    num_classes: usize,
    class_separation: f32,
    noise_std: f32,
}

impl GaussianMixtureConfig {
    /// A validated configuration.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if a count is zero or a scale is negative or not
    /// finite.
    pub fn new(
        num_examples: usize,
        num_features: usize,
        num_classes: usize,
        class_separation: f32,
        noise_std: f32,
    ) -> Result<Self> {
        for (name, value) in [
            ("num_examples", num_examples),
            ("num_features", num_features),
            ("num_classes", num_classes),
        ] {
            if value == 0 {
                return Err(DataError::invalid(name, 0, "must be at least 1"));
            }
        }
        for (name, value) in [
            ("class_separation", class_separation),
            ("noise_std", noise_std),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(DataError::invalid(
                    name,
                    value,
                    "must be finite and non-negative",
                ));
            }
        }
        Ok(Self {
            num_examples,
            num_features,
            num_classes,
            class_separation,
            noise_std,
        })
    }
}

/// Draws a labelled data set from a Gaussian mixture.
///
/// # Errors
/// None for a valid configuration; the `Result` is kept for symmetry with the loaders.
///
/// # Examples
/// ```
/// use dp_data::synthetic::{GaussianMixtureConfig, gaussian_mixture};
/// use rand::SeedableRng;
///
/// let config = GaussianMixtureConfig::new(90, 5, 3, 4.0, 1.0)?;
/// let data = gaussian_mixture(&config, &mut rand_chacha::ChaCha20Rng::seed_from_u64(0))?;
/// assert_eq!(data.features().dim(), (90, 5));
/// assert_eq!(data.class_counts(), vec![30, 30, 30]);
/// # Ok::<(), dp_data::DataError>(())
/// ```
pub fn gaussian_mixture<R: Rng + ?Sized>(
    config: &GaussianMixtureConfig,
    rng: &mut R,
) -> Result<Dataset> {
    let d = config.num_features;
    let means: Vec<Array1<f32>> = (0..config.num_classes)
        .map(|_| {
            let direction = standard_normal_vector(d, rng);
            let norm = direction.dot(&direction).sqrt();
            // A zero draw has probability zero; fall back to the first axis rather than divide by 0.
            if norm > 0.0 {
                direction * (config.class_separation / norm)
            } else {
                Array1::from_shape_fn(d, |j| if j == 0 { config.class_separation } else { 0.0 })
            }
        })
        .collect();
    let mut labels: Vec<usize> = (0..config.num_examples)
        .map(|i| i % config.num_classes)
        .collect();
    labels.shuffle(rng);
    let mut features = Array2::zeros((config.num_examples, d));
    for (mut row, &label) in features.rows_mut().into_iter().zip(&labels) {
        let noise = standard_normal_vector(d, rng);
        row.assign(&(&means[label] + &(noise * config.noise_std)));
    }
    Dataset::new(features, labels, config.num_classes)
}

fn standard_normal_vector<R: Rng + ?Sized>(d: usize, rng: &mut R) -> Array1<f32> {
    Array1::from_shape_simple_fn(d, || rng.sample(StandardNormal))
}

/// `num_sequences x length` tokens drawn independently and uniformly from `0..vocabulary_size`.
///
/// # Errors
/// [`DataError::InvalidParameter`] if `vocabulary_size` is zero.
pub fn random_sequences<R: Rng + ?Sized>(
    num_sequences: usize,
    length: usize,
    vocabulary_size: usize,
    rng: &mut R,
) -> Result<Array2<usize>> {
    if vocabulary_size == 0 {
        return Err(DataError::invalid(
            "vocabulary_size",
            0,
            "must be at least 1",
        ));
    }
    Ok(Array2::from_shape_simple_fn(
        (num_sequences, length),
        || rng.random_range(0..vocabulary_size),
    ))
}

/// `num_chars` characters drawn independently and uniformly from `alphabet`: a stand-in corpus
/// for character language model tests.
///
/// # Errors
/// [`DataError::InvalidParameter`] if `alphabet` is empty.
pub fn random_text<R: Rng + ?Sized>(
    num_chars: usize,
    alphabet: &str,
    rng: &mut R,
) -> Result<String> {
    let chars: Vec<char> = alphabet.chars().collect();
    if chars.is_empty() {
        return Err(DataError::invalid(
            "alphabet",
            "\"\"",
            "needs at least one character",
        ));
    }
    Ok((0..num_chars)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// With separation 10 and unit noise the nearest class mean is the true class except with
    /// negligible probability (each coordinate would have to be off by about 5 sd).
    #[test]
    fn well_separated_mixture_is_classified_by_nearest_mean() {
        let config = GaussianMixtureConfig::new(300, 8, 3, 10.0, 1.0).unwrap();
        let data = gaussian_mixture(&config, &mut ChaCha20Rng::seed_from_u64(11)).unwrap();
        let means: Vec<Array1<f32>> = (0..3)
            .map(|c| {
                let rows: Vec<usize> = (0..data.len()).filter(|&i| data.labels()[i] == c).collect();
                data.select(&rows)
                    .unwrap()
                    .features()
                    .mean_axis(ndarray::Axis(0))
                    .unwrap()
            })
            .collect();
        for (row, &label) in data.features().rows().into_iter().zip(data.labels()) {
            let distance = |c: usize| (&row - &means[c]).mapv(|x| x * x).sum();
            let nearest = (0..3)
                .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
                .unwrap();
            assert_eq!(nearest, label);
        }
    }

    #[test]
    fn generators_are_deterministic_for_a_seed() {
        let run = || {
            let mut rng = ChaCha20Rng::seed_from_u64(4);
            (
                random_sequences(3, 5, 7, &mut rng).unwrap(),
                random_text(20, "ab c", &mut rng).unwrap(),
            )
        };
        let (sequences, text) = run();
        assert_eq!((sequences.clone(), text.clone()), run());
        assert!(sequences.iter().all(|&t| t < 7));
        assert!(text.chars().all(|c| "ab c".contains(c)));
    }

    #[test]
    fn rejects_invalid_parameters() {
        assert!(GaussianMixtureConfig::new(0, 1, 1, 1.0, 1.0).is_err());
        assert!(GaussianMixtureConfig::new(1, 1, 1, f32::NAN, 1.0).is_err());
        assert!(GaussianMixtureConfig::new(1, 1, 1, 1.0, -1.0).is_err());
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        assert!(random_sequences(1, 1, 0, &mut rng).is_err());
        assert!(random_text(1, "", &mut rng).is_err());
    }
}
