//! Deterministic generated contacts for the benches (a small LCG, so runs compare):
//! names from several locales with their diacritics, emails derived from them, French
//! mobiles, a country, 0–3 tags, creation times spread over two years.

#![allow(dead_code)] // each bench uses part of this module

use chrono::{Duration, Utc};
use contactd::index::SearchIndex;
use contactd::model::{Contact, ContactContext, ContactInput, CustomFieldDefs, RequireRule, Rules};

const FIRST: [&str; 16] = [
    "Hélène",
    "Jean",
    "Łukasz",
    "Zoë",
    "Maria",
    "João",
    "Sören",
    "Anna",
    "Pierre",
    "Ines",
    "Björn",
    "Agnieszka",
    "Luca",
    "Sophie",
    "Mateo",
    "Emma",
];
const LAST: [&str; 16] = [
    "Dupont",
    "Müller",
    "Kowalski",
    "García",
    "Rossi",
    "Silva",
    "Jansen",
    "Smith",
    "Martin",
    "Nowak",
    "Fernández",
    "Bianchi",
    "de Vries",
    "Schäfer",
    "Lefèvre",
    "Wiśniewska",
];
const DOMAINS: [&str; 6] = [
    "orange.fr",
    "gmail.com",
    "web.de",
    "wp.pl",
    "libero.it",
    "acme.io",
];
pub const TAGS: [&str; 6] = [
    "vip",
    "lead",
    "newsletter",
    "churn-risk",
    "partner",
    "trial",
];
pub const COUNTRIES: [&str; 7] = ["FR", "DE", "PL", "ES", "IT", "NL", "GB"];

/// Rules that accept any generated contact.
fn permissive_rules() -> Rules {
    Rules {
        input: contactd::model::InputLimits::default(),
        require: RequireRule::None,
        default_country: phonenumber::country::Id::FR,
        unique_name: false,
        unique_identities: true,
        restore_window_days: 60,
    }
}

pub fn generate(count: usize) -> Vec<Contact> {
    let rules = permissive_rules();
    let defs = CustomFieldDefs::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 33) as usize) % bound
    };
    let now = Utc::now();
    (0..count)
        .map(|n| {
            let (first, last) = (FIRST[next(FIRST.len())], LAST[next(LAST.len())]);
            let tags = (0..next(4))
                .map(|_| TAGS[next(TAGS.len())].to_string())
                .collect();
            let input = ContactInput {
                name: Some(format!("{first} {last}")),
                email: Some(
                    format!("{first}.{last}{n}@{}", DOMAINS[next(DOMAINS.len())])
                        .to_lowercase()
                        .replace(' ', ""),
                ),
                phone: Some(format!(
                    "+33 6 {:02} {:02} {:02} {:02}",
                    next(100),
                    next(100),
                    next(100),
                    next(100)
                )),
                country: Some(COUNTRIES[next(COUNTRIES.len())].to_string()),
                tags: Some(tags),
                notes: (n % 5 == 0).then(|| "Prefers WhatsApp after 6pm".to_string()),
                created_at: Some(
                    (now - Duration::minutes(next(2 * 365 * 24 * 60) as i64)).to_rfc3339(),
                ),
                ..ContactInput::default()
            };
            // Generated emails may carry accents the validator rejects; drop those.
            let valid = match input.clone().validate(&rules, &defs) {
                Ok(valid) => valid,
                Err(_) => ContactInput {
                    email: None,
                    ..input
                }
                .validate(&rules, &defs)
                .expect("valid"),
            };
            valid.into_new_contact(ulid::Ulid::generate().to_string(), now)
        })
        .collect()
}

/// `count` contacts from the crate's own generator (what `contactd generate` writes:
/// eight locales, identities, custom values of every type), with their definitions.
pub fn generate_realistic(count: u64, seed: u64) -> (Vec<Contact>, CustomFieldDefs) {
    let now = Utc::now();
    let defs: CustomFieldDefs = contactd::generate::field_definitions()
        .into_iter()
        .map(|json| {
            let input: contactd::model::CustomFieldInput = serde_json::from_value(json).unwrap();
            let def = input.validate(now, None).expect("a valid definition");
            (def.key.clone(), def)
        })
        .collect();
    let rules = permissive_rules();
    let mut generator = contactd::generate::Generator::new(seed);
    let contacts = (0..count)
        .map(|n| {
            let valid = generator
                .contact(n)
                .validate(&rules, &defs)
                .expect("generated contacts are valid");
            valid.into_new_contact(ulid::Ulid::generate().to_string(), now)
        })
        .collect();
    (contacts, defs)
}

/// A committed, merged index of `contacts`.
pub fn build_index(dir: &std::path::Path, contacts: &[Contact]) -> SearchIndex {
    let context = ContactContext::default();
    let index = SearchIndex::create(dir).expect("index");
    let mut updater = index.updater(256 << 20, 2).expect("writer");
    for contact in contacts {
        updater.add(contact, &context).expect("add");
    }
    updater.commit(1).expect("commit");
    updater.wait_merging_threads().expect("merge");
    index.reload().expect("reload");
    index
}
