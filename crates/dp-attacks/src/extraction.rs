//! Secret extraction: search the canary's randomness space for the sequences the model finds
//! most likely after the known prefix (Carlini et al. 2019, section 8; beam search as in Stock
//! et al. 2022), and check whether the planted secret is among the attacker's guesses.

use crate::error::{AttackError, Result};
use crate::sequence::{NextTokenScorer, RandomnessSpace, checked_log_probability, log_perplexity};
use crate::validate;

/// The search: keep the `beam_width` most likely partial secrets at each position, then guess
/// the `candidate_budget` most likely complete ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractionSearch {
    beam_width: usize,
    candidate_budget: usize,
}

impl ExtractionSearch {
    /// Greedy decoding: one beam, one guess.
    pub fn greedy() -> Self {
        Self {
            beam_width: 1,
            candidate_budget: 1,
        }
    }

    /// Beam search with `beam_width` beams and `candidate_budget` guesses.
    ///
    /// # Errors
    ///
    /// [`AttackError::InvalidParameter`] unless `1 <= candidate_budget <= beam_width`.
    pub fn beam(beam_width: usize, candidate_budget: usize) -> Result<Self> {
        validate::positive_count("candidate_budget", candidate_budget)?;
        if candidate_budget > beam_width {
            return Err(AttackError::InvalidParameter {
                name: "candidate_budget",
                value: candidate_budget as f64,
                reason: "cannot exceed beam_width (the search keeps beam_width candidates)",
            });
        }
        Ok(Self {
            beam_width,
            candidate_budget,
        })
    }

    /// Number of partial candidates kept per position.
    pub fn beam_width(&self) -> usize {
        self.beam_width
    }

    /// Number of guesses the attacker is allowed.
    pub fn candidate_budget(&self) -> usize {
        self.candidate_budget
    }
}

/// A complete candidate secret and its log-perplexity in bits.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCandidate<T> {
    /// The candidate secret (without the prefix).
    pub sequence: Vec<T>,
    /// Its log-perplexity after the prefix, in bits (lower is more likely).
    pub log_perplexity: f64,
}

/// What an extraction attempt found.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractionOutcome<T> {
    /// The secret is among the first `candidate_budget` guesses.
    pub recovered: bool,
    /// 1-based position of the secret among the final beam, `None` if the search pruned it.
    pub rank: Option<usize>,
    /// The final beam, most likely first (at most `beam_width` candidates).
    pub candidates: Vec<ScoredCandidate<T>>,
    /// The secret's own log-perplexity in bits, for comparison with the guesses.
    pub secret_log_perplexity: f64,
    /// Calls to [`NextTokenScorer::log_probabilities`] made by the search.
    pub scorer_calls: usize,
}

/// Runs the search after `prefix` over `space` with the caller's model, then checks the result
/// against the planted `secret`.
///
/// Ties between candidates keep the lower alphabet index first, so the search is deterministic.
///
/// # Errors
///
/// [`AttackError::NotInSpace`] if `secret` is not in `space`, and the scorer errors of
/// [`log_perplexity`].
///
/// # Examples
///
/// ```
/// use dp_attacks::{ExtractionSearch, RandomnessSpace, extract_secret};
/// let space = RandomnessSpace::new(b"0123456789".to_vec(), 4)?;
/// let secret = b"2718".to_vec();
/// // A model that has memorized the secret.
/// let model = |context: &[u8], next: &u8| {
///     if *next == secret[context.len() - 4] { 0.5_f64.ln() } else { (0.5_f64 / 9.0).ln() }
/// };
/// let outcome = extract_secret(&model, b"pin ", &space, &ExtractionSearch::greedy(), &secret)?;
/// assert!(outcome.recovered);
/// assert_eq!(outcome.rank, Some(1));
/// # Ok::<(), dp_attacks::AttackError>(())
/// ```
pub fn extract_secret<T, S>(
    scorer: &S,
    prefix: &[T],
    space: &RandomnessSpace<T>,
    search: &ExtractionSearch,
    secret: &[T],
) -> Result<ExtractionOutcome<T>>
where
    T: Clone + PartialEq,
    S: NextTokenScorer<T> + ?Sized,
{
    space.positions_of(secret)?;
    let secret_log_perplexity = log_perplexity(scorer, prefix, secret)?;
    // Each beam: (secret tokens so far, log-probability in nats).
    let mut beams: Vec<(Vec<T>, f64)> = vec![(Vec::new(), 0.0)];
    let mut scorer_calls = 0;
    for position in 0..space.length() {
        let mut expanded = Vec::with_capacity(beams.len() * space.alphabet().len());
        for (partial, log_probability) in &beams {
            let context: Vec<T> = prefix.iter().chain(partial).cloned().collect();
            let next = scorer.log_probabilities(&context, space.alphabet());
            scorer_calls += 1;
            validate::same_length(
                "log_probabilities from the scorer",
                space.alphabet().len(),
                next.len(),
            )?;
            for (token, &lp) in space.alphabet().iter().zip(&next) {
                let lp = checked_log_probability(lp, position)?;
                let mut extended = partial.clone();
                extended.push(token.clone());
                expanded.push((extended, log_probability + lp));
            }
        }
        // Stable sort: equal scores keep beam order, then alphabet order.
        expanded.sort_by(|a, b| b.1.total_cmp(&a.1));
        expanded.truncate(search.beam_width());
        beams = expanded;
    }
    let candidates: Vec<ScoredCandidate<T>> = beams
        .into_iter()
        .map(|(sequence, nats)| ScoredCandidate {
            sequence,
            log_perplexity: -nats / std::f64::consts::LN_2,
        })
        .collect();
    let rank = candidates
        .iter()
        .position(|c| c.sequence == secret)
        .map(|i| i + 1);
    Ok(ExtractionOutcome {
        recovered: rank.is_some_and(|r| r <= search.candidate_budget()),
        rank,
        candidates,
        secret_log_perplexity,
        scorer_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that prefers the digit after the previous one (a trap for greedy decoding) and
    /// puts the planted secret just behind it at the first position only.
    #[test]
    fn beam_search_finds_what_greedy_misses() {
        let space = RandomnessSpace::new(vec![0_u8, 1, 2], 2).unwrap();
        // P(first) = [0.5, 0.4, 0.1]; after 0 the model is unsure (uniform), after 1 it is sure
        // of 1. Best complete sequence: "11" (0.4 * 0.9 = 0.36) beats any "0x" (0.5 / 3).
        let model = |context: &[u8], next: &u8| -> f64 {
            let p: f64 = match context {
                [] => [0.5, 0.4, 0.1][usize::from(*next)],
                [0] => 1.0 / 3.0,
                [1] => [0.05, 0.9, 0.05][usize::from(*next)],
                _ => [0.1, 0.1, 0.8][usize::from(*next)],
            };
            p.ln()
        };
        let secret = [1_u8, 1];
        let greedy =
            extract_secret(&model, &[], &space, &ExtractionSearch::greedy(), &secret).unwrap();
        assert!(!greedy.recovered);
        assert_eq!(greedy.rank, None);
        assert_eq!(greedy.scorer_calls, 2);
        let beam = ExtractionSearch::beam(2, 1).unwrap();
        let found = extract_secret(&model, &[], &space, &beam, &secret).unwrap();
        assert!(found.recovered);
        assert_eq!(found.rank, Some(1));
        assert!((found.secret_log_perplexity + 0.36_f64.log2()).abs() < 1e-12);
        assert_eq!(
            found.candidates[0].log_perplexity,
            found.secret_log_perplexity
        );
    }

    #[test]
    fn invalid_searches_are_rejected() {
        assert!(ExtractionSearch::beam(2, 3).is_err());
        assert!(ExtractionSearch::beam(2, 0).is_err());
        let space = RandomnessSpace::new(vec![0_u8, 1], 2).unwrap();
        let uniform = |_: &[u8], _: &u8| 0.5_f64.ln();
        let err = extract_secret(&uniform, &[], &space, &ExtractionSearch::greedy(), &[0, 7]);
        assert!(matches!(err, Err(AttackError::NotInSpace { .. })));
    }
}
