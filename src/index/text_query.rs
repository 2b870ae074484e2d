//! The `q` parameter: what a person types in a search box, split into parts that must
//! all match (AND across parts, OR across fields).
//!
//! - A run of tokens made only of digits and phone separators (`+ - . ( ) /`, spaces
//!   between tokens) is one **phone fragment**: `06 12 34`, `+33 6 12`, `5678`.
//! - Every other token is split into words and folded like indexed text (see
//!   [`super::analysis`]); a word with an umlaut may be matched in either spelling.
//!
//! [`QueryPart::matches`] states the matching rules on plain strings. It is the
//! reference the tantivy query built in [`super::search`] must agree with, and the
//! property tests check exactly that.

use super::analysis::{MIN_SUBSTRING, fold, raw_words, spellings};
use super::document::SearchableText;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPart {
    /// A folded word; any alternative spelling may match.
    Word { alternatives: Vec<String> },
    /// Digits of a phone fragment. `international` when typed with a leading `+`
    /// (then only the start of international forms matches). `as_word` is set when the
    /// fragment is one token, which may also be a number in other text.
    Phone {
        digits: String,
        international: bool,
        as_word: Option<String>,
    },
}

const PHONE_SEPARATORS: &str = "+-.()/";

fn is_phone_token(token: &str) -> bool {
    token.chars().any(|c| c.is_ascii_digit())
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || PHONE_SEPARATORS.contains(c))
}

/// Splits `q` into the parts that must all match.
pub fn parse(q: &str) -> Vec<QueryPart> {
    let mut parts = Vec::new();
    let mut phone_run: Vec<&str> = Vec::new();
    for token in q.split_whitespace() {
        if is_phone_token(token) {
            phone_run.push(token);
            continue;
        }
        flush_phone_run(&mut phone_run, &mut parts);
        for raw in raw_words(token) {
            push_word(raw, &mut parts);
        }
    }
    flush_phone_run(&mut phone_run, &mut parts);
    parts
}

fn flush_phone_run(run: &mut Vec<&str>, parts: &mut Vec<QueryPart>) {
    if run.is_empty() {
        return;
    }
    let digits: String = run
        .iter()
        .flat_map(|t| t.chars())
        .filter(char::is_ascii_digit)
        .collect();
    let international = run[0].trim_start_matches('(').starts_with('+');
    let as_word = (run.len() == 1 && !international && run[0].chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.clone());
    parts.push(QueryPart::Phone {
        digits,
        international,
        as_word,
    });
    run.clear();
}

fn push_word(raw: &str, parts: &mut Vec<QueryPart>) {
    let folded: Vec<Vec<String>> = spellings(raw).iter().map(|s| fold(s)).collect();
    if folded.iter().all(|f| f.len() == 1) {
        let mut alternatives: Vec<String> = folded.into_iter().flatten().collect();
        alternatives.dedup();
        parts.push(QueryPart::Word { alternatives });
    } else if let Some(first) = folded.into_iter().next() {
        // Transliteration split the word (e.g. CJK): each part must match.
        for part in first {
            parts.push(QueryPart::Word {
                alternatives: vec![part],
            });
        }
    }
}

/// How a query word matches an indexed word, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchTier {
    Typo,
    Substring,
    Prefix,
    Exact,
}

/// Edits a query word of this length may differ by from a whole indexed word: one from
/// five characters, two from nine (a transposition counts as one edit).
pub fn typo_distance(word: &str) -> Option<u8> {
    match word.len() {
        0..=4 => None,
        5..=8 => Some(1),
        _ => Some(2),
    }
}

/// [`word_match`] plus whole-word typo tolerance: what a `q` word accepts.
pub fn q_word_match(query: &str, indexed: &str) -> Option<MatchTier> {
    word_match(query, indexed).or_else(|| {
        let allowed = usize::from(typo_distance(query)?);
        (strsim::osa_distance(query, indexed) <= allowed).then_some(MatchTier::Typo)
    })
}

/// The partial-match rule (`q` without typos, and `CONTAINS`): exact, prefix from the
/// first character, substring from the third ([`MIN_SUBSTRING`]).
pub fn word_match(query: &str, indexed: &str) -> Option<MatchTier> {
    if indexed == query {
        Some(MatchTier::Exact)
    } else if indexed.starts_with(query) {
        Some(MatchTier::Prefix)
    } else if query.len() >= MIN_SUBSTRING && indexed.contains(query) {
        Some(MatchTier::Substring)
    } else {
        None
    }
}

impl QueryPart {
    /// Whether a contact with this searchable text matches the part.
    pub fn matches(&self, text: &SearchableText) -> bool {
        let any_word =
            |query: &str, words: &[String]| words.iter().any(|w| word_match(query, w).is_some());
        let text_words = || [&text.name, &text.email, &text.other];
        match self {
            QueryPart::Word { alternatives } => alternatives.iter().any(|alt| {
                let typo_or_partial =
                    |words: &[String]| words.iter().any(|w| q_word_match(alt, w).is_some());
                text_words().iter().any(|words| typo_or_partial(words))
                    || typo_or_partial(&text.phone)
            }),
            QueryPart::Phone {
                digits,
                international: true,
                ..
            } => text
                .phone_international
                .iter()
                .any(|p| p.starts_with(digits.as_str())),
            QueryPart::Phone {
                digits, as_word, ..
            } => {
                any_word(digits, &text.phone)
                    || as_word
                        .as_deref()
                        .is_some_and(|w| text_words().iter().any(|words| any_word(w, words)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &[&str]) -> QueryPart {
        QueryPart::Word {
            alternatives: w.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn splits_words_and_phone_runs() {
        assert_eq!(
            parse("Dupont 06 12 34 MÜL"),
            vec![
                word(&["dupont"]),
                QueryPart::Phone {
                    digits: "061234".into(),
                    international: false,
                    as_word: None
                },
                word(&["mul", "muel"]),
            ]
        );
        assert_eq!(
            parse("+33 6 12"),
            vec![QueryPart::Phone {
                digits: "33612".into(),
                international: true,
                as_word: None
            }]
        );
        assert_eq!(parse("dupont@"), vec![word(&["dupont"])]);
        assert_eq!(parse("orange.fr"), vec![word(&["orange"]), word(&["fr"])]);
    }

    #[test]
    fn match_tiers() {
        assert_eq!(word_match("dupont", "dupont"), Some(MatchTier::Exact));
        assert_eq!(word_match("du", "dupont"), Some(MatchTier::Prefix));
        assert_eq!(word_match("pont", "dupont"), Some(MatchTier::Substring));
        assert_eq!(word_match("po", "dupont"), None);
    }
}
