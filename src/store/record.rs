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
//! Format 4 is format 3's body compressed with lz4 against a dictionary made from
//! the custom field catalog ([`catalog_dictionary`]): every record spells the keys of
//! its custom values (`"plan":`) and often their options, and a record alone is too
//! short for lz4 to find repeats in itself (1.10× without a dictionary, 1.34× with
//! the catalog's, at 1M generated contacts). The dictionary holds catalog text only,
//! never a contact's bytes, so an erase has nothing to scrub from it. Dictionaries are
//! stored under a number in `record_dictionaries`, never changed or removed: a
//! catalog change adds one, and records keep the number they were written with.
//!
//! Records of formats 1 to 3 and records written as JSON by earlier versions (they
//! start with `{`) are still read; before format 3 their claims are in
//! `held_identities`. They are rewritten in the current form the next time their
//! contact changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::{Contact, CustomFieldDefs, Identity, Status};

/// Format byte of records that repeat the contact's id after the status.
const POSTCARD_V1: u8 = 1;
/// Format byte of records without the id (the key holds it).
const POSTCARD_V2: u8 = 2;
/// Format byte of records that carry their contact's claims.
const POSTCARD_V3: u8 = 3;
/// Format byte of format 3's body compressed with lz4: then the dictionary's number
/// (a postcard varint) and the lz4 block, its decompressed size first.
const LZ4_V3: u8 = 4;
/// The largest body a record may decompress to. A larger size is a corrupt record,
/// refused before anything is allocated for it.
const MAX_RECORD_BYTES: usize = 16 << 20;
/// lz4 reaches back at most 64 KiB: a longer dictionary keeps its first part.
const MAX_DICTIONARY_BYTES: usize = 60 << 10;

/// The dictionary new records are compressed against, and its stored number.
#[derive(Debug, Clone)]
pub struct Dictionary {
    pub number: u32,
    pub bytes: Arc<[u8]>,
}

/// Where decoding finds the dictionary a format 4 record names.
pub trait Dictionaries {
    fn dictionary(&self, number: u32) -> Result<Arc<[u8]>, StoreError>;
}

/// Dictionaries already read from a transaction's `record_dictionaries`.
#[derive(Default)]
pub struct DictionaryCache(RefCell<HashMap<u32, Arc<[u8]>>>);

impl DictionaryCache {
    /// Dictionary `number` of `table`, read once.
    pub fn get(
        &self,
        table: &impl ReadableTable<u32, &'static [u8]>,
        number: u32,
    ) -> Result<Arc<[u8]>, StoreError> {
        if let Some(bytes) = self.0.borrow().get(&number) {
            return Ok(bytes.clone());
        }
        let bytes: Arc<[u8]> = table
            .get(number)?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("a record names the missing dictionary {number}"))
            })?
            .value()
            .into();
        self.0.borrow_mut().insert(number, bytes.clone());
        Ok(bytes)
    }
}

/// The newest dictionary of `table`, if any.
pub fn newest_dictionary(
    table: &impl ReadableTable<u32, &'static [u8]>,
) -> Result<Option<Dictionary>, StoreError> {
    Ok(table.last()?.map(|(number, bytes)| Dictionary {
        number: number.value(),
        bytes: bytes.value().into(),
    }))
}

/// The stored dictionaries of one read transaction, each read on its first use.
pub struct StoredDictionaries {
    table: redb::ReadOnlyTable<u32, &'static [u8]>,
    cache: DictionaryCache,
}

impl StoredDictionaries {
    pub fn open(txn: &redb::ReadTransaction) -> Result<Self, StoreError> {
        Ok(StoredDictionaries {
            table: txn.open_table(super::tables::RECORD_DICTIONARIES)?,
            cache: DictionaryCache::default(),
        })
    }
}

impl Dictionaries for StoredDictionaries {
    fn dictionary(&self, number: u32) -> Result<Arc<[u8]>, StoreError> {
        self.cache.get(&self.table, number)
    }
}

/// The dictionary of a catalog: JSON's literals, the usual identity channels, then
/// every definition's key as a custom value spells it (`"plan":`) and its options
/// (`"pro"`), in key order. The same catalog always gives the same bytes.
pub fn catalog_dictionary(defs: &CustomFieldDefs) -> Vec<u8> {
    let mut text = String::from("truefalsenull whatsapp telegram signal phone sms email ");
    let quoted = |value: &str| serde_json::to_string(value).expect("strings serialize");
    for (key, def) in defs {
        text.push_str(&quoted(key));
        text.push(':');
        for option in &def.options {
            text.push_str(&quoted(option));
            text.push(',');
        }
    }
    let mut bytes = text.into_bytes();
    bytes.truncate(MAX_DICTIONARY_BYTES);
    bytes
}

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

/// The record of `contact`, stored under its id, holding the identity keys `claims`,
/// compressed against `dictionary` (format 4).
pub fn encode_contact(contact: &Contact, claims: &[String], dictionary: &Dictionary) -> Vec<u8> {
    let body = format_3_body(contact, claims);
    let mut record =
        postcard::to_extend(&dictionary.number, vec![LZ4_V3]).expect("numbers serialize");
    record.extend(lz4_flex::block::compress_prepend_size_with_dict(
        &body,
        &dictionary.bytes,
    ));
    record
}

/// The fields of format 3 after its format byte: status, claims, fields.
fn format_3_body(contact: &Contact, claims: &[String]) -> Vec<u8> {
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
    postcard::to_allocvec(&(status, claims, stored)).expect("records always serialize")
}

/// The contact stored under `id` as `bytes`.
pub fn decode_contact(
    id: &str,
    bytes: &[u8],
    dictionaries: &dyn Dictionaries,
) -> Result<Contact, StoreError> {
    if bytes.first() == Some(&b'{') {
        return super::tables::decode(bytes);
    }
    let (status, _claims, fields) = decode_parts(bytes, dictionaries)?;
    contact_of(id, status, fields)
}

/// The contact stored under `id` as `bytes`, and the identity keys it holds when the
/// record carries them (format 3; older records' claims are in `held_identities`).
pub fn decode_record(
    id: &str,
    bytes: &[u8],
    dictionaries: &dyn Dictionaries,
) -> Result<(Contact, Option<Vec<String>>), StoreError> {
    if bytes.first() == Some(&b'{') {
        return Ok((super::tables::decode(bytes)?, None));
    }
    let (status, claims, fields) = decode_parts(bytes, dictionaries)?;
    let claims = claims
        .map(|claims| claim_keys(&fields, claims))
        .transpose()?;
    Ok((contact_of(id, status, fields)?, claims))
}

/// Only the identity keys a record carries (format 3), without building its contact:
/// the writer reads them before every change of a contact it has already loaded.
pub fn decode_claims(
    bytes: &[u8],
    dictionaries: &dyn Dictionaries,
) -> Result<Option<Vec<String>>, StoreError> {
    if bytes.first() == Some(&b'{') {
        return Ok(None);
    }
    let (_, claims, fields) = decode_parts(bytes, dictionaries)?;
    claims.map(|claims| claim_keys(&fields, claims)).transpose()
}

/// A binary record's status, stored claims (format 3) and fields.
fn decode_parts(
    bytes: &[u8],
    dictionaries: &dyn Dictionaries,
) -> Result<(u8, Option<Vec<StoredClaim>>, StoredFields), StoreError> {
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
            let (status, claims, fields) = format_3_parts(body)?;
            (status, Some(claims), fields)
        }
        LZ4_V3 => {
            let (status, claims, fields) = format_3_parts(&decompress(body, dictionaries)?)?;
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

/// The status, stored claims and fields of a format 3 body (after its format byte).
fn format_3_parts(body: &[u8]) -> Result<(u8, Vec<StoredClaim>, StoredFields), StoreError> {
    postcard::from_bytes(body).map_err(corrupt)
}

/// The body of a format 4 record (after its format byte), decompressed.
fn decompress(packed: &[u8], dictionaries: &dyn Dictionaries) -> Result<Vec<u8>, StoreError> {
    let (number, block): (u32, &[u8]) = postcard::take_from_bytes(packed).map_err(corrupt)?;
    let size = block
        .first_chunk::<4>()
        .map(|size| u32::from_le_bytes(*size) as usize);
    if size.is_none_or(|size| size > MAX_RECORD_BYTES) {
        return Err(StoreError::Corrupt(format!(
            "a compressed record claims {size:?} bytes"
        )));
    }
    let dictionary = dictionaries.dictionary(number)?;
    lz4_flex::block::decompress_size_prepended_with_dict(block, &dictionary)
        .map_err(|error| StoreError::Corrupt(format!("undecompressable contact record: {error}")))
}

/// The contact stored under `id` as `bytes` if its record may hold the custom field
/// `needle` finds (`"key":`, see `ops::key_needle`): custom values are JSON inside
/// the record, where values are escaped, so only a record containing `"key":` can
/// (a false positive is another field of that name, for the caller to rule out).
/// Other records are not decoded; a compressed one is decompressed once, for both.
pub fn decode_if_may_hold(
    id: &str,
    bytes: &[u8],
    needle: &memchr::memmem::Finder<'_>,
    dictionaries: &dyn Dictionaries,
) -> Result<Option<Contact>, StoreError> {
    let Some((&LZ4_V3, packed)) = bytes.split_first() else {
        if needle.find(bytes).is_none() {
            return Ok(None);
        }
        return decode_contact(id, bytes, dictionaries).map(Some);
    };
    let body = decompress(packed, dictionaries)?;
    if needle.find(&body).is_none() {
        return Ok(None);
    }
    let (status, _claims, fields) = format_3_parts(&body)?;
    contact_of(id, status, fields).map(Some)
}

fn corrupt(error: postcard::Error) -> StoreError {
    StoreError::Corrupt(format!("undecodable contact record: {error}"))
}

/// `contact` as format 3 wrote it (uncompressed), to test stores of earlier versions.
#[cfg(test)]
pub fn encode_contact_v3(contact: &Contact, claims: &[String]) -> Vec<u8> {
    let mut record = vec![POSTCARD_V3];
    record.extend(format_3_body(contact, claims));
    record
}

/// `contact` as format 2 wrote it (no claims), to test stores of earlier versions.
#[cfg(test)]
pub fn encode_contact_v2(contact: &Contact) -> Vec<u8> {
    let (status, _, fields): (u8, Vec<StoredClaim>, StoredFields) =
        postcard::from_bytes(&format_3_body(contact, &[])).expect("just encoded");
    postcard::to_extend(&(status, fields), vec![POSTCARD_V2]).expect("records always serialize")
}

/// Dictionaries held in memory, for tests.
#[cfg(test)]
impl Dictionaries for HashMap<u32, Arc<[u8]>> {
    fn dictionary(&self, number: u32) -> Result<Arc<[u8]>, StoreError> {
        self.get(&number)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("no dictionary {number}")))
    }
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

    /// The catalog the sample contacts' custom values come from, as dictionary 7.
    fn sample_dictionaries() -> (Dictionary, HashMap<u32, Arc<[u8]>>) {
        let now = chrono::Utc::now();
        let mut defs = CustomFieldDefs::new();
        for contact in crate::model::sample_contacts() {
            for key in contact.custom_fields.keys() {
                let def = crate::model::CustomFieldDef {
                    key: key.clone(),
                    label: key.clone(),
                    field_type: crate::model::FieldType::Text,
                    options: vec!["gold".into()],
                    group: None,
                    placeholder: None,
                    created_at: now,
                    updated_at: now,
                };
                defs.insert(key.clone(), def);
            }
        }
        assert!(!defs.is_empty(), "the samples hold custom values");
        let dictionary = Dictionary {
            number: 7,
            bytes: catalog_dictionary(&defs).into(),
        };
        let stored = HashMap::from([(7, dictionary.bytes.clone())]);
        (dictionary, stored)
    }

    #[test]
    fn records_round_trip_exactly_with_their_claims() {
        let (dictionary, stored) = sample_dictionaries();
        for contact in crate::model::sample_contacts() {
            let id = contact.id.as_str();
            let claims = claims_of(&contact);
            let bytes = encode_contact(&contact, &claims, &dictionary);
            assert_eq!(bytes[..2], [LZ4_V3, 7]);
            assert_eq!(decode_contact(id, &bytes, &stored).unwrap(), contact);
            assert_eq!(
                decode_record(id, &bytes, &stored).unwrap(),
                (contact.clone(), Some(claims.clone()))
            );
            assert_eq!(
                decode_claims(&bytes, &stored).unwrap(),
                Some(claims.clone())
            );
            // Keys made from a stored value cost a byte or two, the others their text.
            let plain = encode_contact_v3(&contact, &claims);
            let unclaimed = encode_contact_v3(&contact, &[]);
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
            assert!(plain.len() <= unclaimed.len() + literal + 2 * claims.len());
            assert!(literal >= "phone\u{1f}0612".len());
            for record in [&bytes, &plain] {
                assert!(
                    !record.windows(id.len()).any(|w| w == id.as_bytes()),
                    "the id is the key, not part of the record"
                );
            }
            let json = serde_json::to_vec(&contact).unwrap();
            assert!(
                plain.len() * 2 < json.len() + 200,
                "{} vs {}",
                plain.len(),
                json.len()
            );
            // The catalog's keys cost a few bytes each once compressed.
            if !contact.custom_fields.is_empty() {
                assert!(
                    bytes.len() < plain.len(),
                    "{} vs {}",
                    bytes.len(),
                    plain.len()
                );
            }
        }
    }

    #[test]
    fn a_compressed_record_needs_its_own_dictionary() {
        let (dictionary, stored) = sample_dictionaries();
        let contact = crate::model::sample_contacts()
            .into_iter()
            .find(|c| !c.custom_fields.is_empty())
            .unwrap();
        let bytes = encode_contact(&contact, &[], &dictionary);
        let none = HashMap::new();
        assert!(matches!(
            decode_contact(&contact.id, &bytes, &none),
            Err(StoreError::Corrupt(_))
        ));
        // Another dictionary under the same number reads other bytes (or fails):
        // stored dictionaries are never replaced.
        let other = HashMap::from([(7, Arc::<[u8]>::from(&b"something else entirely"[..]))]);
        assert_ne!(
            decode_contact(&contact.id, &bytes, &other).ok().as_ref(),
            Some(&contact)
        );
        // A size past the bound is refused before decompressing; a cut block fails.
        let mut huge = bytes.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_contact(&contact.id, &huge, &stored).is_err());
        assert!(decode_contact(&contact.id, &bytes[..bytes.len() - 3], &stored).is_err());
        assert!(decode_contact(&contact.id, &[LZ4_V3, 7, 1], &stored).is_err());
        // The custom field scan looks inside compressed records.
        let key = contact.custom_fields.keys().next().unwrap();
        let needle = crate::store::ops::key_needle(key);
        assert_eq!(
            decode_if_may_hold(&contact.id, &bytes, &needle, &stored).unwrap(),
            Some(contact.clone())
        );
        let absent = crate::store::ops::key_needle("no_such_field");
        assert_eq!(
            decode_if_may_hold(&contact.id, &bytes, &absent, &stored).unwrap(),
            None
        );
    }

    proptest::proptest! {
        /// Whatever the bytes after a format byte, decoding answers (mostly an
        /// error) without panicking or allocating past the bound: flipped bytes of a
        /// real compressed record, and arbitrary ones.
        #[test]
        fn damaged_records_are_errors_never_panics(
            flips in proptest::collection::vec((0usize..400, 1u8..=255), 1..6),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let (dictionary, stored) = sample_dictionaries();
            for contact in crate::model::sample_contacts() {
                let mut bytes = encode_contact(&contact, &claims_of(&contact), &dictionary);
                for (at, mask) in &flips {
                    let at = 1 + at % (bytes.len() - 1);
                    bytes[at] ^= mask;
                }
                let _ = decode_record(&contact.id, &bytes, &stored);
                let _ = decode_claims(&bytes, &stored);
            }
            for format in [POSTCARD_V1, POSTCARD_V2, POSTCARD_V3, LZ4_V3] {
                let mut bytes = vec![format];
                bytes.extend(&tail);
                let _ = decode_record("x", &bytes, &stored);
            }
        }
    }

    #[test]
    fn the_catalog_dictionary_depends_on_the_catalog_alone() {
        let (dictionary, _) = sample_dictionaries();
        assert_eq!(
            catalog_dictionary(&CustomFieldDefs::new()),
            catalog_dictionary(&CustomFieldDefs::new())
        );
        assert!(dictionary.bytes.len() > catalog_dictionary(&CustomFieldDefs::new()).len());
        let text = String::from_utf8(dictionary.bytes.to_vec()).unwrap();
        assert!(text.contains("\"gold\","));
        for contact in crate::model::sample_contacts() {
            for key in contact.custom_fields.keys() {
                assert!(text.contains(&format!("\"{key}\":")));
            }
            if let Some(name) = &contact.name {
                assert!(!text.contains(name.as_str()), "no contact's bytes");
            }
        }
    }

    #[test]
    fn older_formats_still_read_without_claims() {
        let stored = HashMap::new();
        for contact in crate::model::sample_contacts() {
            let id = contact.id.as_str();
            let claims = claims_of(&contact);
            let v3 = encode_contact_v3(&contact, &claims);
            assert_eq!(v3[0], POSTCARD_V3);
            assert_eq!(
                decode_record(id, &v3, &stored).unwrap(),
                (contact.clone(), Some(claims.clone()))
            );
            let (status, _, fields): (u8, Vec<StoredClaim>, StoredFields) =
                postcard::from_bytes(&v3[1..]).unwrap();
            let v2 = encode_contact_v2(&contact);
            assert_eq!(v2[0], POSTCARD_V2);
            assert_eq!(
                decode_record(id, &v2, &stored).unwrap(),
                (contact.clone(), None)
            );
            assert_eq!(decode_claims(&v2, &stored).unwrap(), None);
            // Format 1: the same fields with the id after the status.
            let v1 = postcard::to_extend(&(status, id, &fields), vec![POSTCARD_V1]).unwrap();
            assert_eq!(
                decode_record(id, &v1, &stored).unwrap(),
                (contact.clone(), None)
            );
            let json = serde_json::to_vec(&contact).unwrap();
            assert_eq!(
                decode_record(id, &json, &stored).unwrap(),
                (contact.clone(), None)
            );
            assert_eq!(decode_claims(&json, &stored).unwrap(), None);
            assert_eq!(decode_contact(id, &json, &stored).unwrap(), contact);
        }
        for broken in [
            &[][..],
            &[POSTCARD_V1, 0xff],
            &[POSTCARD_V2, 0xff],
            &[POSTCARD_V3, 0xff],
            &[LZ4_V3, 0xff],
            &[9, 1, 2],
        ] {
            assert!(decode_contact("x", broken, &stored).is_err());
        }
    }

    #[test]
    fn a_claim_naming_a_missing_value_is_corrupt() {
        let stored = HashMap::new();
        let contact = crate::model::sample_contacts()
            .into_iter()
            .find(|c| c.email.is_some())
            .unwrap();
        let bytes = encode_contact_v3(&contact, &claims_of(&contact));
        let (status, claims, mut fields): (u8, Vec<StoredClaim>, StoredFields) =
            postcard::from_bytes(&bytes[1..]).unwrap();
        fields.email = None;
        let broken = postcard::to_extend(&(status, claims, fields), vec![POSTCARD_V3]).unwrap();
        assert!(decode_record(&contact.id, &broken, &stored).is_err());
        assert!(decode_claims(&broken, &stored).is_err());
    }
}
