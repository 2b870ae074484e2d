//! Lossless migration between servers: the dump of a whole store as NDJSON
//! ([`DumpLine`]s, header first) and its load into an empty store, in chunks of one
//! short transaction each.

use std::io::{BufRead, Write};

use serde::Serialize;

use crate::store::{Command, DUMP_FORMAT, DumpLine, Store, StoreError, Written};

/// Dump lines stored per writer command.
const LOAD_CHUNK: usize = 1_000;

/// Why a dump or a load stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The input is not a dump this build reads (with the line at fault).
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the dump: {0}")]
    Io(#[from] std::io::Error),
}

/// What a load stored, by kind.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct LoadSummary {
    pub custom_fields: u64,
    pub companies: u64,
    pub inboxes: u64,
    pub contacts: u64,
    pub merges: u64,
    /// The change-log sequence the dump held in its source.
    pub source_seq: u64,
}

/// Writes every record of one store snapshot to `out`, one JSON object per line;
/// returns the lines written.
pub fn write_dump(store: &Store, out: &mut impl Write) -> Result<u64, MigrateError> {
    let mut lines = 0;
    store.dump(|line| -> Result<(), MigrateError> {
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        lines += 1;
        Ok(())
    })?;
    Ok(lines)
}

/// Loads a dump into an empty store (blocking: call from a blocking thread).
pub fn load_dump(
    store: &Store,
    input: impl BufRead,
    runtime: &tokio::runtime::Handle,
) -> Result<LoadSummary, MigrateError> {
    // A load is a bulk load: the index commits less often and merges once at the
    // end, and the store file is packed after it (see `Store::bulk_load`).
    let _bulk = store.bulk_load();
    let mut summary = LoadSummary::default();
    let mut chunk = Vec::with_capacity(LOAD_CHUNK);
    let mut first = true;
    let send = |chunk: &mut Vec<DumpLine>, first: &mut bool| -> Result<(), MigrateError> {
        let lines = std::mem::take(chunk);
        let ack = runtime.block_on(store.write_when_room(Command::Load {
            lines,
            first: *first,
        }))?;
        *first = false;
        match ack.written {
            Written::Loaded(_) => Ok(()),
            other => Err(StoreError::Corrupt(format!("a load answered with {other:?}")).into()),
        }
    };
    let mut number = 0u64;
    for line in input.lines() {
        number += 1;
        let malformed = |message: String| MigrateError::Malformed {
            line: number,
            message,
        };
        let line = line.map_err(|e| malformed(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: DumpLine = serde_json::from_str(&line).map_err(|e| malformed(e.to_string()))?;
        match (&record, number) {
            (DumpLine::Header { format, seq, .. }, 1) => {
                if *format != DUMP_FORMAT {
                    return Err(malformed(format!(
                        "dump format {format}; this build reads format {DUMP_FORMAT}"
                    )));
                }
                summary.source_seq = *seq;
                continue;
            }
            (DumpLine::Header { .. }, _) => return Err(malformed("a second header".into())),
            (_, 1) => {
                return Err(malformed(
                    "not a dump: the first line must be its header (contactd export --all)".into(),
                ));
            }
            (DumpLine::CustomField { .. }, _) => summary.custom_fields += 1,
            (DumpLine::Company { .. }, _) => summary.companies += 1,
            (DumpLine::Inbox { .. }, _) => summary.inboxes += 1,
            (DumpLine::Contact { .. }, _) => summary.contacts += 1,
            (DumpLine::Merge { .. }, _) => summary.merges += 1,
        }
        chunk.push(record);
        if chunk.len() == LOAD_CHUNK {
            send(&mut chunk, &mut first)?;
        }
    }
    if number == 0 {
        return Err(MigrateError::Malformed {
            line: 1,
            message: "the dump is empty".into(),
        });
    }
    if !chunk.is_empty() || first {
        send(&mut chunk, &mut first)?;
    }
    Ok(summary)
}
