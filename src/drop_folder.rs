//! The import drop folder (`jobs.drop_dir`): a producer writes `name.tmp`, then
//! renames it to `name.csv` or `name.ndjson`; each such file becomes an import job
//! (upsert by `external_id`), then moves to `done/` (the job ran to its end, row
//! errors included) or `failed/` (the job failed or was cancelled), beside
//! `name.report.json`: the job's status with its row errors.
//!
//! Invariants:
//! - A file is claimed by renaming it into `processing/` as `<job id>--<name>` before
//!   its job is recorded. The rename is atomic, so no two scans claim one file.
//! - Rows are applied only under a recorded job, so a claimed file whose job has no
//!   record was never imported: it gets its job. A claimed file whose job has ended
//!   is filed away; an unfinished one is resumed with the other jobs at start. So a
//!   file is imported once, whatever crashes in between.
//! - The folder is scanned at start, on every change notify reports, and every
//!   minute (inotify can drop events).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::api::AppState;
use crate::jobs::{ImportSource, JobPlan, JobRecord};
use crate::store::{ImportMode, MatchBy};
use crate::transfer::Format;

const PROCESSING: &str = "processing";
const DONE: &str = "done";
const FAILED: &str = "failed";
/// Separates the job id from the original name of a claimed file.
const CLAIM_SEPARATOR: &str = "--";

/// Watches `dir` and imports what lands there until `stop` turns true; the returned
/// watcher must be kept alive as long, and the task awaited before the store closes.
pub fn watch(
    state: AppState,
    dir: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(notify::RecommendedWatcher, tokio::task::JoinHandle<()>)> {
    for sub in [PROCESSING, DONE, FAILED] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let changed = Arc::new(tokio::sync::Notify::new());
    let mut watcher = {
        let changed = changed.clone();
        notify::recommended_watcher(move |_: notify::Result<notify::Event>| changed.notify_one())?
    };
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        loop {
            let scanned = {
                let (state, dir) = (state.clone(), dir.clone());
                tokio::task::spawn_blocking(move || scan(&state, &dir)).await
            };
            if let Err(error) = scanned {
                tracing::error!(%error, "scanning the drop folder failed");
            }
            tokio::select! {
                () = changed.notified() => {
                    // A rename is often several events: let them settle.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stop.changed() => return,
            }
        }
    });
    Ok((watcher, task))
}

/// Claims and imports every ready file, and finishes what a crash left in
/// `processing/` (blocking).
fn scan(state: &AppState, dir: &Path) {
    let processing = dir.join(PROCESSING);
    for path in files_in(&processing) {
        let Some((id, name)) = claimed(&path) else {
            continue;
        };
        if state.jobs.is_running(&id) {
            continue;
        }
        match state.store.job(&id) {
            Ok(None) => start(state, &id, &path, &name),
            Ok(Some(record)) if record.status.state.is_finished() => {
                file_away(state, &id, &path, &name)
            }
            // Unfinished: resumed with the other jobs at start.
            Ok(Some(_)) => {}
            Err(error) => tracing::error!(%error, "cannot read a drop folder job"),
        }
    }
    for path in files_in(dir) {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if format_of(&name).is_none() {
            continue;
        }
        let id = ulid::Ulid::generate().to_string();
        let claimed = processing.join(format!("{id}{CLAIM_SEPARATOR}{name}"));
        match std::fs::rename(&path, &claimed) {
            Ok(()) => start(state, &id, &claimed, &name),
            Err(error) => {
                tracing::warn!(%error, file = %path.display(), "cannot claim a dropped file")
            }
        }
    }
}

/// The regular files directly in `dir`, oldest name first.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

fn format_of(name: &str) -> Option<Format> {
    let extension = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "csv" => Some(Format::Csv),
        "ndjson" => Some(Format::Ndjson),
        _ => None,
    }
}

/// The job id and original name of a file in `processing/`.
fn claimed(path: &Path) -> Option<(String, String)> {
    let file_name = path.file_name()?.to_str()?;
    let (id, name) = file_name.split_once(CLAIM_SEPARATOR)?;
    ulid::Ulid::from_string(id).ok()?;
    Some((id.to_string(), name.to_string()))
}

/// Records and starts the import of a claimed file; a file over the running-imports
/// bound waits in `processing/` for the next scan.
fn start(state: &AppState, id: &str, path: &Path, name: &str) {
    let Some(format) = format_of(name) else {
        return;
    };
    let max = state.config().limits.imports_max_running;
    let Ok(job) = state.jobs.register(id, "import", max) else {
        return;
    };
    let plan = JobPlan::Import {
        spool: path.to_path_buf(),
        source: ImportSource::DropFolder {
            name: name.to_string(),
        },
        format,
        mode: ImportMode::Upsert,
        match_by: MatchBy::ExternalId,
    };
    let record = JobRecord::new(id.to_string(), plan, false, state.clock.now());
    let runtime = tokio::runtime::Handle::current();
    match runtime.block_on(crate::api::jobs::start(state, job, record)) {
        Ok(_) => tracing::info!(job = id, file = name, "importing a dropped file"),
        Err(error) => {
            tracing::error!(error = %error.message, file = name, "cannot start a drop folder import")
        }
    }
}

/// Moves a file whose job has ended to `done/` or `failed/`, after writing the job's
/// status beside it as `<name>.report.json` (blocking). A name taken there already
/// gets the job id in front.
pub fn file_away(state: &AppState, id: &str, path: &Path, name: &str) {
    let record = match state.store.job(id) {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(error) => return tracing::error!(%error, "cannot read a drop folder job"),
    };
    let Some(dir) = path.parent().and_then(Path::parent) else {
        return;
    };
    let outcome = match record.status.state {
        crate::jobs::JobState::Done => DONE,
        _ => FAILED,
    };
    let mut target = dir.join(outcome).join(name);
    if target.exists() {
        target = dir
            .join(outcome)
            .join(format!("{id}{CLAIM_SEPARATOR}{name}"));
    }
    let report = target.with_file_name(format!(
        "{}.report.json",
        target.file_name().and_then(|n| n.to_str()).unwrap_or(name)
    ));
    let filed = serde_json::to_vec_pretty(&record.status)
        .map_err(std::io::Error::from)
        .and_then(|text| std::fs::write(&report, text))
        .and_then(|()| std::fs::rename(path, &target));
    match filed {
        Ok(()) => tracing::info!(job = id, file = %target.display(), "dropped file filed away"),
        Err(error) => {
            tracing::error!(%error, file = %path.display(), "cannot file a dropped file away")
        }
    }
}
