//! The command line: `serve`, `reindex`, `import`, `export`, `generate`, `bench`,
//! `keys`, `openapi` and `restore`.

mod keys;
pub(crate) mod progress;
pub(crate) mod transfer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::app::{App, shutdown_signal};
use crate::config::{Config, LogFormat, Overrides};
use crate::store::Store;

/// contactd — instant contact search beside your CRM.
///
/// Keeps canonical contact records in an embedded redb store and mirrors every change
/// into a tantivy index for partial, accent-insensitive search over an HTTP API.
/// Configuration comes from config.toml, then CONTACTD_* environment variables, then
/// the flags below.
#[derive(Debug, Parser)]
#[command(name = "contactd", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the index is rebuilt first if missing or outdated).
    Serve {
        #[command(flatten)]
        common: CommonArgs,
        /// Address to listen on, e.g. 127.0.0.1:7700 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Rebuild the search index from the store. The server must be stopped.
    Reindex {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Write realistic generated contacts as NDJSON (same seed, same bytes).
    Generate {
        /// How many contacts.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Seed of the random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file [default: standard output]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the custom field definitions the generated values use (a JSON array to
        /// POST one by one to /v1/custom-fields) instead of contacts.
        #[arg(long)]
        definitions: bool,
    },
    /// Load a CSV or NDJSON file of contacts, into a running server (--server) or
    /// straight into a stopped data directory, with a progress bar. Exits with 2 when
    /// some rows were rejected (the others are in).
    Import(transfer::ImportArgs),
    /// Write every contact (or the matches of --q/--filter) as NDJSON or CSV rows that
    /// `import` reads back.
    Export(transfer::ExportArgs),
    /// Measure a server: import, search latency and throughput, writes, write to
    /// searchable, memory and disk; prints a table (and --json FILE).
    Bench(crate::bench::BenchArgs),
    /// Create, list and revoke API keys in the config file.
    Keys(keys::KeysArgs),
    /// Print the OpenAPI document of the HTTP API (what GET /openapi.json serves).
    Openapi,
    /// Restore a snapshot taken by POST /v1/admin/snapshot into a stopped data
    /// directory; the index is rebuilt from the restored store.
    Restore {
        /// The snapshot's directory (the job's `output`).
        snapshot: PathBuf,
        #[command(flatten)]
        common: CommonArgs,
        /// Replace the store the data directory holds.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Configuration file [default: config.toml, if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory holding contacts.redb and the search index [default: index]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl CommonArgs {
    fn load(&self, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
        let (path, required, overrides) = self.source(listen);
        Ok(Config::load(&path, required, &overrides)?)
    }

    /// The config file, whether it must exist, and the flags that override it.
    fn source(&self, listen: Option<SocketAddr>) -> (PathBuf, bool, Overrides) {
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
        };
        match &self.config {
            Some(path) => (path.clone(), true, overrides),
            None => (PathBuf::from("config.toml"), false, overrides),
        }
    }
}

/// Changes the log filter of the running process (a config reload); a `RUST_LOG` set
/// at start keeps precedence.
pub fn set_log_filter(filter: &str) {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    let Some(handle) = LOG_FILTER.get() else {
        return;
    };
    match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(filter) => {
            if let Err(error) = handle.reload(filter) {
                tracing::warn!(%error, "cannot change the log filter");
            }
        }
        Err(error) => tracing::warn!(%error, "invalid log filter; the running one stays"),
    }
}

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The live log filter, set once by [`init_tracing`].
static LOG_FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

pub fn init_tracing(filter: &str, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        // Colour codes only on a terminal, never in a log file.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
    };
    if installed.is_ok() {
        let _ = LOG_FILTER.set(handle);
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Commands with progress bars log only warnings unless RUST_LOG says otherwise.
    let quiet = "warn";
    match cli.command {
        Command::Serve { common, listen } => {
            let config = common.load(listen)?;
            init_tracing(&config.log, config.log_format);
            let (path, _, overrides) = common.source(listen);
            serve(config, path.is_file().then_some((path, overrides)))?;
        }
        Command::Reindex { common } => {
            let config = common.load(None)?;
            init_tracing(&config.log, config.log_format);
            reindex(&config)?;
        }
        Command::Generate {
            count,
            seed,
            out,
            definitions,
        } => generate(count, seed, out.as_deref(), definitions)?,
        Command::Import(args) => {
            init_tracing(quiet, LogFormat::Text);
            return transfer::import(&args);
        }
        Command::Export(args) => {
            init_tracing(quiet, LogFormat::Text);
            transfer::export(&args)?;
        }
        Command::Bench(args) => {
            init_tracing(quiet, LogFormat::Text);
            crate::bench::run(&args)?;
        }
        Command::Keys(args) => keys::run(&args)?,
        Command::Openapi => println!("{}", crate::api::openapi::text()),
        Command::Restore {
            snapshot,
            common,
            force,
        } => {
            let config = common.load(None)?;
            init_tracing(quiet, LogFormat::Text);
            restore(&snapshot, &config, force)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(
    count: u64,
    seed: u64,
    out: Option<&std::path::Path>,
    definitions: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut writer: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = std::io::BufWriter::new(&mut writer);
    if definitions {
        serde_json::to_writer_pretty(&mut writer, &crate::generate::field_definitions())?;
        writeln!(writer)?;
        return Ok(writer.flush()?);
    }
    let mut generator = crate::generate::Generator::new(seed);
    for n in 0..count {
        serde_json::to_writer(&mut writer, &generator.contact(n))?;
        writer.write_all(b"\n")?;
    }
    Ok(writer.flush()?)
}

/// Serves until SIGINT/SIGTERM; `watch` is the config file to reload live, if any.
fn serve(config: Config, watch: Option<(PathBuf, Overrides)>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let app = tokio::task::spawn_blocking(move || App::open(config)).await??;
        // Dropped when serving ends, which stops the watch.
        let _watcher = match watch {
            Some((path, overrides)) => Some(
                app.watch_config(path.clone(), overrides)
                    .with_context(|| format!("cannot watch {} for changes", path.display()))?,
            ),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        // Printed on stdout (logs go to stderr) so scripts can find a port-0 address.
        println!("contactd listening on http://{address}");
        tracing::info!(%address, "listening");
        app.serve(listener, shutdown_signal()).await?;
        Ok::<(), anyhow::Error>(())
    })?;
    // Blocking work still running (an export's reader whose client is gone, an import
    // whose writes now fail) must not hold the process: it ends with the process.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// Copies a snapshot's store into the data directory, fails the jobs it recorded as
/// running (their spool files are not in a snapshot) and rebuilds the index.
fn restore(snapshot: &std::path::Path, config: &Config, force: bool) -> anyhow::Result<()> {
    use crate::api::jobs::{SNAPSHOT_MANIFEST, SNAPSHOT_STORE};
    let manifest_path = snapshot.join(SNAPSHOT_MANIFEST);
    let manifest: serde_json::Value = std::fs::read(&manifest_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .with_context(|| {
            format!(
                "{} is not a snapshot (no readable {SNAPSHOT_MANIFEST})",
                snapshot.display()
            )
        })?;
    if manifest["format"] != 1 {
        anyhow::bail!(
            "{} has a snapshot format this build does not read",
            snapshot.display()
        );
    }
    let source = snapshot.join(SNAPSHOT_STORE);
    let target = config.store_path();
    std::fs::create_dir_all(&config.data_dir)?;
    if target.exists() {
        if !force {
            anyhow::bail!(
                "{} already holds a store; pass --force to replace it",
                config.data_dir.display()
            );
        }
        // Opening it proves no server holds it (redb locks the file).
        Store::open(&target, config.store_options())
            .context("cannot open the store to replace (is a server still running on it?)")?
            .shutdown();
    }
    let partial = target.with_extension("redb.restore");
    std::fs::copy(&source, &partial)
        .with_context(|| format!("cannot copy {}", source.display()))?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &target)?;
    let index_dir = config.index_dir();
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir)?;
    }
    let store =
        Store::open(&target, config.store_options()).context("cannot open the restored store")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start the async runtime")?;
    let failed = (|| {
        let mut failed = 0;
        for record in store.unfinished_jobs()? {
            let change = crate::jobs::JobChange::failed(
                "the snapshot was taken while this job ran; it does not resume after a restore",
            );
            runtime.block_on(store.change_job(&record.status.id, change))?;
            failed += 1;
        }
        Ok::<_, crate::store::StoreError>(failed)
    })();
    let rebuilt = failed.map_err(anyhow::Error::from).and_then(|_| {
        Ok(crate::sync::rebuild(
            &store,
            &index_dir,
            &config.sync_options(),
        )?)
    });
    store.shutdown();
    let (index, seq) = rebuilt?;
    println!(
        "restored {} into {}: {} contacts indexed, up to change {seq} (the snapshot holds change {})",
        snapshot.display(),
        config.data_dir.display(),
        index.num_docs(),
        manifest["seq"]
    );
    Ok(())
}

fn reindex(config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Store::open(&config.store_path(), config.store_options())
        .context("cannot open the store (is a server still running on this data dir?)")?;
    let result = crate::sync::rebuild(&store, &config.index_dir(), &config.sync_options());
    store.shutdown();
    let (index, seq) = result?;
    println!(
        "index rebuilt: {} documents, up to change {seq}",
        index.num_docs()
    );
    Ok(())
}
