//! `contactd bench`: one command that measures a contactd server the way an operator
//! would, in the spirit of `redis-benchmark` and `pgbench`.
//!
//! It starts a server on a fresh data directory (or measures `--server URL`), imports a
//! generated (or given) dataset, then runs the scenarios in order: single-client search
//! latency over the query mix ([`mix`]), search throughput at 1, 8 and 32 clients,
//! single-contact writes at 32 clients, write → searchable while searches run, memory
//! and disk, and for a server it started: restart to ready and `reindex` speed. Every
//! number comes from real HTTP round trips (or, for the last two, real processes);
//! nothing is estimated.

pub mod mix;

mod maintenance;
mod measure;
mod report;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cli::progress;
use crate::cli::transfer::{define_fields, follow_job, format_for, upload, wait_until_searchable};
use crate::client::Client;
use crate::generate::{Generator, field_definitions};
use crate::jobs::JobState;
use measure::{LoadResult, Summary};
use report::Report;
use server::ServerProcess;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Contacts to generate and import.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Seed of the generated contacts and of the query mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Import this NDJSON (or .csv) file instead of generated contacts.
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// Measure this running server instead of starting one (the dataset is added to
    /// its contacts; restart and reindex are not measured).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Do not import: measure the contacts the server already holds.
    #[arg(long, requires = "server")]
    pub skip_import: bool,
    /// Data directory of the server the bench starts; kept afterwards [default: a
    /// fresh temporary directory, removed at the end]
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    pub data_dir: Option<PathBuf>,
    /// Seconds each throughput, write and write→searchable scenario runs.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Queries in the single-client latency run.
    #[arg(long, default_value_t = 5000)]
    pub queries: usize,
    /// Searches per second sent while write → searchable is measured.
    #[arg(long, default_value_t = 200)]
    pub background_rate: u32,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Concurrent clients of the throughput runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    pub clients: Vec<usize>,
    /// Measure import and search only (no writes, write → searchable, restart or
    /// reindex), as the side-by-side PostgreSQL harness does.
    #[arg(long)]
    pub search_only: bool,
    /// Also measure how long writes wait during maintenance (an erase and a batch of
    /// erases, each until scrubbed from the files). The bench's own server then
    /// scrubs at once; a `--server` must run with `store.scrub_within_secs = 0`.
    #[arg(long)]
    pub maintenance: bool,
    /// Only these maintenance actions, comma-separated [default: all]
    #[arg(long, value_delimiter = ',', requires = "maintenance",
          value_parser = clap::builder::PossibleValuesParser::new(maintenance::ACTIONS))]
    pub maintenance_only: Vec<String>,
    /// Write the query mix as NDJSON (`kind`, `q`, `filter`, `sort`), so another system
    /// can be measured with the very same queries.
    #[arg(long, value_name = "FILE")]
    pub mix_out: Option<PathBuf>,
}

/// Results per page of samples the query mix is built from.
const SAMPLE_PAGE: usize = 1000;
/// Distinct queries in the mix (taken in turn by every scenario).
const MIX_SIZE: usize = 1200;

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.seconds <= 0.0 || !args.seconds.is_finite() {
        bail!("--seconds must be a positive number");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run_scenarios(args))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// Where the bench's own server keeps its data, and whether to remove it at the end.
struct OwnDataDir {
    path: PathBuf,
    temporary: bool,
}

async fn run_scenarios(args: &BenchArgs) -> anyhow::Result<Report> {
    let mut report = Report::new(args);
    let own_dir = match (&args.server, &args.data_dir) {
        (Some(_), _) => None,
        (None, Some(dir)) => Some(OwnDataDir {
            path: dir.clone(),
            temporary: false,
        }),
        (None, None) => Some(OwnDataDir {
            path: std::env::temp_dir().join(format!("contactd-bench-{}", ulid::Ulid::generate())),
            temporary: true,
        }),
    };
    let mut own_server = None;
    let client = match (&args.server, &own_dir) {
        (Some(url), _) => Client::new(url)?,
        (None, Some(dir)) => {
            std::fs::create_dir_all(&dir.path)
                .with_context(|| format!("cannot create {}", dir.path.display()))?;
            eprintln!("starting a server on {}", dir.path.display());
            let (server, _) = ServerProcess::start(&dir.path, args.maintenance).await?;
            let client = Client::new(&server.base)?;
            own_server = Some(server);
            client
        }
        (None, None) => unreachable!("a data dir is chosen when no server is given"),
    };

    let outcome = measure_all(args, &client, &mut report, own_server, own_dir.as_ref()).await;
    if let Some(dir) = own_dir.filter(|d| d.temporary) {
        let _ = std::fs::remove_dir_all(&dir.path);
    }
    outcome?;
    Ok(report)
}

async fn measure_all(
    args: &BenchArgs,
    client: &Client,
    report: &mut Report,
    own_server: Option<ServerProcess>,
    own_dir: Option<&OwnDataDir>,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    if !args.skip_import {
        report.import = Some(import(args, client, own_dir).await?);
        report.export = Some(export(client).await?);
    }
    let stats: Value = client.get("/v1/stats").await?;
    report.contacts = stats["contacts"]["active"].as_u64().unwrap_or(0);

    let queries = build_mix(args, client).await?;
    if let Some(path) = &args.mix_out {
        write_mix(path, &queries)?;
    }
    let mix = search_urls(client, &queries)?;
    report.mix_queries = mix.len();
    report.kinds_without_hits = warm_up(client, &mix).await?;

    report.latency = Some(latency(client, &mix, args.queries).await?);
    let urls: Arc<Vec<reqwest::Url>> = Arc::new(mix.iter().map(|(_, url)| url.clone()).collect());
    for &clients in &args.clients {
        let bar = progress::items(&format!("{clients} clients"), "searches", None);
        let urls = urls.clone();
        let (client, offset) = (client.clone(), urls.len() / clients.max(1));
        let result = measure::closed_loop(clients, duration, &bar, move |c, i| {
            let (client, urls) = (client.clone(), urls.clone());
            async move {
                let url = &urls[(c * offset + i as usize) % urls.len()];
                measure::get(&client, url).await
            }
        })
        .await;
        bar.finish_and_clear();
        report.throughput.push(result);
    }
    if args.search_only {
        return record_sizes(client, report).await;
    }

    // New contacts take generator rows past the imported ones (identities stay unique).
    let next_row = Arc::new(AtomicU64::new(report.contacts.max(args.count) + 1));
    report.writes = Some(writes(client, next_row.clone(), duration).await);
    report.write_to_searchable = Some(
        write_to_searchable(
            client,
            urls.clone(),
            next_row.clone(),
            duration,
            args.background_rate,
        )
        .await?,
    );

    record_sizes(client, report).await?;
    if args.maintenance {
        report.maintenance =
            maintenance::run(client, next_row.clone(), &args.maintenance_only).await?;
    }

    if let (Some(server), Some(dir)) = (own_server, own_dir) {
        server.stop().await?;
        let (server, ready) = ServerProcess::start(&dir.path, args.maintenance).await?;
        report.restart_ready_seconds = Some(ready.as_secs_f64());
        server.stop().await?;
        report.reindex = Some(reindex(&dir.path).await?);
    }
    Ok(())
}

async fn record_sizes(client: &Client, report: &mut Report) -> anyhow::Result<()> {
    let stats: Value = client.get("/v1/stats").await?;
    report.rss_bytes = stats["rss_bytes"].as_u64();
    report.store_bytes = stats["store_bytes"].as_u64().unwrap_or(0);
    report.index_bytes = stats["index_bytes"].as_u64().unwrap_or(0);
    Ok(())
}

/// One line per query of the mix, in the order the scenarios take them.
fn write_mix(path: &std::path::Path, mix: &[mix::MixQuery]) -> anyhow::Result<()> {
    let mut out = String::new();
    for query in mix {
        out.push_str(&serde_json::to_string(query)?);
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// A generated contact for row `n` (its own generator, so any row can be asked alone).
fn generated_contact(n: u64) -> Value {
    serde_json::to_value(Generator::new(n).contact(n)).expect("contacts serialize")
}

/// Streams `GET /v1/contacts/export` (NDJSON) to the end, counting rows and bytes.
async fn export(client: &Client) -> anyhow::Result<report::ExportResult> {
    use futures_util::StreamExt;
    let started = Instant::now();
    let response = client
        .http()
        .get(client.url("/v1/contacts/export?format=ndjson"))
        .send()
        .await?;
    let response = crate::client::check("/v1/contacts/export", response).await?;
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        rows += memchr::memchr_iter(b'\n', &chunk).count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(report::ExportResult {
        rows,
        bytes,
        seconds,
        rows_per_second: rows as f64 / seconds,
    })
}

async fn import(
    args: &BenchArgs,
    client: &Client,
    own_dir: Option<&OwnDataDir>,
) -> anyhow::Result<report::ImportResult> {
    // The generated custom values need their definitions.
    define_fields(client, &field_definitions()).await?;
    let (file, generated) = match &args.dataset {
        Some(path) => (path.clone(), false),
        None => {
            let dir = own_dir.map_or_else(std::env::temp_dir, |d| d.path.clone());
            let path = dir.join(format!("bench-dataset-{}.ndjson", ulid::Ulid::generate()));
            let (count, seed, out) = (args.count, args.seed, path.clone());
            tokio::task::spawn_blocking(move || write_dataset(count, seed, &out)).await??;
            (path, true)
        }
    };
    let size = std::fs::metadata(&file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let format = format_for(None, Some(&file));
    let started = Instant::now();
    let job = upload(client, &file, format, size, &[("mode", "upsert")]).await;
    let job = match job {
        Ok(job) => follow_job(client, &job.id).await,
        Err(error) => Err(error),
    };
    if generated {
        let _ = std::fs::remove_file(&file);
    }
    let job = job?;
    let stored = started.elapsed();
    if job.state == JobState::Failed {
        bail!("the import failed: {:?}", job.errors.last());
    }
    wait_until_searchable(client).await?;
    let searchable = started.elapsed();
    let settled = wait_until_settled(client, started).await?;
    Ok(report::ImportResult {
        rows: job.processed,
        created: job.created,
        updated: job.updated,
        rejected: job.failed,
        bytes: size,
        stored_seconds: stored.as_secs_f64(),
        searchable_seconds: searchable.as_secs_f64(),
        merged_seconds: settled.merged.map(|t| t.as_secs_f64()),
        packed_seconds: settled.packed.map(|t| t.as_secs_f64()),
        rows_per_second: job.processed as f64 / searchable.as_secs_f64(),
    })
}

/// When the background work after a load ended, measured from its start (`None`: the
/// server reported none).
#[derive(Default)]
struct Settled {
    merged: Option<Duration>,
    packed: Option<Duration>,
}

/// After a bulk load the server merges its index and packs its store file in the
/// background (searches answer meanwhile, slower); the search scenarios and the disk
/// size are measured once both are done. Waits at most five minutes.
async fn wait_until_settled(client: &Client, started: Instant) -> anyhow::Result<Settled> {
    let limit = Instant::now() + Duration::from_secs(300);
    let mut settled = Settled::default();
    let (mut merging, mut packing) = (false, false);
    loop {
        let stats: Value = client.get("/v1/stats").await?;
        let merging_now = stats["index_merging"] == Value::Bool(true);
        let compaction = &stats["scrubs"]["compaction"];
        let packing_now = compaction["running"] == Value::Bool(true)
            || compaction["pack_pending"] == Value::Bool(true);
        if merging && !merging_now && settled.merged.is_none() {
            settled.merged = Some(started.elapsed());
        }
        if packing && !packing_now && settled.packed.is_none() {
            settled.packed = Some(started.elapsed());
        }
        merging |= merging_now;
        packing |= packing_now;
        if !(merging_now || packing_now) || Instant::now() > limit {
            return Ok(settled);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_dataset(count: u64, seed: u64, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let bar = progress::items("generating", "contacts", Some(count));
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut generator = Generator::new(seed);
    for n in 0..count {
        serde_json::to_writer(&mut out, &generator.contact(n))?;
        out.write_all(b"\n")?;
        if n % 4096 == 0 {
            bar.set_position(n);
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    Ok(())
}

/// The mix, built from a page of the server's contacts.
async fn build_mix(args: &BenchArgs, client: &Client) -> anyhow::Result<Vec<mix::MixQuery>> {
    let page: Value = client
        .get(&format!(
            "/v1/contacts?limit={SAMPLE_PAGE}&fields=name,email,phone,country"
        ))
        .await?;
    let samples: Vec<mix::Sample> = page["hits"]
        .as_array()
        .map(|hits| hits.iter().map(mix::Sample::from_json).collect())
        .unwrap_or_default();
    if samples.is_empty() {
        bail!("the server holds no contacts to search");
    }
    Ok(mix::build(&samples, MIX_SIZE, args.seed))
}

/// The mix as (kind index, search URL) pairs.
fn search_urls(
    client: &Client,
    queries: &[mix::MixQuery],
) -> anyhow::Result<Vec<(usize, reqwest::Url)>> {
    queries
        .iter()
        .map(|query| {
            let kind = mix::KINDS
                .iter()
                .position(|k| *k == query.kind)
                .unwrap_or(0);
            let mut params = vec![("q", query.q.clone()), ("limit", "20".to_string())];
            params.extend(query.filter.clone().map(|f| ("filter", f)));
            params.extend(query.sort.clone().map(|s| ("sort", s)));
            Ok((
                kind,
                reqwest::Url::parse_with_params(&client.url("/v1/contacts"), params)?,
            ))
        })
        .collect()
}

/// Runs every query once (an error stops the bench: the mix must be valid) and names
/// the kinds none of whose queries found anything.
async fn warm_up(client: &Client, mix: &[(usize, reqwest::Url)]) -> anyhow::Result<Vec<String>> {
    let mut found = [0u64; mix::KINDS.len()];
    let bar = progress::items("warming up", "searches", Some(mix.len() as u64));
    for (kind, url) in mix {
        found[*kind] += measure::search_total(client, url).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(mix::KINDS
        .iter()
        .zip(found)
        .filter(|(_, hits)| *hits == 0)
        .map(|(kind, _)| kind.to_string())
        .collect())
}

async fn latency(
    client: &Client,
    mix: &[(usize, reqwest::Url)],
    queries: usize,
) -> anyhow::Result<report::LatencyResult> {
    let bar = progress::items("latency", "searches", Some(queries as u64));
    let mut by_kind: Vec<Vec<Duration>> = vec![Vec::new(); mix::KINDS.len()];
    let mut all = Vec::with_capacity(queries);
    for (kind, url) in mix.iter().cycle().take(queries) {
        let sent = Instant::now();
        measure::get(client, url).await?;
        let elapsed = sent.elapsed();
        by_kind[*kind].push(elapsed);
        all.push(elapsed);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report::LatencyResult {
        overall: Summary::of(&mut all),
        by_kind: mix::KINDS
            .iter()
            .zip(by_kind.iter_mut())
            .map(|(kind, samples)| (kind.to_string(), Summary::of(samples)))
            .collect(),
    })
}

async fn writes(client: &Client, next_row: Arc<AtomicU64>, duration: Duration) -> LoadResult {
    let bar = progress::items("writes", "contacts", None);
    let client = client.clone();
    let result = measure::closed_loop(32, duration, &bar, move |_, _| {
        let (client, n) = (client.clone(), next_row.fetch_add(1, Ordering::Relaxed));
        async move {
            let response = client
                .http()
                .post(client.url("/v1/contacts"))
                .json(&generated_contact(n))
                .send()
                .await?;
            crate::client::check("/v1/contacts", response).await?;
            Ok(())
        }
    })
    .await;
    bar.finish_and_clear();
    result
}

async fn write_to_searchable(
    client: &Client,
    urls: Arc<Vec<reqwest::Url>>,
    next_row: Arc<AtomicU64>,
    duration: Duration,
    background_rate: u32,
) -> anyhow::Result<report::WriteToSearchable> {
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let client = client.clone();
        measure::open_loop(background_rate, stop.clone(), move |i| {
            let (client, urls) = (client.clone(), urls.clone());
            async move {
                let url = &urls[i as usize % urls.len()];
                measure::get(&client, url).await
            }
        })
    };
    let bar = progress::items("write→search", "writes", None);
    let started = Instant::now();
    let measured = measure::write_to_searchable(
        client,
        |_| generated_contact(next_row.fetch_add(1, Ordering::Relaxed)),
        duration,
        &bar,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let searches = background.await.unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let measured = measured?;
    Ok(report::WriteToSearchable {
        latency: measured.searchable,
        write_latency: measured.acknowledged,
        missing: measured.missing,
        background_searches_per_second: searches as f64 / seconds,
    })
}

/// Runs `contactd reindex` on the (stopped) data directory.
async fn reindex(data_dir: &std::path::Path) -> anyhow::Result<report::ReindexResult> {
    let bar = progress::items("reindexing", "s", None);
    let started = Instant::now();
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.arg("reindex").arg("--data-dir").arg(data_dir);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("cannot run reindex")?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if !output.status.success() {
        bail!(
            "reindex failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // "index rebuilt: N documents, up to change S"
    let stdout = String::from_utf8_lossy(&output.stdout);
    let documents: u64 = stdout
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected reindex output: {stdout}"))?;
    Ok(report::ReindexResult {
        documents,
        seconds,
        documents_per_second: documents as f64 / seconds,
    })
}
