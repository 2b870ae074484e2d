//! Operational routes: liveness, readiness, stats.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::openapi::Readiness;
use crate::api::{ApiError, AppState};

#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Consecutive failed sync ticks that make the server unready (one failure is retried
/// within 200 ms and should not flap readiness).
const SYNC_FAILING_TICKS: u32 = 3;

/// 200 once the index is within `ready_max_lag` of the store, the store writer takes
/// commands and the sync worker is not failing; else 503 naming what is wrong.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses((status = 200, description = "Ready", body = Readiness),
              (status = 503, description = "Not ready: `status` says why", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store_seq = state.store.committed().get();
    let index_seq = state.indexed.get();
    let lag = store_seq.saturating_sub(index_seq);
    let writer = state.store.writer_health();
    let sync = &state.sync_health;
    let status = if !writer.running() {
        "writer_stopped"
    } else if sync.failing() >= SYNC_FAILING_TICKS {
        "sync_failing"
    } else if lag > state.config().ready_max_lag {
        "lagging"
    } else {
        "ready"
    };
    let code = if status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": status,
        "lag": lag, "store_seq": store_seq, "index_seq": index_seq,
        "writer": {"running": writer.running(), "panics": writer.panics()},
        "sync": {"failing_ticks": sync.failing(), "panics": sync.panics()},
    });
    (code, Json(body))
}

#[utoipa::path(get, path = "/v1/stats", tag = "ops",
    responses((status = 200, description = "Counts by status, sequences, scrubs, tasks, compaction", body = Object)))]
pub async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .blocking_ungated(|state| {
            let mut contacts = serde_json::Map::new();
            for (status, count) in state.store.counts()? {
                contacts.insert(status.as_str().to_string(), json!(count));
            }
            let store_seq = state.store.committed().get();
            let index_seq = state.indexed.get();
            let scrubs = state.store.scrub_status()?;
            let tasks: Vec<Value> = state
                .store
                .catalog_tasks()?
                .into_iter()
                .map(|(id, task)| {
                    let mut entry = json!(task);
                    entry["id"] = json!(id);
                    entry
                })
                .collect();
            let due_by = scrubs.oldest_erased_at.and_then(|at| {
                chrono::Duration::from_std(state.store.scrub_within())
                    .ok()
                    .and_then(|bound| at.checked_add_signed(bound))
            });
            let index = state.index.get();
            let (reads_running, reads_waiting) = state.reads.load();
            Ok(Json(json!({
                "contacts": contacts,
                "store_seq": store_seq,
                "index_seq": index_seq,
                "lag": store_seq.saturating_sub(index_seq),
                "index_docs": index.num_docs(),
                "index_segments": index.num_segments(),
                "index_merging": index.merging(),
                "index_bytes": dir_size(index.dir()),
                "store_bytes": std::fs::metadata(state.store.path()).map(|m| disk_bytes(&m)).unwrap_or(0),
                "rss_bytes": resident_set_bytes(),
                "reads": {"running": reads_running, "waiting": reads_waiting},
                "scrubs": {
                    "pending": scrubs.pending_store.max(scrubs.pending_index),
                    "pending_store": scrubs.pending_store,
                    "pending_index": scrubs.pending_index,
                    "oldest_erased_at": scrubs.oldest_erased_at,
                    "due_by": due_by,
                    "compaction": state.store.compaction_status(),
                },
                "tasks": tasks,
            })))
        })
        .await
}

/// This process's resident memory (Linux `/proc/self/status`), `null` elsewhere.
fn resident_set_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| disk_bytes(&m))
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes a file occupies on disk (the store file is sparse: its length overstates it).
fn disk_bytes(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.blocks() * 512
}
