//! Sequence models as attacks see them: a next-token log-probability scorer, the
//! log-perplexity it assigns to a sequence, and the randomness space a canary is drawn from.

use rand::Rng;

use crate::error::{AttackError, Result};

/// Slack allowed above 0 for a log-probability (rounding in a log-softmax can give +1e-16).
pub const LOG_PROBABILITY_SLACK: f64 = 1e-9;

/// A language model as seen by exposure and extraction: natural-log probabilities of the next
/// token given everything before it.
///
/// Any closure `Fn(&[T], &T) -> f64` is a scorer. Implement the trait yourself to override
/// [`NextTokenScorer::log_probabilities`] when your model scores all candidate tokens with one
/// forward pass (the search and the exact enumeration call it once per context).
///
/// # Examples
///
/// ```
/// use dp_attacks::NextTokenScorer;
/// // A uniform model over 10 digits.
/// let uniform = |_context: &[u8], _next: &u8| -(10f64.ln());
/// assert!((uniform.log_probability(&[], &3) + 10f64.ln()).abs() < 1e-15);
/// ```
pub trait NextTokenScorer<T> {
    /// `ln P(next | context)`.
    fn log_probability(&self, context: &[T], next: &T) -> f64;

    /// `ln P(c | context)` for every candidate, in order. The default calls
    /// [`NextTokenScorer::log_probability`] once per candidate.
    fn log_probabilities(&self, context: &[T], candidates: &[T]) -> Vec<f64> {
        candidates
            .iter()
            .map(|c| self.log_probability(context, c))
            .collect()
    }
}

impl<T, F> NextTokenScorer<T> for F
where
    F: Fn(&[T], &T) -> f64,
{
    fn log_probability(&self, context: &[T], next: &T) -> f64 {
        self(context, next)
    }
}

/// Checks one log-probability returned by a scorer.
pub(crate) fn checked_log_probability(value: f64, index: usize) -> Result<f64> {
    if !value.is_finite() {
        return Err(AttackError::NonFinite {
            name: "log-probability from the scorer",
            index,
            value,
        });
    }
    if value > LOG_PROBABILITY_SLACK {
        return Err(AttackError::InvalidParameter {
            name: "log-probability from the scorer",
            value,
            reason: "a log-probability cannot be positive",
        });
    }
    Ok(value)
}

/// Log-perplexity in bits of `sequence` after `prefix` (Carlini et al. 2019):
/// `-Σ_i log2 P(sequence[i] | prefix, sequence[..i])`. The prefix itself is not scored.
///
/// # Errors
///
/// [`AttackError::NonFinite`] or [`AttackError::InvalidParameter`] if the scorer returns a
/// non-finite or positive log-probability.
///
/// # Examples
///
/// ```
/// // Uniform over 10 digits: each digit costs log2(10) bits.
/// let uniform = |_: &[u8], _: &u8| -(10f64.ln());
/// let bits = dp_attacks::log_perplexity(&uniform, b"my pin is ", b"1234")?;
/// assert!((bits - 4.0 * 10f64.log2()).abs() < 1e-12);
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn log_perplexity<T: Clone, S: NextTokenScorer<T> + ?Sized>(
    scorer: &S,
    prefix: &[T],
    sequence: &[T],
) -> Result<f64> {
    let mut context = prefix.to_vec();
    let mut nats = 0.0;
    for (index, token) in sequence.iter().enumerate() {
        nats -= checked_log_probability(scorer.log_probability(&context, token), index)?;
        context.push(token.clone());
    }
    Ok(nats / std::f64::consts::LN_2)
}

/// The set R a canary's secret is drawn from: every sequence of `length` tokens over `alphabet`
/// (e.g. 9 digits: |R| = 10^9). Sequences are indexed in lexicographic order of alphabet
/// positions, first token most significant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomnessSpace<T> {
    alphabet: Vec<T>,
    length: usize,
}

impl<T: Clone + PartialEq> RandomnessSpace<T> {
    /// A space of `alphabet.len()^length` sequences.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] for an empty alphabet, repeated tokens, or length 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let digits = dp_attacks::RandomnessSpace::new(b"0123456789".to_vec(), 4)?;
    /// assert_eq!(digits.size(), Some(10_000));
    /// assert_eq!(digits.sequence_at(42)?, b"0042".to_vec());
    /// # Ok::<(), dp_attacks::AttackError>(())
    /// ```
    pub fn new(alphabet: Vec<T>, length: usize) -> Result<Self> {
        let repeated = alphabet
            .iter()
            .enumerate()
            .any(|(i, a)| alphabet[..i].contains(a));
        if alphabet.is_empty() || repeated {
            return Err(AttackError::InvalidParameter {
                name: "alphabet",
                value: alphabet.len() as f64,
                reason: "must be non-empty with distinct tokens",
            });
        }
        if length == 0 {
            return Err(AttackError::InvalidParameter {
                name: "length",
                value: 0.0,
                reason: "must be at least 1",
            });
        }
        Ok(Self { alphabet, length })
    }

    /// The tokens each position can take.
    pub fn alphabet(&self) -> &[T] {
        &self.alphabet
    }

    /// Number of tokens in a sequence.
    pub fn length(&self) -> usize {
        self.length
    }

    /// `|R|`, or `None` if it exceeds `u128`.
    pub fn size(&self) -> Option<u128> {
        let base = self.alphabet.len() as u128;
        (0..self.length).try_fold(1_u128, |acc, _| acc.checked_mul(base))
    }

    /// `log2 |R|` (always finite).
    pub fn log2_size(&self) -> f64 {
        self.length as f64 * (self.alphabet.len() as f64).log2()
    }

    /// The sequence with the given index.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] if `index >= |R|`.
    pub fn sequence_at(&self, index: u128) -> Result<Vec<T>> {
        if self.size().is_some_and(|size| index >= size) {
            return Err(AttackError::InvalidParameter {
                name: "index",
                value: index as f64,
                reason: "must be below the size of the randomness space",
            });
        }
        let base = self.alphabet.len() as u128;
        let mut digits = vec![0_usize; self.length];
        let mut rest = index;
        for digit in digits.iter_mut().rev() {
            *digit = (rest % base) as usize;
            rest /= base;
        }
        Ok(digits.iter().map(|&d| self.alphabet[d].clone()).collect())
    }

    /// The alphabet positions of a sequence of this space.
    ///
    /// # Errors
    ///
    /// [`AttackError::NotInSpace`] for a wrong length or a token outside the alphabet.
    pub fn positions_of(&self, sequence: &[T]) -> Result<Vec<usize>> {
        if sequence.len() != self.length {
            return Err(AttackError::NotInSpace {
                reason: "wrong length",
            });
        }
        sequence
            .iter()
            .map(|token| {
                self.alphabet
                    .iter()
                    .position(|a| a == token)
                    .ok_or(AttackError::NotInSpace {
                        reason: "token outside the alphabet",
                    })
            })
            .collect()
    }

    /// A uniformly random sequence of the space (tokens drawn independently).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<T> {
        (0..self.length)
            .map(|_| self.alphabet[rng.random_range(0..self.alphabet.len())].clone())
            .collect()
    }
}
