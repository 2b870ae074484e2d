//! Likely duplicates: the match keys under which two contacts may be one person, and
//! how alike a pair is (a score and its reasons).
//!
//! Keys are indexed with each active contact, so candidates are found by key lookups
//! as contacts change, never by comparing every pair. A key shared by more than
//! [`GROUP_MAX`] contacts is too common to mean anything (a company's switchboard
//! number, a frequent name) and suggests nothing.

use serde::Serialize;

use super::{Contact, name_key};

/// Contacts sharing one key beyond which the key suggests nothing.
pub const GROUP_MAX: usize = 20;

/// Channels whose identity values are phone numbers.
const PHONE_CHANNELS: [&str; 5] = ["phone", "sms", "whatsapp", "telegram", "signal"];

/// Digits a phone is compared on: the last nine, which hold the subscriber number
/// whether it was typed nationally (`06 12 34 56 78`) or internationally (`+33 6 …`).
const PHONE_TAIL: usize = 9;
/// Digits of the phone fragment that backs a near-identical name.
const PHONE_FRAGMENT: usize = 7;
/// The shortest email local part that counts as a fragment.
const EMAIL_FRAGMENT_MIN: usize = 4;

/// Why two contacts may be one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The same email, apart from case, dots and `+tags` in its local part.
    SameEmail,
    /// The same phone number, however it was typed.
    SamePhone,
    /// The same identity on a messaging channel.
    SameIdentity,
    /// The same name (accents, case and spacing aside) and the same company.
    SameNameAndCompany,
    /// The same name and the same country.
    SameNameAndCountry,
    /// Names one typo apart, with a shared piece of email or phone.
    SimilarNameAndContact,
}

impl Reason {
    /// How strongly the reason alone suggests one person.
    fn weight(self) -> f64 {
        match self {
            Reason::SameEmail | Reason::SameIdentity => 0.9,
            Reason::SamePhone => 0.8,
            Reason::SameNameAndCompany => 0.7,
            Reason::SimilarNameAndContact => 0.6,
            Reason::SameNameAndCountry => 0.35,
        }
    }
}

/// How alike two contacts are.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Likeness {
    /// 0–1: the chance, by the reasons' weights, that they are one person.
    pub score: f64,
    pub reasons: Vec<Reason>,
}

/// An email without what people vary when typing the same address.
fn loose_email(email: &str) -> Option<(String, String)> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let local: String = local
        .split('+')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| *c != '.')
        .collect();
    let domain = match domain {
        "googlemail.com" => "gmail.com",
        other => other,
    };
    (!local.is_empty() && !domain.is_empty()).then(|| (local, domain.to_string()))
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn tail(digits: &str, length: usize) -> Option<&str> {
    (digits.len() >= length).then(|| &digits[digits.len() - length..])
}

/// What a contact is compared on.
struct Traits {
    emails: Vec<(String, String)>,
    phones: Vec<String>,
    identities: Vec<String>,
    name: Option<String>,
}

impl Traits {
    fn of(contact: &Contact) -> Traits {
        let mut emails: Vec<(String, String)> = contact
            .email
            .iter()
            .filter_map(|e| loose_email(e))
            .collect();
        let mut phones: Vec<String> = contact
            .phone_e164
            .iter()
            .chain(contact.phone.iter())
            .map(|p| digits(p))
            .collect();
        let mut identities = Vec::new();
        for identity in &contact.identities {
            let channel = identity.channel.to_lowercase();
            if channel == "email" {
                emails.extend(loose_email(&identity.value));
            } else if PHONE_CHANNELS.contains(&channel.as_str()) {
                phones.push(digits(&identity.value));
            } else {
                identities.push(format!(
                    "{channel}:{}",
                    identity.value.trim().to_lowercase()
                ));
            }
        }
        let mut phones: Vec<String> = phones
            .iter()
            .filter_map(|p| tail(p, PHONE_TAIL))
            .map(str::to_string)
            .collect();
        for list in [&mut phones, &mut identities] {
            list.sort();
            list.dedup();
        }
        emails.sort();
        emails.dedup();
        let name = contact
            .name
            .as_deref()
            .map(name_key)
            .filter(|n| !n.is_empty());
        Traits {
            emails,
            phones,
            identities,
            name,
        }
    }

    /// Pieces of email and phone that back a near-identical name.
    fn fragments(&self) -> Vec<String> {
        let emails = self
            .emails
            .iter()
            .filter(|(local, _)| local.len() >= EMAIL_FRAGMENT_MIN)
            .map(|(local, _)| format!("fe:{local}"));
        let phones = self
            .phones
            .iter()
            .filter_map(|p| tail(p, PHONE_FRAGMENT))
            .map(|p| format!("fp:{p}"));
        emails.chain(phones).collect()
    }
}

/// What a contact's duplicates are looked up by: the contacts indexed under one
/// [`match_keys`] key, or under any key starting with a fragment's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProbe {
    Exact(String),
    Prefix(String),
}

/// An email's key: `e:` and the loose address.
fn email_key((local, domain): &(String, String)) -> String {
    format!("e:{local}@{domain}")
}

/// A phone's key: `p:` and its last nine digits read backwards, so the keys of the
/// phones sharing their last seven digits (a [`Traits::fragments`] fragment) are
/// the keys starting with one prefix.
fn phone_key(tail: &str) -> String {
    let mut key = String::from("p:");
    key.extend(tail.chars().rev());
    key
}

/// The keys an active contact is indexed under for duplicate lookups.
///
/// Fragments are not keys of their own: an email's local part is the prefix of its
/// key up to `@`, a phone's last seven digits the prefix of its reversed key (see
/// [`fragment_prefix`]). Two contacts that [`compare`] finds alike share a key or
/// a fragment prefix (a third of the keys at 1M were fragments).
pub fn match_keys(contact: &Contact) -> Vec<String> {
    let traits = Traits::of(contact);
    let mut keys: Vec<String> = traits
        .emails
        .iter()
        .map(email_key)
        .chain(traits.phones.iter().map(|p| phone_key(p)))
        .chain(traits.identities.iter().map(|i| format!("i:{i}")))
        .collect();
    if let Some(name) = &traits.name {
        if let Some(company) = &contact.company_id {
            keys.push(format!("nc:{name}\u{1f}{company}"));
        }
        if let Some(country) = &contact.country {
            keys.push(format!("nk:{name}\u{1f}{country}"));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The prefix a key shares with the keys of the same fragment: `e:local@` for an
/// email whose local part counts as a fragment, `p:` and seven reversed digits for
/// a phone. `None` for other keys. Keys of one prefix are next to each other in key
/// order, so a walk of the sorted keys meets each fragment's keys in one run.
pub fn fragment_prefix(key: &str) -> Option<&str> {
    if let Some(address) = key.strip_prefix("e:") {
        let local = address.rsplit_once('@')?.0;
        return (local.len() >= EMAIL_FRAGMENT_MIN).then(|| &key[..2 + local.len() + 1]);
    }
    let digits = key.strip_prefix("p:")?;
    (digits.len() >= PHONE_FRAGMENT).then(|| &key[..2 + PHONE_FRAGMENT])
}

/// What to look `contact`'s duplicates up by: each key, and each fragment's prefix.
pub fn key_probes(contact: &Contact) -> Vec<KeyProbe> {
    let keys = match_keys(contact);
    let mut prefixes: Vec<String> = keys
        .iter()
        .filter_map(|key| fragment_prefix(key))
        .map(str::to_string)
        .collect();
    prefixes.sort();
    prefixes.dedup();
    keys.into_iter()
        .map(KeyProbe::Exact)
        .chain(prefixes.into_iter().map(KeyProbe::Prefix))
        .collect()
}

/// How alike `a` and `b` are; `None` when nothing suggests one person.
pub fn compare(a: &Contact, b: &Contact) -> Option<Likeness> {
    if a.id == b.id {
        return None;
    }
    let (ta, tb) = (Traits::of(a), Traits::of(b));
    let shares = |x: &[String], y: &[String]| x.iter().any(|v| y.contains(v));
    let mut reasons = Vec::new();
    if ta.emails.iter().any(|e| tb.emails.contains(e)) {
        reasons.push(Reason::SameEmail);
    }
    if shares(&ta.phones, &tb.phones) {
        reasons.push(Reason::SamePhone);
    }
    if shares(&ta.identities, &tb.identities) {
        reasons.push(Reason::SameIdentity);
    }
    if let (Some(na), Some(nb)) = (&ta.name, &tb.name) {
        if na == nb {
            if a.company_id.is_some() && a.company_id == b.company_id {
                reasons.push(Reason::SameNameAndCompany);
            } else if a.country.is_some() && a.country == b.country {
                reasons.push(Reason::SameNameAndCountry);
            }
        } else if na.len() >= 4
            && strsim::osa_distance(na, nb) == 1
            && shares(&ta.fragments(), &tb.fragments())
        {
            reasons.push(Reason::SimilarNameAndContact);
        }
    }
    if reasons.is_empty() {
        return None;
    }
    let apart: f64 = reasons.iter().map(|r| 1.0 - r.weight()).product();
    // Two decimals: scores are for ordering and reading, not arithmetic.
    let score = ((1.0 - apart) * 100.0).round() / 100.0;
    Some(Likeness { score, reasons })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: &str, fields: serde_json::Value) -> Contact {
        let mut base = serde_json::json!({
            "id": id, "external_id": null, "name": null, "display_name": null, "email": null,
            "phone": null, "phone_e164": null, "identities": [], "company_id": null,
            "favorite": false, "country": null, "language": null, "tags": [],
            "custom_fields": {}, "assignee": null, "notes": null, "avatar_url": null,
            "last_interaction_at": null, "last_interacted_channel": null,
            "last_incoming_message_at": null, "conversation_opened_at": null,
            "pending_actions": [], "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "version": 1
        });
        for (key, value) in fields.as_object().unwrap() {
            base[key] = value.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    /// Whether a lookup of `a`'s probes meets one of `b`'s keys.
    fn keys_meet(a: &Contact, b: &Contact) -> bool {
        let theirs = match_keys(b);
        key_probes(a).iter().any(|probe| match probe {
            KeyProbe::Exact(key) => theirs.contains(key),
            KeyProbe::Prefix(prefix) => theirs.iter().any(|k| k.starts_with(prefix.as_str())),
        })
    }

    #[test]
    fn every_reason_is_found_and_backed_by_a_shared_key() {
        use serde_json::json;
        let cases = [
            (
                json!({"email": "Jean.Dupont+crm@gmail.com"}),
                json!({"email": "jeandupont@googlemail.com"}),
                Reason::SameEmail,
            ),
            (
                json!({"phone": "06 12 34 56 78"}),
                json!({"phone": "+33 6 12 34 56 78", "phone_e164": "+33612345678"}),
                Reason::SamePhone,
            ),
            (
                json!({"identities": [{"channel": "telegram_id", "value": "4242"}]}),
                json!({"identities": [{"channel": "Telegram_ID", "value": "4242"}]}),
                Reason::SameIdentity,
            ),
            (
                json!({"name": "Hélène Dupont", "company_id": "c1"}),
                json!({"name": "helene  DUPONT", "company_id": "c1"}),
                Reason::SameNameAndCompany,
            ),
            (
                json!({"name": "Hélène Dupont", "country": "FR"}),
                json!({"name": "Helene Dupont", "country": "FR"}),
                Reason::SameNameAndCountry,
            ),
            (
                json!({"name": "Helene Dupont", "email": "hdupont@orange.fr"}),
                json!({"name": "Helene Dupond", "email": "hdupont@free.fr"}),
                Reason::SimilarNameAndContact,
            ),
        ];
        for (left, right, reason) in cases {
            let (a, b) = (contact("a", left), contact("b", right));
            let likeness = compare(&a, &b).unwrap_or_else(|| panic!("{reason:?}"));
            assert_eq!(likeness.reasons, [reason]);
            assert!(keys_meet(&a, &b), "{reason:?} has no shared key");
            assert_eq!(compare(&b, &a), Some(likeness), "symmetric");
        }
    }

    #[test]
    fn unrelated_or_weakly_related_contacts_are_not_suggested() {
        use serde_json::json;
        let a = contact(
            "a",
            json!({"name": "Helene Dupont", "email": "hd@orange.fr"}),
        );
        let typo_only = contact("b", json!({"name": "Helene Dupond", "email": "x@y.fr"}));
        assert_eq!(compare(&a, &typo_only), None, "a typo alone is not enough");
        let other = contact(
            "c",
            json!({"name": "Marc Vidal", "phone": "+33 6 99 99 99 99"}),
        );
        assert_eq!(compare(&a, &other), None);
        assert_eq!(compare(&a, &a), None, "never a pair with itself");
        let both = contact(
            "d",
            json!({"name": "Helene Dupont", "email": "h.d@orange.fr", "country": "FR"}),
        );
        let mut twin = both.clone();
        twin.id = "e".into();
        let likeness = compare(&both, &twin).unwrap();
        assert_eq!(
            likeness.reasons,
            [Reason::SameEmail, Reason::SameNameAndCountry]
        );
        assert!(likeness.score > 0.9 && likeness.score < 1.0, "{likeness:?}");
    }
}
