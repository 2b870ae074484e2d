//! The contact model: what a contact is, how input is validated and normalized.
//!
//! Owns the rules every layer relies on (identity normalization, the `require` rule,
//! computed fields). Knows nothing of redb, tantivy or HTTP: the store calls
//! [`ContactInput::validate`] inside its write transaction, the API maps
//! [`ValidationError`] to 422.

mod contact;
mod input;
mod iso;
mod normalize;
mod time;

pub use contact::{Contact, Identity, Status};
pub use input::{ContactInput, ValidContact};
pub use normalize::{
    IdentityKey, PhoneForms, is_phone_channel, normalize_email, normalize_phone, phone_forms,
};
pub use time::{parse_time, truncate_to_millis};

use serde::Serialize;

/// Which primary contact points a new contact must have (`rules.require`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequireRule {
    Email,
    #[default]
    EmailOrPhone,
    None,
}

/// Settings the validation rules depend on (a slice of the config).
#[derive(Debug, Clone)]
pub struct Rules {
    pub require: RequireRule,
    pub default_country: phonenumber::country::Id,
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
