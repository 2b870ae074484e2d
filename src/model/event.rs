//! Activity events and how they move a contact's activity fields.
//!
//! Events may arrive out of order: every time only moves forward, and a conversation
//! closed after it was opened stays closed whatever order the two events arrive in.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::contact::Contact;
use super::{ValidationError, time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    MessageIn,
    MessageOut,
    ConversationOpened,
    ConversationClosed,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub channel: Option<String>,
    /// When it happened; default: now.
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub channel: Option<String>,
    pub at: DateTime<Utc>,
}

impl EventInput {
    pub fn validate(self, now: DateTime<Utc>, field: &str) -> Result<Event, ValidationError> {
        let at = match self.at {
            Some(text) => time::parse_time(&text)
                .map_err(|m| ValidationError::single(format!("{field}at"), m))?,
            None => now,
        };
        if at > now + Duration::days(1) {
            return Err(ValidationError::single(
                format!("{field}at"),
                "must not be in the future",
            ));
        }
        let channel = match self
            .channel
            .map(|c| c.trim().to_lowercase())
            .filter(|c| !c.is_empty())
        {
            Some(c)
                if c.len() <= 32
                    && c.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                Some(c)
            }
            Some(_) => {
                return Err(ValidationError::single(
                    format!("{field}channel"),
                    "must use only a-z, 0-9, '_' and '-'",
                ));
            }
            None => None,
        };
        Ok(Event {
            kind: self.kind,
            channel,
            at,
        })
    }
}

fn later(current: Option<DateTime<Utc>>, at: DateTime<Utc>) -> bool {
    current.is_none_or(|c| at > c)
}

type Activity = (
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The fields events move, to tell whether one changed anything.
fn activity(contact: &Contact) -> Activity {
    (
        contact.last_interaction_at,
        contact.last_interacted_channel.clone(),
        contact.last_incoming_message_at,
        contact.conversation_opened_at,
        contact.conversation_closed_at,
    )
}

impl Event {
    /// Applies the event; returns whether anything changed.
    pub fn apply(&self, contact: &mut Contact) -> bool {
        let before = activity(contact);
        if contact.last_interaction_at.is_none_or(|c| self.at >= c) {
            contact.last_interaction_at = Some(self.at);
            if self.channel.is_some() {
                contact.last_interacted_channel = self.channel.clone();
            }
        }
        match self.kind {
            EventKind::MessageIn => {
                if later(contact.last_incoming_message_at, self.at) {
                    contact.last_incoming_message_at = Some(self.at);
                }
            }
            EventKind::MessageOut => {}
            EventKind::ConversationOpened => {
                let after_close = contact.conversation_closed_at.is_none_or(|c| self.at > c);
                if after_close && later(contact.conversation_opened_at, self.at) {
                    contact.conversation_opened_at = Some(self.at);
                }
            }
            EventKind::ConversationClosed => {
                if later(contact.conversation_closed_at, self.at) {
                    contact.conversation_closed_at = Some(self.at);
                }
                if contact.conversation_opened_at.is_some_and(|o| o <= self.at) {
                    contact.conversation_opened_at = None;
                }
            }
        }
        before != activity(contact)
    }
}
