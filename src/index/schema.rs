//! The tantivy schema. Bump [`SCHEMA_VERSION`] on any change: an index built with
//! another version is rebuilt from the store at start.
//!
//! Few indexed fields, many terms: every indexed field costs each new segment a
//! fixed amount of work (tantivy builds one term dictionary per field and sizes its
//! builder for thousands of terms, about 0.3 ms a field even for a segment of one
//! contact), and the sync worker writes a segment per commit. So the exact and short
//! prefix forms of every group share one field each ([`FormField`], each term led by
//! its group's tag), and every exact lookup (filters on keywords, ids, duplicate
//! keys) shares [`Keys`]. Each group keeps its own trigram field: tantivy numbers the
//! positions of a document's values in one field one after the other, so in a shared
//! field every group's positions would start after the others' (a fifth more bytes
//! of positions, and a slower rebuild). Keywords that are sorted, faceted or
//! range-filtered keep a fast column of their own, which needs no terms.

use tantivy::Term;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    Schema, TextFieldIndexing, TextOptions,
};

use super::analysis;
use super::text_query::Group;

pub const SCHEMA_VERSION: u32 = 13;

/// One form's field and the tag its group's terms start with (see [`analysis`]).
#[derive(Debug, Clone, Copy)]
pub struct FormField {
    pub field: Field,
    pub tag: char,
}

impl FormField {
    /// The term of `text` in this group.
    pub fn term(&self, text: &str) -> Term {
        Term::from_field_text(self.field, &analysis::tagged(self.tag, text))
    }
}

/// A group of searchable text, indexed in the three forms of [`analysis`].
#[derive(Debug, Clone, Copy)]
pub struct TextGroup {
    pub words: FormField,
    pub short_prefixes: FormField,
    pub trigrams: FormField,
    /// The trigram form holds whole handles ([`analysis::EMAIL_TAG`]), so a word
    /// inside one starts either the handle (`^`) or an inner run
    /// ([`analysis::RUN_START`]).
    pub handle_trigrams: bool,
    /// Where its matches rank: name before email before phone before the rest.
    pub group: Group,
}

/// The field of exact lookups: every term is a name, U+001F, then the value
/// (`country` U+001F `FR`). The names are those of the filter language's built-in
/// fields, plus [`Keys::PRESENT`], [`Keys::DUPLICATE`] and [`Keys::CUSTOM_WORD`].
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    pub field: Field,
}

impl Keys {
    /// `email` and `phone` when the contact has a primary email or phone: `EXISTS`
    /// on them as one term.
    pub const PRESENT: &str = "present";
    /// An active contact's [`crate::model::duplicates::match_keys`].
    pub const DUPLICATE: &str = "dup";
    /// `key` U+001F folded word, for `CONTAINS` on text-like custom fields.
    pub const CUSTOM_WORD: &str = "custom_word";

    /// The text of the term of `value` under `name`.
    pub fn text(name: &str, value: &str) -> String {
        let mut text = String::with_capacity(name.len() + 1 + value.len());
        text.push_str(name);
        text.push('\u{1f}');
        text.push_str(value);
        text
    }

    /// What every term under `name` starts with.
    pub fn prefix(name: &str) -> String {
        format!("{name}\u{1f}")
    }

    pub fn term(&self, name: &str, value: &str) -> Term {
        Term::from_field_text(self.field, &Self::text(name, value))
    }

    /// The first term past every term under `name` (U+001F + 1 is a space).
    pub fn end(&self, name: &str) -> Term {
        Term::from_field_text(self.field, &format!("{name} "))
    }
}

/// Keyword columns (exact values for sorts, facets, ranges and `EXISTS`; their
/// terms are in [`Keys`]).
#[derive(Debug, Clone, Copy)]
pub struct Keywords {
    pub tags: Field,
    pub country: Field,
    pub language: Field,
    pub channel: Field,
    pub assignee: Field,
    pub company_id: Field,
    pub external_id: Field,
    pub last_interacted_channel: Field,
    pub pending_actions: Field,
}

/// Millisecond date fields: fast columns only. Range filters, `EXISTS` and sorts all
/// read the column (tantivy answers a range on a fast field from it), so an inverted
/// index of every distinct instant would be bytes nothing reads (6% of the index).
#[derive(Debug, Clone, Copy)]
pub struct Dates {
    pub created_at: Field,
    pub updated_at: Field,
    pub last_interaction_at: Field,
    pub last_incoming_message_at: Field,
    pub conversation_opened_at: Field,
}

#[derive(Debug, Clone)]
pub struct Fields {
    pub schema: Schema,
    /// Column of the contact id (hits, sorts and cursors read it).
    pub id: Field,
    pub status: Field,
    /// Folded name for sorting by name.
    pub name_sort: Field,
    pub name: TextGroup,
    pub email: TextGroup,
    pub phone: TextGroup,
    pub other: TextGroup,
    /// Whole email and identity values ([`super::analysis::fold_handle`]), for handle
    /// fragments: in the exact and short prefix forms, and the identities' in the
    /// trigram form (the emails' trigrams are [`Self::email`]'s). The exact form also
    /// holds `+` and the international digits of every phone, for a phone typed whole.
    pub handles: TextGroup,
    pub keys: Keys,
    pub keywords: Keywords,
    pub dates: Dates,
    /// Custom values by key, typed by their definition (numbers, dates, booleans,
    /// strings), indexed and fast for filters and sorts.
    pub custom: Field,
    pub favorite: Field,
}

pub const ID: &str = "id";
pub const CREATED_AT: &str = "created_at";

/// A field of one index form, cut by the tokenizer `tokenizer` (see [`analysis`]).
///
/// No field keeps fieldnorms (the length of each value, a byte per document and
/// field): ranking is by match level, never BM25, and they were 5% of the index.
fn form(tokenizer: &str, record: IndexRecordOption) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(record)
            .set_fieldnorms(false),
    )
}

/// A keyword column: no terms (they are in [`Keys`]).
fn column_options() -> TextOptions {
    TextOptions::default().set_fast("raw")
}

impl Fields {
    pub fn build() -> Fields {
        let mut builder = Schema::builder();
        let words =
            builder.add_text_field("words", form(analysis::WORDS, IndexRecordOption::Basic));
        let short_prefixes = builder.add_text_field(
            "short_prefixes",
            form(analysis::SHORT_PREFIXES, IndexRecordOption::Basic),
        );
        let mut group = |name: &str, tag: char, group: Group| TextGroup {
            words: FormField { field: words, tag },
            short_prefixes: FormField {
                field: short_prefixes,
                tag,
            },
            trigrams: FormField {
                field: builder.add_text_field(
                    &format!("{name}_trigrams"),
                    form(analysis::TRIGRAMS, IndexRecordOption::WithFreqsAndPositions),
                ),
                tag,
            },
            handle_trigrams: tag == analysis::EMAIL_TAG,
            group,
        };
        let name = group("name", analysis::NAME_TAG, Group::Name);
        // Email words in the exact and prefix forms; the trigrams are of the whole
        // emails, which fragments search too.
        let email = group("email", analysis::EMAIL_TAG, Group::Email);
        let phone = group("phone", analysis::PHONE_TAG, Group::Phone);
        let other = group("other", analysis::OTHER_TAG, Group::Other);
        // Whole emails and identities in the exact and prefix forms; the trigrams of
        // the identities only (the emails' are in `email`).
        let handles = group("handle", analysis::HANDLE_TAG, Group::Email);
        let keys = Keys {
            field: builder.add_text_field("keys", form("raw", IndexRecordOption::Basic)),
        };
        // Hits are read from the id column (nothing is stored in tantivy's doc store).
        let id = builder.add_text_field(ID, column_options());
        let status = builder.add_text_field("status", column_options());
        let name_sort = builder.add_text_field("name_sort", column_options());
        let mut keyword = |name: &str| builder.add_text_field(name, column_options());
        let keywords = Keywords {
            tags: keyword("tags"),
            country: keyword("country"),
            language: keyword("language"),
            channel: keyword("channel"),
            assignee: keyword("assignee"),
            company_id: keyword("company_id"),
            external_id: keyword("external_id"),
            last_interacted_channel: keyword("last_interacted_channel"),
            pending_actions: keyword("pending_actions"),
        };
        let date_options = DateOptions::default()
            .set_fast()
            .set_precision(DateTimePrecision::Milliseconds);
        let mut date = |name: &str| builder.add_date_field(name, date_options.clone());
        let dates = Dates {
            created_at: date(CREATED_AT),
            updated_at: date("updated_at"),
            last_interaction_at: date("last_interaction_at"),
            last_incoming_message_at: date("last_incoming_message_at"),
            conversation_opened_at: date("conversation_opened_at"),
        };
        let custom_options = JsonObjectOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("raw")
                    .set_index_option(IndexRecordOption::Basic)
                    .set_fieldnorms(false),
            )
            .set_fast("raw");
        let custom = builder.add_json_field("custom", custom_options);
        let favorite = builder.add_bool_field("favorite", NumericOptions::default().set_fast());
        Fields {
            custom,
            favorite,
            schema: builder.build(),
            id,
            status,
            name_sort,
            name,
            email,
            phone,
            other,
            handles,
            keys,
            keywords,
            dates,
        }
    }

    pub fn text_groups(&self) -> [TextGroup; 4] {
        [self.name, self.email, self.phone, self.other]
    }
}
