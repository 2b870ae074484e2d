//! API keys and roles: who may call what.
//!
//! A key is a random token shown once (`contactd keys create`); config.toml keeps only
//! its SHA-256 hash, a name and a role. Roles are ordered, each including the one
//! before: agent < manager < owner. [`required_role`] is the one table from a route
//! to the role it needs; the API's middleware enforces it. With no key configured
//! every request is let through, which the config allows only on loopback.
//!
//! Keys never appear in clear anywhere but the one line `keys create` prints: not in
//! config, logs, errors nor `Debug` output.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, read, create and update single contacts, identify, events.
    Agent,
    /// + delete/restore, import, export, merge/unmerge, inboxes, companies, jobs.
    Manager,
    /// + custom field definitions, permanent erase, admin.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Manager => "manager",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "agent" => Ok(Role::Agent),
            "manager" => Ok(Role::Manager),
            "owner" => Ok(Role::Owner),
            other => Err(format!(
                "unknown role '{other}': use agent, manager or owner"
            )),
        }
    }
}

/// A configured key: its name, role and the SHA-256 of the token (lowercase hex).
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub name: String,
    pub role: Role,
    pub sha256: String,
    /// When `keys create` made it (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// A scoped key sees and changes only the contacts this filter selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A scoped key reads (and writes) only these contact fields; `id` always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl std::fmt::Debug for KeyConfig {
    // The hash is no secret, but a short prefix is all anyone needs to tell keys apart.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("sha256", &format_args!("{}…", self.hash_prefix()))
            .field("filter", &self.filter)
            .field("fields", &self.fields)
            .finish()
    }
}

impl KeyConfig {
    pub fn hash_prefix(&self) -> &str {
        self.sha256.get(..8).unwrap_or(&self.sha256)
    }

    /// Checks the hash's form (64 lowercase hex digits) and the name.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err("auth.keys: every key needs a name of 1 to 100 characters".into());
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "auth.keys '{}': sha256 must be 64 lowercase hex digits (the hash of the key, \
                 never the key itself; `contactd keys create` writes it)",
                self.name
            ));
        }
        if let Some(filter) = &self.filter {
            let expr = crate::query::parse(filter)
                .map_err(|e| {
                    format!(
                        "auth.keys '{}': the filter does not parse at byte {}: {}",
                        self.name, e.position, e.message
                    )
                })?
                .ok_or_else(|| format!("auth.keys '{}': the filter is empty", self.name))?;
            // A scope selects among live contacts; the trash and merged records are
            // never a scope's (and `status` would widen a search to them).
            if expr.field_names().contains(&"status") {
                return Err(format!(
                    "auth.keys '{}': a key's filter may not name status",
                    self.name
                ));
            }
        }
        if let Some(fields) = &self.fields {
            let known = crate::model::contact_field_names();
            if let Some(unknown) = fields.iter().find(|f| !known.contains(f)) {
                return Err(format!(
                    "auth.keys '{}': unknown field '{unknown}' in fields: use {}",
                    self.name,
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn scope(&self) -> Option<Arc<KeyScope>> {
        (self.filter.is_some() || self.fields.is_some()).then(|| {
            Arc::new(KeyScope {
                filter: self.filter.clone(),
                fields: self.fields.clone(),
            })
        })
    }
}

/// What a scoped key is limited to (see [`KeyConfig::filter`] and
/// [`KeyConfig::fields`]). The API ANDs the filter into every read and checks it
/// before and after every write; the store checks it again inside the write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScope {
    pub filter: Option<String>,
    pub fields: Option<Vec<String>>,
}

impl KeyScope {
    /// Whether the key may read (and write) this contact field.
    pub fn can_read(&self, field: &str) -> bool {
        field == "id"
            || self
                .fields
                .as_ref()
                .is_none_or(|fields| fields.iter().any(|f| f == field))
    }
}

/// A new random key: `cdk_` and 64 hex digits (256 bits from the OS).
pub fn generate_key() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(format!("cdk_{}", hex(&bytes)))
}

/// The SHA-256 of a key, as config.toml stores it.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who is calling: the key's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Set for a scoped key.
    pub scope: Option<Arc<KeyScope>>,
}

/// The configured keys by hash.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    by_hash: HashMap<String, Caller>,
}

impl Keys {
    pub fn new(keys: &[KeyConfig]) -> Keys {
        Keys {
            by_hash: keys
                .iter()
                .map(|k| {
                    let caller = Caller {
                        name: k.name.clone(),
                        role: k.role,
                        scope: k.scope(),
                    };
                    (k.sha256.clone(), caller)
                })
                .collect(),
        }
    }

    /// No key configured: requests need none (loopback only).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The caller a presented key belongs to. Only hashes are compared: a timing
    /// difference could at most reveal a prefix of a hash, never of a key.
    pub fn authenticate(&self, key: &str) -> Option<&Caller> {
        self.by_hash.get(&hash_key(key))
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key (health and readiness).
    Public,
    /// `/metrics`: a key unless `auth.public_metrics`.
    Metrics,
    /// A key of at least this role.
    Role(Role),
}

/// The one table from a route (method, matched path pattern, and whether the query
/// asks for `permanent=true`) to what it needs. Unknown routes need an agent key, so
/// a route added without an entry is never public.
pub fn required_role(method: &str, route: &str, permanent: bool) -> Access {
    use Role::*;
    let role = match (method, route) {
        (_, "/healthz" | "/readyz" | "/openapi.json") => return Access::Public,
        // The dashboard's page and assets; its data comes from the API with a key.
        ("GET", "/" | "/assets/{file}") => return Access::Public,
        (_, "/metrics") => return Access::Metrics,
        ("GET", "/v1/stats") => Agent,
        ("GET", "/v1/contacts" | "/v1/contacts/lookup" | "/v1/contacts/{id}") => Agent,
        ("POST", "/v1/contacts" | "/v1/contacts/search" | "/v1/contacts/identify") => Agent,
        ("PATCH", "/v1/contacts/{id}") => Agent,
        ("POST", "/v1/contacts/{id}/events" | "/v1/events") => Agent,
        ("DELETE", "/v1/contacts/{id}") if permanent => Owner,
        ("DELETE", "/v1/contacts/{id}") => Manager,
        ("POST", "/v1/contacts/{id}/restore") => Manager,
        ("POST", "/v1/contacts/{id}/merge" | "/v1/contacts/{id}/unmerge") => Manager,
        ("POST", "/v1/contacts/bulk") => Manager,
        ("POST", "/v1/contacts/import") | ("GET", "/v1/contacts/export") => Manager,
        ("GET", "/v1/contacts/{id}/duplicates") => Agent,
        ("GET", "/v1/duplicates") => Manager,
        ("GET", "/v1/jobs" | "/v1/jobs/{id}") | ("POST", "/v1/jobs/{id}/cancel") => Manager,
        ("POST", "/v1/admin/reindex" | "/v1/admin/snapshot" | "/v1/admin/load") => Owner,
        ("GET", "/v1/admin/dump") => Owner,
        // Agents work in companies and inboxes; changing them is a manager's.
        ("GET", "/v1/companies" | "/v1/companies/{id}") => Agent,
        ("GET", "/v1/companies/{id}/contacts" | "/v1/companies/{id}/recipients") => Agent,
        (_, "/v1/companies" | "/v1/companies/{id}") => Manager,
        ("GET", "/v1/inboxes" | "/v1/inboxes/{id}" | "/v1/inboxes/{id}/contacts") => Agent,
        (_, "/v1/inboxes" | "/v1/inboxes/{id}") => Manager,
        // Everyone reads the definitions (forms need them); only owners change them.
        ("GET", "/v1/custom-fields" | "/v1/custom-fields/{key}") => Agent,
        (_, "/v1/custom-fields" | "/v1/custom-fields/{key}") => Owner,
        _ => Agent,
    };
    Access::Role(role)
}

/// Whether a scoped key may call a route its role allows. Scoped keys work on single
/// contacts and on searches, which the scope narrows; routes that change or report on
/// the whole base (import, jobs, admin, stats, catalog and company changes) are refused,
/// since no filter can narrow them.
pub fn scoped_key_may(method: &str, route: &str) -> bool {
    !matches!(
        (method, route),
        (
            _,
            "/v1/stats"
                | "/v1/duplicates"
                | "/v1/contacts/import"
                | "/v1/jobs"
                | "/v1/jobs/{id}"
                | "/v1/jobs/{id}/cancel"
                | "/v1/admin/reindex"
                | "/v1/admin/snapshot"
                | "/v1/admin/dump"
                | "/v1/admin/load"
        ) | (
            "POST" | "PATCH" | "DELETE",
            "/v1/companies" | "/v1/companies/{id}"
        ) | (
            "POST" | "PATCH" | "DELETE",
            "/v1/custom-fields" | "/v1/custom-fields/{key}"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_their_hash_only() {
        let key = generate_key().unwrap();
        assert!(key.starts_with("cdk_") && key.len() == 68, "{key}");
        let config = KeyConfig {
            name: "bot".into(),
            role: Role::Manager,
            sha256: hash_key(&key),
            created_at: None,
            filter: None,
            fields: None,
        };
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains(&config.sha256));
        let keys = Keys::new(&[config]);
        assert_eq!(keys.authenticate(&key).unwrap().role, Role::Manager);
        assert!(keys.authenticate(&hash_key(&key)).is_none());
        assert!(keys.authenticate("cdk_wrong").is_none());
    }

    #[test]
    fn a_scope_is_checked_when_the_config_loads() {
        let key = |filter: Option<&str>, fields: Option<&[&str]>| KeyConfig {
            name: "scoped".into(),
            role: Role::Agent,
            sha256: hash_key("cdk_x"),
            created_at: None,
            filter: filter.map(String::from),
            fields: fields.map(|f| f.iter().map(|s| s.to_string()).collect()),
        };
        key(Some("assignee = agent-12"), Some(&["name", "email"]))
            .validate()
            .unwrap();
        for (bad, why) in [
            (key(Some("assignee ="), None), "does not parse"),
            (key(Some("status = deleted"), None), "status"),
            (key(None, Some(&["name", "password"])), "password"),
        ] {
            let error = bad.validate().unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        let scoped = Keys::new(&[key(Some("assignee = agent-12"), None)]);
        let caller = scoped.authenticate("cdk_x").unwrap();
        assert!(caller.scope.as_ref().unwrap().can_read("notes"));
        assert!(!scoped_key_may("GET", "/v1/stats"));
        assert!(scoped_key_may("GET", "/v1/contacts"));
    }

    #[test]
    fn roles_are_ordered_and_erase_needs_an_owner() {
        assert!(Role::Agent < Role::Manager && Role::Manager < Role::Owner);
        let delete = |permanent| required_role("DELETE", "/v1/contacts/{id}", permanent);
        assert_eq!(delete(false), Access::Role(Role::Manager));
        assert_eq!(delete(true), Access::Role(Role::Owner));
        assert_eq!(required_role("GET", "/readyz", false), Access::Public);
        assert_eq!(
            required_role("GET", "/v1/some-new-route", false),
            Access::Role(Role::Agent)
        );
    }
}
