//! Client input for a contact and its validation into normalized values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::contact::{Contact, Identity, Status};
use super::custom_field::CustomFieldDefs;
use super::normalize::{
    IdentityKey, NormalizedPhone, is_phone_channel, normalize_email, normalize_phone,
};
use super::{FieldError, RequireRule, Rules, ValidationError, iso, time};

const MAX_SHORT_TEXT: usize = 500;
const MAX_NOTES: usize = 20_000;
const MAX_TAG_CHARS: usize = 100;

/// An identity as a client sends it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityInput {
    pub channel: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The writable fields of a contact as a client sends them. Wrong JSON types and
/// unknown fields fail deserialization (400); [`ContactInput::validate`] checks the
/// rest and reports every broken field at once (422). Serialized, it holds only the
/// fields given: the merge patch an upsert or `identify` applies.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<IdentityInput>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub favorite: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_interaction_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_interacted_channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_incoming_message_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_opened_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Validated, normalized contact values, ready to be stored.
#[derive(Debug, Clone, Default)]
pub struct ValidContact {
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<NormalizedPhone>,
    pub identities: Vec<Identity>,
    pub company_id: Option<String>,
    pub favorite: bool,
    pub country: Option<String>,
    pub language: Option<String>,
    pub tags: Vec<String>,
    pub custom_fields: Map<String, Value>,
    pub assignee: Option<String>,
    pub notes: Option<String>,
    pub avatar_url: Option<String>,
    pub last_interaction_at: Option<DateTime<Utc>>,
    pub last_interacted_channel: Option<String>,
    pub last_incoming_message_at: Option<DateTime<Utc>>,
    pub conversation_opened_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    /// Every identity this contact claims, with the input field it came from.
    pub identity_keys: Vec<(String, IdentityKey)>,
}

/// Collects field errors while a whole input is checked.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Trims a text; blank means absent. Over-long text is an error.
    fn text(&mut self, field: &str, value: Option<String>, max_chars: usize) -> Option<String> {
        let trimmed = value?.trim().to_string();
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.chars().count() > max_chars {
            self.fail(field, format!("must be at most {max_chars} characters"));
            return None;
        }
        Some(trimmed)
    }

    fn time(&mut self, field: &str, value: Option<String>) -> Option<DateTime<Utc>> {
        let text = self.text(field, value, 64)?;
        time::parse_time(&text)
            .map_err(|message| self.fail(field, message))
            .ok()
    }
}

impl ContactInput {
    /// Checks every field and returns normalized values, or every broken field.
    pub fn validate(
        self,
        rules: &Rules,
        defs: &CustomFieldDefs,
    ) -> Result<ValidContact, ValidationError> {
        // A number typed without `+` is read in the contact's own country when it has
        // one (a Polish contact's "501 234 567" is Polish), else in `default_country`.
        let phone_country = self
            .country
            .as_deref()
            .and_then(iso::country_code)
            .and_then(|code| code.parse::<phonenumber::country::Id>().ok())
            .unwrap_or(rules.default_country);
        let mut check = Checker::default();
        let mut valid = ValidContact {
            external_id: check.text("external_id", self.external_id, 200),
            name: check.text("name", self.name, MAX_SHORT_TEXT),
            company_id: check.text("company_id", self.company_id, 200),
            favorite: self.favorite.unwrap_or(false),
            assignee: check.text("assignee", self.assignee, 200),
            notes: check.text("notes", self.notes, MAX_NOTES),
            last_interaction_at: check.time("last_interaction_at", self.last_interaction_at),
            last_incoming_message_at: check
                .time("last_incoming_message_at", self.last_incoming_message_at),
            conversation_opened_at: check
                .time("conversation_opened_at", self.conversation_opened_at),
            created_at: check.time("created_at", self.created_at),
            ..ValidContact::default()
        };

        if let Some(email) = check.text("email", self.email, 254) {
            match normalize_email(&email) {
                Ok(email) => {
                    valid
                        .identity_keys
                        .push(("email".into(), IdentityKey::new("email", &email)));
                    valid.email = Some(email);
                }
                Err(message) => check.fail("email", message),
            }
        }
        if let Some(phone) = check.text("phone", self.phone, 64) {
            match normalize_phone(&phone, phone_country) {
                Ok(phone) => {
                    let key = IdentityKey::for_phone("phone", &phone);
                    valid.identity_keys.push(("phone".into(), key));
                    valid.phone = Some(phone);
                }
                Err(message) => check.fail("phone", message),
            }
        }
        if let Some(country) = check.text("country", self.country, 8) {
            valid.country = iso::country_code(&country);
            if valid.country.is_none() {
                check.fail(
                    "country",
                    format!("'{country}' is not an ISO 3166-1 alpha-2 code"),
                );
            }
        }
        if let Some(language) = check.text("language", self.language, 8) {
            valid.language = iso::language_code(&language);
            if valid.language.is_none() {
                check.fail("language", format!("'{language}' is not an ISO 639-1 code"));
            }
        }
        if let Some(url) = check.text("avatar_url", self.avatar_url, 2048) {
            if url.starts_with("https://") || url.starts_with("http://") {
                valid.avatar_url = Some(url);
            } else {
                check.fail("avatar_url", "must be an http:// or https:// URL");
            }
        }
        valid.last_interacted_channel = channel_name(
            &mut check,
            "last_interacted_channel",
            self.last_interacted_channel,
        );
        let limits = rules.input;
        valid.tags = tags(&mut check, self.tags.unwrap_or_default(), limits.tags_max);
        let custom = self.custom_fields.unwrap_or_default();
        if custom.len() > limits.custom_values_max {
            check.fail(
                "custom_fields",
                format!(
                    "at most {} custom values per contact (limits.custom_values_max)",
                    limits.custom_values_max
                ),
            );
        } else {
            valid.custom_fields = custom_fields(&mut check, custom, phone_country, defs);
        }
        identities(
            &mut check,
            self.identities.unwrap_or_default(),
            phone_country,
            limits.identities_max,
            &mut valid,
        );

        if check.errors.is_empty() {
            Ok(valid)
        } else {
            Err(ValidationError {
                details: check.errors,
            })
        }
    }
}

impl ValidContact {
    /// The `require` rule: which primary contact points a contact must have.
    pub fn check_require(&self, rule: RequireRule) -> Result<(), ValidationError> {
        let missing = match rule {
            RequireRule::Email if self.email.is_none() => Some(("email", "email is required")),
            RequireRule::EmailOrPhone if self.email.is_none() && self.phone.is_none() => {
                Some(("email", "an email or a phone is required"))
            }
            _ => None,
        };
        match missing {
            Some((field, message)) => Err(ValidationError::single(field, message)),
            None => Ok(()),
        }
    }

    /// A new active contact from these values.
    pub fn into_new_contact(self, id: String, now: DateTime<Utc>) -> Contact {
        let created_at = self.created_at.unwrap_or(now);
        let mut contact = Contact {
            id,
            external_id: None,
            name: None,
            display_name: None,
            email: None,
            phone: None,
            phone_e164: None,
            identities: Vec::new(),
            company_id: None,
            favorite: false,
            country: None,
            language: None,
            tags: Vec::new(),
            custom_fields: Map::new(),
            assignee: None,
            notes: None,
            avatar_url: None,
            last_interaction_at: None,
            last_interacted_channel: None,
            last_incoming_message_at: None,
            conversation_opened_at: None,
            conversation_closed_at: None,
            pending_actions: Vec::new(),
            status: Status::Active,
            merged_into: None,
            deleted_at: None,
            created_at,
            updated_at: now,
            version: 0,
        };
        self.apply_to(&mut contact, now);
        contact
    }

    /// Replaces the writable fields of `contact` with these values and bumps its version.
    pub fn apply_to(self, contact: &mut Contact, now: DateTime<Utc>) {
        contact.external_id = self.external_id;
        contact.name = self.name;
        contact.email = self.email;
        contact.phone_e164 = self.phone.as_ref().and_then(|p| p.e164.clone());
        contact.phone = self.phone.map(|p| p.typed);
        contact.identities = self.identities;
        contact.company_id = self.company_id;
        contact.favorite = self.favorite;
        contact.country = self.country;
        contact.language = self.language;
        contact.tags = self.tags;
        contact.custom_fields = self.custom_fields;
        contact.assignee = self.assignee;
        contact.notes = self.notes;
        contact.avatar_url = self.avatar_url;
        contact.last_interaction_at = self.last_interaction_at;
        contact.last_interacted_channel = self.last_interacted_channel;
        contact.last_incoming_message_at = self.last_incoming_message_at;
        contact.conversation_opened_at = self.conversation_opened_at;
        contact.updated_at = now;
        contact.version += 1;
        contact.refresh_computed();
    }
}

/// A channel name: lower-case letters, digits, `_` and `-`, 1 to 32 characters.
fn channel_name(check: &mut Checker, field: &str, value: Option<String>) -> Option<String> {
    let channel = check.text(field, value, 32)?.to_lowercase();
    let well_formed = channel
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if well_formed {
        Some(channel)
    } else {
        check.fail(field, "must use only a-z, 0-9, '_' and '-'");
        None
    }
}

/// Trimmed, de-duplicated case-insensitively, first spelling kept. At most `max`
/// as sent (duplicates count: the check comes before the work).
fn tags(check: &mut Checker, input: Vec<String>, max: usize) -> Vec<String> {
    if input.len() > max {
        check.fail("tags", format!("at most {max} tags (limits.tags_max)"));
        return Vec::new();
    }
    let mut tags: Vec<String> = Vec::new();
    for (i, tag) in input.into_iter().enumerate() {
        let field = format!("tags[{i}]");
        let tag = tag.trim().to_string();
        if tag.is_empty() {
            check.fail(field, "must not be empty");
        } else if tag.chars().count() > MAX_TAG_CHARS {
            check.fail(field, format!("must be at most {MAX_TAG_CHARS} characters"));
        } else if !tags.iter().any(|t| t.to_lowercase() == tag.to_lowercase()) {
            tags.push(tag);
        }
    }
    tags
}

/// Values of defined custom fields, validated by type; `null` (or an empty
/// multiselect, which a CSV cell cannot tell from no value) removes a key.
fn custom_fields(
    check: &mut Checker,
    input: Map<String, Value>,
    phone_country: phonenumber::country::Id,
    defs: &CustomFieldDefs,
) -> Map<String, Value> {
    let mut fields = Map::new();
    for (key, value) in input {
        let field = format!("custom_fields.{key}");
        if value.is_null() {
            continue;
        }
        let Some(def) = defs.get(&key) else {
            check.fail(
                field,
                format!("no custom field '{key}' is defined (POST /v1/custom-fields)"),
            );
            continue;
        };
        match def.normalize(&value, phone_country) {
            Ok(Value::Array(items)) if items.is_empty() => {}
            Ok(value) => {
                fields.insert(key, value);
            }
            Err(message) => check.fail(field, message),
        }
    }
    fields
}

/// Validates identities, normalizes their values, and drops duplicates (including
/// ones repeating the primary email/phone, which are identities already).
fn identities(
    check: &mut Checker,
    input: Vec<IdentityInput>,
    phone_country: phonenumber::country::Id,
    max: usize,
    valid: &mut ValidContact,
) {
    if input.len() > max {
        check.fail(
            "identities",
            format!("at most {max} identities (limits.identities_max)"),
        );
        return;
    }
    for (i, identity) in input.into_iter().enumerate() {
        let field = format!("identities[{i}]");
        let Some(channel) =
            channel_name(check, &format!("{field}.channel"), Some(identity.channel))
        else {
            check.fail(format!("{field}.channel"), "is required");
            continue;
        };
        let Some(raw) = check.text(&format!("{field}.value"), Some(identity.value), 320) else {
            check.fail(format!("{field}.value"), "is required");
            continue;
        };
        let normalized = if channel == "email" {
            normalize_email(&raw).map(|email| (email.clone(), IdentityKey::new("email", &email)))
        } else if is_phone_channel(&channel) {
            // A phone identity is often the contact's phone typed again (a
            // WhatsApp number): its normalization is reused rather than parsed twice.
            let primary = valid
                .phone
                .as_ref()
                .filter(|phone| phone.typed == raw.trim());
            primary
                .map_or_else(
                    || normalize_phone(&raw, phone_country),
                    |phone| Ok(phone.clone()),
                )
                .map(|phone| {
                    let key = IdentityKey::for_phone(&channel, &phone);
                    (phone.e164.unwrap_or(phone.typed), key)
                })
        } else {
            Ok((raw.clone(), IdentityKey::new(&channel, &raw.to_lowercase())))
        };
        let (value, key) = match normalized {
            Ok(pair) => pair,
            Err(message) => {
                check.fail(format!("{field}.value"), message);
                continue;
            }
        };
        if valid.identity_keys.iter().any(|(_, k)| *k == key) {
            continue;
        }
        let account = check.text(&format!("{field}.account"), identity.account, 200);
        valid.identity_keys.push((format!("{field}.value"), key));
        valid.identities.push(Identity {
            channel,
            value,
            account,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            input: crate::model::InputLimits::default(),
            require: RequireRule::EmailOrPhone,
            default_country: phonenumber::country::Id::FR,
            unique_name: false,
            unique_identities: true,
            restore_window_days: 60,
        }
    }

    #[test]
    fn reports_every_broken_field() {
        let input = ContactInput {
            email: Some("nope".into()),
            phone: Some("abc".into()),
            country: Some("ZZ".into()),
            language: Some("xx".into()),
            tags: Some(vec![" ".into()]),
            ..ContactInput::default()
        };
        let err = input
            .validate(&rules(), &CustomFieldDefs::new())
            .unwrap_err();
        let fields: Vec<_> = err.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["email", "phone", "country", "language", "tags[0]"]);
    }

    #[test]
    fn normalizes_and_dedupes() {
        let input = ContactInput {
            email: Some("H.Dupont@Orange.FR".into()),
            tags: Some(vec!["VIP".into(), " vip ".into(), "lead".into()]),
            identities: Some(vec![
                IdentityInput {
                    channel: "email".into(),
                    value: "h.dupont@orange.fr".into(),
                    account: None,
                },
                IdentityInput {
                    channel: "WhatsApp".into(),
                    value: "06 12 34 56 78".into(),
                    account: Some("wa-main".into()),
                },
            ]),
            ..ContactInput::default()
        };
        let valid = input.validate(&rules(), &CustomFieldDefs::new()).unwrap();
        assert_eq!(valid.email.as_deref(), Some("h.dupont@orange.fr"));
        assert_eq!(valid.tags, ["VIP", "lead"]);
        assert_eq!(valid.identities.len(), 1);
        assert_eq!(valid.identities[0].channel, "whatsapp");
        assert_eq!(valid.identities[0].value, "+33612345678");
        assert_eq!(valid.identity_keys.len(), 2);
    }

    #[test]
    fn national_numbers_are_read_in_the_contacts_country() {
        let whatsapp = |value: &str| IdentityInput {
            channel: "whatsapp".into(),
            value: value.into(),
            account: None,
        };
        let polish = ContactInput {
            phone: Some("501 234 567".into()),
            country: Some("pl".into()),
            identities: Some(vec![whatsapp("502 000 111")]),
            ..ContactInput::default()
        };
        let valid = polish.validate(&rules(), &CustomFieldDefs::new()).unwrap();
        let phone = valid.phone.unwrap();
        assert_eq!(phone.e164.as_deref(), Some("+48501234567"));
        assert_eq!(valid.identities[0].value, "+48502000111");
        // Without a country, the default one (FR here) applies.
        let french = ContactInput {
            phone: Some("06 12 34 56 78".into()),
            ..ContactInput::default()
        };
        let valid = french.validate(&rules(), &CustomFieldDefs::new()).unwrap();
        assert_eq!(valid.phone.unwrap().e164.as_deref(), Some("+33612345678"));
    }
}
