//! Custom field definitions and typed validation of contact values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::normalize::{normalize_email, normalize_phone};
use super::{FieldError, ValidationError, time};

/// The type of a custom field; decides validation, search and indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Datetime,
    Checkbox,
    Dropdown,
    Multiselect,
    Url,
    Email,
    Phone,
}

impl FieldType {
    /// Values `q` searches (API: text, dropdown and multiselect).
    pub fn is_searchable(self) -> bool {
        matches!(
            self,
            FieldType::Text | FieldType::Dropdown | FieldType::Multiselect
        )
    }

    fn has_options(self) -> bool {
        matches!(self, FieldType::Dropdown | FieldType::Multiselect)
    }
}

/// A defined custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomFieldDef {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    pub group: Option<String>,
    pub placeholder: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Definitions by key, as the store holds them.
pub type CustomFieldDefs = BTreeMap<String, CustomFieldDef>;

/// A definition as a client sends it (create: every field; update: a merge patch of it).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldInput {
    pub key: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub options: Option<Vec<String>>,
    pub group: Option<String>,
    pub placeholder: Option<String>,
}

pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl CustomFieldInput {
    /// Checks the definition; `created_at` is kept from an existing definition.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        created_at: Option<DateTime<Utc>>,
    ) -> Result<CustomFieldDef, ValidationError> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };
        if !is_valid_key(&self.key) {
            fail(
                "key",
                "must start with a-z and use only a-z, 0-9 and '_' (at most 64)".into(),
            );
        }
        let label = self
            .label
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| self.key.clone());
        let mut options: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, option) in self.options.unwrap_or_default().into_iter().enumerate() {
            let option = option.trim().to_string();
            if option.is_empty() || !seen.insert(option.clone()) {
                fail(
                    &format!("options[{i}]"),
                    "options must be non-empty and distinct".into(),
                );
            } else {
                options.push(option);
            }
        }
        if self.field_type.has_options() && options.is_empty() {
            fail(
                "options",
                "a dropdown or multiselect needs at least one option".into(),
            );
        }
        if !self.field_type.has_options() && !options.is_empty() {
            fail(
                "options",
                "only dropdown and multiselect fields take options".into(),
            );
        }
        if !errors.is_empty() {
            return Err(ValidationError { details: errors });
        }
        Ok(CustomFieldDef {
            key: self.key,
            label,
            field_type: self.field_type,
            options,
            group: self.group.filter(|g| !g.trim().is_empty()),
            placeholder: self.placeholder.filter(|p| !p.trim().is_empty()),
            created_at: created_at.unwrap_or(now),
            updated_at: now,
        })
    }
}

impl CustomFieldDef {
    /// Validates and normalizes one value (dates to `YYYY-MM-DD`, datetimes to UTC
    /// RFC 3339, emails to lower case, phones to E.164 when valid).
    pub fn normalize(
        &self,
        value: &Value,
        default_country: phonenumber::country::Id,
    ) -> Result<Value, String> {
        let text = || {
            value
                .as_str()
                .map(str::trim)
                .ok_or_else(|| "must be a string".to_string())
        };
        match self.field_type {
            FieldType::Text => {
                let text = text()?;
                if text.chars().count() > 20_000 {
                    return Err("must be at most 20000 characters".into());
                }
                Ok(Value::from(text))
            }
            FieldType::Number => match value {
                Value::Number(_) => Ok(value.clone()),
                _ => Err("must be a number".into()),
            },
            FieldType::Checkbox => match value {
                Value::Bool(_) => Ok(value.clone()),
                _ => Err("must be true or false".into()),
            },
            FieldType::Date => {
                let date = chrono::NaiveDate::parse_from_str(text()?, "%Y-%m-%d")
                    .map_err(|_| "must be a date like 2027-03-01".to_string())?;
                Ok(Value::from(date.format("%Y-%m-%d").to_string()))
            }
            FieldType::Datetime => {
                let time = time::parse_time(text()?)?;
                Ok(Value::from(
                    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ))
            }
            FieldType::Dropdown => {
                let choice = text()?;
                self.check_option(choice)?;
                Ok(Value::from(choice))
            }
            FieldType::Multiselect => {
                let items = value.as_array().ok_or("must be a list of options")?;
                // Linear in the items, whatever their number or repeats.
                let options: std::collections::HashSet<&str> =
                    self.options.iter().map(String::as_str).collect();
                let mut seen = std::collections::HashSet::new();
                let mut chosen: Vec<String> = Vec::new();
                for item in items {
                    let choice = item.as_str().ok_or("must be a list of options")?.trim();
                    if !options.contains(choice) {
                        return Err(self.not_an_option());
                    }
                    if seen.insert(choice) {
                        chosen.push(choice.to_string());
                    }
                }
                Ok(Value::from(chosen))
            }
            FieldType::Url => {
                let url = text()?;
                let well_formed = (url.starts_with("https://") || url.starts_with("http://"))
                    && url.len() > 8
                    && !url.contains(char::is_whitespace);
                if well_formed {
                    Ok(Value::from(url))
                } else {
                    Err("must be an http(s) URL".into())
                }
            }
            FieldType::Email => Ok(Value::from(normalize_email(text()?)?)),
            FieldType::Phone => {
                let phone = normalize_phone(text()?, default_country)?;
                Ok(Value::from(phone.e164.unwrap_or(phone.typed)))
            }
        }
    }

    fn check_option(&self, choice: &str) -> Result<(), String> {
        if self.options.iter().any(|o| o == choice) {
            Ok(())
        } else {
            Err(self.not_an_option())
        }
    }

    fn not_an_option(&self) -> String {
        format!("must be one of {}", self.options.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(field_type: FieldType, options: &[&str]) -> CustomFieldDef {
        CustomFieldInput {
            key: "k".into(),
            label: None,
            field_type,
            options: Some(options.iter().map(|s| s.to_string()).collect()),
            group: None,
            placeholder: None,
        }
        .validate(Utc::now(), None)
        .unwrap()
    }

    #[test]
    fn each_type_accepts_good_and_rejects_bad_values() {
        let fr = phonenumber::country::Id::FR;
        let cases: Vec<(CustomFieldDef, Value, Option<Value>)> = vec![
            (def(FieldType::Text, &[]), json!(" hi "), Some(json!("hi"))),
            (def(FieldType::Text, &[]), json!(3), None),
            (def(FieldType::Number, &[]), json!(12.5), Some(json!(12.5))),
            (def(FieldType::Number, &[]), json!("12"), None),
            (
                def(FieldType::Date, &[]),
                json!("2027-03-01"),
                Some(json!("2027-03-01")),
            ),
            (def(FieldType::Date, &[]), json!("03/01/2027"), None),
            (
                def(FieldType::Datetime, &[]),
                json!("2026-11-02T11:00:00+01:00"),
                Some(json!("2026-11-02T10:00:00Z")),
            ),
            (def(FieldType::Datetime, &[]), json!("soon"), None),
            (
                def(FieldType::Checkbox, &[]),
                json!(true),
                Some(json!(true)),
            ),
            (def(FieldType::Checkbox, &[]), json!("yes"), None),
            (
                def(FieldType::Dropdown, &["free", "pro"]),
                json!("pro"),
                Some(json!("pro")),
            ),
            (
                def(FieldType::Dropdown, &["free", "pro"]),
                json!("gold"),
                None,
            ),
            (
                def(FieldType::Multiselect, &["a", "b"]),
                json!(["b", "a", "b"]),
                Some(json!(["b", "a"])),
            ),
            (def(FieldType::Multiselect, &["a", "b"]), json!(["c"]), None),
            (
                def(FieldType::Url, &[]),
                json!("https://acme.io/x"),
                Some(json!("https://acme.io/x")),
            ),
            (def(FieldType::Url, &[]), json!("acme.io"), None),
            (
                def(FieldType::Email, &[]),
                json!("A@B.fr"),
                Some(json!("a@b.fr")),
            ),
            (def(FieldType::Email, &[]), json!("nope"), None),
            (
                def(FieldType::Phone, &[]),
                json!("06 12 34 56 78"),
                Some(json!("+33612345678")),
            ),
            (def(FieldType::Phone, &[]), json!("call"), None),
        ];
        for (def, value, expected) in cases {
            assert_eq!(
                def.normalize(&value, fr).ok(),
                expected,
                "{:?} {value}",
                def.field_type
            );
        }
    }

    #[test]
    fn definitions_are_checked() {
        let bad = CustomFieldInput {
            key: "Bad Key".into(),
            label: None,
            field_type: FieldType::Dropdown,
            options: None,
            group: None,
            placeholder: None,
        };
        let err = bad.validate(Utc::now(), None).unwrap_err();
        let fields: Vec<_> = err.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["key", "options"]);
    }
}
