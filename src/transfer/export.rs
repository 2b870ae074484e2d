//! Writing every match of a search as rows, one page at a time, so an export of any
//! size runs in constant memory. Shared by `GET /v1/contacts/export` and
//! `contactd export --data-dir`.

use super::Format;
use super::rows::{csv_header, csv_record, export_row};
use crate::index::{SearchIndex, SearchRequest};
use crate::model::CustomFieldDefs;
use crate::store::Store;

/// Contacts read from the store per page.
pub const EXPORT_PAGE: usize = 1000;

/// A checked export: the search to page through and how to write each row.
pub struct Export {
    /// Must sort by a keyset (the cursor moves `after` forward page by page).
    pub request: SearchRequest,
    pub format: Format,
    /// Projected fields (`None`: all).
    pub fields: Option<Vec<String>>,
    pub defs: CustomFieldDefs,
}

impl Export {
    /// Pages through every match and hands each page's encoded rows to `emit`, which
    /// returns false to stop early (the reader went away). Returns the rows written.
    pub fn run(
        mut self,
        index: &SearchIndex,
        store: &Store,
        mut emit: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<u64, String> {
        let header = csv_header(&self.defs, self.fields.as_deref());
        // A filter naming `status` may export deleted or merged contacts; otherwise
        // only active ones (a contact deleted since the index page was read is skipped).
        let any_status = self.request.filter.as_ref().is_some_and(|f| f.names_status);
        let mut rows = 0u64;
        let mut first = true;
        loop {
            let page = index.search(&self.request).map_err(|e| e.to_string())?;
            let contacts = store.get_many(&page.ids).map_err(|e| e.to_string())?;
            let mut chunk = Vec::new();
            let wanted = contacts.iter().filter(|c| any_status || c.is_active());
            match self.format {
                Format::Ndjson => {
                    for contact in wanted {
                        let row = export_row(contact, self.fields.as_deref());
                        serde_json::to_writer(&mut chunk, &row).expect("rows serialize");
                        chunk.push(b'\n');
                        rows += 1;
                    }
                }
                Format::Csv => {
                    let mut writer = csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(&mut chunk);
                    let write = |writer: &mut csv::Writer<_>, record| {
                        writer
                            .write_record(record)
                            .map_err(|e: csv::Error| e.to_string())
                    };
                    if first {
                        write(&mut writer, header.clone())?;
                    }
                    for contact in wanted {
                        write(&mut writer, csv_record(contact, &header))?;
                        rows += 1;
                    }
                    writer.flush().map_err(|e| e.to_string())?;
                }
            }
            first = false;
            if !chunk.is_empty() && !emit(chunk) {
                return Ok(rows);
            }
            match page.next {
                Some(after) => self.request.after = Some(after),
                None => return Ok(rows),
            }
        }
    }
}
