//! contactd: a contact search sidecar.
//!
//! Data flows one way: **store → sync → index**, with the **api** in front.
//!
//! - [`store`] keeps the canonical contacts in redb. Every write appends to a change
//!   log in the same transaction, and one writer thread group-commits concurrent writes.
//! - [`sync`] is the only module that sees both sides: a worker tails the change log and
//!   mirrors each change into tantivy, storing the last applied sequence in the index
//!   commit so a restart resumes exactly; it rebuilds the index from the store whenever
//!   the index is missing, unreadable or of another schema version.
//! - [`index`] owns tantivy: the schema, the accent/case folding, the tokenizers of the
//!   exact/prefix/substring forms of every searchable word, and query execution.
//! - [`api`] is axum only: routes, extractors, the key check, the error-code table
//!   and the error shape of the HTTP contract, `/metrics`.
//!
//! [`model`] holds the validated contact types every layer shares. [`auth`] holds keys,
//! roles and the route → role table; [`live`] the configuration a running server
//! reloads when config.toml is saved. [`jobs`] holds the records of background jobs
//! (kept in the store, advanced in the same transaction as their chunks);
//! [`transfer`] the import, export and migration formats; [`drop_folder`] the import
//! folder. [`background`] runs background work below the requests' priority.
//! [`config`], [`app`] and [`cli`] wire the process together.

pub mod api;
pub mod app;
pub mod auth;
pub mod background;
pub mod bench;
mod boundary;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod drop_folder;
pub mod generate;
pub mod index;
pub mod jobs;
pub mod live;
pub mod model;
pub mod query;
pub mod signal;
pub mod store;
pub mod sync;
pub mod transfer;
