//! Import and export: the row formats (NDJSON and CSV), the import job that applies a
//! spooled file through the store's writer (as a [`crate::jobs`] job).
//!
//! A row is a contact's writable fields plus `created_at` (what [`Contact::to_input`]
//! gives), so an export imported into an empty server gives back the same contacts.
//! CSV headers are the field names, `custom.<key>` for custom fields; list cells use `;`
//! between items; an identity is `channel:value` or `channel:value|account`.
//!
//! [`Contact::to_input`]: crate::model::Contact::to_input

mod export;
mod import;
mod migrate;
mod rows;

pub use export::{Admits, EXPORT_PAGE, Export};
pub use import::{Format, ImportOptions, run_import};
pub use migrate::{LoadSummary, MigrateError, load_dump, write_dump};
pub use rows::{ExportRow, csv_header, csv_record, csv_row_to_input, export_row};
