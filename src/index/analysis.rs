//! Text analysis shared by indexing and querying: accent/case folding and the three
//! forms every searchable word is indexed in.
//!
//! Folding: words are split on anything not alphanumeric, transliterated to ASCII and
//! lower-cased (`Hélène` → `helene`, `Łukasz` → `lukasz`, `Straße` → `strasse`). A word
//! with a German umlaut is also indexed in its `ae`/`oe`/`ue` spelling, so `Müller` is
//! found by both `muller` and `mueller`. All folded words are ASCII, so byte offsets
//! are character offsets.
//!
//! Forms (tantivy's n-gram tokenizer puts every gram at position 0 and ignores word
//! boundaries, so the tokens are built here and handed to tantivy pre-tokenized):
//! - **word**: the folded word (exact matches);
//! - **prefix**: every prefix of the word up to [`MAX_PREFIX`] bytes (edge grams);
//! - **trigram**: every 3-byte gram, at consecutive positions within a word and with a
//!   gap between words, so a substring of 4+ letters is an exact phrase query of its
//!   trigrams and never matches across words.

use tantivy::tokenizer::{PreTokenizedString, Token};

/// Longest prefix indexed; a longer query word is matched as a substring instead.
pub const MAX_PREFIX: usize = 20;
/// Longest prefix of a whole email or identity value indexed (see [`fold_handle`]).
pub const MAX_HANDLE_PREFIX: usize = 40;
/// Characters kept inside a handle (an email or identity value) besides letters and
/// digits, so a fragment such as `jean.dup` or `zielke@` matches contiguously.
pub const HANDLE_SEPARATORS: &str = "@._+-";
/// Shortest query word matched as a substring (API: "by substring from its third").
pub const MIN_SUBSTRING: usize = 3;

/// The folded words of `text`, umlaut spellings included.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in raw_words(text) {
        for spelling in spellings(raw) {
            for part in fold(&spelling) {
                if !out.contains(&part) {
                    out.push(part);
                }
            }
        }
    }
    out
}

/// Splits text into raw words (runs of alphanumeric characters).
pub fn raw_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The spellings a raw word is known by: itself, and its `ae/oe/ue` form when it has
/// a German umlaut.
pub fn spellings(raw: &str) -> Vec<String> {
    let mut spellings = vec![raw.to_string()];
    if raw.contains(['ä', 'ö', 'ü', 'Ä', 'Ö', 'Ü']) {
        let expanded: String = raw
            .chars()
            .map(|c| match c {
                'ä' | 'Ä' => "ae".to_string(),
                'ö' | 'Ö' => "oe".to_string(),
                'ü' | 'Ü' => "ue".to_string(),
                other => other.to_string(),
            })
            .collect();
        spellings.push(expanded);
    }
    spellings
}

/// ASCII-folds and lower-cases one spelling (see [`crate::model::fold_ascii`]).
pub fn fold(spelling: &str) -> Vec<String> {
    crate::model::fold_ascii(spelling)
}

/// An email or identity value (or a typed fragment of one) folded whole: ASCII,
/// lower case, letters, digits and [`HANDLE_SEPARATORS`] only.
pub fn fold_handle(value: &str) -> String {
    let ascii = if value.is_ascii() {
        value.to_ascii_lowercase()
    } else {
        deunicode::deunicode(value).to_ascii_lowercase()
    };
    ascii
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || HANDLE_SEPARATORS.contains(*c))
        .collect()
}

/// Every trigram of a word, in order.
pub fn trigrams(word: &str) -> impl Iterator<Item = &str> {
    (0..=word.len().saturating_sub(MIN_SUBSTRING))
        .filter(move |_| word.len() >= MIN_SUBSTRING)
        .map(move |i| &word[i..i + MIN_SUBSTRING])
}

/// The three pre-tokenized forms of a list of folded words.
pub struct IndexForms {
    pub words: PreTokenizedString,
    pub prefixes: PreTokenizedString,
    pub trigrams: PreTokenizedString,
}

impl IndexForms {
    pub fn new(words: &[String]) -> Self {
        Self::with_max_prefix(words, MAX_PREFIX)
    }

    /// The forms with prefixes up to `max_prefix` bytes.
    pub fn with_max_prefix(words: &[String], max_prefix: usize) -> Self {
        let mut prefix_tokens = Vec::new();
        let mut trigram_tokens = Vec::new();
        let mut position = 0;
        for (i, word) in words.iter().enumerate() {
            for end in 1..=word.len().min(max_prefix) {
                prefix_tokens.push(token(&word[..end], i));
            }
            for (offset, gram) in trigrams(word).enumerate() {
                trigram_tokens.push(token(gram, position + offset));
            }
            // One free position between words keeps phrases from spanning two words.
            position += word.len().saturating_sub(2) + 1;
        }
        IndexForms {
            words: exact_forms(words),
            prefixes: pre_tokenized(prefix_tokens),
            trigrams: pre_tokenized(trigram_tokens),
        }
    }
}

/// The exact form alone: one token per word.
pub fn exact_forms(words: &[String]) -> PreTokenizedString {
    pre_tokenized(
        words
            .iter()
            .enumerate()
            .map(|(i, word)| token(word, i))
            .collect(),
    )
}

fn token(text: &str, position: usize) -> Token {
    Token {
        offset_from: 0,
        offset_to: 0,
        position,
        text: text.to_string(),
        position_length: 1,
    }
}

fn pre_tokenized(tokens: Vec<Token>) -> PreTokenizedString {
    PreTokenizedString {
        text: String::new(),
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_case_and_special_letters() {
        assert_eq!(words("Hélène Dupont"), ["helene", "dupont"]);
        assert_eq!(words("Łukasz Müller"), ["lukasz", "muller", "mueller"]);
        assert_eq!(words("Straße ØRSTED"), ["strasse", "orsted"]);
        assert_eq!(
            words("helene.dupont@orange.fr"),
            ["helene", "dupont", "orange", "fr"]
        );
    }

    #[test]
    fn handles_are_folded_whole() {
        assert_eq!(
            fold_handle("Hélène.Dupont+CRM@Orange.fr"),
            "helene.dupont+crm@orange.fr"
        );
        assert_eq!(fold_handle("@Quokka_Fan!"), "@quokka_fan");
    }

    #[test]
    fn trigram_positions_do_not_cross_words() {
        let forms = IndexForms::new(&["abcd".into(), "efg".into()]);
        let positions: Vec<_> = forms
            .trigrams
            .tokens
            .iter()
            .map(|t| (t.text.as_str(), t.position))
            .collect();
        assert_eq!(positions, [("abc", 0), ("bcd", 1), ("efg", 3)]);
    }
}
