//! The fields a filter can name, and what each accepts.

use crate::model::{CustomFieldDefs, FieldType};

/// How a field's values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// One exact string value (normalized per field).
    Keyword,
    /// Several exact string values; `=` means "has this value".
    List,
    /// Text with partial matching (`CONTAINS`); `=` compares the folded text.
    Text,
    Bool,
    Number,
    Time,
}

/// A built-in field or a custom one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    Builtin(&'static str),
    Custom { key: String, field_type: FieldType },
}

const BUILTINS: [(&str, FieldKind); 20] = [
    ("id", FieldKind::Keyword),
    ("external_id", FieldKind::Keyword),
    ("name", FieldKind::Text),
    ("email", FieldKind::Text),
    ("phone", FieldKind::Text),
    ("channel", FieldKind::List),
    ("company_id", FieldKind::Keyword),
    ("favorite", FieldKind::Bool),
    ("country", FieldKind::Keyword),
    ("language", FieldKind::Keyword),
    ("tags", FieldKind::List),
    ("assignee", FieldKind::Keyword),
    ("status", FieldKind::Keyword),
    ("pending_actions", FieldKind::List),
    ("created_at", FieldKind::Time),
    ("updated_at", FieldKind::Time),
    ("last_interaction_at", FieldKind::Time),
    ("last_interacted_channel", FieldKind::Keyword),
    ("last_incoming_message_at", FieldKind::Time),
    ("conversation_opened_at", FieldKind::Time),
];

/// Built-in field names, for error messages.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// Resolves a field name: built-ins first, then `custom.<key>` or a bare defined key.
pub fn field_ref(name: &str, defs: &CustomFieldDefs) -> Option<FieldRef> {
    if let Some((builtin, _)) = BUILTINS.iter().find(|(n, _)| *n == name) {
        return Some(FieldRef::Builtin(builtin));
    }
    let key = name.strip_prefix("custom.").unwrap_or(name);
    defs.get(key).map(|def| FieldRef::Custom {
        key: key.to_string(),
        field_type: def.field_type,
    })
}

impl FieldRef {
    pub fn kind(&self) -> FieldKind {
        match self {
            FieldRef::Builtin(name) => BUILTINS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, k)| *k)
                .expect("a built-in"),
            FieldRef::Custom { field_type, .. } => match field_type {
                FieldType::Number => FieldKind::Number,
                FieldType::Date | FieldType::Datetime => FieldKind::Time,
                FieldType::Checkbox => FieldKind::Bool,
                FieldType::Multiselect => FieldKind::List,
                FieldType::Text | FieldType::Url | FieldType::Email | FieldType::Phone => {
                    FieldKind::Text
                }
                FieldType::Dropdown => FieldKind::Keyword,
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            FieldRef::Builtin(name) => name.to_string(),
            FieldRef::Custom { key, .. } => format!("custom.{key}"),
        }
    }
}
