//! Configuration: one struct, read from `config.toml`, then `CONTACTD_*` environment
//! variables, then command-line flags (each overriding the one before).
//!
//! Environment names are the key path in upper case with `__` between sections:
//! `CONTACTD_LISTEN=0.0.0.0:7700`, `CONTACTD_SYNC__BATCH_MAX=5000`. Values are read as
//! TOML (`true`, `5000`, `"text"`) and fall back to plain strings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::KeyConfig;
use crate::model::{InputLimits, RequireRule, Rules};
use crate::store::StoreOptions;
use crate::sync::SyncOptions;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory holding `contacts.redb` and the `search/` index.
    pub data_dir: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    pub log: String,
    /// `text` (colours only on a terminal) or `json` (one object per line).
    pub log_format: LogFormat,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long `?wait=indexed` and `min_seq` wait before answering 503.
    pub wait_timeout_ms: u64,
    /// `/readyz` answers 200 while the index lags the store by at most this many changes.
    pub ready_max_lag: u64,
    /// On SIGTERM, how long open requests may finish before their connections close.
    pub shutdown_grace_ms: u64,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub rules: RulesConfig,
    pub store: StoreConfig,
    pub sync: SyncConfig,
    pub search: SearchConfig,
    pub jobs: JobsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `/metrics` answers without a key.
    pub public_metrics: bool,
    /// API keys (hashes only), as `contactd keys create` writes them.
    pub keys: Vec<KeyConfig>,
}

/// Bounds on what one request may ask; each breach is a 4xx naming its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub q_max_bytes: usize,
    pub q_max_words: usize,
    pub filter_max_bytes: usize,
    /// Conditions (field comparisons) in one filter.
    pub filter_max_conditions: usize,
    /// Values in one `IN [...]` list.
    pub filter_max_in_values: usize,
    pub sort_max_keys: usize,
    /// One import upload, in bytes (413 beyond).
    pub import_max_bytes: u64,
    /// One line of an import upload, in bytes (413 beyond).
    pub import_max_line_bytes: usize,
    /// Imports running at once (429 beyond).
    pub imports_max_running: usize,
    /// Writes waiting for the store writer (503 beyond, instead of a growing queue).
    pub writer_queue_max: usize,
    /// A read (GET, search) answers 503 `timeout` past this, and its work stops.
    pub request_timeout_ms: u64,
    /// Reads (searches, listings, lookups) running at once; the others wait for a
    /// slot (see `api::admission`). Unset: twice the machine's cores.
    pub reads_max_running: Option<usize>,
    /// Reads waiting for a slot (503 `overloaded` beyond).
    pub reads_queue_max: usize,
    /// Values of each facet column returned (the most frequent; counts are exact).
    pub facet_max_values: usize,
    /// Tags, identities and custom values one contact may be sent with (422 beyond).
    pub tags_max: usize,
    pub identities_max: usize,
    pub custom_values_max: usize,
    /// Options of one dropdown or multiselect definition (400 beyond).
    pub options_max: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            q_max_bytes: 1_024,
            q_max_words: 32,
            filter_max_bytes: 16_384,
            filter_max_conditions: 200,
            filter_max_in_values: 1_000,
            sort_max_keys: 4,
            import_max_bytes: 8 * 1024 * 1024 * 1024,
            import_max_line_bytes: 1024 * 1024,
            imports_max_running: 2,
            writer_queue_max: 10_000,
            request_timeout_ms: 10_000,
            reads_max_running: None,
            reads_queue_max: 1_000,
            facet_max_values: 100,
            tags_max: InputLimits::default().tags_max,
            identities_max: InputLimits::default().identities_max,
            custom_values_max: InputLimits::default().custom_values_max,
            options_max: 500,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// From this many matches in a segment, a sorted page walks the segment's order
    /// of the sort key instead of ranking every match.
    pub walk_min_matches: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            walk_min_matches: 2_048,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    pub require: RequireRule,
    /// ISO 3166-1 alpha-2 country for phone numbers typed without `+`.
    pub default_country: String,
    /// Refuse a second active contact with the same name (case- and accent-insensitive).
    pub unique_name: bool,
    /// Each (channel, value) identity belongs to at most one active contact.
    pub unique_identities: bool,
    /// Days a deleted contact can be restored; 0 makes deletion final.
    pub restore_window_days: u32,
    /// How often expired contacts are erased from the trash, in seconds.
    pub purge_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub group_commit_max: usize,
    pub cache_mb: usize,
    /// An erased contact's bytes leave the store and index files within this many
    /// seconds (the files are rewritten at half of it, batching the erases).
    pub scrub_within_secs: u64,
    /// Once imports have written this many rows since the store file was last
    /// rewritten, and at least a quarter of the store, the file is rewritten densely
    /// a few seconds after the last load ends (see [`crate::store::compact`]); 0 never.
    pub compact_after_import_rows: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Finished jobs (and their spool files) are forgotten this long after they end.
    pub keep_finished_secs: u64,
    /// Where `POST /v1/admin/snapshot` writes backups; relative to `data_dir` unless
    /// absolute. Never taken from a request.
    pub backups_dir: PathBuf,
    /// A folder whose `.csv` and `.ndjson` files are imported (see
    /// [`crate::drop_folder`]); relative to `data_dir` unless absolute; empty: none.
    pub drop_dir: PathBuf,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            keep_finished_secs: 7 * 24 * 3600,
            backups_dir: PathBuf::from("backups"),
            drop_dir: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    pub batch_max: usize,
    pub batch_delay_ms: u64,
    pub writer_memory_mb: usize,
    /// Indexing budget of a rebuild (offline `reindex`, online reindex, restore), in
    /// MiB: a larger one writes fewer, larger segments and leaves less to merge.
    pub rebuild_memory_mb: usize,
    /// Indexing threads; 0 picks one per core (at most 4).
    pub writer_threads: usize,
    /// How often the index's files are synced to the disk; 0 at every commit.
    pub index_sync_every_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir: PathBuf::from("index"),
            log: "info".into(),
            log_format: LogFormat::Text,
            max_body_bytes: 10 * 1024 * 1024,
            wait_timeout_ms: 5_000,
            ready_max_lag: 1_000,
            shutdown_grace_ms: 10_000,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            rules: RulesConfig::default(),
            store: StoreConfig::default(),
            sync: SyncConfig::default(),
            search: SearchConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            require: RequireRule::EmailOrPhone,
            default_country: "FR".into(),
            unique_name: false,
            unique_identities: true,
            restore_window_days: 60,
            purge_interval_secs: 3600,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            group_commit_max: 1_024,
            cache_mb: 256,
            scrub_within_secs: 3_600,
            compact_after_import_rows: 50_000,
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_max: 10_000,
            batch_delay_ms: 5,
            writer_memory_mb: 128,
            rebuild_memory_mb: 2_048,
            writer_threads: 0,
            index_sync_every_ms: 1_000,
        }
    }
}

/// Values given on the command line; `None` keeps the configured value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads `path` (a missing file is an error only when `required`), applies the
    /// environment and `overrides`, and validates the result.
    pub fn load(path: &Path, required: bool, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // CONTACTD_API_KEY is the CLI client's key, not a setting.
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("CONTACTD_") && k != crate::client::API_KEY_VARIABLE);
        Self::from_sources(&text, env, overrides)
    }

    /// Builds a config from TOML text, `CONTACTD_*` variables and overrides.
    pub fn from_sources(
        toml_text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(toml_text)
            .map_err(|e| ConfigError::Invalid(format!("config file: {e}")))?;
        for (name, value) in env {
            let Some(path) = name.strip_prefix("CONTACTD_") else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            set_path(&mut table, &keys, parse_env_value(&value))
                .map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(data_dir) = &overrides.data_dir {
            config.data_dir = data_dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !self.listen.ip().is_loopback() && self.auth.keys.is_empty() {
            // Without a key every request is anonymous and may do anything.
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without API keys: only loopback addresses \
                 (127.0.0.1, [::1]) are allowed until `contactd keys create` adds one",
                self.listen
            )));
        }
        let mut names = std::collections::HashSet::new();
        for key in &self.auth.keys {
            key.validate().map_err(ConfigError::Invalid)?;
            if !names.insert(key.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "auth.keys: the name '{}' is used twice",
                    key.name
                )));
            }
        }
        if self
            .rules
            .default_country
            .parse::<phonenumber::country::Id>()
            .is_err()
        {
            return invalid("rules.default_country must be an ISO 3166-1 alpha-2 code, like FR");
        }
        if self.rules.purge_interval_secs == 0 {
            return invalid("rules.purge_interval_secs must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            return invalid("max_body_bytes must be at least 1024");
        }
        if self.store.group_commit_max == 0 || self.sync.batch_max == 0 {
            return invalid("store.group_commit_max and sync.batch_max must be at least 1");
        }
        let limits = &self.limits;
        if [
            limits.q_max_bytes,
            limits.q_max_words,
            limits.filter_max_bytes,
            limits.filter_max_conditions,
            limits.filter_max_in_values,
            limits.sort_max_keys,
            limits.import_max_line_bytes,
            limits.imports_max_running,
            limits.writer_queue_max,
            limits.reads_max_running.unwrap_or(1),
            limits.reads_queue_max,
            limits.facet_max_values,
            limits.tags_max,
            limits.identities_max,
            limits.custom_values_max,
            limits.options_max,
        ]
        .contains(&0)
            || limits.import_max_bytes == 0
            || limits.request_timeout_ms == 0
        {
            return invalid("every [limits] value must be at least 1");
        }
        if self.sync.writer_memory_mb < 20 {
            return invalid("sync.writer_memory_mb must be at least 20");
        }
        if self.sync.rebuild_memory_mb < 64 {
            return invalid("sync.rebuild_memory_mb must be at least 64");
        }
        Ok(())
    }

    pub fn rules(&self) -> Rules {
        Rules {
            input: InputLimits {
                tags_max: self.limits.tags_max,
                identities_max: self.limits.identities_max,
                custom_values_max: self.limits.custom_values_max,
            },
            require: self.rules.require,
            default_country: self
                .rules
                .default_country
                .parse()
                .expect("validate() checked default_country"),
            unique_name: self.rules.unique_name,
            unique_identities: self.rules.unique_identities,
            restore_window_days: self.rules.restore_window_days,
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            group_commit_max: self.store.group_commit_max,
            cache_bytes: self.store.cache_mb * 1024 * 1024,
            rules: self.rules(),
            clock: crate::clock::Clock::default(),
            scrub_within: Duration::from_secs(self.store.scrub_within_secs),
            compact_after_import_rows: self.store.compact_after_import_rows,
            queue_max: self.limits.writer_queue_max,
        }
    }

    pub fn sync_options(&self) -> SyncOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match self.sync.writer_threads {
            0 => cores.min(4),
            n => n,
        };
        // tantivy needs at least 15 MB of budget per indexing thread and takes under
        // 4 GiB (its arena's addresses are 32 bits).
        let budget = |mb: usize| {
            (mb * 1024 * 1024).clamp(threads * 16 * 1024 * 1024, threads * 4_000 * 1024 * 1024)
        };
        SyncOptions {
            batch_max: self.sync.batch_max,
            batch_delay: Duration::from_millis(self.sync.batch_delay_ms),
            writer_memory_bytes: budget(self.sync.writer_memory_mb),
            rebuild_memory_bytes: budget(self.sync.rebuild_memory_mb),
            writer_threads: threads,
            index_sync_every: Duration::from_millis(self.sync.index_sync_every_ms),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.request_timeout_ms)
    }

    /// Reads running at once: `limits.reads_max_running`, else twice the cores.
    pub fn reads_max_running(&self) -> usize {
        self.limits.reads_max_running.unwrap_or_else(|| {
            2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("contacts.redb")
    }

    /// Where snapshots go (see [`JobsConfig::backups_dir`]).
    pub fn backups_dir(&self) -> PathBuf {
        self.data_dir.join(&self.jobs.backups_dir)
    }

    /// The import drop folder, if one is configured.
    pub fn drop_dir(&self) -> Option<PathBuf> {
        (!self.jobs.drop_dir.as_os_str().is_empty())
            .then(|| self.data_dir.join(&self.jobs.drop_dir))
    }

    /// Spooled inputs of jobs (uploads, bulk selections).
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("jobs")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, sections) = keys.split_last().ok_or("empty key")?;
    let mut current = table;
    for section in sections {
        current = current
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("'{section}' is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        let file = "listen = \"127.0.0.1:1\"\n[sync]\nbatch_max = 7\n";
        let env = [
            ("CONTACTD_LISTEN".to_string(), "127.0.0.1:2".to_string()),
            ("CONTACTD_SYNC__BATCH_MAX".to_string(), "9".to_string()),
            ("CONTACTD_DATA_DIR".to_string(), "/tmp/x".to_string()),
        ];
        let flags = Overrides {
            listen: Some("127.0.0.1:3".parse().unwrap()),
            data_dir: None,
        };
        let config = Config::from_sources(file, env, &flags).unwrap();
        assert_eq!(config.listen.port(), 3);
        assert_eq!(config.sync.batch_max, 9);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn rejects_unknown_keys_and_public_listen_without_keys() {
        let none = Overrides::default();
        assert!(Config::from_sources("lisen = \"x\"", [], &none).is_err());
        let err = Config::from_sources("listen = \"0.0.0.0:7700\"", [], &none).unwrap_err();
        assert!(err.to_string().contains("refusing"), "{err}");
        // One key is enough to listen on any address.
        let with_key = format!(
            "listen = \"0.0.0.0:7700\"\n[[auth.keys]]\nname = \"ops\"\nrole = \"owner\"\nsha256 = \"{}\"\n",
            crate::auth::hash_key("cdk_test")
        );
        let config = Config::from_sources(&with_key, [], &none).unwrap();
        assert_eq!(config.auth.keys.len(), 1);
        // A key in clear (not a hash) is refused.
        let in_clear = "[[auth.keys]]\nname = \"ops\"\nrole = \"owner\"\nsha256 = \"cdk_test\"\n";
        let err = Config::from_sources(in_clear, [], &none).unwrap_err();
        assert!(err.to_string().contains("64 lowercase hex"), "{err}");
    }

    #[test]
    fn reads_run_twice_the_cores_unless_set_and_never_zero() {
        let none = Overrides::default();
        let cores = std::thread::available_parallelism().unwrap().get();
        let unset = Config::from_sources("", [], &none).unwrap();
        assert_eq!(unset.reads_max_running(), 2 * cores);
        let set = Config::from_sources("[limits]\nreads_max_running = 3\n", [], &none).unwrap();
        assert_eq!(set.reads_max_running(), 3);
        for zero in ["reads_max_running = 0", "reads_queue_max = 0"] {
            let err = Config::from_sources(&format!("[limits]\n{zero}\n"), [], &none).unwrap_err();
            assert!(err.to_string().contains("at least 1"), "{zero}: {err}");
        }
    }

    #[test]
    fn indexing_budgets_stay_within_what_tantivy_takes() {
        let none = Overrides::default();
        let config = |sync: &str| Config::from_sources(&format!("[sync]\n{sync}\n"), [], &none);
        let huge = config("writer_threads = 2\nrebuild_memory_mb = 100000").unwrap();
        assert_eq!(
            huge.sync_options().rebuild_memory_bytes,
            2 * 4_000 * 1024 * 1024
        );
        let small = config("writer_threads = 4\nwriter_memory_mb = 20").unwrap();
        assert_eq!(
            small.sync_options().writer_memory_bytes,
            4 * 16 * 1024 * 1024
        );
        let err = config("rebuild_memory_mb = 63").unwrap_err();
        assert!(err.to_string().contains("at least 64"), "{err}");
    }

    #[test]
    fn shipped_config_matches_the_defaults() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
            .expect("config.toml ships with the crate");
        let shipped = Config::from_sources(&text, [], &Overrides::default()).unwrap();
        assert_eq!(format!("{shipped:?}"), format!("{:?}", Config::default()));
    }
}
