//! Merge and unmerge as pure functions over contacts.
//!
//! Merge: `this` absorbs `other`. Identities and tags are united; each field listed in
//! `keep` takes the chosen side; any other field keeps this contact's value or fills
//! from the other when empty; a primary email/phone not kept stays as an identity;
//! activity times take the latest; `created_at` the earliest.
//!
//! Unmerge: with the [`MergeRecord`] taken at merge time, the other comes back exactly as
//! it was, and this contact loses what came only from the other: every field still
//! holding the value the merge gave it returns to its pre-merge value, while fields
//! edited since the merge keep their edits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::contact::{Contact, Identity};
use super::{FieldError, ValidationError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    This,
    Other,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub other_id: String,
    #[serde(default)]
    pub keep: BTreeMap<String, Side>,
}

/// Everything needed to undo a merge, stored in redb with the merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeRecord {
    pub survivor_before: Contact,
    pub survivor_after: Contact,
    pub other_before: Contact,
    pub merged_at: DateTime<Utc>,
}

/// Scalar fields a merge can take from either side.
const KEEPABLE: [&str; 11] = [
    "external_id",
    "name",
    "email",
    "phone",
    "company_id",
    "favorite",
    "country",
    "language",
    "assignee",
    "notes",
    "avatar_url",
];

/// Fields whose value an unmerge reverts when unchanged since the merge.
const REVERTIBLE: [&str; 18] = [
    "external_id",
    "name",
    "email",
    "phone",
    "phone_e164",
    "company_id",
    "favorite",
    "country",
    "language",
    "assignee",
    "notes",
    "avatar_url",
    "last_interaction_at",
    "last_interacted_channel",
    "last_incoming_message_at",
    "conversation_opened_at",
    "conversation_closed_at",
    "created_at",
];

fn to_map(contact: &Contact) -> Map<String, Value> {
    match serde_json::to_value(contact).expect("a contact serializes") {
        Value::Object(map) => map,
        _ => unreachable!("a contact serializes to an object"),
    }
}

fn from_map(map: Map<String, Value>) -> Contact {
    serde_json::from_value(Value::Object(map)).expect("fields come from valid contacts")
}

fn is_empty(value: &Value) -> bool {
    value.is_null() || value == &Value::Bool(false)
}

fn identity_key(identity: &Identity) -> (String, String) {
    (identity.channel.clone(), identity.value.to_lowercase())
}

/// The merged survivor (not yet re-validated; the store validates and claims).
pub fn merge(
    this: &Contact,
    other: &Contact,
    keep: &BTreeMap<String, Side>,
) -> Result<Contact, ValidationError> {
    let unknown: Vec<FieldError> = keep
        .keys()
        .filter(|k| !KEEPABLE.contains(&k.as_str()) && !k.starts_with("custom_fields."))
        .map(|k| FieldError {
            field: format!("keep.{k}"),
            message: format!(
                "not a mergeable field (one of {} or custom_fields.<key>)",
                KEEPABLE.join(", ")
            ),
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ValidationError { details: unknown });
    }
    let (ours, theirs) = (to_map(this), to_map(other));
    let mut merged = ours.clone();
    for field in KEEPABLE {
        let take_other = match keep.get(field) {
            Some(Side::Other) => true,
            Some(Side::This) => false,
            None => is_empty(&ours[field]) && !is_empty(&theirs[field]),
        };
        if take_other {
            merged.insert(field.into(), theirs[field].clone());
            if field == "phone" {
                merged.insert("phone_e164".into(), theirs["phone_e164"].clone());
            }
        }
    }
    let mut result = from_map(merged);

    let mut custom = this.custom_fields.clone();
    for (key, value) in &other.custom_fields {
        let side = keep.get(&format!("custom_fields.{key}")).copied();
        if side == Some(Side::Other) || (side.is_none() && !custom.contains_key(key)) {
            custom.insert(key.clone(), value.clone());
        }
    }
    for key in this.custom_fields.keys() {
        if keep.get(&format!("custom_fields.{key}")) == Some(&Side::Other)
            && !other.custom_fields.contains_key(key)
        {
            custom.remove(key);
        }
    }
    result.custom_fields = custom;

    // Identities: both lists, plus any primary email/phone that lost its primary place.
    let mut identities: Vec<Identity> = Vec::new();
    let mut add = |identity: Identity| {
        if !identities
            .iter()
            .any(|i| identity_key(i) == identity_key(&identity))
        {
            identities.push(identity);
        }
    };
    this.identities
        .iter()
        .chain(&other.identities)
        .cloned()
        .for_each(&mut add);
    for side in [this, other] {
        if let Some(email) = &side.email
            && result.email.as_ref() != Some(email)
        {
            add(Identity {
                channel: "email".into(),
                value: email.clone(),
                account: None,
            });
        }
        if let Some(phone) = &side.phone
            && result.phone.as_ref() != Some(phone)
        {
            let value = side.phone_e164.clone().unwrap_or_else(|| phone.clone());
            add(Identity {
                channel: "phone".into(),
                value,
                account: None,
            });
        }
    }
    result.identities = identities;

    for tag in &other.tags {
        if !result
            .tags
            .iter()
            .any(|t| t.to_lowercase() == tag.to_lowercase())
        {
            result.tags.push(tag.clone());
        }
    }
    if other.last_interaction_at > this.last_interaction_at {
        result.last_interaction_at = other.last_interaction_at;
        result.last_interacted_channel = other.last_interacted_channel.clone();
    }
    result.last_incoming_message_at = this
        .last_incoming_message_at
        .max(other.last_incoming_message_at);
    result.conversation_closed_at = this
        .conversation_closed_at
        .max(other.conversation_closed_at);
    result.conversation_opened_at = this
        .conversation_opened_at
        .max(other.conversation_opened_at)
        .filter(|opened| {
            result
                .conversation_closed_at
                .is_none_or(|closed| *opened > closed)
        });
    result.created_at = this.created_at.min(other.created_at);
    Ok(result)
}

/// The survivor with what came only from the other removed (edits since kept).
pub fn unmerge_survivor(current: &Contact, record: &MergeRecord) -> Contact {
    let (now, before, after) = (
        to_map(current),
        to_map(&record.survivor_before),
        to_map(&record.survivor_after),
    );
    let mut restored = now.clone();
    for field in REVERTIBLE {
        if now.get(field) == after.get(field) {
            restored.insert(
                field.into(),
                before.get(field).cloned().unwrap_or(Value::Null),
            );
        }
    }
    let mut result = from_map(restored);

    let added_identities: Vec<(String, String)> = record
        .survivor_after
        .identities
        .iter()
        .map(identity_key)
        .filter(|k| {
            !record
                .survivor_before
                .identities
                .iter()
                .any(|i| identity_key(i) == *k)
        })
        .collect();
    result
        .identities
        .retain(|i| !added_identities.contains(&identity_key(i)));
    // A primary email/phone returning to the survivor is no longer an extra identity.
    let primaries: Vec<(String, String)> = [
        result.email.clone().map(|e| ("email".to_string(), e)),
        result
            .phone_e164
            .clone()
            .or(result.phone.clone())
            .map(|p| ("phone".to_string(), p.to_lowercase())),
    ]
    .into_iter()
    .flatten()
    .collect();
    result
        .identities
        .retain(|i| !primaries.contains(&identity_key(i)));

    let lower = |tags: &[String]| tags.iter().map(|t| t.to_lowercase()).collect::<Vec<_>>();
    let before_tags = lower(&record.survivor_before.tags);
    let added_tags: Vec<String> = lower(&record.survivor_after.tags)
        .into_iter()
        .filter(|t| !before_tags.contains(t))
        .collect();
    result
        .tags
        .retain(|t| !added_tags.contains(&t.to_lowercase()));

    let keys: Vec<String> = current
        .custom_fields
        .keys()
        .chain(record.survivor_after.custom_fields.keys())
        .cloned()
        .collect();
    for key in keys {
        if current.custom_fields.get(&key) == record.survivor_after.custom_fields.get(&key) {
            match record.survivor_before.custom_fields.get(&key) {
                Some(value) => result.custom_fields.insert(key, value.clone()),
                None => result.custom_fields.remove(&key),
            };
        }
    }
    result
}
