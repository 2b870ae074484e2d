//! The configuration a running server changes without a restart, and the watcher
//! that reloads config.toml when it is saved.
//!
//! Live: API keys, `[limits]` (but the writer queue's size), `[rules]`, `[auth]`,
//! `wait_timeout_ms`, `ready_max_lag`, the log filter, `search.walk_min_matches`,
//! `jobs.keep_finished_secs` and `jobs.backups_dir`. Everything else (listen address,
//! data dir, body limit, shutdown grace, log format, store and sync tuning,
//! `limits.writer_queue_max`, `jobs.drop_dir`) is read at start: a changed value is reported
//! as needing a restart and the running one stays. A file that does not parse or
//! validate is refused with one log line; the running config stays whole.
//!
//! The watcher watches the file's directory, not the file: editors save by writing a
//! temporary file and renaming it over, which replaces the inode a file watch holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::auth::Keys;
use crate::config::{Config, Overrides};
use crate::index::SharedIndex;
use crate::model::Rules;
use crate::store::Store;

/// The running configuration and what is derived from it. A std RwLock: held only to
/// clone or replace an `Arc`.
pub struct Live {
    current: RwLock<Arc<Config>>,
    keys: RwLock<Arc<Keys>>,
    rules: RwLock<Arc<Rules>>,
}

impl Live {
    pub fn new(config: Config) -> Live {
        Live {
            keys: RwLock::new(Arc::new(Keys::new(&config.auth.keys))),
            rules: RwLock::new(Arc::new(config.rules())),
            current: RwLock::new(Arc::new(config)),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.current.read().expect("never poisoned").clone()
    }

    pub fn keys(&self) -> Arc<Keys> {
        self.keys.read().expect("never poisoned").clone()
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().expect("never poisoned").clone()
    }

    /// Takes what can change live from `new`, keeps the rest of the running config,
    /// and returns the keys whose new values wait for a restart.
    pub fn apply(&self, mut new: Config) -> (Arc<Config>, Vec<&'static str>) {
        let old = self.config();
        let mut restart = Vec::new();
        macro_rules! keep {
            ($($field:ident).+, $name:literal) => {
                if format!("{:?}", new.$($field).+) != format!("{:?}", old.$($field).+) {
                    restart.push($name);
                    new.$($field).+ = old.$($field).+.clone();
                }
            };
        }
        keep!(listen, "listen");
        keep!(data_dir, "data_dir");
        keep!(max_body_bytes, "max_body_bytes");
        keep!(shutdown_grace_ms, "shutdown_grace_ms");
        keep!(log_format, "log_format");
        keep!(store, "store");
        keep!(sync, "sync");
        keep!(limits.writer_queue_max, "limits.writer_queue_max");
        keep!(jobs.drop_dir, "jobs.drop_dir");
        let new = Arc::new(new);
        *self.keys.write().expect("never poisoned") = Arc::new(Keys::new(&new.auth.keys));
        *self.rules.write().expect("never poisoned") = Arc::new(new.rules());
        *self.current.write().expect("never poisoned") = new.clone();
        (new, restart)
    }
}

/// Reloads `path` whenever it changes, until the returned watcher is dropped.
pub fn watch(
    live: Arc<Live>,
    store: Store,
    index: Arc<SharedIndex>,
    path: PathBuf,
    overrides: Overrides,
) -> notify::Result<notify::RecommendedWatcher> {
    if !path.is_file() {
        // `--config /dev/null` and the like: nothing to reload, and a device sees
        // endless events.
        return Err(notify::Error::generic(&format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let directory = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let file_name = path.file_name().map(|n| n.to_os_string());
    let (changed, changes) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let touches_file = event.is_ok_and(|event| {
            event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name)
        });
        if touches_file {
            let _ = changed.send(());
        }
    })?;
    watcher.watch(&directory, RecursiveMode::NonRecursive)?;
    let mut loaded = std::fs::read(&path).ok();
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while changes.recv().is_ok() {
                // A save is often several events (write, rename, chmod): settle first.
                std::thread::sleep(Duration::from_millis(100));
                while changes.try_recv().is_ok() {}
                // Events without a new text (a touch, a save of the same bytes) change
                // nothing.
                let text = std::fs::read(&path).ok();
                if text.is_some() && text != loaded {
                    reload(&live, &store, &index, &path, &overrides);
                    loaded = text;
                }
            }
        })
        .map_err(notify::Error::io)?;
    Ok(watcher)
}

fn reload(live: &Live, store: &Store, index: &SharedIndex, path: &Path, overrides: &Overrides) {
    let new = match Config::load(path, true, overrides) {
        Ok(new) => new,
        Err(error) => {
            tracing::error!(%error, "config change refused; the running config stays");
            return;
        }
    };
    let (applied, restart) = live.apply(new);
    store.set_rules(applied.rules());
    index
        .get()
        .set_walk_min_matches(applied.search.walk_min_matches);
    crate::cli::set_log_filter(&applied.log);
    if !restart.is_empty() {
        tracing::warn!(
            keys = restart.join(", "),
            "config change applied, except these keys, which need a restart"
        );
    }
    tracing::info!(keys = applied.auth.keys.len(), "config reloaded");
}
