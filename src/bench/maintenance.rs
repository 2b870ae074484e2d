//! The maintenance scenario: how long writes wait while maintenance runs.
//!
//! Writers create contacts back to back the whole time. Each maintenance action runs
//! after a quiet baseline; the result is the write latency of the writes that were
//! in flight while the action (including its background part, e.g. the scrub of an
//! erase or the re-indexing after a catalog change) was under way, beside the
//! baseline's. The server must scrub promptly (`store.scrub_within_secs = 0`): the
//! bench's own server is started that way.
//!
//! Actions: an erase, 1,000 erases (a trash purge erases in such runs), a forced
//! change of the `plan` custom field that clears one option's values, the rename of
//! a company of [`COMPANY_MEMBERS`] contacts (imported first, outside the
//! measurement), a bulk job tagging its members, a snapshot, an online reindex, and
//! the deletion of the company.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

use super::generated_contact;
use super::measure::Summary;
use crate::client::Client;

/// Concurrent writers during the scenario.
const WRITERS: usize = 8;
/// Contacts erased together in the batch-erase action (a purge erases in such runs).
const BATCH_ERASE: usize = 1_000;
/// Contacts of the company renamed and deleted.
const COMPANY_MEMBERS: u64 = 100_000;
/// Slowest writes listed per action.
const SLOWEST_SHOWN: usize = 5;

#[derive(Debug, Serialize)]
pub struct MaintenanceResult {
    pub action: String,
    /// From the request until the files were scrubbed.
    pub seconds: f64,
    /// The last compaction as the server reports it: whole, and its final swap.
    pub compaction_seconds: Option<f64>,
    pub compaction_swap_ms: Option<f64>,
    /// Writes in flight during the action, and the baseline before it.
    pub during: Summary,
    pub baseline: Summary,
    pub write_errors: u64,
    /// The slowest writes during the action: when each was sent (UTC) and how long it
    /// took, to line them up with the server's log.
    pub slowest: Vec<SlowWrite>,
}

#[derive(Debug, Serialize)]
pub struct SlowWrite {
    pub sent: chrono::DateTime<chrono::Utc>,
    pub ms: f64,
}

/// Writes issued by the writers: when each started and how long it took.
type Samples = Arc<std::sync::Mutex<Vec<(Instant, Duration)>>>;

/// The actions, by the names `--maintenance-only` takes.
pub const ACTIONS: [&str; 8] = [
    "erase",
    "erase-batch",
    "field-change",
    "company-rename",
    "bulk",
    "snapshot",
    "reindex",
    "company-delete",
];

/// Runs the actions named in `only` (every action when empty), in the order of
/// [`ACTIONS`].
pub async fn run(
    client: &Client,
    next_row: Arc<AtomicU64>,
    only: &[String],
) -> anyhow::Result<Vec<MaintenanceResult>> {
    let wanted = |action: &str| only.is_empty() || only.iter().any(|o| o == action);
    let mut results = Vec::new();
    if wanted("erase") {
        results.push(measure(client, &next_row, "erase 1 contact", erase_one).await?);
    }
    if wanted("erase-batch") {
        results.push(
            measure(client, &next_row, "erase 1,000 contacts", |c| {
                erase_many(c, BATCH_ERASE)
            })
            .await?,
        );
    }
    if wanted("field-change") {
        results.push(
            measure(
                client,
                &next_row,
                "forced custom-field change (plan loses 'enterprise')",
                force_field_change,
            )
            .await?,
        );
    }
    let members = format!("{}k", COMPANY_MEMBERS / 1000);
    let company = if ["company-rename", "bulk", "company-delete"]
        .iter()
        .any(|action| wanted(action))
    {
        Some(company_with_members(client, &next_row, COMPANY_MEMBERS).await?)
    } else {
        None
    };
    if let Some(company) = company.clone().filter(|_| wanted("company-rename")) {
        results.push(
            measure(
                client,
                &next_row,
                &format!("rename a company of {members} contacts"),
                |c| async move { rename_company(c, &company).await },
            )
            .await?,
        );
    }
    if let Some(company) = company.clone().filter(|_| wanted("bulk")) {
        results.push(
            measure(
                client,
                &next_row,
                &format!("bulk add_tags to the company's {members} contacts (a job)"),
                |c| async move { bulk_tag_company(c, &company).await },
            )
            .await?,
        );
    }
    if wanted("snapshot") {
        results.push(
            measure(
                client,
                &next_row,
                "snapshot (POST /v1/admin/snapshot)",
                |c| admin_job(c, "/v1/admin/snapshot"),
            )
            .await?,
        );
    }
    if wanted("reindex") {
        results.push(
            measure(
                client,
                &next_row,
                "online reindex (POST /v1/admin/reindex)",
                |c| admin_job(c, "/v1/admin/reindex"),
            )
            .await?,
        );
    }
    if let Some(company) = company.filter(|_| wanted("company-delete")) {
        results.push(
            measure(
                client,
                &next_row,
                &format!("delete a company of {members} contacts"),
                |c| async move { delete_company(c, &company).await },
            )
            .await?,
        );
    }
    Ok(results)
}

/// Drops the option "enterprise" of the generated `plan` field, clearing its values;
/// done once the index has applied every change.
async fn force_field_change(client: Client) -> anyhow::Result<()> {
    let path = "/v1/custom-fields/plan?force=true";
    let patch = serde_json::json!({"options": ["free", "starter", "pro"]});
    let response = client
        .http()
        .patch(client.url(path))
        .json(&patch)
        .send()
        .await?;
    crate::client::check(path, response).await?;
    crate::cli::transfer::wait_until_searchable(&client).await
}

/// A new company and `members` new contacts of it (imported), all searchable.
async fn company_with_members(
    client: &Client,
    next_row: &Arc<AtomicU64>,
    members: u64,
) -> anyhow::Result<String> {
    let company: Value = client
        .post(
            "/v1/companies",
            &serde_json::json!({"name": "Maintenance Bench Holdings"}),
        )
        .await?;
    let id = company["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no company id in {company}"))?
        .to_string();
    let first = next_row.fetch_add(members, Ordering::Relaxed);
    let mut rows = Vec::new();
    for n in first..first + members {
        let mut row = generated_contact(n);
        row["company_id"] = Value::from(id.as_str());
        serde_json::to_writer(&mut rows, &row)?;
        rows.push(b'\n');
    }
    let file = std::env::temp_dir().join(format!(
        "contactd-bench-company-{}.ndjson",
        std::process::id()
    ));
    std::fs::write(&file, &rows)?;
    let size = rows.len() as u64;
    let uploaded =
        crate::cli::transfer::upload(client, &file, crate::transfer::Format::Ndjson, size, &[])
            .await;
    let _ = std::fs::remove_file(&file);
    crate::cli::transfer::follow_job(client, &uploaded?.id).await?;
    crate::cli::transfer::wait_until_searchable(client).await?;
    Ok(id)
}

/// Tags every member of the company with one bulk job; done once searchable.
async fn bulk_tag_company(client: Client, id: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "action": "add_tags", "tags": ["bench-bulk"], "filter": format!("company_id = \"{id}\""),
    });
    let job: crate::jobs::JobStatus = client.post("/v1/contacts/bulk", &body).await?;
    finished(crate::cli::transfer::follow_job(&client, &job.id).await?)?;
    crate::cli::transfer::wait_until_searchable(&client).await
}

/// Starts an admin job and waits for it to end.
async fn admin_job(client: Client, path: &str) -> anyhow::Result<()> {
    let job: crate::jobs::JobStatus = client.post(path, &serde_json::json!({})).await?;
    finished(crate::cli::transfer::follow_job(&client, &job.id).await?)?;
    crate::cli::transfer::wait_until_searchable(&client).await
}

fn finished(job: crate::jobs::JobStatus) -> anyhow::Result<()> {
    if job.state != crate::jobs::JobState::Done {
        bail!(
            "job {} ended {}: {:?}",
            job.id,
            job.state.as_str(),
            job.errors.first()
        );
    }
    Ok(())
}

/// Renames the company; done once its members are re-indexed.
async fn rename_company(client: Client, id: &str) -> anyhow::Result<()> {
    let path = format!("/v1/companies/{id}");
    let patch = serde_json::json!({"name": "Renamed Bench Holdings"});
    let response = client
        .http()
        .patch(client.url(&path))
        .json(&patch)
        .send()
        .await?;
    crate::client::check(&path, response).await?;
    crate::cli::transfer::wait_until_searchable(&client).await
}

/// Deletes the company; done once its members are unlinked and re-indexed.
async fn delete_company(client: Client, id: &str) -> anyhow::Result<()> {
    let path = format!("/v1/companies/{id}");
    let response = client.http().delete(client.url(&path)).send().await?;
    crate::client::check(&path, response).await?;
    crate::cli::transfer::wait_until_searchable(&client).await
}

async fn measure<F, Fut>(
    client: &Client,
    next_row: &Arc<AtomicU64>,
    action: &str,
    run_action: F,
) -> anyhow::Result<MaintenanceResult>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let samples: Samples = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (client, next_row) = (client.clone(), next_row.clone());
            let (samples, errors, stop) = (samples.clone(), errors.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next_row.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let response = client
                        .http()
                        .post(client.url("/v1/contacts"))
                        .json(&generated_contact(n))
                        .send()
                        .await;
                    let ok = match response {
                        Ok(r) => crate::client::check("/v1/contacts", r).await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        samples
                            .lock()
                            .expect("samples")
                            .push((sent, sent.elapsed()));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    let outcome = run_action(client.clone()).await;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    outcome?;
    let samples = samples.lock().expect("samples").clone();
    let mut in_flight: Vec<(Instant, Duration)> = samples
        .iter()
        .filter(|(sent, took)| *sent + *took >= started && *sent <= ended)
        .copied()
        .collect();
    in_flight.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    let (now, wall_now) = (Instant::now(), chrono::Utc::now());
    let slowest = in_flight
        .iter()
        .take(SLOWEST_SHOWN)
        .map(|(sent, took)| SlowWrite {
            sent: wall_now - (now - *sent),
            ms: took.as_secs_f64() * 1e3,
        })
        .collect();
    let mut during: Vec<Duration> = in_flight.iter().map(|(_, took)| *took).collect();
    let mut baseline: Vec<Duration> = samples
        .iter()
        .filter(|(sent, took)| *sent + *took < started)
        .map(|(_, took)| *took)
        .collect();
    let stats: Value = client.get("/v1/stats").await?;
    let compaction = &stats["scrubs"]["compaction"];
    Ok(MaintenanceResult {
        action: action.to_string(),
        seconds: (ended - started).as_secs_f64(),
        compaction_seconds: compaction["last_seconds"].as_f64(),
        compaction_swap_ms: compaction["last_swap_ms"].as_f64(),
        during: Summary::of(&mut during),
        baseline: Summary::of(&mut baseline),
        write_errors: errors.load(Ordering::Relaxed),
        slowest,
    })
}

/// Ids of some stored contacts, oldest first.
async fn some_ids(client: &Client, count: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    while ids.len() < count {
        let mut url = reqwest::Url::parse(&client.url("/v1/contacts"))?;
        url.query_pairs_mut()
            .append_pair("limit", &(count - ids.len()).min(100).to_string());
        if let Some(cursor) = &cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let response = client.http().get(url).send().await?;
        let page: Value = crate::client::check("/v1/contacts", response)
            .await?
            .json()
            .await?;
        let hits = page["hits"].as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        ids.extend(
            hits.iter()
                .filter_map(|c| c["id"].as_str().map(String::from)),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    if ids.len() < count {
        bail!("the server holds fewer than {count} contacts");
    }
    Ok(ids)
}

async fn erase(client: &Client, id: &str) -> anyhow::Result<()> {
    let path = format!("/v1/contacts/{id}?permanent=true");
    let response = client.http().delete(client.url(&path)).send().await?;
    crate::client::check(&path, response).await?;
    Ok(())
}

async fn erase_one(client: Client) -> anyhow::Result<()> {
    let ids = some_ids(&client, 1).await?;
    erase(&client, &ids[0]).await?;
    wait_scrubbed(&client).await
}

async fn erase_many(client: Client, count: usize) -> anyhow::Result<()> {
    let ids = some_ids(&client, count).await?;
    for id in &ids {
        erase(&client, id).await?;
    }
    wait_scrubbed(&client).await
}

/// Until the server reports no erase left to scrub (at most ten minutes).
async fn wait_scrubbed(client: &Client) -> anyhow::Result<()> {
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let stats: Value = client.get("/v1/stats").await?;
        if stats["scrubs"]["pending"] == 0 {
            return Ok(());
        }
        if Instant::now() > limit {
            bail!(
                "erases still unscrubbed after ten minutes: {}",
                stats["scrubs"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
