//! Identity resolution (`identify`) and activity events.

use serde_json::{Map, Value};

use super::{TxnTables, key_list};
use crate::model::{Contact, ContactInput, Event};
use crate::store::StoreError;

/// Scalar fields `identify` fills when the found contact has none.
const FILLABLE: [&str; 13] = [
    "external_id",
    "name",
    "email",
    "phone",
    "company_id",
    "country",
    "language",
    "assignee",
    "notes",
    "avatar_url",
    "last_interaction_at",
    "last_interacted_channel",
    "last_incoming_message_at",
];

/// What `identify` did.
#[derive(Debug, Clone)]
pub struct Identified {
    pub contact: Contact,
    pub created: bool,
}

impl TxnTables<'_> {
    /// Finds the active contact holding any of the input's identities and fills its
    /// empty fields, or creates one (the `require` rule does not apply). Runs in the
    /// single writer, so concurrent identical calls create one contact.
    pub fn identify(&mut self, mut input: ContactInput) -> Result<(Identified, u64), StoreError> {
        promote_primary(&mut input);
        let valid = self.validate(input.clone())?;
        if valid.identity_keys.is_empty() {
            return Err(crate::model::ValidationError::single(
                "identities",
                "give at least one identity (or an email or phone)",
            )
            .into());
        }
        let Some(id) = self.holder_of_any(&valid.identity_keys)? else {
            let id = ulid::Ulid::generate().to_string();
            self.check_claims(&valid, &id, &|_, _| false)?;
            let keys = key_list(&valid);
            let contact = valid.into_new_contact(id, self.now);
            let (contact, seq) = self.save(None, contact, Some(keys))?;
            return Ok((
                Identified {
                    contact,
                    created: true,
                },
                seq,
            ));
        };

        let before = self.load_active(&id, None)?;
        let filled = self.fill_empty(&before, input)?;
        let filled: ContactInput = serde_json::from_value(filled)
            .map_err(|e| StoreError::BadRequest(format!("invalid identify body: {e}")))?;
        let valid = self.validate(filled)?;
        let keys = key_list(&valid);
        let mut after = before.clone();
        valid.clone().apply_to(&mut after, self.now);
        // Compared after normalization: nothing new means no write and no new version.
        if after.writable_json() == before.writable_json() {
            return Ok((
                Identified {
                    contact: before,
                    created: false,
                },
                self.last_seq(),
            ));
        }
        self.check_claims(&valid, &id, &|_, _| false)?;
        let (contact, seq) = self.save(Some(&before), after, Some(keys))?;
        Ok((
            Identified {
                contact,
                created: false,
            },
            seq,
        ))
    }

    /// The found contact's writable document with only its empty fields filled from
    /// the input; identities held by no other contact are added, tags and custom
    /// values only where it has none.
    fn fill_empty(&self, contact: &Contact, input: ContactInput) -> Result<Value, StoreError> {
        let mut document = contact.writable_json();
        let incoming = serde_json::to_value(&input).expect("input serializes");
        let (Value::Object(target), Value::Object(incoming)) = (&mut document, incoming) else {
            unreachable!("both are objects")
        };
        for field in FILLABLE {
            if target.get(field).is_none_or(Value::is_null)
                && let Some(value) = incoming.get(field).filter(|v| !v.is_null())
            {
                target.insert(field.into(), value.clone());
            }
        }
        if target["tags"].as_array().is_none_or(Vec::is_empty) {
            target.insert(
                "tags".into(),
                incoming
                    .get("tags")
                    .cloned()
                    .unwrap_or(Value::Array(vec![])),
            );
        }
        if let Some(Value::Object(custom)) = incoming.get("custom_fields") {
            let mine = target["custom_fields"]
                .as_object_mut()
                .expect("custom_fields is an object");
            for (key, value) in custom {
                mine.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        // Primary email/phone already filled from identities of those channels.
        let mut identities = target["identities"].as_array().cloned().unwrap_or_default();
        for identity in incoming
            .get("identities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let same = |i: &Value| {
                i["channel"] == identity["channel"]
                    && i["value"].as_str().map(str::to_lowercase)
                        == identity["value"].as_str().map(str::to_lowercase)
            };
            if !identities.iter().any(same) {
                identities.push(identity.clone());
            }
        }
        target.insert("identities".into(), Value::Array(identities));
        if target.get("email").is_none_or(Value::is_null)
            && let Some(email) = first_identity(target, "email")
        {
            target.insert("email".into(), email);
        }
        if target.get("phone").is_none_or(Value::is_null)
            && let Some(phone) = first_identity(target, "phone")
        {
            target.insert("phone".into(), phone);
        }
        Ok(document)
    }

    /// Applies events to one active contact; returns it (unchanged when no event moved
    /// anything) and the sequence of the write.
    pub fn apply_events(
        &mut self,
        id: &str,
        events: &[Event],
    ) -> Result<(Contact, u64), StoreError> {
        let before = self.load_active(id, None)?;
        let mut after = before.clone();
        let changed = events
            .iter()
            .fold(false, |changed, event| event.apply(&mut after) | changed);
        if !changed {
            return Ok((before, self.last_seq()));
        }
        after.version += 1;
        after.updated_at = self.now;
        self.save(Some(&before), after, None)
    }
}

/// An email/phone channel identity becomes the primary email/phone when none is given.
fn promote_primary(input: &mut ContactInput) {
    let find = |channel: &str| {
        input
            .identities
            .iter()
            .flatten()
            .find(|i| i.channel.trim().eq_ignore_ascii_case(channel))
            .map(|i| i.value.clone())
    };
    if input.email.is_none() {
        input.email = find("email");
    }
    if input.phone.is_none() {
        input.phone = find("phone");
    }
}

fn first_identity(document: &Map<String, Value>, channel: &str) -> Option<Value> {
    document["identities"]
        .as_array()?
        .iter()
        .find(|i| i["channel"].as_str().map(str::to_lowercase).as_deref() == Some(channel))
        .map(|i| i["value"].clone())
}
