//! Integration tests: real server on port 0, real redb, real tantivy, real HTTP.
//! Set TEST_LOG=1 to see the server's logs.

mod common;

mod crud;
mod model_check;
mod ops;
mod recovery;
mod search;
mod validation;
