//! The stored form of a contact: one format byte, then the fields in a fixed order
//! with postcard (varint lengths and numbers, no field names).
//!
//! JSON spelled every field name and every `null` in every record, and parsing it was
//! a large part of reading a contact: the binary form is about half the bytes and
//! decodes several times faster. Instants are (seconds, nanoseconds), so they come
//! back exactly; custom values stay a JSON object (their types vary by definition)
//! inside the record.
//!
//! The contact's id is the record's key and is not repeated inside it (format 2: 27
//! bytes of a record of about 340 at 1M). Records of format 1 (with the id) and
//! records written as JSON by earlier versions (they start with `{`) are still read;
//! they are rewritten in the current form the next time their contact changes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::{Contact, Identity, Status};

/// Format byte of records that repeat the contact's id after the status.
const POSTCARD_V1: u8 = 1;
/// Format byte of records without the id (the key holds it).
const POSTCARD_V2: u8 = 2;

type Instant = (i64, u32);

fn instant(at: &DateTime<Utc>) -> Instant {
    (at.timestamp(), at.timestamp_subsec_nanos())
}

fn from_instant((seconds, nanos): Instant) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(seconds, nanos).ok_or_else(|| {
        StoreError::Corrupt(format!("stored instant {seconds}.{nanos} out of range"))
    })
}

fn status_code(status: Status) -> u8 {
    match status {
        Status::Active => 0,
        Status::Deleted => 1,
        Status::Merged => 2,
    }
}

fn status_of(code: u8) -> Result<Status, StoreError> {
    match code {
        0 => Ok(Status::Active),
        1 => Ok(Status::Deleted),
        2 => Ok(Status::Merged),
        other => Err(StoreError::Corrupt(format!(
            "unknown stored status {other}"
        ))),
    }
}

/// A record's fields after its status (and, in format 1, its id), in wire order:
/// postcard is positional, so never reorder, only append under a new format byte.
/// Format 1 is `(status, id, StoredFields)`, format 2 `(status, StoredFields)`.
#[derive(Serialize, Deserialize)]
struct StoredFields {
    external_id: Option<String>,
    name: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    phone_e164: Option<String>,
    /// (channel, value, account)
    identities: Vec<(String, String, Option<String>)>,
    company_id: Option<String>,
    favorite: bool,
    country: Option<String>,
    language: Option<String>,
    tags: Vec<String>,
    /// The custom values as a JSON object.
    custom_fields: String,
    assignee: Option<String>,
    notes: Option<String>,
    avatar_url: Option<String>,
    last_interaction_at: Option<Instant>,
    last_interacted_channel: Option<String>,
    last_incoming_message_at: Option<Instant>,
    conversation_opened_at: Option<Instant>,
    conversation_closed_at: Option<Instant>,
    pending_actions: Vec<String>,
    merged_into: Option<String>,
    deleted_at: Option<Instant>,
    created_at: Instant,
    updated_at: Instant,
    version: u64,
}

/// The record of `contact`, stored under its id.
pub fn encode_contact(contact: &Contact) -> Vec<u8> {
    let c = contact.clone();
    let status = status_code(c.status);
    let stored = StoredFields {
        external_id: c.external_id,
        name: c.name,
        display_name: c.display_name,
        email: c.email,
        phone: c.phone,
        phone_e164: c.phone_e164,
        identities: c
            .identities
            .into_iter()
            .map(|i| (i.channel, i.value, i.account))
            .collect(),
        company_id: c.company_id,
        favorite: c.favorite,
        country: c.country,
        language: c.language,
        tags: c.tags,
        custom_fields: serde_json::to_string(&c.custom_fields).expect("values serialize"),
        assignee: c.assignee,
        notes: c.notes,
        avatar_url: c.avatar_url,
        last_interaction_at: c.last_interaction_at.as_ref().map(instant),
        last_interacted_channel: c.last_interacted_channel,
        last_incoming_message_at: c.last_incoming_message_at.as_ref().map(instant),
        conversation_opened_at: c.conversation_opened_at.as_ref().map(instant),
        conversation_closed_at: c.conversation_closed_at.as_ref().map(instant),
        pending_actions: c.pending_actions,
        merged_into: c.merged_into,
        deleted_at: c.deleted_at.as_ref().map(instant),
        created_at: instant(&c.created_at),
        updated_at: instant(&c.updated_at),
        version: c.version,
    };
    postcard::to_extend(&(status, stored), vec![POSTCARD_V2]).expect("records always serialize")
}

/// The contact stored under `id` as `bytes`.
pub fn decode_contact(id: &str, bytes: &[u8]) -> Result<Contact, StoreError> {
    let Some((&format, body)) = bytes.split_first() else {
        return Err(StoreError::Corrupt("empty contact record".into()));
    };
    let (status, s) = match format {
        b'{' => return super::tables::decode(bytes),
        POSTCARD_V1 => {
            // The id is borrowed, not copied: the key already gives it.
            let (status, _id, fields): (u8, &str, StoredFields) =
                postcard::from_bytes(body).map_err(corrupt)?;
            (status, fields)
        }
        POSTCARD_V2 => postcard::from_bytes(body).map_err(corrupt)?,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown contact record format {other}"
            )));
        }
    };
    let optional = |at: Option<Instant>| at.map(from_instant).transpose();
    Ok(Contact {
        id: id.to_string(),
        external_id: s.external_id,
        name: s.name,
        display_name: s.display_name,
        email: s.email,
        phone: s.phone,
        phone_e164: s.phone_e164,
        identities: s
            .identities
            .into_iter()
            .map(|(channel, value, account)| Identity {
                channel,
                value,
                account,
            })
            .collect(),
        company_id: s.company_id,
        favorite: s.favorite,
        country: s.country,
        language: s.language,
        tags: s.tags,
        custom_fields: serde_json::from_str(&s.custom_fields)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        assignee: s.assignee,
        notes: s.notes,
        avatar_url: s.avatar_url,
        last_interaction_at: optional(s.last_interaction_at)?,
        last_interacted_channel: s.last_interacted_channel,
        last_incoming_message_at: optional(s.last_incoming_message_at)?,
        conversation_opened_at: optional(s.conversation_opened_at)?,
        conversation_closed_at: optional(s.conversation_closed_at)?,
        pending_actions: s.pending_actions,
        status: status_of(status)?,
        merged_into: s.merged_into,
        deleted_at: optional(s.deleted_at)?,
        created_at: from_instant(s.created_at)?,
        updated_at: from_instant(s.updated_at)?,
        version: s.version,
    })
}

/// Whether a record may hold custom field `key`: its custom values are JSON inside
/// the record, where values are escaped, so only a record containing `"key":` can
/// (a false positive is another field of that name, caught by decoding).
pub fn may_hold_field(bytes: &[u8], needle: &memchr::memmem::Finder<'_>) -> bool {
    needle.find(bytes).is_some()
}

fn corrupt(error: postcard::Error) -> StoreError {
    StoreError::Corrupt(format!("undecodable contact record: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_exactly_and_older_formats_still_read() {
        for contact in crate::model::sample_contacts() {
            let id = contact.id.as_str();
            let bytes = encode_contact(&contact);
            assert_eq!(bytes[0], POSTCARD_V2);
            assert_eq!(decode_contact(id, &bytes).unwrap(), contact);
            assert!(
                !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                "the id is the key, not part of the record"
            );
            let json = serde_json::to_vec(&contact).unwrap();
            assert!(
                bytes.len() * 2 < json.len() + 200,
                "{} vs {}",
                bytes.len(),
                json.len()
            );
            assert_eq!(decode_contact(id, &json).unwrap(), contact);
            // Format 1: the same fields with the id after the status.
            let (status, fields): (u8, StoredFields) = postcard::from_bytes(&bytes[1..]).unwrap();
            let v1 = postcard::to_extend(&(status, id, fields), vec![POSTCARD_V1]).unwrap();
            assert_eq!(decode_contact(id, &v1).unwrap(), contact);
        }
        assert!(decode_contact("x", &[]).is_err());
        assert!(decode_contact("x", &[POSTCARD_V1, 0xff]).is_err());
        assert!(decode_contact("x", &[POSTCARD_V2, 0xff]).is_err());
        assert!(decode_contact("x", &[9, 1, 2]).is_err());
    }
}
