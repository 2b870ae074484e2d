//! The stored and served contact record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Lifecycle state. Only `active` contacts hold identities and appear in search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    pub channel: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The canonical record, exactly as stored in redb and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Contacts for tests: one with every field set (merged, deleted, sub-second instants,
/// custom values of several JSON types) and one with every optional field empty.
#[cfg(test)]
pub(crate) fn sample_contacts() -> [Contact; 2] {
    let full = serde_json::json!({
        "id": "01J0000000000000000000000A", "external_id": "crm-1", "name": "Hélène",
        "display_name": "Hélène", "email": "h@example.fr", "phone": "06 12 34 56 78",
        "phone_e164": "+33612345678",
        "identities": [{"channel": "whatsapp", "value": "+33612345678", "account": "wa"},
                       {"channel": "instagram", "value": "@helene"}],
        "company_id": "co-1", "favorite": true, "country": "FR", "language": "fr",
        "tags": ["vip"], "custom_fields": {"plan": "pro", "seats": 3, "ratio": 0.5,
                                           "skills": ["a", "b"], "ok": true},
        "assignee": "agent-1", "notes": "note\n\"quoted\"",
        "avatar_url": "https://a.example/x.png",
        "last_interaction_at": "2026-01-02T03:04:05.678901234Z",
        "last_interacted_channel": "whatsapp",
        "last_incoming_message_at": "1969-07-20T20:17:40Z",
        "conversation_opened_at": "2026-01-01T00:00:00Z",
        "conversation_closed_at": "2026-01-01T01:00:00Z",
        "pending_actions": ["call"], "status": "merged",
        "merged_into": "01J000000000000000000000ZZ", "deleted_at": "2026-02-01T00:00:00Z",
        "created_at": "2025-05-06T07:08:09.123456Z", "updated_at": "2026-01-02T03:04:05Z",
        "version": 4
    });
    let sparse = serde_json::json!({
        "id": "01J0000000000000000000000B", "external_id": null, "name": null,
        "display_name": null, "email": null, "phone": null, "phone_e164": null,
        "identities": [], "company_id": null, "favorite": false, "country": null,
        "language": null, "tags": [], "custom_fields": {}, "assignee": null,
        "notes": null, "avatar_url": null, "last_interaction_at": null,
        "last_interacted_channel": null, "last_incoming_message_at": null,
        "conversation_opened_at": null, "pending_actions": [], "status": "active",
        "created_at": "2025-05-06T07:08:09Z", "updated_at": "2025-05-06T07:08:09Z",
        "version": 1
    });
    [full, sparse].map(|json| serde_json::from_value(json).expect("a contact"))
}

/// Every field of a contact as the API shows it: what `fields=` and a key's field list
/// may name.
pub fn contact_field_names() -> &'static [String] {
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let sample =
            super::ValidContact::default().into_new_contact(String::new(), chrono::Utc::now());
        let Value::Object(map) = serde_json::to_value(sample).expect("a contact serializes") else {
            unreachable!("a contact is an object")
        };
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.extend(["merged_into", "deleted_at", "conversation_closed_at"].map(String::from));
        names
    });
    &NAMES
}
