//! `contactd import` and `contactd export`: against a running server (`--server URL`,
//! through the HTTP API) or straight on a stopped data directory (the default), which
//! opens the store and index in this process and skips HTTP altogether.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use super::{CommonArgs, progress};
use crate::app::App;
use crate::client::{self, Client};
use crate::jobs::{JobChange, JobCursor, JobPlan, JobRecord, JobState, JobStatus};
use crate::store::Command;
use crate::transfer::{Format, ImportOptions, run_import};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV or NDJSON file of contacts (the rows `export` writes).
    pub file: PathBuf,
    /// A running server to send the file to, e.g. http://127.0.0.1:7700. Without it the
    /// data directory is opened directly (the server must be stopped).
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub server: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// File format [default: csv for a .csv file, else ndjson]
    #[arg(long, value_parser = ["csv", "ndjson"])]
    pub format: Option<String>,
    /// upsert: update the contact a row matches, else create; create: always create.
    #[arg(long, default_value = "upsert", value_parser = ["upsert", "create"])]
    pub mode: String,
    /// How an upserted row finds its contact.
    #[arg(long = "match", default_value = "external_id", value_parser = ["external_id", "email", "identity"])]
    pub match_by: String,
    /// Validate every row and report what would happen, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the rows are stored, without waiting until they are searchable
    /// (nor, with --data-dir, for the store file to be packed after a large load).
    #[arg(long)]
    pub no_wait: bool,
    /// Custom field definitions to create before the rows (a JSON array, as
    /// `contactd generate --definitions` prints); keys that exist already are kept.
    #[arg(long, value_name = "FILE")]
    pub define: Option<PathBuf>,
    /// Load a whole-server dump (`export --all`) into an empty server: ids, status,
    /// trash, merges, companies, custom fields and inboxes come back as they were.
    #[arg(long, conflicts_with_all = ["format", "dry_run", "define"])]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A running server to export from. Without it the data directory is opened
    /// directly (the server must be stopped).
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub server: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Row format [default: csv for a .csv output file, else ndjson]
    #[arg(long, value_parser = ["csv", "ndjson"])]
    pub format: Option<String>,
    /// Only contacts matching this search text.
    #[arg(long)]
    pub q: Option<String>,
    /// Only contacts matching this filter expression.
    #[arg(long)]
    pub filter: Option<String>,
    /// Comma-separated fields to write [default: all]
    #[arg(long)]
    pub fields: Option<String>,
    /// Row order, e.g. name:asc [default: every contact in the order stored, streamed from one snapshot; created_at:asc with --q or --filter]
    #[arg(long)]
    pub sort: Option<String>,
    /// Time zone of relative dates in the filter [default: the server's]
    #[arg(long)]
    pub tz: Option<String>,
    /// Output file [default: standard output]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Dump the whole server (every contact with its id, status and history, merges,
    /// companies, custom fields, inboxes) for `import --all`, instead of rows.
    #[arg(long, conflicts_with_all = ["format", "q", "filter", "fields", "sort", "tz"])]
    pub all: bool,
}

/// The row format: the one asked for, else `.csv` (any case) means CSV, else NDJSON.
pub(crate) fn format_for(explicit: Option<&str>, path: Option<&Path>) -> Format {
    let by_extension = path
        .and_then(|p| p.extension())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    match explicit {
        Some("csv") => Format::Csv,
        Some(_) => Format::Ndjson,
        None if by_extension => Format::Csv,
        None => Format::Ndjson,
    }
}

/// What an import did, however it ran.
struct ImportOutcome {
    job: JobStatus,
    stored_after: Duration,
    searchable_after: Option<Duration>,
    /// When the store file was packed after the load (offline imports wait for it).
    packed_after: Option<Duration>,
    /// When the index's merge after the load ended (offline imports wait for it).
    merged_after: Option<Duration>,
}

pub fn import(args: &ImportArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.all {
        load_all(args)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let format = format_for(args.format.as_deref(), Some(&args.file));
    let definitions: Vec<serde_json::Value> = match &args.define {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not a JSON array of definitions", path.display()))?,
        None => Vec::new(),
    };
    let outcome = match &args.server {
        Some(server) => runtime()?.block_on(async {
            let client = Client::new(server)?;
            define_fields(&client, &definitions).await?;
            import_to_server(&client, args, format, size).await
        })?,
        None => import_into_data_dir(args, format, &definitions)?,
    };
    let job = &outcome.job;
    let seconds = outcome.stored_after.as_secs_f64();
    let verb = if job.dry_run { "checked" } else { "imported" };
    println!(
        "{verb} {}: {} rows in {seconds:.1} s ({:.0} rows/s): {} created, {} updated, {} rejected{}",
        args.file.display(),
        job.processed,
        job.processed as f64 / seconds.max(1e-9),
        job.created,
        job.updated,
        job.failed,
        if job.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
    );
    if let Some(after) = outcome.searchable_after {
        println!(
            "all searchable {:.1} s after the start",
            after.as_secs_f64()
        );
    }
    if let Some(after) = outcome.packed_after {
        print_packed(after);
    }
    if let Some(after) = outcome.merged_after {
        println!("index merged {:.1} s after the start", after.as_secs_f64());
    }
    for error in job.errors.iter().take(20) {
        let line = error["line"].as_u64().map_or("-".into(), |l| l.to_string());
        let field = error["field"].as_str().unwrap_or("-");
        let message = error["message"].as_str().unwrap_or_default();
        eprintln!("  line {line}, {field}: {message}");
    }
    if job.errors.len() > 20 {
        eprintln!("  … and more (see the job's errors)");
    }
    match job.state {
        JobState::Failed => bail!("the import stopped: see the last error above"),
        JobState::Cancelled => bail!("the import was cancelled; the rows before it are in"),
        // Rows were rejected: the good ones are in, and scripts can tell.
        _ if job.failed > 0 => Ok(std::process::ExitCode::from(2)),
        _ => Ok(std::process::ExitCode::SUCCESS),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn import_options(args: &ImportArgs) -> anyhow::Result<ImportOptions> {
    Ok(ImportOptions {
        mode: serde_json::from_value(json!(args.mode))?,
        match_by: serde_json::from_value(json!(args.match_by))?,
        dry_run: args.dry_run,
    })
}

fn open_data_dir(common: &CommonArgs) -> anyhow::Result<App> {
    let config = common.load(None)?;
    let data_dir = config.data_dir.clone();
    App::open(config).with_context(|| {
        format!(
            "cannot open the data directory {} (if a server is running on it, use --server)",
            data_dir.display()
        )
    })
}

/// Waits for the pack of the store file that a large load calls for (see `store.
/// compact_after_import_rows`): closing the store would abandon it. A failed pack is
/// a warning: the rows are in, in the file as the load left it. Returns when the store
/// was packed (measured from `started`), if a compaction completed after
/// `packs_before` were.
fn wait_for_pack(
    store: &crate::store::Store,
    runtime: &tokio::runtime::Runtime,
    packs_before: u64,
    started: Instant,
) -> anyhow::Result<Option<Duration>> {
    let bar = progress::items("packing the store file", "", None);
    let waited = runtime.block_on(store.wait_for_compaction());
    bar.finish_and_clear();
    if let Some(error) = waited.context("the store closed while packing")? {
        eprintln!("warning: the store file was not packed after the load: {error}");
    }
    Ok((store.compaction_status().completed > packs_before).then(|| started.elapsed()))
}

fn print_packed(after: Duration) {
    println!(
        "store file packed {:.1} s after the start",
        after.as_secs_f64()
    );
}

fn import_into_data_dir(
    args: &ImportArgs,
    format: Format,
    definitions: &[serde_json::Value],
) -> anyhow::Result<ImportOutcome> {
    let options = import_options(args)?;
    let app = open_data_dir(&args.common)?;
    let state = app.state().clone();
    // The rows' writes only await the store's writer thread, and the wait for the
    // store's pack polls a timer: no I/O driver is needed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the async runtime")?;
    for definition in definitions {
        let input: crate::model::CustomFieldInput = serde_json::from_value(definition.clone())
            .with_context(|| format!("not a custom field definition: {definition}"))?;
        match runtime.block_on(state.store.write(crate::store::Command::DefineField(input))) {
            Ok(_) | Err(crate::store::StoreError::Conflict(_)) => {}
            Err(error) => bail!("cannot define {definition}: {error}"),
        }
    }
    let id = ulid::Ulid::generate().to_string();
    let handle = state
        .jobs
        .register(&id, "import", usize::MAX)
        .map_err(|full| anyhow::anyhow!("{full}"))?;
    let source = std::path::absolute(&args.file)
        .with_context(|| format!("cannot resolve {}", args.file.display()))?;
    let plan = JobPlan::Import {
        spool: source.clone(),
        source: crate::jobs::ImportSource::LocalFile,
        format,
        mode: options.mode,
        match_by: options.match_by,
    };
    let mut record = JobRecord::new(id.clone(), plan, args.dry_run, state.clock.now());
    record.change(JobChange::Start, state.clock.now());
    runtime
        .block_on(state.store.write(Command::PutJob(Box::new(record))))
        .context("cannot record the import job")?;
    let packs_before = state.store.compaction_status().completed;
    let started = Instant::now();
    let bar = progress::items("importing", "rows", None);
    let job_status = || {
        state
            .store
            .job(&id)
            .ok()
            .flatten()
            .map(|record| record.status)
    };
    std::thread::scope(|scope| {
        let importer = scope.spawn(|| {
            run_import(
                &state.store,
                &handle,
                &source,
                format,
                options,
                JobCursor::default(),
                runtime.handle(),
            )
        });
        while !importer.is_finished() {
            if let Some(status) = job_status() {
                if let Some(total) = status.total {
                    bar.set_length(total);
                }
                bar.set_position(status.processed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    bar.finish_and_clear();
    let stored_after = started.elapsed();
    let job = job_status().context("the import job's record is gone")?;
    let searchable_after = (!args.no_wait && !args.dry_run).then(|| {
        let from = state.indexed.get();
        let bar = progress::items("indexing", "changes", None);
        app.wait_until_searchable(|indexed, committed| {
            bar.set_length(committed - from);
            bar.set_position(indexed.saturating_sub(from));
        });
        bar.finish_and_clear();
        started.elapsed()
    });
    let packed_after = if args.no_wait || args.dry_run {
        None
    } else {
        wait_for_pack(&state.store, &runtime, packs_before, started)?
    };
    let merged_after = (!args.no_wait && !args.dry_run).then(|| {
        let bar = progress::items("merging the index", "", None);
        app.wait_until_merged();
        bar.finish_and_clear();
        started.elapsed()
    });
    app.close();
    Ok(ImportOutcome {
        job,
        stored_after,
        searchable_after,
        packed_after,
        merged_after,
    })
}

/// Creates custom field definitions on a server, keeping the keys it already has.
pub(crate) async fn define_fields(
    client: &Client,
    definitions: &[serde_json::Value],
) -> anyhow::Result<()> {
    for definition in definitions {
        let response = client
            .http()
            .post(client.url("/v1/custom-fields"))
            .json(definition)
            .send()
            .await
            .context("cannot reach the server")?;
        if response.status() != reqwest::StatusCode::CONFLICT {
            client::check("/v1/custom-fields", response).await?;
        }
    }
    Ok(())
}

async fn import_to_server(
    client: &Client,
    args: &ImportArgs,
    format: Format,
    size: u64,
) -> anyhow::Result<ImportOutcome> {
    let started = Instant::now();
    let query = [
        ("mode", args.mode.as_str()),
        ("match", args.match_by.as_str()),
        ("dry_run", if args.dry_run { "true" } else { "false" }),
    ];
    let job = upload(client, &args.file, format, size, &query).await?;
    let job = follow_job(client, &job.id).await?;
    let stored_after = started.elapsed();
    let searchable_after = if args.no_wait || args.dry_run {
        None
    } else {
        wait_until_searchable(client).await?;
        Some(started.elapsed())
    };
    Ok(ImportOutcome {
        job,
        stored_after,
        searchable_after,
        packed_after: None,
        merged_after: None,
    })
}

/// Polls an import job with a progress bar until it ends.
pub(crate) async fn follow_job(client: &Client, id: &str) -> anyhow::Result<JobStatus> {
    let bar = progress::items("importing", "rows", None);
    loop {
        let status: JobStatus = client.get(&format!("/v1/jobs/{id}")).await?;
        if let Some(total) = status.total {
            bar.set_length(total);
        }
        bar.set_position(status.processed);
        if status.state.is_finished() {
            bar.finish_and_clear();
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Streams the file to `POST /v1/contacts/import?{query}` (constant memory) and returns
/// the job it started.
pub(crate) async fn upload(
    client: &Client,
    file: &Path,
    format: Format,
    size: u64,
    query: &[(&str, &str)],
) -> anyhow::Result<JobStatus> {
    use tokio::io::AsyncReadExt;
    let bar = progress::bytes("uploading", size);
    let reader = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let chunks =
        futures_util::stream::unfold((reader, bar.clone()), |(mut reader, bar)| async move {
            let mut chunk = vec![0u8; 256 * 1024];
            match reader.read(&mut chunk).await {
                Ok(0) => None,
                Ok(read) => {
                    chunk.truncate(read);
                    bar.inc(read as u64);
                    Some((Ok::<_, std::io::Error>(chunk), (reader, bar)))
                }
                Err(error) => Some((Err(error), (reader, bar))),
            }
        });
    let content_type = match format {
        Format::Csv => "text/csv",
        Format::Ndjson => "application/x-ndjson",
    };
    let url = reqwest::Url::parse_with_params(&client.url("/v1/contacts/import"), query)?;
    let response = client
        .http()
        .post(url)
        .header("content-type", content_type)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    bar.finish_and_clear();
    client::decode("/v1/contacts/import", response).await
}

/// Polls `/v1/stats` until the index has applied what the store had committed when
/// called.
pub(crate) async fn wait_until_searchable(client: &Client) -> anyhow::Result<()> {
    let stats: serde_json::Value = client.get("/v1/stats").await?;
    let target = stats["store_seq"].as_u64().unwrap_or(0);
    let from = stats["index_seq"].as_u64().unwrap_or(0);
    let bar = progress::items("indexing", "changes", Some(target.saturating_sub(from)));
    loop {
        let stats: serde_json::Value = client.get("/v1/stats").await?;
        let indexed = stats["index_seq"].as_u64().unwrap_or(0);
        bar.set_position(indexed.saturating_sub(from).min(target - from));
        if indexed >= target {
            bar.finish_and_clear();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    if args.all {
        return dump_all(args);
    }
    let format = format_for(args.format.as_deref(), args.out.as_deref());
    let format_name = match format {
        Format::Csv => "csv",
        Format::Ndjson => "ndjson",
    };
    let mut out = output(args.out.as_deref())?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut out);
    let started = Instant::now();
    let bar = progress::items("exporting", "rows", None);
    let rows = match &args.server {
        Some(server) => runtime()?.block_on(export_from_server(
            server,
            args,
            format_name,
            &mut out,
            &bar,
        )),
        None => export_from_data_dir(args, format_name, &mut out, &bar),
    }
    .and_then(|rows| {
        out.flush().context("cannot write the export")?;
        Ok(rows)
    });
    bar.finish_and_clear();
    // A reader that stops early (`| head`) is not an error, as for any Unix tool.
    let rows = match rows {
        Err(error)
            if error
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            return Ok(());
        }
        other => other?,
    };
    eprintln!(
        "exported {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn export_from_data_dir(
    args: &ExportArgs,
    format: &str,
    out: &mut impl Write,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    let app = open_data_dir(&args.common)?;
    app.wait_until_searchable(|_, _| {});
    let params = crate::api::ExportParams {
        format: Some(format.to_string()),
        q: args.q.clone(),
        filter: args.filter.clone(),
        fields: args.fields.clone(),
        sort: args.sort.clone(),
        tz: args.tz.clone(),
    };
    let state = app.state().clone();
    let result = crate::api::prepare_export(&state, params, Default::default())
        .map_err(|e| anyhow::anyhow!("{}: {} {:?}", e.code, e.message, e.details))
        .and_then(|export| {
            let mut write_error = None;
            let rows = export
                .run(&state.index.get(), &state.store, |chunk| {
                    bar.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
                    match out.write_all(&chunk) {
                        Ok(()) => true,
                        Err(error) => {
                            write_error = Some(error);
                            false
                        }
                    }
                })
                .map_err(anyhow::Error::msg)?;
            match write_error {
                Some(error) => Err(anyhow::Error::new(error).context("cannot write the export")),
                None => Ok(rows),
            }
        });
    app.close();
    result
}

async fn export_from_server(
    server: &str,
    args: &ExportArgs,
    format: &str,
    out: &mut impl Write,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<u64> {
    let client = Client::new(server)?;
    let mut params = vec![("format", format)];
    for (name, value) in [
        ("q", &args.q),
        ("filter", &args.filter),
        ("fields", &args.fields),
        ("sort", &args.sort),
        ("tz", &args.tz),
    ] {
        if let Some(value) = value {
            params.push((name, value.as_str()));
        }
    }
    let url = reqwest::Url::parse_with_params(&client.url("/v1/contacts/export"), params)?;
    let response = client.http().get(url).send().await;
    let response = client::check(
        "/v1/contacts/export",
        response.context("cannot reach the server")?,
    )
    .await?;
    let mut response = response;
    let mut lines = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the export was interrupted")?
    {
        let newlines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
        lines += newlines;
        bar.inc(newlines);
        out.write_all(&chunk).context("cannot write the export")?;
    }
    // A CSV export starts with its header line.
    Ok(if format == "csv" {
        lines.saturating_sub(1)
    } else {
        lines
    })
}

/// `export --all`: the dump of a stopped data directory (one store snapshot) or of a
/// running server (`GET /v1/admin/dump`).
fn dump_all(args: &ExportArgs) -> anyhow::Result<()> {
    let mut out = output(args.out.as_deref())?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut out);
    let started = Instant::now();
    let lines = match &args.server {
        Some(server) => runtime()?.block_on(async {
            let client = Client::new(server)?;
            let response = client.http().get(client.url("/v1/admin/dump")).send().await;
            let mut response = client::check(
                "/v1/admin/dump",
                response.context("cannot reach the server")?,
            )
            .await?;
            let mut lines = 0u64;
            while let Some(chunk) = response.chunk().await.context("the dump was interrupted")? {
                lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
                out.write_all(&chunk).context("cannot write the dump")?;
            }
            Ok::<u64, anyhow::Error>(lines)
        })?,
        None => {
            let config = args.common.load(None)?;
            let store = crate::store::Store::open(&config.store_path(), config.store_options())
                .context("cannot open the store (if a server is running on it, use --server)")?;
            let written = crate::transfer::write_dump(&store, &mut out);
            store.shutdown();
            written?
        }
    };
    out.flush().context("cannot write the dump")?;
    eprintln!(
        "dumped {lines} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `import --all`: loads a dump into an empty stopped data directory (then waits
/// until it is searchable) or into a running server (`POST /v1/admin/load`).
fn load_all(args: &ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let summary: serde_json::Value = match &args.server {
        Some(server) => runtime()?.block_on(async {
            let client = Client::new(server)?;
            let body = tokio::fs::read(&args.file)
                .await
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let response = client
                .http()
                .post(client.url("/v1/admin/load"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await;
            client::decode("/v1/admin/load", response).await
        })?,
        None => {
            let file = std::fs::File::open(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let app = open_data_dir(&args.common)?;
            // The wait for the pack after the load polls a timer.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .context("cannot start the async runtime")?;
            let store = &app.state().store;
            let packs_before = store.compaction_status().completed;
            let loaded =
                crate::transfer::load_dump(store, std::io::BufReader::new(file), runtime.handle());
            let packed = if loaded.is_ok() && !args.no_wait {
                app.wait_until_searchable(|_, _| {});
                let packed = wait_for_pack(store, &runtime, packs_before, started);
                app.wait_until_merged();
                packed
            } else {
                Ok(None)
            };
            app.close();
            if let Some(after) = packed? {
                print_packed(after);
            }
            serde_json::to_value(loaded?)?
        }
    };
    println!(
        "loaded {} in {:.1} s: {summary}",
        args.file.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The file to write to, or standard output.
fn output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    })
}
