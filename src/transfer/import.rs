//! Applying an import file: every row validated like a create, good rows stored, bad
//! rows reported with line and field. Rows go to the store's writer in batches, a few
//! in flight while the next are parsed, so they are group-committed; each row applies
//! whole or not at all.

use std::io::BufRead;
use std::path::Path;

use serde_json::json;

use super::jobs::{JobState, Jobs, MAX_ERRORS};
use super::rows::{check_header, csv_row_to_input};
use crate::model::{ContactInput, FieldError};
use crate::store::{Command, ImportMode, MatchBy, Store, StoreError, WriteAck, Written};

/// Rows sent to the writer as one command. Queued batches share one transaction
/// (group commit), so a load makes one fsync per several thousand rows.
const BATCH: usize = 2_048;
/// Batches queued on the writer before the oldest is awaited.
const IN_FLIGHT: usize = 4;

/// A batch queued on the writer: its rows refused before the writer, and the
/// writer's answers to the others, by line.
struct SentBatch<'a> {
    errors: Vec<(u64, Vec<FieldError>)>,
    lines: Vec<u64>,
    outcome: std::pin::Pin<Box<dyn Future<Output = Result<WriteAck, StoreError>> + 'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    pub mode: ImportMode,
    pub match_by: MatchBy,
    pub dry_run: bool,
}

type Row = (u64, Result<ContactInput, Vec<FieldError>>);

/// Runs an import job to its end (blocking: call from a blocking thread).
pub fn run_import(
    store: &Store,
    jobs: &Jobs,
    job_id: &str,
    path: &Path,
    format: Format,
    options: ImportOptions,
    runtime: &tokio::runtime::Handle,
) {
    jobs.update(job_id, |job| {
        job.state = JobState::Running;
        job.started_at = Some(chrono::Utc::now());
    });
    let run = Run {
        store,
        jobs,
        job_id,
        options,
        runtime,
    };
    let outcome = {
        let _bulk = (!options.dry_run).then(|| store.bulk_load());
        run.import_file(path, format)
    };
    jobs.update(job_id, |job| {
        job.finished_at = Some(chrono::Utc::now());
        match outcome {
            Ok(()) => job.state = JobState::Done,
            Err(message) => {
                job.state = JobState::Failed;
                job.errors
                    .push(json!({"line": null, "field": null, "message": message}));
            }
        }
    });
}

/// What every step of one import job needs.
struct Run<'a> {
    store: &'a Store,
    jobs: &'a Jobs,
    job_id: &'a str,
    options: ImportOptions,
    runtime: &'a tokio::runtime::Handle,
}

impl<'a> Run<'a> {
    fn import_file(&self, path: &Path, format: Format) -> Result<(), String> {
        let (jobs, job_id) = (self.jobs, self.job_id);
        let defs = self.store.custom_field_defs().map_err(|e| e.to_string())?;
        let open =
            || std::fs::File::open(path).map_err(|e| format!("cannot read the uploaded file: {e}"));
        let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
        // Batches stay in flight while the next ones are parsed: the writer commits
        // (and fsyncs) one while this thread reads and parses the following rows.
        let in_flight = std::cell::RefCell::new(std::collections::VecDeque::new());
        let flush = |batch: &mut Vec<Row>| {
            let mut in_flight = in_flight.borrow_mut();
            in_flight.push_back(self.send(std::mem::take(batch)));
            if in_flight.len() > IN_FLIGHT {
                let oldest = in_flight.pop_front().expect("not empty");
                self.finish(oldest)?;
            }
            Ok::<(), String>(())
        };
        match format {
            Format::Ndjson => {
                let count = std::io::BufReader::new(open()?)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .count();
                jobs.update(job_id, |job| job.total = Some(count as u64));
                for (index, line) in std::io::BufReader::new(open()?).lines().enumerate() {
                    let line = line.map_err(|e| format!("line {}: {e}", index + 1))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let row = serde_json::from_str::<ContactInput>(&line).map_err(|e| {
                        vec![FieldError {
                            field: "row".into(),
                            message: e.to_string(),
                        }]
                    });
                    batch.push(((index + 1) as u64, row));
                    if batch.len() == BATCH {
                        flush(&mut batch)?;
                    }
                }
            }
            Format::Csv => {
                let count = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(std::io::BufReader::new(open()?))
                    .records()
                    .count();
                jobs.update(job_id, |job| job.total = Some(count as u64));
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(std::io::BufReader::new(open()?));
                let header: Vec<String> = reader
                    .headers()
                    .map_err(|e| format!("cannot read the CSV header: {e}"))?
                    .iter()
                    .map(|h| h.trim().to_string())
                    .collect();
                check_header(&header, &defs)?;
                for record in reader.records() {
                    let record = record.map_err(|e| format!("malformed CSV: {e}"))?;
                    let line = record.position().map_or(0, |p| p.line());
                    batch.push((line, csv_row_to_input(&header, &record, &defs)));
                    if batch.len() == BATCH {
                        flush(&mut batch)?;
                    }
                }
            }
        }
        flush(&mut batch)?;
        for sent in in_flight.take() {
            self.finish(sent)?;
        }
        Ok(())
    }

    /// Queues a batch of rows on the writer as one command.
    fn send(&self, batch: Vec<Row>) -> SentBatch<'a> {
        let mut errors: Vec<(u64, Vec<FieldError>)> = Vec::new();
        let mut lines = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        for (line, row) in batch {
            match row {
                Ok(input) => {
                    lines.push(line);
                    rows.push(input);
                }
                Err(row_errors) => errors.push((line, row_errors)),
            }
        }
        let options = self.options;
        let store = self.store;
        SentBatch {
            errors,
            lines,
            outcome: Box::pin(store.write_when_room(Command::ImportBatch {
                rows,
                mode: options.mode,
                match_by: options.match_by,
                dry_run: options.dry_run,
            })),
        }
    }

    /// Waits for a sent batch and records what each row did.
    fn finish(&self, sent: SentBatch) -> Result<(), String> {
        let SentBatch {
            mut errors,
            lines,
            outcome,
        } = sent;
        let outcomes = match self.runtime.block_on(outcome) {
            Ok(WriteAck {
                written: Written::Imported(outcomes),
                ..
            }) => outcomes,
            Ok(other) => {
                return Err(format!("the store answered an import batch with {other:?}"));
            }
            Err(error) => return Err(format!("storage failed: {error}")),
        };
        let (mut created, mut updated) = (0, 0);
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            match outcome {
                Ok(row) if row.created => created += 1,
                Ok(_) => updated += 1,
                Err(error) => errors.push((line, row_errors(error))),
            }
        }
        metrics::counter!("contactd_import_rows_total", "outcome" => "created").increment(created);
        metrics::counter!("contactd_import_rows_total", "outcome" => "updated").increment(updated);
        metrics::counter!("contactd_import_rows_total", "outcome" => "failed")
            .increment(errors.len() as u64);
        self.jobs.update(self.job_id, |job| {
            job.created += created;
            job.updated += updated;
            job.failed += errors.len() as u64;
            job.processed += created + updated + errors.len() as u64;
            errors.sort_by_key(|(line, _)| *line);
            for (line, field_errors) in errors {
                for error in field_errors {
                    if job.errors.len() < MAX_ERRORS {
                        job.errors.push(
                            json!({"line": line, "field": error.field, "message": error.message}),
                        );
                    }
                }
            }
        });
        Ok(())
    }
}

/// A refused row as field errors.
fn row_errors(error: StoreError) -> Vec<FieldError> {
    let field = |field: &str, message: String| {
        vec![FieldError {
            field: field.into(),
            message,
        }]
    };
    match error {
        StoreError::Validation(validation) => validation.details,
        StoreError::IdentityTaken(taken) => taken
            .into_iter()
            .map(|(field, holder)| FieldError {
                field,
                message: format!("already belongs to contact {holder}"),
            })
            .collect(),
        StoreError::ExternalIdTaken(holder) => field(
            "external_id",
            format!("already belongs to contact {holder}"),
        ),
        StoreError::NameTaken(holder) => field(
            "name",
            format!("an active contact with this name exists: {holder}"),
        ),
        other => field("row", other.to_string()),
    }
}
