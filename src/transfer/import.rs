//! Applying an import file: every row validated like a create, good rows stored, bad
//! rows reported with line and field. Rows go to the store's writer in batches, a few
//! in flight while the next are parsed, so they are group-committed; each row applies
//! whole or not at all.

use std::io::{BufRead, Seek, SeekFrom};
use std::path::Path;

use serde_json::json;

use super::rows::{check_header, csv_row_to_input};
use crate::jobs::{
    JobChange, JobCursor, JobDelta, JobHandle, JobState, JobStep, MAX_ERRORS, RunEnd,
};
use crate::model::{ContactInput, FieldError};
use crate::store::{Command, ImportMode, MatchBy, Store, StoreError, WriteAck, Written};

/// Rows sent to the writer as one command. Queued batches share one transaction
/// (group commit), so a load makes one fsync per several thousand rows.
const BATCH: usize = 2_048;
/// Batches queued on the writer before the oldest is awaited.
const IN_FLIGHT: usize = 4;

/// A batch queued on the writer: its rows' lines and the writer's answer (the job's
/// record advances in the batch's own transaction, see [`crate::jobs`]).
type SentBatch<'a> = std::pin::Pin<Box<dyn Future<Output = Result<WriteAck, StoreError>> + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// Runs an import job from `from` to its end (blocking: call from a blocking
/// thread). Rows before `from` were applied by an earlier run.
pub fn run_import(
    store: &Store,
    job: &JobHandle,
    path: &Path,
    format: Format,
    options: ImportOptions,
    from: JobCursor,
    runtime: &tokio::runtime::Handle,
) -> RunEnd {
    let run = Run {
        store,
        job,
        options,
        runtime,
    };
    let outcome = {
        let _bulk = (!options.dry_run).then(|| store.bulk_load());
        run.import_file(path, format, from)
    };
    let change = match outcome {
        Ok(()) if job.cancelled() => JobChange::Finish {
            state: JobState::Cancelled,
            error: None,
        },
        Ok(()) => JobChange::done(),
        Err(Stop::StoreClosed) => return RunEnd::Interrupted,
        Err(Stop::Failed(message)) => JobChange::failed(message),
    };
    match run.change(change) {
        Ok(()) => RunEnd::Finished,
        Err(_) => RunEnd::Interrupted,
    }
}

/// Why a run stopped early.
enum Stop {
    StoreClosed,
    Failed(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Failed(message)
    }
}

/// What every step of one import job needs.
struct Run<'a> {
    store: &'a Store,
    job: &'a JobHandle,
    options: ImportOptions,
    runtime: &'a tokio::runtime::Handle,
}

impl<'a> Run<'a> {
    fn change(&self, change: JobChange) -> Result<(), Stop> {
        match self
            .runtime
            .block_on(self.store.change_job(&self.job.id, change))
        {
            Ok(_) => Ok(()),
            Err(StoreError::Closed) => Err(Stop::StoreClosed),
            Err(error) => Err(Stop::Failed(format!("storage failed: {error}"))),
        }
    }

    fn import_file(&self, path: &Path, format: Format, from: JobCursor) -> Result<(), Stop> {
        let defs = self.store.custom_field_defs().map_err(|e| e.to_string())?;
        let open =
            || std::fs::File::open(path).map_err(|e| format!("cannot read the uploaded file: {e}"));
        let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
        // Batches stay in flight while the next ones are parsed: the writer commits
        // (and fsyncs) one while this thread reads and parses the following rows.
        let in_flight = std::cell::RefCell::new(std::collections::VecDeque::new());
        let flush = |batch: &mut Vec<Row>, after: JobCursor| {
            let mut in_flight = in_flight.borrow_mut();
            in_flight.push_back(self.send(std::mem::take(batch), after));
            if in_flight.len() > IN_FLIGHT {
                let oldest = in_flight.pop_front().expect("not empty");
                self.finish(oldest)?;
            }
            Ok::<(), Stop>(())
        };
        match format {
            Format::Ndjson => {
                let count = std::io::BufReader::new(open()?)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .count();
                self.change(JobChange::Total(count as u64))?;
                let mut file = open()?;
                file.seek(SeekFrom::Start(from.offset))
                    .map_err(|e| format!("cannot read the uploaded file: {e}"))?;
                let mut reader = std::io::BufReader::new(file);
                let mut cursor = from;
                let mut line = String::new();
                loop {
                    if self.job.cancelled() {
                        break;
                    }
                    line.clear();
                    let read = reader
                        .read_line(&mut line)
                        .map_err(|e| format!("line {}: {e}", cursor.line + 1))?;
                    if read == 0 {
                        break;
                    }
                    cursor.offset += read as u64;
                    cursor.line += 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let row = serde_json::from_str::<ContactInput>(&line).map_err(|e| {
                        vec![FieldError {
                            field: "row".into(),
                            message: e.to_string(),
                        }]
                    });
                    batch.push((cursor.line, row));
                    if batch.len() == BATCH {
                        flush(&mut batch, cursor)?;
                    }
                }
                flush(&mut batch, cursor)?;
            }
            Format::Csv => {
                let count = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(std::io::BufReader::new(open()?))
                    .records()
                    .count();
                self.change(JobChange::Total(count as u64))?;
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
                if from.offset > 0 {
                    let mut position = csv::Position::new();
                    position.set_byte(from.offset).set_line(from.line);
                    reader
                        .seek(position)
                        .map_err(|e| format!("cannot resume the CSV file: {e}"))?;
                }
                let mut record = csv::StringRecord::new();
                while !self.job.cancelled()
                    && reader
                        .read_record(&mut record)
                        .map_err(|e| format!("malformed CSV: {e}"))?
                {
                    let line = record.position().map_or(0, |p| p.line());
                    batch.push((line, csv_row_to_input(&header, &record, &defs)));
                    if batch.len() == BATCH {
                        flush(&mut batch, csv_cursor(reader.position()))?;
                    }
                }
                flush(&mut batch, csv_cursor(reader.position()))?;
            }
        }
        for sent in in_flight.take() {
            self.finish(sent)?;
        }
        Ok(())
    }

    /// Queues a batch of rows on the writer as one command, which advances the job
    /// to `after` in the same transaction.
    fn send(&self, batch: Vec<Row>, after: JobCursor) -> SentBatch<'a> {
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
        let step = JobStep {
            job_id: self.job.id.clone(),
            delta: Box::new(move |written| batch_delta(written, lines, errors, after)),
        };
        Box::pin(self.store.queue_background(Command::Step {
            step,
            command: Box::new(Command::ImportBatch {
                rows,
                mode: options.mode,
                match_by: options.match_by,
                dry_run: options.dry_run,
            }),
        }))
    }

    /// Waits for a sent batch.
    fn finish(&self, sent: SentBatch) -> Result<(), Stop> {
        match self.runtime.block_on(sent) {
            Ok(_) => Ok(()),
            Err(StoreError::Closed) => Err(Stop::StoreClosed),
            Err(error) => Err(Stop::Failed(format!("storage failed: {error}"))),
        }
    }
}

fn csv_cursor(position: &csv::Position) -> JobCursor {
    JobCursor {
        offset: position.byte(),
        line: position.line(),
    }
}

/// What a batch did to its job: rows refused before the writer (`errors`) and the
/// writer's outcome for the others, by line.
fn batch_delta(
    written: &Written,
    lines: Vec<u64>,
    mut errors: Vec<(u64, Vec<FieldError>)>,
    after: JobCursor,
) -> JobDelta {
    let (mut created, mut updated) = (0, 0);
    if let Written::Imported(outcomes) = written {
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            match outcome {
                Ok(row) if row.created => created += 1,
                Ok(_) => updated += 1,
                Err(error) => errors.push((line, row_errors(error))),
            }
        }
    }
    // Counted here, on the writer, once per committed batch: the batch and its job
    // step commit together or not at all.
    metrics::counter!("contactd_import_rows_total", "outcome" => "created").increment(created);
    metrics::counter!("contactd_import_rows_total", "outcome" => "updated").increment(updated);
    metrics::counter!("contactd_import_rows_total", "outcome" => "failed")
        .increment(errors.len() as u64);
    errors.sort_by_key(|(line, _)| *line);
    let failed = errors.len() as u64;
    let errors = errors
        .into_iter()
        .flat_map(|(line, field_errors)| {
            field_errors.into_iter().map(
                move |error| json!({"line": line, "field": error.field, "message": error.message}),
            )
        })
        .take(MAX_ERRORS)
        .collect();
    JobDelta {
        processed: created + updated + failed,
        created,
        updated,
        failed,
        errors,
        cursor: after,
        ..JobDelta::default()
    }
}

/// A refused row as field errors.
fn row_errors(error: &StoreError) -> Vec<FieldError> {
    let field = |field: &str, message: String| {
        vec![FieldError {
            field: field.into(),
            message,
        }]
    };
    match error {
        StoreError::Validation(validation) => validation.details.clone(),
        StoreError::IdentityTaken(taken) => taken
            .iter()
            .map(|(field, holder)| FieldError {
                field: field.clone(),
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
