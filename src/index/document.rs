//! Contact → tantivy document.

use chrono::{DateTime, Utc};
use tantivy::TantivyDocument;
use tantivy::schema::Field;

use super::analysis::{fold_handle, handle_words, marked, tagged_words, words};
use super::schema::{Fields, FormField, Keys, TextGroup};
use crate::model::{Contact, ContactContext, FieldType, is_phone_channel, phone_forms};

/// The searchable words of a contact, grouped as they are ranked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SearchableText {
    pub name: Vec<String>,
    /// The words of every email's handle ([`handle_words`]): an email's words are
    /// found in its handle's trigrams.
    pub email: Vec<String>,
    /// Digit forms of every phone (national and international).
    pub phone: Vec<String>,
    /// International digit forms only (matched by fragments typed with `+`).
    pub phone_international: Vec<String>,
    pub other: Vec<String>,
    /// Whole emails folded by [`fold_handle`]: what handle fragments match, with
    /// [`Self::other_handles`].
    pub email_handles: Vec<String>,
    /// Whole identity values not on a phone channel, folded by [`fold_handle`].
    pub other_handles: Vec<String>,
}

impl SearchableText {
    /// Every handle, emails first.
    pub fn handles(&self) -> impl Iterator<Item = &String> {
        self.email_handles.iter().chain(&self.other_handles)
    }

    /// What `q` searches: name; email and email identities; phone and phone-channel
    /// identities; other identities, company name, tags, text/dropdown/multiselect
    /// custom values and notes.
    pub fn of(contact: &Contact, context: &ContactContext) -> SearchableText {
        let mut text = SearchableText::default();
        if let Some(name) = &contact.name {
            text.name = words(name);
        }
        let mut emails: Vec<&str> = contact.email.iter().map(String::as_str).collect();
        let mut others: Vec<&str> = Vec::new();
        let mut phones: Vec<(&str, Option<&str>)> = Vec::new();
        if let Some(phone) = &contact.phone {
            phones.push((phone, contact.phone_e164.as_deref()));
        }
        for identity in &contact.identities {
            if identity.channel == "email" {
                emails.push(&identity.value);
            } else if is_phone_channel(&identity.channel) {
                let e164 = identity
                    .value
                    .starts_with('+')
                    .then_some(identity.value.as_str());
                phones.push((&identity.value, e164));
            } else {
                others.push(&identity.value);
            }
        }
        for email in emails {
            let handle = fold_handle(email);
            extend_unique(&mut text.email, handle_words(&handle).map(str::to_string));
            extend_unique(&mut text.email_handles, [handle]);
        }
        for handle in &others {
            extend_unique(&mut text.other_handles, [fold_handle(handle)]);
        }
        for (typed, e164) in phones {
            let forms = phone_forms(typed, e164);
            extend_unique(&mut text.phone, [forms.national]);
            if let Some(international) = forms.international {
                extend_unique(&mut text.phone, [international.clone()]);
                extend_unique(&mut text.phone_international, [international]);
            }
        }
        if let Some(company) = contact
            .company_id
            .as_ref()
            .and_then(|id| context.company_names.get(id))
        {
            others.push(company);
        }
        others.extend(contact.tags.iter().map(String::as_str));
        for (key, value) in &contact.custom_fields {
            if !context
                .defs
                .get(key)
                .is_some_and(|d| d.field_type.is_searchable())
            {
                continue;
            }
            match value {
                serde_json::Value::String(s) => others.push(s),
                serde_json::Value::Array(items) => {
                    others.extend(items.iter().filter_map(|v| v.as_str()));
                }
                _ => {}
            }
        }
        others.extend(contact.notes.as_deref());
        for other in others {
            extend_unique(&mut text.other, words(other));
        }
        text
    }
}

fn extend_unique(target: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !item.is_empty() && !target.contains(&item) {
            target.push(item);
        }
    }
}

pub fn to_document(
    contact: &Contact,
    context: &ContactContext,
    fields: &Fields,
) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    let keys = fields.keys;
    add_keyword(&mut doc, keys, "id", fields.id, &contact.id);
    add_keyword(
        &mut doc,
        keys,
        "status",
        fields.status,
        contact.status.as_str(),
    );
    if let Some(name) = &contact.name {
        let name = crate::model::name_key(name);
        add_keyword(&mut doc, keys, "name", fields.name_sort, &name);
    }
    doc.add_bool(fields.favorite, contact.favorite);
    add_key(
        &mut doc,
        keys,
        "favorite",
        if contact.favorite { "true" } else { "false" },
    );
    if let Some(email) = &contact.email {
        add_key(&mut doc, keys, "email", email);
        add_key(&mut doc, keys, Keys::PRESENT, "email");
    }
    if let Some(phone) = &contact.phone {
        add_key(&mut doc, keys, Keys::PRESENT, "phone");
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        add_key(
            &mut doc,
            keys,
            "phone",
            contact.phone_e164.as_deref().unwrap_or(&digits),
        );
    }
    for (custom_key, value) in &contact.custom_fields {
        let Some(def) = context.defs.get(custom_key) else {
            continue;
        };
        let field = crate::query::FieldRef::Custom {
            key: custom_key.clone(),
            field_type: def.field_type,
        };
        if field.kind() == crate::query::FieldKind::Text {
            for word in crate::query::custom_words(def.field_type, Some(value)) {
                add_key(
                    &mut doc,
                    keys,
                    Keys::CUSTOM_WORD,
                    &format!("{custom_key}\u{1f}{word}"),
                );
            }
        }
    }
    if contact.is_active() {
        for duplicate in crate::model::duplicates::match_keys(contact) {
            add_key(&mut doc, keys, Keys::DUPLICATE, &duplicate);
        }
    }
    let k = &fields.keywords;
    for tag in &contact.tags {
        add_keyword(&mut doc, keys, "tags", k.tags, &tag.to_lowercase());
    }
    let keywords = [
        ("country", k.country, contact.country.as_deref()),
        ("language", k.language, contact.language.as_deref()),
        ("assignee", k.assignee, contact.assignee.as_deref()),
        ("company_id", k.company_id, contact.company_id.as_deref()),
        ("external_id", k.external_id, contact.external_id.as_deref()),
        (
            "last_interacted_channel",
            k.last_interacted_channel,
            contact.last_interacted_channel.as_deref(),
        ),
    ];
    for (name, column, value) in keywords {
        if let Some(value) = value {
            add_keyword(&mut doc, keys, name, column, value);
        }
    }
    for channel in crate::query::channels(contact) {
        add_keyword(&mut doc, keys, "channel", k.channel, &channel);
    }
    for action in &contact.pending_actions {
        add_keyword(&mut doc, keys, "pending_actions", k.pending_actions, action);
    }

    let text = SearchableText::of(contact, context);
    add_group(&mut doc, fields.name, &text.name);
    // An email's words have their exact and short prefix forms; their trigrams and
    // starts are those of the whole email (see [`super::analysis`]).
    add_form(&mut doc, fields.email.words, &text.email);
    add_form(&mut doc, fields.email.short_prefixes, &text.email);
    add_form(&mut doc, fields.email.trigrams, &text.email_handles);
    // International digit forms are marked, for fragments typed with `+`.
    let phone: Vec<String> = text
        .phone
        .iter()
        .map(|digits| match text.phone_international.contains(digits) {
            true => marked(digits),
            false => digits.clone(),
        })
        .collect();
    add_group(&mut doc, fields.phone, &phone);
    add_group(&mut doc, fields.other, &text.other);
    let handles: Vec<String> = text.handles().cloned().collect();
    add_form(&mut doc, fields.handles.short_prefixes, &handles);
    // A phone typed whole with its `+` ranks like an email typed whole.
    let mut whole = handles;
    whole.extend(text.phone_international.iter().map(|d| format!("+{d}")));
    add_form(&mut doc, fields.handles.words, &whole);
    add_form(&mut doc, fields.handles.trigrams, &text.other_handles);

    let custom = typed_custom_values(contact, context);
    if !custom.is_empty() {
        doc.add_object(fields.custom, custom);
    }

    let d = &fields.dates;
    add_date(&mut doc, d.created_at, Some(contact.created_at));
    add_date(&mut doc, d.updated_at, Some(contact.updated_at));
    add_date(&mut doc, d.last_interaction_at, contact.last_interaction_at);
    add_date(
        &mut doc,
        d.last_incoming_message_at,
        contact.last_incoming_message_at,
    );
    add_date(
        &mut doc,
        d.conversation_opened_at,
        contact.conversation_opened_at,
    );
    doc
}

/// Custom values as typed JSON: numbers, booleans, dates and datetimes as tantivy
/// dates, everything else as strings.
fn typed_custom_values(
    contact: &Contact,
    context: &ContactContext,
) -> std::collections::BTreeMap<String, tantivy::schema::OwnedValue> {
    use tantivy::schema::OwnedValue;
    let mut typed = std::collections::BTreeMap::new();
    for (key, value) in &contact.custom_fields {
        let Some(def) = context.defs.get(key) else {
            continue;
        };
        let owned = match (def.field_type, value) {
            (FieldType::Number, serde_json::Value::Number(n)) => n.as_f64().map(OwnedValue::F64),
            (FieldType::Checkbox, serde_json::Value::Bool(b)) => Some(OwnedValue::Bool(*b)),
            (FieldType::Date | FieldType::Datetime, serde_json::Value::String(s)) => {
                crate::model::parse_time(s)
                    .ok()
                    .map(|t| OwnedValue::Date(to_tantivy_date(t)))
            }
            (FieldType::Multiselect, serde_json::Value::Array(items)) => Some(OwnedValue::Array(
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .map(|s| OwnedValue::Str(s.to_string()))
                    .collect(),
            )),
            (_, serde_json::Value::String(s)) => Some(OwnedValue::Str(s.clone())),
            _ => None,
        };
        if let Some(owned) = owned {
            typed.insert(key.clone(), owned);
        }
    }
    typed
}

fn add_group(doc: &mut TantivyDocument, group: TextGroup, words: &[String]) {
    for form in [group.words, group.short_prefixes, group.trigrams] {
        add_form(doc, form, words);
    }
}

/// The lookup term of `value` under `name` (see [`Keys`]).
fn add_key(doc: &mut TantivyDocument, keys: Keys, name: &str, value: &str) {
    doc.add_text(keys.field, Keys::text(name, value));
}

/// A keyword: its lookup term under `name`, and its value in its own column (sorts,
/// facets, ranges and `EXISTS` read the column).
fn add_keyword(doc: &mut TantivyDocument, keys: Keys, name: &str, column: Field, value: &str) {
    add_key(doc, keys, name, value);
    doc.add_text(column, value);
}

/// `words` in one form of one group, as one tagged value.
fn add_form(doc: &mut TantivyDocument, form: FormField, words: &[String]) {
    if !words.is_empty() {
        doc.add_text(form.field, tagged_words(form.tag, words));
    }
}

fn add_date(doc: &mut TantivyDocument, field: Field, value: Option<DateTime<Utc>>) {
    if let Some(value) = value {
        doc.add_date(field, to_tantivy_date(value));
    }
}

/// tantivy keeps nanoseconds in an `i64`: instants beyond about 292 years from 1970
/// (1677-09-21 to 2262-04-11) sit at those edges in the index. Filter bounds past them
/// (`now-100000000d`) keep their meaning; a stored date past them compares as the edge.
pub fn to_tantivy_date(value: DateTime<Utc>) -> tantivy::DateTime {
    const EDGE_MILLIS: i64 = i64::MAX / 1_000_000;
    tantivy::DateTime::from_timestamp_millis(
        value.timestamp_millis().clamp(-EDGE_MILLIS, EDGE_MILLIS),
    )
}
