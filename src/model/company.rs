//! Companies: the organisations contacts belong to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::normalize::normalize_email;
use super::{FieldError, ValidationError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Company {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub email: Option<String>,
    pub custom_fields: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// The writable fields of a company (create body, or a merge-patched document).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyInput {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub email: Option<String>,
    pub custom_fields: Option<Map<String, Value>>,
}

impl Company {
    pub fn writable_json(&self) -> Value {
        serde_json::json!({
            "name": self.name, "domain": self.domain, "email": self.email,
            "custom_fields": self.custom_fields,
        })
    }
}

impl CompanyInput {
    /// Validates into `company` (a new one has version 0), bumping its version.
    pub fn apply_to(
        self,
        company: &mut Company,
        now: DateTime<Utc>,
    ) -> Result<(), ValidationError> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };
        let name = self.name.map(|n| n.trim().to_string()).unwrap_or_default();
        if name.is_empty() || name.chars().count() > 500 {
            fail("name", "is required (at most 500 characters)".into());
        }
        let domain = self
            .domain
            .map(|d| d.trim().to_lowercase())
            .filter(|d| !d.is_empty());
        if let Some(domain) = &domain
            && (!domain.contains('.')
                || domain.contains(|c: char| c.is_whitespace() || c == '/' || c == '@'))
        {
            fail(
                "domain",
                format!("'{domain}' is not a domain name like acme.io"),
            );
        }
        let email = match self
            .email
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
        {
            Some(email) => match normalize_email(&email) {
                Ok(email) => Some(email),
                Err(message) => {
                    fail("email", message);
                    None
                }
            },
            None => None,
        };
        let custom_fields = self.custom_fields.unwrap_or_default();
        for (key, value) in &custom_fields {
            if !super::custom_field::is_valid_key(key) || value.is_object() {
                fail(
                    &format!("custom_fields.{key}"),
                    "keys use a-z, 0-9 and '_'; values are scalars or lists".into(),
                );
            }
        }
        if !errors.is_empty() {
            return Err(ValidationError { details: errors });
        }
        company.name = name;
        company.domain = domain;
        company.email = email;
        company.custom_fields = custom_fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .collect();
        company.updated_at = now;
        company.version += 1;
        Ok(())
    }
}

impl Company {
    pub fn empty(id: String, now: DateTime<Utc>) -> Company {
        Company {
            id,
            name: String::new(),
            domain: None,
            email: None,
            custom_fields: Map::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }
}
