//! The stored and served contact record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lifecycle state. Only `active` contacts hold identities and appear in search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Deleted,
    Merged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Deleted => "deleted",
            Status::Merged => "merged",
        }
    }

    pub const ALL: [Status; 3] = [Status::Active, Status::Deleted, Status::Merged];
}

/// A contact point on a channel other than the primary `email`/`phone` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub channel: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The canonical record, exactly as stored in redb and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub phone_e164: Option<String>,
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
    /// When the last conversation closed (server-managed; orders open/close events
    /// that arrive out of order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_closed_at: Option<DateTime<Utc>>,
    pub pending_actions: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// Fields a client may write: the keys of a create body and of a merge patch.
pub const WRITABLE_FIELDS: [&str; 19] = [
    "external_id",
    "name",
    "email",
    "phone",
    "identities",
    "company_id",
    "favorite",
    "country",
    "language",
    "tags",
    "custom_fields",
    "assignee",
    "notes",
    "avatar_url",
    "last_interaction_at",
    "last_interacted_channel",
    "last_incoming_message_at",
    "conversation_opened_at",
    "created_at",
];

impl Contact {
    /// Recomputes the derived fields; called after every change.
    pub(crate) fn refresh_computed(&mut self) {
        self.display_name = self
            .name
            .clone()
            .or_else(|| self.email.clone())
            .or_else(|| self.phone.clone())
            .or_else(|| self.identities.first().map(|i| i.value.clone()));
        self.pending_actions.clear();
        if self.email.is_none() && self.phone.is_none() {
            self.pending_actions.push("missing_contact_info".into());
        }
    }

    /// The writable part of this contact as a JSON object: the document a merge patch
    /// (RFC 7396) applies to. `created_at` is left out: it is fixed after creation.
    pub fn writable_json(&self) -> Value {
        let full = serde_json::to_value(self).expect("a contact always serializes");
        let Value::Object(mut map) = full else {
            unreachable!("a contact serializes to an object")
        };
        map.retain(|key, _| WRITABLE_FIELDS.contains(&key.as_str()) && key != "created_at");
        Value::Object(map)
    }

    /// This contact's writable fields as input, for re-validation (restore, merge).
    pub fn to_input(&self) -> super::ContactInput {
        let mut document = self.writable_json();
        document["created_at"] = serde_json::Value::from(
            self.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        serde_json::from_value(document).expect("a stored contact is valid input")
    }

    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }
}
