//! Sorting and keyset cursors.
//!
//! Every match gets a sort key (one part per sort field, read from fast fields, order
//! preserving) followed by its id. A page is the `limit` smallest keys strictly after
//! the cursor's key, so a cursor stays valid while writes happen and reaches the end of
//! any result set. Missing values sort last in both directions.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn, TermOrdHit};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::schema::{CREATED_AT, ID};
use crate::model::{CustomFieldDefs, FieldType};

#[derive(Debug, Clone, PartialEq)]
pub enum SortField {
    Relevance,
    /// Folded name.
    Name,
    /// A built-in date column.
    Date(&'static str),
    /// A custom number (`f64`) or date/datetime (date) column, by JSON path.
    CustomNumber(String),
    CustomDate(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    pub field: SortField,
    pub descending: bool,
}

const DATE_FIELDS: [&str; 5] = [
    CREATED_AT,
    "updated_at",
    "last_interaction_at",
    "last_incoming_message_at",
    "conversation_opened_at",
];

impl SortSpec {
    /// The default order: relevance for a text query, else newest first.
    pub fn default_for(has_text: bool) -> Vec<SortSpec> {
        let newest = SortSpec {
            field: SortField::Date(CREATED_AT),
            descending: true,
        };
        if has_text {
            vec![
                SortSpec {
                    field: SortField::Relevance,
                    descending: true,
                },
                newest,
            ]
        } else {
            vec![newest]
        }
    }
}

/// Parses `field:asc|desc,…`; the direction defaults to `asc`.
pub fn parse_sort(text: &str, defs: &CustomFieldDefs) -> Result<Vec<SortSpec>, String> {
    let mut specs = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, direction) = item.split_once(':').unwrap_or((item, "asc"));
        let descending = match direction.trim() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(format!(
                    "sort direction '{other}' in '{item}' must be asc or desc"
                ));
            }
        };
        let name = name.trim();
        let field = if name == "name" {
            SortField::Name
        } else if let Some(date) = DATE_FIELDS.iter().find(|d| **d == name) {
            SortField::Date(date)
        } else {
            let key = name.strip_prefix("custom.").unwrap_or(name);
            match defs.get(key).map(|d| d.field_type) {
                Some(FieldType::Number) => SortField::CustomNumber(format!("custom.{key}")),
                Some(FieldType::Date | FieldType::Datetime) => {
                    SortField::CustomDate(format!("custom.{key}"))
                }
                _ => {
                    return Err(format!(
                        "cannot sort by '{name}': sort by name, {}, or a number/date custom field",
                        DATE_FIELDS.join(", ")
                    ));
                }
            }
        };
        specs.push(SortSpec { field, descending });
    }
    if specs.is_empty() {
        return Err("sort is empty".into());
    }
    Ok(specs)
}

/// One part of a sort key; `None` is a missing value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyPart {
    Num(u64),
    Str(String),
}

pub type SortKey = Vec<Option<KeyPart>>;

/// The position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct After {
    pub key: SortKey,
    pub id: String,
}

fn encode_f64(value: f64) -> u64 {
    let bits = value.to_bits();
    if value.is_sign_negative() {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A relevance score as its sort key part.
pub fn encode_score(score: u32) -> u64 {
    encode_f64(f64::from(score as f32))
}

fn encode_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// Compares sort keys part by part in `specs` order; a missing value sorts last in
/// either direction.
fn compare_parts<T: Ord>(specs: &[SortSpec], a: &[Option<T>], b: &[Option<T>]) -> Ordering {
    for (spec, (x, y)) in specs.iter().zip(a.iter().zip(b)) {
        let ordering = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if spec.descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Collects the `limit` first matches after `after` in `specs` order. Ask for one more
/// than the page: whether it comes back says if there is a next page.
pub struct SortedPage {
    pub specs: Arc<Vec<SortSpec>>,
    pub after: Option<Arc<After>>,
    pub limit: usize,
}

/// A page: `(key, id)` best first.
pub struct PageFruit {
    pub hits: Vec<(SortKey, String)>,
}

enum Reader {
    Relevance,
    Date(Option<Column<tantivy::DateTime>>),
    Number(Option<Column<f64>>),
    Text(Option<StrColumn>),
}

/// A sort key inside one segment: numbers as encoded, text as its position in the
/// segment's term dictionary (ordinals sort like their text within a segment), and
/// last the id's position, which breaks ties as the global order does. Comparing
/// these needs no dictionary lookup; only the page's winners are turned back into
/// text at the end.
///
/// A term of ordinal `o` sits at `2o + 2`; a cursor's text that is not in this
/// segment sits at the odd position between its neighbours (`2r + 1`, with `r` the
/// ordinal of the next term), so comparisons with the cursor stay exact.
type LocalKey = Vec<Option<u64>>;

pub struct SortedPageSegment {
    specs: Arc<Vec<SortSpec>>,
    /// The cursor, mapped into this segment.
    after: Option<LocalKey>,
    limit: usize,
    readers: Vec<Reader>,
    ids: Option<StrColumn>,
    hits: Vec<(LocalKey, DocId)>,
    worst: Option<LocalKey>,
}

fn term_position(ord: u64) -> u64 {
    2 * ord + 2
}

/// Where `text` falls among a segment's terms (see [`LocalKey`]).
fn text_position(column: &StrColumn, text: &str) -> tantivy::Result<u64> {
    let terms = column.num_terms() as u64;
    Ok(match column.dictionary().term_ord_or_next(text)? {
        TermOrdHit::Exact(ord) => term_position(ord),
        TermOrdHit::Next(ord) => 2 * ord.min(terms) + 1,
    })
}

/// The cursor as a [`LocalKey`] of one segment.
fn local_after(
    readers: &[Reader],
    ids: Option<&StrColumn>,
    after: &After,
) -> tantivy::Result<LocalKey> {
    let mut key = Vec::with_capacity(readers.len() + 1);
    for (reader, part) in readers.iter().zip(&after.key) {
        key.push(match (reader, part) {
            (_, None) => None,
            (_, Some(KeyPart::Num(n))) => Some(*n),
            (Reader::Text(Some(column)), Some(KeyPart::Str(text))) => {
                Some(text_position(column, text)?)
            }
            // No text in this segment: its documents are all missing values, which
            // sort after any text whatever the cursor's value.
            (_, Some(KeyPart::Str(_))) => Some(0),
        });
    }
    key.push(Some(match ids {
        Some(ids) => text_position(ids, &after.id)?,
        None => 0,
    }));
    Ok(key)
}

fn compare_keys(specs: &[SortSpec], a: &SortKey, b: &SortKey) -> Ordering {
    compare_parts(specs, a, b)
}

fn compare_local(specs: &[SortSpec], a: &[Option<u64>], b: &[Option<u64>]) -> Ordering {
    compare_parts(specs, a, b).then_with(|| a.last().cmp(&b.last()))
}

impl Collector for SortedPage {
    type Fruit = PageFruit;
    type Child = SortedPageSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SortedPageSegment> {
        let (readers, ids) = column_readers(&self.specs, segment)?;
        let after = match &self.after {
            Some(after) => Some(local_after(&readers, ids.as_ref(), after)?),
            None => None,
        };
        Ok(SortedPageSegment {
            specs: self.specs.clone(),
            after,
            limit: self.limit,
            readers,
            ids,
            hits: Vec::new(),
            worst: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.specs.iter().any(|s| s.field == SortField::Relevance)
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut hits: Vec<(SortKey, String)> = fruits.into_iter().flat_map(|f| f.hits).collect();
        sort_hits(&self.specs, &mut hits);
        hits.truncate(self.limit);
        Ok(PageFruit { hits })
    }
}

/// The fast-field readers of `specs` in one segment, and its id column.
fn column_readers(
    specs: &[SortSpec],
    segment: &SegmentReader,
) -> tantivy::Result<(Vec<Reader>, Option<StrColumn>)> {
    let fast = segment.fast_fields();
    let readers = specs
        .iter()
        .map(|spec| {
            Ok(match &spec.field {
                SortField::Relevance => Reader::Relevance,
                SortField::Name => Reader::Text(fast.str("name_sort")?),
                SortField::Date(name) => Reader::Date(fast.column_opt(name)?),
                SortField::CustomDate(path) => Reader::Date(fast.column_opt(path)?),
                SortField::CustomNumber(path) => Reader::Number(fast.column_opt(path)?),
            })
        })
        .collect::<tantivy::Result<Vec<_>>>()?;
    Ok((readers, fast.str(ID)?))
}

/// One part of a [`LocalKey`].
fn part_value(reader: &Reader, doc: DocId, score: Score) -> Option<u64> {
    match reader {
        Reader::Relevance => Some(encode_f64(f64::from(score))),
        Reader::Date(column) => column
            .as_ref()
            .and_then(|c| c.first(doc))
            .map(|d| encode_i64(d.into_timestamp_micros())),
        Reader::Number(column) => column.as_ref().and_then(|c| c.first(doc)).map(encode_f64),
        Reader::Text(column) => column
            .as_ref()
            .and_then(|c| first_ord(c, doc))
            .map(term_position),
    }
}

/// The id part of a [`LocalKey`].
fn id_position(ids: Option<&StrColumn>, doc: DocId) -> u64 {
    ids.and_then(|ids| first_ord(ids, doc))
        .map_or(0, term_position)
}

/// Every document of a segment in the order of one sort key (ties by id), so a page
/// of a large result is the first matches met in this order instead of the best of
/// every match. Built once per segment ([`super::segment_cache`]).
pub struct SegmentOrder {
    spec: SortSpec,
    reader: Reader,
    ids: Option<StrColumn>,
    docs: Vec<DocId>,
}

impl SegmentOrder {
    /// Whether a sort key can have an order (relevance depends on the query).
    pub fn supports(spec: &SortSpec) -> bool {
        spec.field != SortField::Relevance
    }

    pub fn build(segment: &SegmentReader, spec: &SortSpec) -> tantivy::Result<SegmentOrder> {
        let specs = [spec.clone()];
        let (mut readers, ids) = column_readers(&specs, segment)?;
        let reader = readers.pop().expect("one reader per spec");
        let mut keyed: Vec<(Option<u64>, u64, DocId)> = (0..segment.max_doc())
            .map(|doc| {
                (
                    part_value(&reader, doc, 0.0),
                    id_position(ids.as_ref(), doc),
                    doc,
                )
            })
            .collect();
        keyed.sort_unstable_by(|a, b| {
            compare_parts(&specs, &[a.0], &[b.0]).then_with(|| a.1.cmp(&b.1))
        });
        Ok(SegmentOrder {
            spec: spec.clone(),
            reader,
            ids,
            docs: keyed.into_iter().map(|(_, _, doc)| doc).collect(),
        })
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.docs.len() * std::mem::size_of::<DocId>()
    }

    /// Where the documents strictly after `after` (this key's value, then the id's
    /// position, as in a [`LocalKey`]) start.
    fn start_after(&self, after: &[Option<u64>]) -> usize {
        let specs = std::slice::from_ref(&self.spec);
        self.docs.partition_point(|&doc| {
            let key = [
                part_value(&self.reader, doc, 0.0),
                Some(id_position(self.ids.as_ref(), doc)),
            ];
            compare_local(specs, &key, after) != Ordering::Greater
        })
    }
}

fn sort_hits(specs: &[SortSpec], hits: &mut [(SortKey, String)]) {
    hits.sort_by(|a, b| compare_keys(specs, &a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
}

fn first_ord(column: &StrColumn, doc: DocId) -> Option<u64> {
    column.term_ords(doc).next()
}

fn text_of(column: &StrColumn, ord: u64) -> Option<String> {
    let mut text = String::new();
    column.ord_to_str(ord, &mut text).ok()?;
    Some(text)
}

impl SortedPageSegment {
    fn local_key(&self, doc: DocId, score: Score) -> LocalKey {
        let mut key: LocalKey = self
            .readers
            .iter()
            .map(|reader| part_value(reader, doc, score))
            .collect();
        key.push(Some(id_position(self.ids.as_ref(), doc)));
        key
    }

    /// Collects, in `order`, the first documents `accept` takes that lie after the
    /// cursor, until the page is full. `order` sorts by the last of this page's sort
    /// keys, and every document it yields must tie on the keys before it (the caller
    /// feeds one relevance score at a time, `score`), so the first ones met are the
    /// best. `cursor_applies`: the documents tie with the cursor on those keys too, so
    /// the walk starts after it.
    /// Returns how many it took (at most `wanted`).
    pub fn collect_in_order(
        &mut self,
        order: &SegmentOrder,
        score: Score,
        cursor_applies: bool,
        wanted: usize,
        mut accept: impl FnMut(DocId) -> bool,
    ) -> usize {
        let start = match (&self.after, cursor_applies) {
            (Some(after), true) => order.start_after(&after[after.len() - 2..]),
            _ => 0,
        };
        let mut taken = 0;
        for &doc in &order.docs[start..] {
            if taken == wanted {
                break;
            }
            if accept(doc) && self.offer(doc, score) {
                taken += 1;
            }
        }
        taken
    }

    /// How many documents the page holds (one more than shown: see [`SortedPage`]).
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Ranks one match; false when it lies at or before the cursor.
    pub fn offer(&mut self, doc: DocId, score: Score) -> bool {
        let key = self.local_key(doc, score);
        if let Some(after) = &self.after
            && compare_local(&self.specs, &key, after) != Ordering::Greater
        {
            return false;
        }
        if let Some(worst) = &self.worst
            && compare_local(&self.specs, &key, worst) == Ordering::Greater
        {
            return true;
        }
        self.hits.push((key, doc));
        if self.hits.len() >= 2 * self.limit.max(1) {
            self.keep_best();
            self.worst = self.hits.last().map(|(k, _)| k.clone());
        }
        true
    }

    /// The relevance part of the cursor, when the first key is relevance.
    pub fn cursor_relevance(&self) -> Option<Option<u64>> {
        match (self.readers.first(), &self.after) {
            (Some(Reader::Relevance), Some(after)) => Some(after[0]),
            _ => None,
        }
    }

    /// A winner's key as the global order and the cursor know it.
    fn global(&self, key: &LocalKey, doc: DocId) -> (SortKey, String) {
        let parts = self
            .readers
            .iter()
            .zip(key)
            .map(|(reader, part)| match (reader, part) {
                (Reader::Text(Some(column)), Some(position)) => {
                    text_of(column, (position - 2) / 2).map(KeyPart::Str)
                }
                (_, part) => part.map(KeyPart::Num),
            })
            .collect();
        let id = self
            .ids
            .as_ref()
            .and_then(|ids| first_ord(ids, doc).and_then(|ord| text_of(ids, ord)))
            .unwrap_or_default();
        (parts, id)
    }

    fn keep_best(&mut self) {
        let specs = self.specs.clone();
        self.hits.sort_by(|a, b| compare_local(&specs, &a.0, &b.0));
        self.hits.truncate(self.limit);
    }
}

impl SegmentCollector for SortedPageSegment {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.offer(doc, score);
    }

    fn harvest(mut self) -> PageFruit {
        self.keep_best();
        let hits = self
            .hits
            .iter()
            .map(|(key, doc)| self.global(key, *doc))
            .collect();
        PageFruit { hits }
    }
}

/// An opaque cursor: the position plus a fingerprint of the order it belongs to.
pub fn encode_cursor(after: &After, order: &str) -> String {
    let json = serde_json::json!({"o": order, "k": after.key, "i": after.id}).to_string();
    json.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_cursor(cursor: &str, order: &str) -> Result<After, String> {
    let invalid = || "cursor is not valid (pass next_cursor back unchanged)".to_string();
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if value["o"] != order {
        return Err(
            "cursor belongs to another sort, q or filter: start again without a cursor".into(),
        );
    }
    Ok(After {
        key: serde_json::from_value(value["k"].clone()).map_err(|_| invalid())?,
        id: value["i"].as_str().ok_or_else(invalid)?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_preserve_order() {
        let values = [-1e9, -2.5, -0.0, 0.0, 1e-9, 3.0, 1e12];
        for pair in values.windows(2) {
            assert!(encode_f64(pair[0]) <= encode_f64(pair[1]), "{pair:?}");
        }
        assert!(encode_i64(-5) < encode_i64(0) && encode_i64(0) < encode_i64(7));
    }

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_order() {
        let after = After {
            key: vec![Some(KeyPart::Num(7)), None, Some(KeyPart::Str("x".into()))],
            id: "01J".into(),
        };
        let cursor = encode_cursor(&after, "name:asc");
        assert_eq!(decode_cursor(&cursor, "name:asc").unwrap(), after);
        assert!(decode_cursor(&cursor, "name:desc").is_err());
        assert!(decode_cursor("zz", "name:asc").is_err());
    }
}
