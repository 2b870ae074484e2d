//! Facet counts: how many matches have each value of some keyword fields, over the
//! whole filtered result (not only the page).

use std::collections::{BTreeMap, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::model::{CustomFieldDefs, FieldType};

/// Built-in facetable fields (their index column has the same name).
pub const FACET_FIELDS: [&str; 6] = [
    "tags",
    "country",
    "language",
    "channel",
    "assignee",
    "last_interacted_channel",
];

/// Checks a `facets` list: built-ins and `custom.<dropdown key>`; returns the columns.
pub fn parse_facets(text: &str, defs: &CustomFieldDefs) -> Result<Vec<String>, String> {
    let mut columns = Vec::new();
    for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let dropdown = name
            .strip_prefix("custom.")
            .and_then(|key| defs.get(key))
            .is_some_and(|d| d.field_type == FieldType::Dropdown);
        if !FACET_FIELDS.contains(&name) && !dropdown {
            return Err(format!(
                "cannot count facets of '{name}': use {}, or custom.<key> of a dropdown field",
                FACET_FIELDS.join(", ")
            ));
        }
        if !columns.iter().any(|c| c == name) {
            columns.push(name.to_string());
        }
    }
    Ok(columns)
}

pub type FacetCounts = BTreeMap<String, BTreeMap<String, u64>>;

pub struct Facets {
    pub columns: Vec<String>,
}

pub struct FacetsSegment {
    columns: Vec<(String, Option<StrColumn>)>,
    counts: Vec<HashMap<u64, u64>>,
}

impl Collector for Facets {
    type Fruit = FacetCounts;
    type Child = FacetsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<FacetsSegment> {
        let fast = segment.fast_fields();
        let columns = self
            .columns
            .iter()
            .map(|name| Ok((name.clone(), fast.str(name)?)))
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(FacetsSegment {
            counts: vec![HashMap::new(); columns.len()],
            columns,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut merged: FacetCounts = self
            .columns
            .iter()
            .map(|c| (c.clone(), BTreeMap::new()))
            .collect();
        for fruit in fruits {
            for (column, counts) in fruit {
                let target = merged.entry(column).or_default();
                for (value, count) in counts {
                    *target.entry(value).or_default() += count;
                }
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for FacetsSegment {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        for ((_, column), counts) in self.columns.iter().zip(&mut self.counts) {
            if let Some(column) = column {
                for ord in column.term_ords(doc) {
                    *counts.entry(ord).or_default() += 1;
                }
            }
        }
    }

    fn harvest(self) -> FacetCounts {
        let mut fruit = FacetCounts::new();
        for ((name, column), counts) in self.columns.into_iter().zip(self.counts) {
            let mut values = BTreeMap::new();
            if let Some(column) = column {
                let mut text = String::new();
                for (ord, count) in counts {
                    text.clear();
                    if column.ord_to_str(ord, &mut text).unwrap_or(false) {
                        values.insert(text.clone(), count);
                    }
                }
            }
            fruit.insert(name, values);
        }
        fruit
    }
}
