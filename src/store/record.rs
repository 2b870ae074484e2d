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
//! bytes of a record of about 340 at 1M).
//!
//! Format 3 also carries the identity keys the contact holds (its claims), so they
//! can be released exactly as they were made even if normalization rules change
//! later. Before, a `held_identities` multimap kept them: about 127 MiB and one
//! insert per claim at 1M. A claim is stored as a reference to the value it was made
//! from whenever the key is exactly `channel` U+001F that stored value (a byte or two),
//! else as the key itself. The reference is plain concatenation, no normalization, so
//! its meaning cannot drift between versions.
//!
//! Records of formats 1 and 2 and records written as JSON by earlier versions (they
//! start with `{`) are still read: their claims are in `held_identities`. They are
//! rewritten in the current form the next time their contact changes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::{Contact, Identity, Status};

/// Format byte of records that repeat the contact's id after the status.
const POSTCARD_V1: u8 = 1;
/// Format byte of records without the id (the key holds it).
const POSTCARD_V2: u8 = 2;
/// Format byte of records that carry their contact's claims.
const POSTCARD_V3: u8 = 3;

/// One identity key a contact holds, as format 3 stores it.
#[derive(Debug, Serialize, Deserialize)]
enum StoredClaim {
    /// `email` U+001F the contact's email.
    Email,
    /// `phone` U+001F the contact's phone in E.164.
    Phone,
    /// The channel U+001F the value of the contact's identity at this position.
    Identity(u32),
    /// Any other key, whole.
    Key(String),
}

fn joined(channel: &str, value: &str) -> String {
    format!("{channel}\u{1f}{value}")
}

/// The stored forms of `keys`: a reference wherever one names the same key.
fn stored_claims(contact: &Contact, keys: &[String]) -> Vec<StoredClaim> {
    let same = |key: &str, channel: &str, value: &str| {
        key.strip_prefix(channel)
            .and_then(|rest| rest.strip_prefix('\u{1f}'))
            == Some(value)
    };
    keys.iter()
        .map(|key| {
            if contact
                .email
                .as_deref()
                .is_some_and(|email| same(key, "email", email))
            {
                return StoredClaim::Email;
            }
            if contact
                .phone_e164
                .as_deref()
                .is_some_and(|e164| same(key, "phone", e164))
            {
                return StoredClaim::Phone;
            }
            let identity = contact
                .identities
                .iter()
                .position(|i| same(key, &i.channel, &i.value));
            match identity.and_then(|at| u32::try_from(at).ok()) {
                Some(at) => StoredClaim::Identity(at),
                None => StoredClaim::Key(key.clone()),
            }
        })
        .collect()
}

/// The keys `claims` name in `fields` (the record they were stored with).
fn claim_keys(fields: &StoredFields, claims: Vec<StoredClaim>) -> Result<Vec<String>, StoreError> {
    let missing =
        |what: &str| StoreError::Corrupt(format!("a stored claim names a missing {what}"));
    claims
        .into_iter()
        .map(|claim| match claim {
            StoredClaim::Email => fields
                .email
                .as_deref()
                .map(|email| joined("email", email))
                .ok_or_else(|| missing("email")),
            StoredClaim::Phone => fields
                .phone_e164
                .as_deref()
                .map(|e164| joined("phone", e164))
                .ok_or_else(|| missing("phone")),
            StoredClaim::Identity(at) => fields
                .identities
                .get(at as usize)
                .map(|(channel, value, _)| joined(channel, value))
                .ok_or_else(|| missing("identity")),
            StoredClaim::Key(key) => Ok(key),
        })
        .collect()
}

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

/// The record of `contact`, stored under its id, holding the identity keys `claims`.
pub fn encode_contact(contact: &Contact, claims: &[String]) -> Vec<u8> {
    let claims = stored_claims(contact, claims);
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
    postcard::to_extend(&(status, claims, stored), vec![POSTCARD_V3])
        .expect("records always serialize")
}

/// The contact stored under `id` as `bytes`.
pub fn decode_contact(id: &str, bytes: &[u8]) -> Result<Contact, StoreError> {
    if bytes.first() == Some(&b'{') {
        return super::tables::decode(bytes);
    }
    let (status, _claims, fields) = decode_parts(bytes)?;
    contact_of(id, status, fields)
}

/// The contact stored under `id` as `bytes`, and the identity keys it holds when the
/// record carries them (format 3; older records' claims are in `held_identities`).
pub fn decode_record(id: &str, bytes: &[u8]) -> Result<(Contact, Option<Vec<String>>), StoreError> {
    if bytes.first() == Some(&b'{') {
        return Ok((super::tables::decode(bytes)?, None));
    }
    let (status, claims, fields) = decode_parts(bytes)?;
    let claims = claims
        .map(|claims| claim_keys(&fields, claims))
        .transpose()?;
    Ok((contact_of(id, status, fields)?, claims))
}

/// Only the identity keys a record carries (format 3), without building its contact:
/// the writer reads them before every change of a contact it has already loaded.
pub fn decode_claims(bytes: &[u8]) -> Result<Option<Vec<String>>, StoreError> {
    if bytes.first() == Some(&b'{') {
        return Ok(None);
    }
    let (_, claims, fields) = decode_parts(bytes)?;
    claims.map(|claims| claim_keys(&fields, claims)).transpose()
}

/// A binary record's status, stored claims (format 3) and fields.
fn decode_parts(bytes: &[u8]) -> Result<(u8, Option<Vec<StoredClaim>>, StoredFields), StoreError> {
    let Some((&format, body)) = bytes.split_first() else {
        return Err(StoreError::Corrupt("empty contact record".into()));
    };
    Ok(match format {
        POSTCARD_V1 => {
            // The id is borrowed, not copied: the key already gives it.
            let (status, _id, fields): (u8, &str, StoredFields) =
                postcard::from_bytes(body).map_err(corrupt)?;
            (status, None, fields)
        }
        POSTCARD_V2 => {
            let (status, fields) = postcard::from_bytes(body).map_err(corrupt)?;
            (status, None, fields)
        }
        POSTCARD_V3 => {
            let (status, claims, fields): (u8, Vec<StoredClaim>, StoredFields) =
                postcard::from_bytes(body).map_err(corrupt)?;
            (status, Some(claims), fields)
        }
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown contact record format {other}"
            )));
        }
    })
}

fn contact_of(id: &str, status: u8, s: StoredFields) -> Result<Contact, StoreError> {
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

/// `contact` as format 2 wrote it (no claims), to test stores of earlier versions.
#[cfg(test)]
pub fn encode_contact_v2(contact: &Contact) -> Vec<u8> {
    let bytes = encode_contact(contact, &[]);
    let (status, _, fields): (u8, Vec<StoredClaim>, StoredFields) =
        postcard::from_bytes(&bytes[1..]).expect("just encoded");
    postcard::to_extend(&(status, fields), vec![POSTCARD_V2]).expect("records always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys validation would give `contact`, plus one that names no stored value.
    fn claims_of(contact: &Contact) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(email) = &contact.email {
            keys.push(joined("email", email));
        }
        if let Some(e164) = &contact.phone_e164 {
            keys.push(joined("phone", e164));
        }
        for identity in &contact.identities {
            keys.push(joined(&identity.channel, &identity.value.to_lowercase()));
        }
        keys.push(joined("phone", "0612"));
        keys
    }

    #[test]
    fn records_round_trip_exactly_with_their_claims() {
        for contact in crate::model::sample_contacts() {
            let id = contact.id.as_str();
            let claims = claims_of(&contact);
            let bytes = encode_contact(&contact, &claims);
            assert_eq!(bytes[0], POSTCARD_V3);
            assert_eq!(decode_contact(id, &bytes).unwrap(), contact);
            assert_eq!(
                decode_record(id, &bytes).unwrap(),
                (contact.clone(), Some(claims.clone()))
            );
            assert_eq!(decode_claims(&bytes).unwrap(), Some(claims.clone()));
            // Keys made from a stored value cost a byte or two, the others their text.
            let unclaimed = encode_contact(&contact, &[]);
            let literal: usize = claims
                .iter()
                .filter(|key| {
                    matches!(
                        stored_claims(&contact, &[key.to_string()])[0],
                        StoredClaim::Key(_)
                    )
                })
                .map(|key| key.len() + 2)
                .sum();
            assert!(bytes.len() <= unclaimed.len() + literal + 2 * claims.len());
            assert!(literal >= "phone\u{1f}0612".len());
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
        }
    }

    #[test]
    fn older_formats_still_read_without_claims() {
        for contact in crate::model::sample_contacts() {
            let id = contact.id.as_str();
            let bytes = encode_contact(&contact, &claims_of(&contact));
            let (status, _, fields): (u8, Vec<StoredClaim>, StoredFields) =
                postcard::from_bytes(&bytes[1..]).unwrap();
            let v2 = encode_contact_v2(&contact);
            assert_eq!(v2[0], POSTCARD_V2);
            assert_eq!(decode_record(id, &v2).unwrap(), (contact.clone(), None));
            assert_eq!(decode_claims(&v2).unwrap(), None);
            // Format 1: the same fields with the id after the status.
            let v1 = postcard::to_extend(&(status, id, &fields), vec![POSTCARD_V1]).unwrap();
            assert_eq!(decode_record(id, &v1).unwrap(), (contact.clone(), None));
            let json = serde_json::to_vec(&contact).unwrap();
            assert_eq!(decode_record(id, &json).unwrap(), (contact.clone(), None));
            assert_eq!(decode_claims(&json).unwrap(), None);
            assert_eq!(decode_contact(id, &json).unwrap(), contact);
        }
        assert!(decode_contact("x", &[]).is_err());
        assert!(decode_contact("x", &[POSTCARD_V1, 0xff]).is_err());
        assert!(decode_contact("x", &[POSTCARD_V2, 0xff]).is_err());
        assert!(decode_contact("x", &[POSTCARD_V3, 0xff]).is_err());
        assert!(decode_contact("x", &[9, 1, 2]).is_err());
    }

    #[test]
    fn a_claim_naming_a_missing_value_is_corrupt() {
        let contact = crate::model::sample_contacts()
            .into_iter()
            .find(|c| c.email.is_some())
            .unwrap();
        let bytes = encode_contact(&contact, &claims_of(&contact));
        let (status, claims, mut fields): (u8, Vec<StoredClaim>, StoredFields) =
            postcard::from_bytes(&bytes[1..]).unwrap();
        fields.email = None;
        let broken = postcard::to_extend(&(status, claims, fields), vec![POSTCARD_V3]).unwrap();
        assert!(decode_record(&contact.id, &broken).is_err());
        assert!(decode_claims(&broken).is_err());
    }
}
