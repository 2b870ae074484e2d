//! Integration tests: real server on port 0, real redb, real tantivy, real HTTP.
//! Set TEST_LOG=1 to see the server's logs.

mod common;

mod auth;
mod browser;
mod bulk;
mod catalog_tasks;
mod cli;
mod compaction;
mod companies;
mod crud;
mod custom_fields;
mod drop_folder;
mod duplicates;
mod events;
mod filter_check;
mod generated;
mod identity;
mod jobs;
mod limits;
mod live_config;
mod merge;
mod migration;
mod model_check;
mod openapi;
mod ops;
mod recovery;
mod scoped_keys;
mod search;
mod search_features;
mod transfer;
mod trash;
mod validation;
