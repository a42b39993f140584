//! Canaries for measuring memorization: Secret Sharer secrets in text (Carlini et al. 2019,
//! "The Secret Sharer") and mislabelled or out-of-distribution images for auditing.
//!
//! Exposure compares the model's preference for an inserted secret with its preference for
//! secrets of the same format that were never inserted: the *reference candidates* returned
//! here are drawn from the same randomness space, distinct from every inserted secret, so a
//! rank among them estimates the rank in the whole space.

use rand::Rng;
use rand::seq::index::sample;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// Largest number of digits of a secret: `10^18` still fits in a `u64` and a `usize`.
pub const MAX_SECRET_DIGITS: u32 = 18;

/// The format of a secret: a fixed prefix followed by a string of decimal digits.
///
/// The randomness space is every digit string of the given length, `10^digits` secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFormat {
    prefix: String,
    digits: u32,
}

impl SecretFormat {
    /// A prefix and a number of digits.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if `digits` is not in `1..=18`, or the prefix contains
    /// a line break (a canary is inserted as one line).
    pub fn new(prefix: impl Into<String>, digits: u32) -> Result<Self> {
        let prefix = prefix.into();
        if !(1..=MAX_SECRET_DIGITS).contains(&digits) {
            return Err(DataError::invalid("digits", digits, "must be in 1..=18"));
        }
        if prefix.contains(['\n', '\r']) {
            return Err(DataError::invalid(
                "prefix",
                &prefix,
                "must not contain a line break",
            ));
        }
        Ok(Self { prefix, digits })
    }

    /// The format of Carlini et al. 2019: `"my secret number is "` and six digits.
    #[must_use]
    pub fn secret_sharer() -> Self {
        Self {
            prefix: "my secret number is ".into(),
            digits: 6,
        }
    }

    /// The prefix a model is prompted with.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of digits of a secret.
    #[must_use]
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// Number of possible secrets, `10^digits`.
    #[must_use]
    pub fn randomness_space_size(&self) -> u64 {
        10u64.pow(self.digits)
    }

    /// The randomness space in words, for reports.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{:?} followed by one of 10^{} strings of {} decimal digits, uniformly at random",
            self.prefix, self.digits, self.digits
        )
    }

    /// The secret with index `value` (its digits, zero-padded).
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if `value` is not below the randomness space size.
    pub fn secret(&self, value: u64) -> Result<String> {
        if value >= self.randomness_space_size() {
            return Err(DataError::invalid(
                "value",
                value,
                format!(
                    "the randomness space has {} secrets",
                    self.randomness_space_size()
                ),
            ));
        }
        Ok(format!("{value:0width$}", width = self.digits as usize))
    }

    /// The full canary text: prefix and secret.
    #[must_use]
    pub fn canary_text(&self, secret: &str) -> String {
        format!("{}{secret}", self.prefix)
    }
}

/// How many canaries to insert and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCanaryConfig {
    /// The secret format.
    pub format: SecretFormat,
    /// One entry per canary: how many times it is inserted (e.g. `[1, 10, 100]`).
    pub repetitions: Vec<usize>,
    /// How many held-out secrets of the same format to return for exposure.
    pub num_reference_candidates: usize,
}

/// One inserted secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCanary {
    /// The digits.
    pub secret: String,
    /// Prefix and digits, as inserted.
    pub text: String,
    /// How many times it was inserted.
    pub repetitions: usize,
    /// Byte offset of each inserted line in the returned text, ascending.
    pub offsets: Vec<usize>,
}

/// A corpus with canaries inserted, and what exposure needs to be measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanariedText {
    /// The corpus with each canary inserted as a line of its own.
    pub text: String,
    /// The inserted canaries, in the order of [`TextCanaryConfig::repetitions`].
    pub canaries: Vec<TextCanary>,
    /// Held-out secrets (digits) of the same format, never inserted, all distinct.
    pub reference_candidates: Vec<String>,
    /// The format, with the prefix and the randomness space.
    pub format: SecretFormat,
}

/// Inserts Secret Sharer canaries into a corpus at random line boundaries.
///
/// The secrets of all canaries and the reference candidates are drawn together, uniformly
/// without replacement from the randomness space. Each insertion goes before a line chosen
/// uniformly (with replacement) among the corpus's line starts and its end; a corpus that does
/// not end with a line break gets one first. The result depends only on the corpus, the
/// configuration and the RNG state.
///
/// # Errors
/// [`DataError::InvalidParameter`] if there are no canaries, a repetition count is zero, or
/// more secrets are requested than the randomness space holds.
///
/// # Examples
/// ```
/// use dp_data::canary::{SecretFormat, TextCanaryConfig, insert_text_canaries};
/// use rand::SeedableRng;
///
/// let config = TextCanaryConfig {
///     format: SecretFormat::secret_sharer(),
///     repetitions: vec![1, 5],
///     num_reference_candidates: 1000,
/// };
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
/// let out = insert_text_canaries("to be\nor not to be\n", &config, &mut rng)?;
/// assert_eq!(out.text.matches(&out.canaries[1].text).count(), 5);
/// assert!(out.canaries[0].text.starts_with("my secret number is "));
/// # Ok::<(), dp_data::DataError>(())
/// ```
pub fn insert_text_canaries<R: Rng + ?Sized>(
    corpus: &str,
    config: &TextCanaryConfig,
    rng: &mut R,
) -> Result<CanariedText> {
    let format = &config.format;
    if config.repetitions.is_empty() {
        return Err(DataError::invalid(
            "repetitions",
            "[]",
            "insert at least one canary",
        ));
    }
    if config.repetitions.contains(&0) {
        return Err(DataError::invalid(
            "repetitions",
            format!("{:?}", config.repetitions),
            "every canary is inserted at least once",
        ));
    }
    let num_secrets = config.repetitions.len() + config.num_reference_candidates;
    let space = format.randomness_space_size();
    if u64::try_from(num_secrets).map_or(true, |n| n > space) {
        return Err(DataError::invalid(
            "num_reference_candidates",
            config.num_reference_candidates,
            format!("canaries and candidates together exceed the {space} possible secrets"),
        ));
    }
    // `space` is at most 10^18, below usize::MAX on the 64-bit targets we support.
    let values = sample(rng, space as usize, num_secrets);
    let mut secrets = values.iter().map(|v| format.secret(v as u64));
    let mut canaries = Vec::with_capacity(config.repetitions.len());
    for &repetitions in &config.repetitions {
        let secret = secrets.next().expect("sampled one secret per canary")?;
        let text = format.canary_text(&secret);
        canaries.push(TextCanary {
            secret,
            text,
            repetitions,
            offsets: Vec::new(),
        });
    }
    let reference_candidates = secrets.collect::<Result<Vec<_>>>()?;

    let mut base = corpus.to_owned();
    if !base.is_empty() && !base.ends_with('\n') {
        base.push('\n');
    }
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(base.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut insertions: Vec<(usize, usize)> = Vec::new();
    for (canary, &repetitions) in config.repetitions.iter().enumerate() {
        for _ in 0..repetitions {
            insertions.push((line_starts[rng.random_range(0..line_starts.len())], canary));
        }
    }
    insertions.sort_unstable();

    let extra: usize = insertions
        .iter()
        .map(|&(_, c)| canaries[c].text.len() + 1)
        .sum();
    let mut text = String::with_capacity(base.len() + extra);
    let mut copied = 0;
    for (position, canary) in insertions {
        text.push_str(&base[copied..position]);
        copied = position;
        canaries[canary].offsets.push(text.len());
        text.push_str(&canaries[canary].text);
        text.push('\n');
    }
    text.push_str(&base[copied..]);
    Ok(CanariedText {
        text,
        canaries,
        reference_candidates,
        format: format.clone(),
    })
}

/// What an image canary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCanaryKind {
    /// The image is kept and its label replaced by a different class chosen uniformly.
    Mislabelled,
    /// The image is replaced by independent uniform noise in `[0, 1]` (out of distribution)
    /// and given a label chosen uniformly among all classes.
    UniformNoise,
}

/// Which examples of a data set were turned into canaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCanaries {
    /// What was done to them.
    pub kind: ImageCanaryKind,
    /// Indices of the canaries in the returned data set, ascending.
    pub indices: Vec<usize>,
    /// Each canary's label before insertion.
    pub original_labels: Vec<usize>,
    /// Each canary's label after insertion.
    pub canary_labels: Vec<usize>,
}

/// Turns `count` examples, chosen uniformly without replacement, into canaries for auditing
/// (e.g. membership inference on the canaries, or privacy auditing by their inclusion).
///
/// # Errors
/// [`DataError::InvalidParameter`] if `count` exceeds the number of examples, or for
/// [`ImageCanaryKind::Mislabelled`] if there are fewer than two classes.
///
/// # Examples
/// ```
/// use dp_data::canary::{ImageCanaryKind, insert_image_canaries};
/// use dp_data::synthetic::{GaussianMixtureConfig, gaussian_mixture};
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
/// let config = GaussianMixtureConfig::new(100, 4, 3, 3.0, 1.0)?;
/// let data = gaussian_mixture(&config, &mut rng)?;
/// let (data, canaries) = insert_image_canaries(data, 10, ImageCanaryKind::Mislabelled, &mut rng)?;
/// for (i, &index) in canaries.indices.iter().enumerate() {
///     assert_eq!(data.labels()[index], canaries.canary_labels[i]);
///     assert_ne!(canaries.canary_labels[i], canaries.original_labels[i]);
/// }
/// # Ok::<(), dp_data::DataError>(())
/// ```
pub fn insert_image_canaries<R: Rng + ?Sized>(
    mut data: Dataset,
    count: usize,
    kind: ImageCanaryKind,
    rng: &mut R,
) -> Result<(Dataset, ImageCanaries)> {
    if count > data.len() {
        return Err(DataError::invalid(
            "count",
            count,
            format!("the data set has {} examples", data.len()),
        ));
    }
    let num_classes = data.num_classes();
    if kind == ImageCanaryKind::Mislabelled && num_classes < 2 {
        return Err(DataError::invalid(
            "kind",
            "Mislabelled",
            "needs at least two classes",
        ));
    }
    let mut indices = sample(rng, data.len(), count).into_vec();
    indices.sort_unstable();
    let (features, labels) = data.parts_mut();
    let original_labels: Vec<usize> = indices.iter().map(|&i| labels[i]).collect();
    let mut canary_labels = Vec::with_capacity(count);
    for (&index, &original) in indices.iter().zip(&original_labels) {
        let label = match kind {
            ImageCanaryKind::Mislabelled => {
                (original + rng.random_range(1..num_classes)) % num_classes
            }
            ImageCanaryKind::UniformNoise => {
                features
                    .row_mut(index)
                    .map_inplace(|x| *x = rng.random::<f32>());
                rng.random_range(0..num_classes)
            }
        };
        labels[index] = label;
        canary_labels.push(label);
    }
    Ok((
        data,
        ImageCanaries {
            kind,
            indices,
            original_labels,
            canary_labels,
        },
    ))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn config(repetitions: Vec<usize>, num_reference_candidates: usize) -> TextCanaryConfig {
        TextCanaryConfig {
            format: SecretFormat::secret_sharer(),
            repetitions,
            num_reference_candidates,
        }
    }

    #[test]
    fn insertion_is_deterministic_for_a_seed() {
        let corpus = "one\ntwo\nthree\nfour";
        let run = |seed| {
            insert_text_canaries(
                corpus,
                &config(vec![1, 3], 50),
                &mut ChaCha20Rng::seed_from_u64(seed),
            )
            .unwrap()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn canaries_are_whole_lines_and_the_corpus_is_kept() {
        let corpus = "one\ntwo\nthree\nfour";
        let out = insert_text_canaries(
            corpus,
            &config(vec![2, 7], 100),
            &mut ChaCha20Rng::seed_from_u64(3),
        )
        .unwrap();
        let mut remaining: Vec<&str> = out.text.lines().collect();
        for canary in &out.canaries {
            assert_eq!(canary.secret.len(), 6);
            assert_eq!(canary.offsets.len(), canary.repetitions);
            for &offset in &canary.offsets {
                assert!(offset == 0 || out.text.as_bytes()[offset - 1] == b'\n');
                assert!(out.text[offset..].starts_with(&format!("{}\n", canary.text)));
            }
            remaining.retain(|line| *line != canary.text);
        }
        assert_eq!(remaining, ["one", "two", "three", "four"]);
        let mut all: Vec<&String> = out.reference_candidates.iter().collect();
        all.extend(out.canaries.iter().map(|c| &c.secret));
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "canaries and candidates are distinct");
    }

    #[test]
    fn rejects_impossible_requests() {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        assert!(insert_text_canaries("a", &config(vec![], 1), &mut rng).is_err());
        assert!(insert_text_canaries("a", &config(vec![0], 1), &mut rng).is_err());
        assert!(insert_text_canaries("a", &config(vec![1], 1_000_000), &mut rng).is_err());
        assert!(SecretFormat::new("x", 0).is_err());
        assert!(SecretFormat::new("x\n", 3).is_err());
        assert!(SecretFormat::secret_sharer().secret(1_000_000).is_err());
        assert_eq!(SecretFormat::secret_sharer().secret(42).unwrap(), "000042");
    }

    #[test]
    fn image_canaries_change_only_the_chosen_examples() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let config = crate::synthetic::GaussianMixtureConfig::new(50, 3, 4, 2.0, 1.0).unwrap();
        let data = crate::synthetic::gaussian_mixture(&config, &mut rng).unwrap();
        let (noisy, canaries) =
            insert_image_canaries(data.clone(), 5, ImageCanaryKind::UniformNoise, &mut rng)
                .unwrap();
        assert_eq!(canaries.indices.len(), 5);
        for i in 0..data.len() {
            let is_canary = canaries.indices.contains(&i);
            let row_changed = noisy.features().row(i) != data.features().row(i);
            assert_eq!(row_changed, is_canary, "example {i}");
            if is_canary {
                assert!(
                    noisy
                        .features()
                        .row(i)
                        .iter()
                        .all(|x| (0.0..1.0).contains(x))
                );
            } else {
                assert_eq!(noisy.labels()[i], data.labels()[i]);
            }
        }
        assert!(insert_image_canaries(data, 51, ImageCanaryKind::Mislabelled, &mut rng).is_err());
    }
}
