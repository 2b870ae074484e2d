//! Writing contacts as rows in chunks, so an export of any size runs in constant
//! memory. Shared by `GET /v1/contacts/export` and `contactd export --data-dir`.
//!
//! An export of every contact (no search text, filter or sort) streams the store's
//! records from one read snapshot in key order: no search per page and no lookup per
//! contact. An export of matches pages through the search by keyset cursor.

use super::Format;
use super::rows::{ExportRow, csv_header, csv_record};
use crate::index::{SearchIndex, SearchRequest};
use crate::model::{Contact, ContactContext, CustomFieldDefs};
use crate::store::{Store, StoreError};

/// Contacts read from the store per page of a search export.
pub const EXPORT_PAGE: usize = 1000;
/// Bytes of rows handed on at once.
const CHUNK_BYTES: usize = 256 * 1024;

/// A checked export: what to write and how to write each row.
pub struct Export {
    /// The search to page through (it must sort by a keyset: the cursor moves `after`
    /// forward page by page); `None` exports every active contact in key order.
    pub request: Option<SearchRequest>,
    pub format: Format,
    /// Projected fields (`None`: all).
    pub fields: Option<Vec<String>>,
    pub defs: CustomFieldDefs,
    /// Only contacts this accepts are written (a scoped key's filter, checked on the
    /// store's record as well as in the search).
    pub admits: Option<Admits>,
}

pub type Admits = Box<dyn Fn(&Contact, &ContactContext) -> bool + Send>;

/// Why a snapshot scan stopped early.
enum Halt {
    /// The reader went away.
    Stopped,
    Failed(String),
}

impl From<StoreError> for Halt {
    fn from(error: StoreError) -> Self {
        Halt::Failed(error.to_string())
    }
}

/// Encodes rows into a chunk of bytes.
struct Rows {
    format: Format,
    fields: Option<Vec<String>>,
    header: Vec<String>,
    chunk: Vec<u8>,
    written: u64,
}

impl Rows {
    fn new(export: &Export) -> Result<Rows, String> {
        let header = csv_header(&export.defs, export.fields.as_deref());
        let mut rows = Rows {
            format: export.format,
            fields: export.fields.clone(),
            header,
            chunk: Vec::with_capacity(CHUNK_BYTES + 4096),
            written: 0,
        };
        if rows.format == Format::Csv {
            let header = rows.header.clone();
            rows.csv_line(header)?;
        }
        Ok(rows)
    }

    fn push(&mut self, contact: &Contact) -> Result<(), String> {
        match self.format {
            Format::Ndjson => {
                let row = ExportRow {
                    contact,
                    fields: self.fields.as_deref(),
                };
                serde_json::to_writer(&mut self.chunk, &row).map_err(|e| e.to_string())?;
                self.chunk.push(b'\n');
            }
            Format::Csv => {
                let record = csv_record(contact, &self.header);
                self.csv_line(record)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    fn csv_line(&mut self, record: Vec<String>) -> Result<(), String> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut self.chunk);
        writer.write_record(record).map_err(|e| e.to_string())?;
        writer.flush().map_err(|e| e.to_string())
    }

    fn full(&self) -> bool {
        self.chunk.len() >= CHUNK_BYTES
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 4096))
    }
}

impl Export {
    /// Writes every row, handing chunks of encoded rows to `emit`, which returns
    /// false to stop early (the reader went away). Returns the rows written.
    pub fn run(
        mut self,
        index: &SearchIndex,
        store: &Store,
        mut emit: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<u64, String> {
        let mut rows = Rows::new(&self)?;
        let Some(mut request) = self.request.take() else {
            let admits = self.admits.take();
            let scanned = store.scan(|contact, context| {
                if !contact.is_active() || admits.as_ref().is_some_and(|a| !a(&contact, context)) {
                    return Ok(());
                }
                rows.push(&contact).map_err(Halt::Failed)?;
                if rows.full() && !emit(rows.take()) {
                    return Err(Halt::Stopped);
                }
                Ok(())
            });
            return match scanned {
                Err(Halt::Failed(error)) => Err(error),
                Err(Halt::Stopped) => Ok(rows.written),
                Ok(_) => {
                    if !rows.chunk.is_empty() {
                        emit(rows.take());
                    }
                    Ok(rows.written)
                }
            };
        };
        // A filter naming `status` may export deleted or merged contacts; otherwise
        // only active ones (a contact deleted since the index page was read is skipped).
        let any_status = request.filter.as_ref().is_some_and(|f| f.names_status);
        loop {
            let page = index.search(&request).map_err(|e| e.to_string())?;
            let contacts = store.get_many(&page.ids).map_err(|e| e.to_string())?;
            let context = match &self.admits {
                Some(_) => Some(
                    store
                        .context_of(&contacts.iter().collect::<Vec<_>>())
                        .map_err(|e| e.to_string())?,
                ),
                None => None,
            };
            let shown = |c: &&Contact| {
                (any_status || c.is_active())
                    && match (&self.admits, &context) {
                        (Some(admits), Some(context)) => admits(c, context),
                        _ => true,
                    }
            };
            for contact in contacts.iter().filter(shown) {
                rows.push(contact)?;
            }
            let last = page.next.is_none();
            if (last || rows.full()) && !rows.chunk.is_empty() && !emit(rows.take()) {
                return Ok(rows.written);
            }
            match page.next {
                Some(after) => request.after = Some(after),
                None => return Ok(rows.written),
            }
        }
    }
}
