//! Saved inboxes: a named filter, sort and column choice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The id of the built-in inbox of every active contact.
pub const ALL_INBOX: &str = "all";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inbox {
    pub id: String,
    pub name: String,
    /// Filter expression, ANDed with a request's own filter.
    pub filter: String,
    /// Default sort (`field:dir,…`), or none for the default order.
    pub sort: Option<String>,
    /// The table's columns: the default projection of the inbox's contacts.
    pub columns: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// An inbox as a client writes it (create body, or a merge-patched document).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboxInput {
    pub name: String,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

impl Inbox {
    pub fn all(now: DateTime<Utc>) -> Inbox {
        Inbox {
            id: ALL_INBOX.into(),
            name: "All contacts".into(),
            filter: String::new(),
            sort: None,
            columns: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    pub fn writable_json(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "filter": self.filter, "sort": self.sort, "columns": self.columns})
    }
}
