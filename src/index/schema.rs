//! The tantivy schema. Bump [`SCHEMA_VERSION`] on any change: an index built with
//! another version is rebuilt from the store at start.

use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, JsonObjectOptions, NumericOptions,
    Schema, TextFieldIndexing, TextOptions,
};

use super::analysis;
use super::text_query::Group;

pub const SCHEMA_VERSION: u32 = 12;

/// A group of searchable text, indexed in the three forms of [`analysis`].
#[derive(Debug, Clone, Copy)]
pub struct TextGroup {
    pub words: Field,
    pub short_prefixes: Field,
    pub trigrams: Field,
    /// The trigram field holds whole handles ([`analysis::HANDLE_TRIGRAMS`]), so a
    /// word inside one starts either the handle (`^`) or an inner run
    /// ([`analysis::RUN_START`]).
    pub handle_trigrams: bool,
    /// Where its matches rank: name before email before phone before the rest.
    pub group: Group,
}

/// Keyword (exact, filterable, facetable) fields.
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
    pub keywords: Keywords,
    pub dates: Dates,
    /// Custom values by key, typed by their definition (numbers, dates, booleans,
    /// strings), indexed and fast for filters and sorts.
    pub custom: Field,
    /// `key` U+001F folded word, for `CONTAINS` on text-like custom fields.
    pub custom_words: Field,
    pub favorite: Field,
    /// The primary email (lower case) and phone (E.164, else digits), for `=`.
    /// Terms only: a fast column of every email (17.5 MiB at 1M) served `EXISTS`
    /// alone, which [`Self::present`] answers.
    pub email_keyword: Field,
    pub phone_keyword: Field,
    /// `email` and `phone` when the contact has a primary email or phone: `EXISTS`
    /// on them as one term.
    pub present: Field,
    /// An active contact's [`crate::model::duplicates::match_keys`].
    pub duplicate_keys: Field,
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

/// Exact terms only, for `=` and for looking values up: no column.
fn term_options() -> TextOptions {
    form("raw", IndexRecordOption::Basic)
}

/// An exact, filterable keyword with a fast column (for sorts and facets).
fn keyword_options() -> TextOptions {
    term_options().set_fast("raw")
}

impl Fields {
    pub fn build() -> Fields {
        let mut builder = Schema::builder();
        let mut group = |name: &str, group: Group, handle_trigrams: bool| TextGroup {
            words: builder.add_text_field(
                &format!("{name}_w"),
                form(analysis::WORDS, IndexRecordOption::Basic),
            ),
            short_prefixes: builder.add_text_field(
                &format!("{name}_p"),
                form(analysis::SHORT_PREFIXES, IndexRecordOption::Basic),
            ),
            trigrams: builder.add_text_field(
                &format!("{name}_t"),
                form(
                    match handle_trigrams {
                        true => analysis::HANDLE_TRIGRAMS,
                        false => analysis::TRIGRAMS,
                    },
                    IndexRecordOption::WithFreqsAndPositions,
                ),
            ),
            handle_trigrams,
            group,
        };
        let name = group("name", Group::Name, false);
        // Email words in the exact and prefix forms; the trigrams are of the whole
        // emails, which fragments search too.
        let email = group("email", Group::Email, true);
        let phone = group("phone", Group::Phone, false);
        let other = group("other", Group::Other, false);
        // Whole emails and identities in the exact and prefix forms; the trigrams of
        // the identities only (the emails' are in `email`).
        let handles = group("handle", Group::Email, false);
        // Hits are read from the fast column (nothing is stored in tantivy's doc store).
        let id = builder.add_text_field(ID, keyword_options());
        let status = builder.add_text_field("status", keyword_options());
        let name_sort = builder.add_text_field("name_sort", keyword_options());
        let mut keyword = |name: &str| builder.add_text_field(name, keyword_options());
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
        let custom_words = builder.add_text_field("custom_words", term_options());
        let favorite = builder.add_bool_field(
            "favorite",
            NumericOptions::default().set_indexed().set_fast(),
        );
        let email_keyword = builder.add_text_field("email_kw", term_options());
        let phone_keyword = builder.add_text_field("phone_kw", term_options());
        let present = builder.add_text_field("present", term_options());
        let duplicate_keys = builder.add_text_field("dup_keys", term_options());
        Fields {
            duplicate_keys,
            custom,
            custom_words,
            favorite,
            email_keyword,
            phone_keyword,
            present,
            schema: builder.build(),
            id,
            status,
            name_sort,
            name,
            email,
            phone,
            other,
            handles,
            keywords,
            dates,
        }
    }

    pub fn text_groups(&self) -> [TextGroup; 4] {
        [self.name, self.email, self.phone, self.other]
    }
}
