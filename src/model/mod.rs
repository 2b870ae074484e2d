//! The contact model: what a contact is, how input is validated and normalized.
//!
//! Owns the rules every layer relies on (identity normalization, the `require` rule,
//! computed fields). Knows nothing of redb, tantivy or HTTP: the store calls
//! [`ContactInput::validate`] inside its write transaction, the API maps
//! [`ValidationError`] to 422.

mod company;
mod contact;
mod custom_field;
pub mod duplicates;
mod event;
mod inbox;
mod input;
mod iso;
mod merge;
mod normalize;
mod time;

pub use company::{Company, CompanyInput};
#[cfg(test)]
pub(crate) use contact::sample_contacts;
pub use contact::{Contact, Identity, Status, WRITABLE_FIELDS, contact_field_names};
pub use custom_field::{CustomFieldDef, CustomFieldDefs, CustomFieldInput, FieldType};
pub use event::{Event, EventInput, EventKind};
pub use inbox::{ALL_INBOX, Inbox, InboxInput};
pub use input::{ContactInput, IdentityInput, ValidContact};
pub use merge::{MergeRecord, MergeRequest, Side, merge, unmerge_survivor};
pub use normalize::{
    IdentityKey, PhoneForms, fold_ascii, is_phone_channel, name_key, normalize_email,
    normalize_phone, phone_forms,
};
pub use time::{parse_time, truncate_to_millis};

use std::collections::HashMap;

use serde::Serialize;

/// What indexing a contact needs besides the contact: field definitions (which
/// custom values are searchable) and company names (contacts are found by them).
#[derive(Debug, Clone, Default)]
pub struct ContactContext {
    pub defs: CustomFieldDefs,
    pub company_names: HashMap<String, String>,
}

/// Which primary contact points a new contact must have (`rules.require`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequireRule {
    Email,
    #[default]
    EmailOrPhone,
    None,
}

/// How much one contact may carry (`[limits]` of the config): checked on the input
/// as sent, before de-duplication, so a body of repeated values costs no more than
/// its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    pub tags_max: usize,
    pub identities_max: usize,
    pub custom_values_max: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            tags_max: 100,
            identities_max: 50,
            custom_values_max: 100,
        }
    }
}

/// Settings the validation rules depend on (a slice of the config).
#[derive(Debug, Clone)]
pub struct Rules {
    pub input: InputLimits,
    pub require: RequireRule,
    pub default_country: phonenumber::country::Id,
    /// Refuse a second active contact with the same (folded) name.
    pub unique_name: bool,
    /// Each (channel, value) belongs to at most one active contact.
    pub unique_identities: bool,
    /// Days a deleted contact stays restorable; 0: deletion is final.
    pub restore_window_days: u32,
}

/// One broken field of a well-formed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every broken field of one input, never only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} field(s) failed validation", details.len())]
pub struct ValidationError {
    pub details: Vec<FieldError>,
}

impl ValidationError {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            details: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
}
