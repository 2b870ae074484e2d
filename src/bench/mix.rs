//! The query mix: what people type into a contact search box, built from contacts the
//! server really holds so every query has something to find.
//!
//! Fourteen kinds, taken in turn: prefixes of 1, 2, 3 and 4 letters, a substring from
//! inside a last name, a whole name typed without its accents, an email fragment, a
//! phone fragment in another formatting than the stored one, four with filters and
//! sorts (prefix + filter, prefix + sort, substring + filter + sort, and a filter with
//! a sort and no text, like a saved inbox), a word a quarter of the contacts hold
//! (a plan, a tag, a mail provider) sorted by a date, and the starts of two name words.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::model::{fold_ascii, normalize_phone, phone_forms};

/// What the mix is built from: a few fields of one contact.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
}

impl Sample {
    /// From a contact as the API returns it (or a row as `generate` writes it).
    pub fn from_json(contact: &serde_json::Value) -> Sample {
        let text = |key: &str| contact[key].as_str().map(str::to_string);
        Sample {
            name: text("name"),
            email: text("email"),
            phone: text("phone"),
            country: text("country"),
        }
    }
}

/// One query of the mix, as the search parameters of `GET /v1/contacts`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MixQuery {
    pub kind: &'static str,
    pub q: String,
    pub filter: Option<String>,
    pub sort: Option<String>,
}

/// The kinds, in the order the mix takes them.
pub const KINDS: [&str; 14] = [
    "prefix 1 letter",
    "prefix 2 letters",
    "prefix 3 letters",
    "prefix 4 letters",
    "substring",
    "name without accents",
    "email fragment",
    "phone, other format",
    "prefix + filter",
    "prefix + sort",
    "substring + filter + sort",
    "filter + sort, no text",
    "common word + date sort",
    "two word prefixes",
];

/// Values that about a quarter of generated contacts hold: plans, tags, providers.
const COMMON_WORDS: [&str; 5] = ["starter", "enterprise", "newsletter", "customer", "gmail"];
const DATE_SORTS: [&str; 2] = ["created_at:desc", "last_interaction_at:desc"];

const FILTERS: [&str; 4] = [
    "country = FR AND tags IN [vip, lead]",
    "tags = customer AND custom.plan IN [pro, enterprise]",
    "custom.newsletter = true AND last_interaction_at >= 2026-01-01",
    "assignee EXISTS AND country IN [DE, PL, NL]",
];
const SORTS: [&str; 4] = [
    "last_interaction_at:desc",
    "name:asc",
    "created_at:desc",
    "custom.seats:desc",
];

/// `count` queries (kinds in turn) from `samples`, reproducible for a given seed.
pub fn build(samples: &[Sample], count: usize, seed: u64) -> Vec<MixQuery> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut queries = Vec::with_capacity(count);
    if samples.is_empty() {
        return queries;
    }
    let mut attempts = 0;
    while queries.len() < count && attempts < count * 20 {
        attempts += 1;
        let kind = queries.len() % KINDS.len();
        let sample = &samples[rng.random_range(0..samples.len())];
        if let Some(query) = query_of_kind(kind, sample, &mut rng) {
            queries.push(query);
        }
    }
    queries
}

/// The folded words of a sample's name, longest last name first.
fn name_words(sample: &Sample) -> Vec<String> {
    sample
        .name
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .flat_map(fold_ascii)
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .collect()
}

fn prefix(word: &str, letters: usize) -> Option<String> {
    (word.len() >= letters).then(|| word[..letters].to_string())
}

/// 3–5 letters from inside a word (never its start, so only substring matching finds it).
fn inner(word: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    let length = rng.random_range(3..=5).min(word.len().saturating_sub(1));
    if length < 3 {
        return None;
    }
    let start = rng.random_range(1..=word.len() - length);
    Some(word[start..start + length].to_string())
}

fn query_of_kind(kind: usize, sample: &Sample, rng: &mut ChaCha8Rng) -> Option<MixQuery> {
    let words = name_words(sample);
    let pick_word = |rng: &mut ChaCha8Rng| -> Option<String> {
        (!words.is_empty()).then(|| words[rng.random_range(0..words.len())].clone())
    };
    let last_word = words.iter().max_by_key(|w| w.len()).cloned();
    let filter = Some(FILTERS[rng.random_range(0..FILTERS.len())].to_string());
    let sort = Some(SORTS[rng.random_range(0..SORTS.len())].to_string());
    let text = |q: String| MixQuery {
        kind: KINDS[kind],
        q,
        filter: None,
        sort: None,
    };
    Some(match kind {
        0..=3 => text(prefix(&pick_word(rng)?, kind + 1)?),
        4 => text(inner(&last_word?, rng)?),
        5 => text(words.join(" ")).filter_empty()?,
        6 => text(email_fragment(sample.email.as_deref()?, rng)?),
        7 => text(phone_fragment(sample, rng)?),
        8 => MixQuery {
            filter,
            ..text(prefix(&pick_word(rng)?, 3)?)
        },
        9 => MixQuery {
            sort,
            ..text(prefix(&pick_word(rng)?, 2)?)
        },
        10 => MixQuery {
            filter,
            sort,
            ..text(inner(&last_word?, rng)?)
        },
        11 => MixQuery {
            filter,
            sort,
            ..text(String::new())
        },
        12 => MixQuery {
            sort: Some(DATE_SORTS[rng.random_range(0..DATE_SORTS.len())].to_string()),
            ..text(COMMON_WORDS[rng.random_range(0..COMMON_WORDS.len())].to_string())
        },
        _ => {
            let (first, last) = (words.first()?, words.last()?);
            if words.len() < 2 {
                return None;
            }
            let last_letters = rng.random_range(2..=4);
            text(format!(
                "{} {}",
                prefix(first, 3)?,
                prefix(last, last_letters).unwrap_or_else(|| last.clone())
            ))
        }
    })
}

impl MixQuery {
    fn filter_empty(self) -> Option<MixQuery> {
        (!self.q.is_empty()).then_some(self)
    }
}

/// The start of the local part (`jean.dup`) or the domain's first label (`gmail`).
fn email_fragment(email: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    let (local, domain) = email.split_once('@')?;
    if rng.random_bool(0.7) {
        let length = rng.random_range(4..=8).min(local.len());
        Some(local[..length].to_string())
    } else {
        domain.split('.').next().map(str::to_string)
    }
}

/// The phone typed differently from how it is stored: national digits in pairs
/// (`06 12 34`), the international form (`+33 6 12 34`), or the last four digits.
fn phone_fragment(sample: &Sample, rng: &mut ChaCha8Rng) -> Option<String> {
    let country = sample
        .country
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(phonenumber::country::Id::FR);
    let phone = normalize_phone(sample.phone.as_deref()?, country).ok()?;
    let forms = phone_forms(&phone.typed, phone.e164.as_deref());
    let pairs = |digits: &str| {
        digits
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match rng.random_range(0..3) {
        0 if forms.national.len() >= 6 => Some(pairs(&forms.national[..6])),
        1 => {
            let e164 = phone.e164.as_deref()?;
            let code = phonenumber::parse(None, e164)
                .ok()?
                .code()
                .value()
                .to_string();
            let subscriber = e164.get(1 + code.len()..)?;
            Some(format!("+{code} {}", pairs(subscriber.get(..5)?)))
        }
        _ => {
            let digits = &forms.national;
            (digits.len() >= 4).then(|| digits[digits.len() - 4..].to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        let mut generator = crate::generate::Generator::new(3);
        (0..200)
            .map(|n| {
                let row = serde_json::to_value(generator.contact(n)).unwrap();
                Sample::from_json(&row)
            })
            .collect()
    }

    #[test]
    fn every_kind_is_built_in_turn_and_reproducibly() {
        let mix = build(&samples(), 120, 9);
        assert_eq!(mix.len(), 120);
        for (i, query) in mix.iter().enumerate() {
            assert_eq!(query.kind, KINDS[i % KINDS.len()], "{query:?}");
        }
        assert_eq!(mix, build(&samples(), 120, 9));
        let prefixes: Vec<usize> = mix.iter().take(4).map(|q| q.q.len()).collect();
        assert_eq!(prefixes, [1, 2, 3, 4]);
        assert!(mix.iter().all(|q| q.q.is_ascii()), "accent-free text only");
    }
}
