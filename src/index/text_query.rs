//! The `q` parameter: what a person types in a search box, split into parts that must
//! all match (AND across parts, OR across fields).
//!
//! - A run of tokens made only of digits and phone separators (`+ - . ( ) /`, spaces
//!   between tokens) is one **phone fragment**: `06 12 34`, `+33 6 12`, `5678`.
//! - A token with `@` next to a letter or digit, or with `.`, `_` or `+` between two
//!   of them, is one **handle fragment** (`laurent.perret@gmail.com`, `zielke@`,
//!   `cirino.c`): it matches a contiguous piece of an email or identity value, never
//!   separate words. A hyphen alone does not make a fragment, so `Jean-Pierre` is still
//!   two name words.
//! - Every other token is split into words and folded like indexed text (see
//!   [`super::analysis`]); a word with an umlaut may be matched in either spelling.
//!
//! Ranking: each part scores the best **level** at which it matches, a tier (exact >
//! prefix > substring > typo) then a field group (name > email > phone > the rest);
//! an email, phone or identity typed whole scores above everything
//! ([`WHOLE_VALUE`]). A contact's score is the sum over parts.
//!
//! Typos: whole-word typo matches are only searched when the query finds fewer than
//! [`TYPO_THRESHOLD`] contacts without them (Typesense's `typo_tokens_threshold`), so
//! a name typed right costs what exact terms cost and is not diluted by near misses.
//!
//! [`QueryPart::level`] states the matching and ranking rules on plain strings. It is
//! the reference the index's execution in [`super::executor`] must agree with, and
//! the property tests check exactly that.

use super::analysis::{MIN_SUBSTRING, fold, fold_handle, raw_words, spellings};
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
    /// A folded piece of an email or identity value (see [`fold_handle`]).
    Fragment { text: String },
}

/// Fewer contacts than this without typos, and typo matches are searched too.
pub const TYPO_THRESHOLD: usize = 20;

/// Field groups, best first in ranking (their rank is the higher the better).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Name = 3,
    Email = 2,
    Phone = 1,
    Other = 0,
}

/// The score of an email, phone or identity typed whole: above any other level.
pub const WHOLE_VALUE: u8 = 17;

/// The level of a match: tier first, then group; 1 (typo in other text) to 16
/// (exact name word).
pub fn level(tier: MatchTier, group: Group) -> u8 {
    tier as u8 * 4 + group as u8 + 1
}

const PHONE_SEPARATORS: &str = "+-.()/";

/// Whether a token is a handle fragment (see the module docs).
fn is_fragment_token(token: &str) -> bool {
    let chars: Vec<char> = token.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        let alnum_at = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        let (before, after) = (alnum_at(i.checked_sub(1)), alnum_at(Some(i + 1)));
        match c {
            '@' => before || after,
            '.' | '_' | '+' => before && after,
            _ => false,
        }
    })
}

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
        if is_fragment_token(token) {
            let text = fold_handle(token);
            if !text.is_empty() {
                parts.push(QueryPart::Fragment { text });
            }
            continue;
        }
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
    word_match(query, indexed).or_else(|| typo_match(query, indexed))
}

fn typo_match(query: &str, indexed: &str) -> Option<MatchTier> {
    let allowed = usize::from(typo_distance(query)?);
    (strsim::osa_distance(query, indexed) <= allowed).then_some(MatchTier::Typo)
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

/// The best level of `query` over `words` of one group.
fn best_level(query: &str, words: &[String], group: Group, typos: bool) -> Option<u8> {
    words
        .iter()
        .filter_map(|w| {
            word_match(query, w).or_else(|| typos.then(|| typo_match(query, w)).flatten())
        })
        .max()
        .map(|tier| level(tier, group))
}

impl QueryPart {
    /// Whether the part may match with typos (a word long enough to forgive one).
    pub fn allows_typos(&self) -> bool {
        match self {
            QueryPart::Word { alternatives } => {
                alternatives.iter().any(|a| typo_distance(a).is_some())
            }
            _ => false,
        }
    }

    /// The best level at which a contact with this searchable text matches the part,
    /// `None` when it does not match. `typos`: whole-word typo matches count.
    pub fn level(&self, text: &SearchableText, typos: bool) -> Option<u8> {
        let groups = || {
            [
                (&text.name, Group::Name),
                (&text.email, Group::Email),
                (&text.phone, Group::Phone),
                (&text.other, Group::Other),
            ]
        };
        match self {
            QueryPart::Word { alternatives } => alternatives
                .iter()
                .flat_map(|alt| {
                    groups()
                        .into_iter()
                        .filter_map(move |(words, group)| best_level(alt, words, group, typos))
                })
                .max(),
            QueryPart::Phone {
                digits,
                international: true,
                ..
            } => {
                let forms = &text.phone_international;
                if forms.iter().any(|p| p == digits) {
                    Some(WHOLE_VALUE)
                } else {
                    forms
                        .iter()
                        .any(|p| p.starts_with(digits.as_str()))
                        .then(|| level(MatchTier::Prefix, Group::Phone))
                }
            }
            QueryPart::Phone {
                digits, as_word, ..
            } => {
                if text.phone.iter().any(|p| p == digits) {
                    return Some(WHOLE_VALUE);
                }
                let as_phone = best_level(digits, &text.phone, Group::Phone, false);
                let as_text = as_word.as_deref().and_then(|word| {
                    [
                        (&text.name, Group::Name),
                        (&text.email, Group::Email),
                        (&text.other, Group::Other),
                    ]
                    .into_iter()
                    .filter_map(|(words, group)| best_level(word, words, group, false))
                    .max()
                });
                as_phone.max(as_text)
            }
            QueryPart::Fragment { text: fragment } => text
                .handles()
                .filter_map(|value| {
                    if value == fragment {
                        Some(WHOLE_VALUE)
                    } else {
                        word_match(fragment, value).map(|tier| level(tier, Group::Email))
                    }
                })
                .max(),
        }
    }

    /// Whether a contact with this searchable text matches the part.
    pub fn matches(&self, text: &SearchableText, typos: bool) -> bool {
        self.level(text, typos).is_some()
    }
}

/// A contact's relevance for `parts` (the sum of the part levels), `None` when some
/// part does not match.
pub fn score(parts: &[QueryPart], text: &SearchableText, typos: bool) -> Option<u32> {
    parts
        .iter()
        .map(|part| part.level(text, typos).map(u32::from))
        .sum()
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
        let fragment = |text: &str| QueryPart::Fragment { text: text.into() };
        assert_eq!(parse("dupont@"), vec![fragment("dupont@")]);
        assert_eq!(parse("orange.fr"), vec![fragment("orange.fr")]);
        assert_eq!(
            parse("Laurent.Perret@GMAIL.com"),
            vec![fragment("laurent.perret@gmail.com")]
        );
        assert_eq!(parse("cirino.c"), vec![fragment("cirino.c")]);
        // Hyphenated names, initials and trailing dots stay words.
        assert_eq!(
            parse("Jean-Pierre"),
            vec![word(&["jean"]), word(&["pierre"])]
        );
        assert_eq!(parse("J. Dupont"), vec![word(&["j"]), word(&["dupont"])]);
    }

    #[test]
    fn match_tiers() {
        assert_eq!(word_match("dupont", "dupont"), Some(MatchTier::Exact));
        assert_eq!(word_match("du", "dupont"), Some(MatchTier::Prefix));
        assert_eq!(word_match("pont", "dupont"), Some(MatchTier::Substring));
        assert_eq!(word_match("po", "dupont"), None);
    }
}
