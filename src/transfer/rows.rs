//! Contact ↔ row conversions for CSV and NDJSON.

use serde_json::{Map, Value};

use crate::model::{
    Contact, ContactInput, CustomFieldDefs, FieldError, FieldType, IdentityInput, WRITABLE_FIELDS,
};

/// The built-in CSV columns, in order: the writable contact fields, custom values
/// getting one `custom.<key>` column each instead of `custom_fields`.
fn base_columns() -> impl Iterator<Item = &'static str> {
    WRITABLE_FIELDS
        .into_iter()
        .filter(|f| *f != "custom_fields")
}

/// A contact as an importable row: a JSON object of its writable fields that hold a
/// value (lists, custom values and `favorite` always) and `created_at`, keys in
/// alphabetical order; with `fields`, only those. The same object as
/// [`Contact::to_input`] serialized, written straight from the contact.
pub struct ExportRow<'a> {
    pub contact: &'a Contact,
    pub fields: Option<&'a [String]>,
}

impl serde::Serialize for ExportRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.contact;
        let wanted = |key: &str| self.fields.is_none_or(|f| f.iter().any(|w| w == key));
        let mut map = serializer.serialize_map(None)?;
        macro_rules! entry {
            ($key:literal, $value:expr) => {
                if wanted($key) {
                    map.serialize_entry($key, $value)?;
                }
            };
        }
        macro_rules! optional {
            ($key:literal, $value:expr) => {
                if let Some(value) = $value.as_ref()
                    && wanted($key)
                {
                    map.serialize_entry($key, value)?;
                }
            };
        }
        optional!("assignee", c.assignee);
        optional!("avatar_url", c.avatar_url);
        optional!("company_id", c.company_id);
        optional!("conversation_opened_at", c.conversation_opened_at);
        optional!("country", c.country);
        entry!(
            "created_at",
            &c.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        entry!("custom_fields", &c.custom_fields);
        optional!("email", c.email);
        optional!("external_id", c.external_id);
        entry!("favorite", &c.favorite);
        entry!("identities", &c.identities);
        optional!("language", c.language);
        optional!("last_incoming_message_at", c.last_incoming_message_at);
        optional!("last_interacted_channel", c.last_interacted_channel);
        optional!("last_interaction_at", c.last_interaction_at);
        optional!("name", c.name);
        optional!("notes", c.notes);
        optional!("phone", c.phone);
        entry!("tags", &c.tags);
        map.end()
    }
}

/// [`ExportRow`] as a JSON object.
pub fn export_row(contact: &Contact, fields: Option<&[String]>) -> Map<String, Value> {
    let row = ExportRow { contact, fields };
    let Value::Object(row) = serde_json::to_value(row).expect("rows serialize") else {
        unreachable!("a row is an object")
    };
    row
}

/// The CSV header: built-in columns and one per custom field (or the chosen fields).
pub fn csv_header(defs: &CustomFieldDefs, fields: Option<&[String]>) -> Vec<String> {
    let all = base_columns()
        .map(|c| c.to_string())
        .chain(defs.keys().map(|k| format!("custom.{k}")));
    match fields {
        Some(fields) => all
            .filter(|c| {
                fields
                    .iter()
                    .any(|f| f == c || (f == "custom_fields" && c.starts_with("custom.")))
            })
            .collect(),
        None => all.collect(),
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                Value::Object(identity) => {
                    let base = format!(
                        "{}:{}",
                        str_of(identity.get("channel")),
                        str_of(identity.get("value"))
                    );
                    match identity.get("account").and_then(Value::as_str) {
                        Some(account) => format!("{base}|{account}"),
                        None => base,
                    }
                }
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

fn str_of(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// One CSV record for `contact` under `header`.
pub fn csv_record(contact: &Contact, header: &[String]) -> Vec<String> {
    let row = export_row(contact, None);
    let custom = row.get("custom_fields").and_then(Value::as_object);
    header
        .iter()
        .map(|column| match column.strip_prefix("custom.") {
            Some(key) => cell(custom.and_then(|c| c.get(key))),
            None => cell(row.get(column.as_str())),
        })
        .collect()
}

fn split_list(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A CSV record as contact input; cells are typed by column (custom ones by their
/// definition). Empty cells are absent.
pub fn csv_row_to_input(
    header: &[String],
    record: &csv::StringRecord,
    defs: &CustomFieldDefs,
) -> Result<ContactInput, Vec<FieldError>> {
    let mut row = Map::new();
    let mut custom = Map::new();
    let mut errors = Vec::new();
    for (column, text) in header.iter().zip(record.iter()) {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(key) = column.strip_prefix("custom.") {
            let value = match defs.get(key).map(|d| d.field_type) {
                // Integers stay integers, so a round trip gives back the same JSON.
                Some(FieldType::Number) => match text
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| text.parse::<f64>().map(Value::from))
                {
                    Ok(n) => n,
                    Err(_) => {
                        errors.push(FieldError {
                            field: column.clone(),
                            message: format!("'{text}' is not a number"),
                        });
                        continue;
                    }
                },
                Some(FieldType::Checkbox) => match text.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Value::Bool(true),
                    "false" | "0" | "no" => Value::Bool(false),
                    _ => {
                        errors.push(FieldError {
                            field: column.clone(),
                            message: "must be true or false".into(),
                        });
                        continue;
                    }
                },
                Some(FieldType::Multiselect) => Value::from(split_list(text)),
                _ => Value::from(text),
            };
            custom.insert(key.to_string(), value);
            continue;
        }
        let value = match column.as_str() {
            "tags" => Value::from(split_list(text)),
            "favorite" => Value::Bool(matches!(
                text.to_ascii_lowercase().as_str(),
                "true" | "1" | "yes"
            )),
            "identities" => {
                let mut identities = Vec::new();
                for item in split_list(text) {
                    let (identity, account) = match item.split_once('|') {
                        Some((identity, account)) => {
                            (identity.to_string(), Some(account.to_string()))
                        }
                        None => (item.clone(), None),
                    };
                    match identity.split_once(':') {
                        Some((channel, value)) => identities.push(IdentityInput {
                            channel: channel.to_string(),
                            value: value.to_string(),
                            account,
                        }),
                        None => errors.push(FieldError {
                            field: "identities".into(),
                            message: format!("'{item}' is not channel:value"),
                        }),
                    }
                }
                serde_json::to_value(identities).expect("identities serialize")
            }
            _ => Value::from(text),
        };
        row.insert(column.clone(), value);
    }
    if !custom.is_empty() {
        row.insert("custom_fields".into(), Value::Object(custom));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_json::from_value(Value::Object(row)).map_err(|e| {
        vec![FieldError {
            field: "row".into(),
            message: e.to_string(),
        }]
    })
}

/// Checks CSV header names before any row is read.
pub(super) fn check_header(header: &[String], defs: &CustomFieldDefs) -> Result<(), String> {
    for column in header {
        let known = base_columns().any(|c| c == column)
            || column
                .strip_prefix("custom.")
                .is_some_and(|k| defs.contains_key(k));
        if !known {
            return Err(format!(
                "unknown CSV column '{column}': use {} or custom.<key> of a defined custom field",
                base_columns().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_rows_are_the_contacts_input() {
        for contact in crate::model::sample_contacts() {
            let expected = serde_json::to_value(contact.to_input()).expect("serializes");
            assert_eq!(Value::Object(export_row(&contact, None)), expected);
            let fields = ["name".to_string(), "tags".to_string()];
            let projected = export_row(&contact, Some(&fields));
            assert!(projected.keys().all(|k| fields.contains(k)));
            assert_eq!(projected.get("tags"), expected.get("tags"));
        }
    }
}
