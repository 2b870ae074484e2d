//! A deterministic generator of realistic contacts (same seed, same bytes): names from
//! eight locales with their diacritics, emails derived from them on local providers,
//! mobiles in national or international format (some missing), channel identities,
//! tags, custom values of every type, assignees, notes, and activity spread over the
//! two years before a fixed anchor date.
//!
//! Phones and handles are derived from the row number by a bijection, so up to ten
//! million rows never collide on an identity; the randomness only picks among valid
//! choices.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::model::{ContactInput, IdentityInput, fold_ascii};

struct Locale {
    country: &'static str,
    language: &'static str,
    first: &'static [&'static str],
    last: &'static [&'static str],
    domains: &'static [&'static str],
    calling_code: &'static str,
    /// A mobile prefix (after the trunk `0` / the country code) whose every subscriber
    /// number is valid.
    mobile_prefix: &'static str,
    /// Digits after the prefix.
    subscriber_digits: u32,
    trunk: bool,
}

const LOCALES: [Locale; 8] = [
    Locale {
        country: "FR",
        language: "fr",
        calling_code: "33",
        mobile_prefix: "61",
        subscriber_digits: 7,
        trunk: true,
        first: &[
            "Hélène",
            "Léa",
            "Chloé",
            "Zoé",
            "Jérôme",
            "François",
            "Gaëlle",
            "Noël",
            "Amélie",
            "Théo",
            "Inès",
            "Benoît",
        ],
        last: &[
            "Dupont",
            "Lefèvre",
            "Moreau",
            "Girard",
            "Bérénger",
            "Fournier",
            "Mercier",
            "Rousseau",
            "Chevalier",
            "Garçon",
        ],
        domains: &["orange.fr", "free.fr", "laposte.net", "gmail.com", "sfr.fr"],
    },
    Locale {
        country: "DE",
        language: "de",
        calling_code: "49",
        mobile_prefix: "151",
        subscriber_digits: 8,
        trunk: true,
        first: &[
            "Jürgen",
            "Björn",
            "Sören",
            "Günther",
            "Lena",
            "Jörg",
            "Käthe",
            "Maximilian",
            "Anja",
            "Lukas",
        ],
        last: &[
            "Müller", "Schäfer", "Größer", "Köhler", "Weiß", "Schmidt", "Bäcker", "Krüger",
            "Fuchs", "Hoffmann",
        ],
        domains: &["gmx.de", "web.de", "t-online.de", "gmail.com"],
    },
    Locale {
        country: "PL",
        language: "pl",
        calling_code: "48",
        mobile_prefix: "50",
        subscriber_digits: 7,
        trunk: false,
        first: &[
            "Łukasz",
            "Małgorzata",
            "Paweł",
            "Agnieszka",
            "Wojciech",
            "Zofia",
            "Michał",
            "Katarzyna",
        ],
        last: &[
            "Kowalski",
            "Wiśniewska",
            "Wójcik",
            "Zieliński",
            "Szymańska",
            "Dąbrowski",
            "Kozłowski",
            "Nowak",
        ],
        domains: &["wp.pl", "onet.pl", "interia.pl", "gmail.com"],
    },
    Locale {
        country: "ES",
        language: "es",
        calling_code: "34",
        mobile_prefix: "6",
        subscriber_digits: 8,
        trunk: false,
        first: &[
            "José", "María", "Íñigo", "Begoña", "Álvaro", "Lucía", "Raúl", "Sofía",
        ],
        last: &[
            "García",
            "Fernández",
            "Núñez",
            "Peña",
            "Martínez",
            "Ibáñez",
            "Sánchez",
            "Gómez",
        ],
        domains: &["telefonica.net", "gmail.com", "hotmail.es", "yahoo.es"],
    },
    Locale {
        country: "PT",
        language: "pt",
        calling_code: "351",
        mobile_prefix: "91",
        subscriber_digits: 7,
        trunk: false,
        first: &[
            "João",
            "Inês",
            "Gonçalo",
            "Conceição",
            "Tomás",
            "Beatriz",
            "Luís",
            "Mariana",
        ],
        last: &[
            "Silva",
            "Gonçalves",
            "Simões",
            "Magalhães",
            "Araújo",
            "Conceição",
            "Pereira",
            "Sousa",
        ],
        domains: &["sapo.pt", "gmail.com", "hotmail.com"],
    },
    Locale {
        country: "IT",
        language: "it",
        calling_code: "39",
        mobile_prefix: "33",
        subscriber_digits: 8,
        trunk: false,
        first: &[
            "Niccolò", "Giulia", "Luca", "Chiara", "Mattia", "Noemi", "Andrea", "Martina",
        ],
        last: &[
            "Rossi", "Bianchi", "Esposito", "Colombo", "De Luca", "Galli", "Ferrari", "Romano",
        ],
        domains: &["libero.it", "virgilio.it", "gmail.com", "tiscali.it"],
    },
    Locale {
        country: "NL",
        language: "nl",
        calling_code: "31",
        mobile_prefix: "61",
        subscriber_digits: 7,
        trunk: true,
        first: &[
            "Daan", "Sanne", "Joëlle", "Bram", "Femke", "Sem", "Anouk", "Ruud",
        ],
        last: &[
            "de Vries",
            "Jansen",
            "van den Berg",
            "Bakker",
            "Visser",
            "Smit",
            "van Dijk",
            "de Jong",
        ],
        domains: &["ziggo.nl", "kpnmail.nl", "gmail.com", "hotmail.nl"],
    },
    Locale {
        country: "GB",
        language: "en",
        calling_code: "44",
        mobile_prefix: "740",
        subscriber_digits: 7,
        trunk: true,
        first: &[
            "Oliver", "Amelia", "Harry", "Isla", "George", "Siobhán", "Jack", "Zoë",
        ],
        last: &[
            "Smith", "Jones", "O'Brien", "Taylor", "Brown", "Wilson", "Evans", "Thomas",
        ],
        domains: &["gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"],
    },
];

const TAGS: [&str; 12] = [
    "vip",
    "lead",
    "customer",
    "newsletter",
    "churn-risk",
    "partner",
    "trial",
    "enterprise",
    "event-2026",
    "reseller",
    "support-priority",
    "beta",
];
const NOTES: [&str; 6] = [
    "Prefers WhatsApp after 6pm",
    "Met at the Lyon trade fair; interested in the enterprise plan",
    "Asked for an invoice in EUR",
    "Do not call before 10am",
    "Referred by a partner agency",
    "Renewal discussion pending with procurement",
];
const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const INTERESTS: [&str; 5] = [
    "analytics",
    "automation",
    "mobile",
    "integrations",
    "security",
];

/// The custom field definitions generated values use (one of every type).
pub fn field_definitions() -> Vec<Value> {
    vec![
        json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": PLANS, "group": "Billing"}),
        json!({"key": "seats", "label": "Seats", "type": "number", "group": "Billing"}),
        json!({"key": "renewal_date", "label": "Renewal date", "type": "date", "group": "Billing"}),
        json!({"key": "last_login", "label": "Last login", "type": "datetime"}),
        json!({"key": "newsletter", "label": "Newsletter", "type": "checkbox"}),
        json!({"key": "interests", "label": "Interests", "type": "multiselect", "options": INTERESTS}),
        json!({"key": "website", "label": "Website", "type": "url"}),
        json!({"key": "billing_email", "label": "Billing email", "type": "email", "group": "Billing"}),
        json!({"key": "office_phone", "label": "Office phone", "type": "phone"}),
        json!({"key": "segment", "label": "Segment notes", "type": "text"}),
    ]
}

/// The generator: call [`Generator::contact`] for rows 0, 1, 2, …
pub struct Generator {
    rng: ChaCha8Rng,
    anchor: DateTime<Utc>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            anchor: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .expect("a valid anchor date"),
        }
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.rng.random_bool(probability)
    }

    /// Row `n` (rows must be asked in order for the bytes to be reproducible).
    pub fn contact(&mut self, n: u64) -> ContactInput {
        let locale = &LOCALES[self.rng.random_range(0..LOCALES.len())];
        let (first, last) = (self.pick(locale.first), self.pick(locale.last));
        let handle = format!("{}.{}", slug(first), slug(last));
        let email = format!("{handle}{n}@{}", self.pick(locale.domains));
        let phone = (!self.chance(0.15)).then(|| mobile(locale, n, self.chance(0.5)));
        let mut identities = Vec::new();
        if let Some(phone) = &phone
            && self.chance(0.4)
        {
            identities.push(IdentityInput {
                channel: "whatsapp".into(),
                value: phone.clone(),
                account: Some("wa-main".into()),
            });
        }
        if self.chance(0.1) {
            identities.push(IdentityInput {
                channel: "telegram".into(),
                value: format!("@{}_{n}", slug(first)),
                account: None,
            });
        }
        if self.chance(0.1) {
            identities.push(IdentityInput {
                channel: "instagram".into(),
                value: format!("@{handle}.{n}"),
                account: None,
            });
        }
        let tags = {
            let count = self.rng.random_range(0..=4);
            let mut tags: Vec<String> = Vec::new();
            for _ in 0..count {
                let tag = self.pick(&TAGS).to_string();
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            tags
        };
        let two_years = 2 * 365 * 24 * 60;
        let created_at = self.anchor - Duration::minutes(self.rng.random_range(0..two_years));
        let since_created = (self.anchor - created_at).num_minutes().max(1);
        let last_interaction = self
            .chance(0.7)
            .then(|| created_at + Duration::minutes(self.rng.random_range(0..since_created)));
        let incoming = last_interaction.filter(|_| self.chance(0.6));
        let channel = last_interaction.map(|_| {
            self.pick(&["email", "whatsapp", "phone", "sms", "instagram"])
                .to_string()
        });
        ContactInput {
            name: Some(format!("{first} {last}")),
            email: Some(email),
            phone,
            identities: Some(identities),
            country: Some(locale.country.into()),
            language: Some(locale.language.into()),
            tags: Some(tags),
            custom_fields: Some(self.custom_values(n, &handle, locale)),
            assignee: self
                .chance(0.7)
                .then(|| format!("agent-{}", self.rng.random_range(1..=20))),
            notes: self.chance(0.2).then(|| self.pick(&NOTES).to_string()),
            last_interaction_at: last_interaction.map(|t| t.to_rfc3339()),
            last_interacted_channel: channel,
            last_incoming_message_at: incoming.map(|t| t.to_rfc3339()),
            created_at: Some(created_at.to_rfc3339()),
            ..ContactInput::default()
        }
    }

    fn custom_values(&mut self, n: u64, handle: &str, locale: &Locale) -> Map<String, Value> {
        let mut values = Map::new();
        if self.chance(0.8) {
            values.insert("plan".into(), json!(self.pick(&PLANS)));
        }
        if self.chance(0.6) {
            values.insert("seats".into(), json!(self.rng.random_range(1..500)));
        }
        if self.chance(0.5) {
            let days = self.rng.random_range(-60..400);
            values.insert(
                "renewal_date".into(),
                json!(
                    (self.anchor + Duration::days(days))
                        .format("%Y-%m-%d")
                        .to_string()
                ),
            );
        }
        if self.chance(0.5) {
            let minutes = self.rng.random_range(0..90 * 24 * 60);
            values.insert(
                "last_login".into(),
                json!((self.anchor - Duration::minutes(minutes)).to_rfc3339()),
            );
        }
        values.insert("newsletter".into(), json!(self.chance(0.4)));
        if self.chance(0.5) {
            let chosen: Vec<&str> = INTERESTS
                .iter()
                .copied()
                .filter(|_| self.chance(0.35))
                .collect();
            values.insert("interests".into(), json!(chosen));
        }
        if self.chance(0.2) {
            values.insert(
                "website".into(),
                json!(format!("https://{}.example.com", handle.replace('.', "-"))),
            );
        }
        if self.chance(0.2) {
            values.insert(
                "billing_email".into(),
                json!(format!("billing.{handle}{n}@example.com")),
            );
        }
        if self.chance(0.15) {
            values.insert(
                "office_phone".into(),
                json!(mobile(locale, n + 50_000_000, false)),
            );
        }
        if self.chance(0.1) {
            values.insert("segment".into(), json!(self.pick(&NOTES)));
        }
        values
    }
}

/// Lower-case ASCII of a name part, words joined by dots (`de Vries` → `de.vries`).
fn slug(name: &str) -> String {
    fold_ascii(name).join(".")
}

/// A valid mobile number unique per (locale, n): subscriber digits are a bijection of
/// `n` modulo 10^digits.
fn mobile(locale: &Locale, n: u64, international: bool) -> String {
    let modulus = 10u64.pow(locale.subscriber_digits);
    // 7919 is prime and coprime with 10: n ↦ (n·7919 + 12345) mod 10^d is a bijection.
    let subscriber = (n.wrapping_mul(7919).wrapping_add(12_345)) % modulus;
    let digits = format!(
        "{}{:0width$}",
        locale.mobile_prefix,
        subscriber,
        width = locale.subscriber_digits as usize
    );
    let grouped = digits
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).expect("ASCII digits"))
        .collect::<Vec<_>>()
        .join(" ");
    if international {
        format!("+{} {grouped}", locale.calling_code)
    } else if locale.trunk {
        format!("0{grouped}")
    } else {
        grouped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u64, count: u64) -> Vec<u8> {
        let mut generator = Generator::new(seed);
        let mut out = Vec::new();
        for n in 0..count {
            serde_json::to_writer(&mut out, &generator.contact(n)).unwrap();
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(bytes(7, 200), bytes(7, 200));
        assert_ne!(bytes(7, 200), bytes(8, 200));
    }

    #[test]
    fn phones_are_unique_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for (i, locale) in LOCALES.iter().enumerate() {
            for n in [0u64, 1, 2, 99_999, 1_000_000] {
                let phone = mobile(locale, n, n % 2 == 0);
                let country = locale.country.parse().unwrap();
                let parsed = crate::model::normalize_phone(&phone, country).unwrap();
                assert!(
                    parsed.e164.is_some(),
                    "{phone} ({}) is not a valid number",
                    locale.country
                );
                assert!(seen.insert((i, parsed.e164)), "{phone} repeats");
            }
        }
    }
}
