//! Process wiring: open the store and the index, start the sync worker, serve HTTP,
//! and shut everything down in order.
//!
//! Shutdown order matters: stop accepting and finish in-flight requests (their writes
//! are acknowledged only after a durable commit), then let the sync worker apply and
//! commit everything committed to the store, then stop the store's writer.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::config::Config;
use crate::signal::SeqSignal;
use crate::store::{Store, StoreError};
use crate::sync::{self, SyncError, SyncHandle, SyncWorker};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("index: {0}")]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An opened application: store, index and sync worker running; not yet serving.
pub struct App {
    state: AppState,
    sync: SyncHandle,
}

impl App {
    /// Opens the data directory and starts the sync worker. Blocking (it may rebuild
    /// the index): call from a blocking context.
    pub fn open(config: Config) -> Result<App, AppError> {
        Self::open_with_clock(config, Clock::default())
    }

    /// [`App::open`] with a given clock (tests shift it to cross restore windows).
    pub fn open_with_clock(config: Config, clock: Clock) -> Result<App, AppError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let mut store_options = config.store_options();
        store_options.clock = clock.clone();
        let store = Store::open(&config.store_path(), store_options)?;
        let sync_options = config.sync_options();
        let opened = sync::open_index(&store, &config.index_dir(), &sync_options);
        let (index, applied) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                store.shutdown();
                return Err(error.into());
            }
        };
        index.set_walk_min_matches(config.search.walk_min_matches);
        let index = Arc::new(crate::index::SharedIndex::new(Arc::new(index)));
        let indexed = Arc::new(SeqSignal::new(applied));
        let (sync, sync_health, reindexer) = {
            let (store, index, indexed) = (store.clone(), index.clone(), indexed.clone());
            SyncHandle::spawn(move || SyncWorker::new(store, index, indexed, sync_options))?
        };
        tracing::info!(
            data_dir = %config.data_dir.display(),
            store_seq = store.committed().get(),
            index_seq = applied,
            "store and index open"
        );
        Ok(App {
            state: AppState {
                store,
                index,
                indexed,
                live: Arc::new(crate::live::Live::new(config)),
                clock,
                jobs: Arc::default(),
                sync_health,
                reindexer,
                duplicates: Arc::default(),
                reads: Arc::default(),
            },
            sync,
        })
    }

    /// Reloads the configuration from `path` whenever the file changes (see
    /// [`crate::live`]), until the returned watcher is dropped.
    pub fn watch_config(
        &self,
        path: std::path::PathBuf,
        overrides: crate::config::Overrides,
    ) -> notify::Result<notify::RecommendedWatcher> {
        crate::live::watch(
            self.state.live.clone(),
            self.state.store.clone(),
            self.state.index.clone(),
            path,
            overrides,
        )
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Blocks until the index has applied every change the store has committed.
    pub fn wait_until_searchable(&self, mut progress: impl FnMut(u64, u64)) {
        loop {
            let (indexed, committed) =
                (self.state.indexed.get(), self.state.store.committed().get());
            progress(indexed, committed);
            if indexed >= committed {
                return;
            }
            self.state
                .indexed
                .wait_past_blocking(indexed, std::time::Duration::from_millis(100));
        }
    }

    /// Waits until the index has no merge running or due (a large full merge goes in
    /// rounds, and stopping the worker ends it after the round that runs).
    pub fn wait_until_merged(&self) {
        while self.state.index.get().merging() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Lets the sync worker apply everything committed, then stops it and the store
    /// (blocking). Used by [`App::serve`] and by commands that open a data dir.
    pub fn close(self) {
        let App { state, sync } = self;
        sync.stop();
        state.store.shutdown();
    }

    /// Serves until `shutdown` resolves, then stops the worker and the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let router = api::router(self.state.clone());
        let (stop_purge, purge_stopped) = tokio::sync::watch::channel(false);
        let purge = tokio::spawn(purge_trash(self.state.clone(), purge_stopped.clone()));
        let prune = tokio::spawn(api::jobs::prune_finished(
            self.state.clone(),
            purge_stopped.clone(),
        ));
        if let Err(error) = api::jobs::resume_unfinished(&self.state).await {
            tracing::error!(error = %error.message, "cannot resume the unfinished jobs");
        }
        // Kept until serving ends: dropping it stops the watch.
        let drop_folder = match self.state.config().drop_dir() {
            Some(dir) => {
                match crate::drop_folder::watch(self.state.clone(), dir.clone(), purge_stopped) {
                    Ok(watcher) => Some(watcher),
                    Err(error) => {
                        tracing::error!(%error, dir = %dir.display(), "cannot watch the import drop folder");
                        None
                    }
                }
            }
            None => None,
        };
        // After the signal, open requests (a long export, a slow upload) get
        // `shutdown_grace_ms` to finish; then their connections are dropped, so
        // shutdown ends within a bound whatever is running.
        let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
        let grace = self.state.config().shutdown_grace();
        let serving = axum::serve(listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = signalled.send(true);
        });
        let grace_over = async move {
            let _ = on_signal.wait_for(|signalled| *signalled).await;
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = serving => served,
            () = grace_over => {
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "requests still running after the shutdown grace; their connections are closed"
                );
                Ok(())
            }
        };
        let _ = stop_purge.send(true);
        if let Err(error) = purge.await {
            tracing::error!(%error, "trash purge task failed");
        }
        if let Err(error) = prune.await {
            tracing::error!(%error, "job pruning task failed");
        }
        if let Some((watcher, task)) = drop_folder {
            drop(watcher);
            if let Err(error) = task.await {
                tracing::error!(%error, "drop folder task failed");
            }
        }
        tracing::info!("HTTP stopped; applying the last changes to the index");
        tokio::task::spawn_blocking(move || self.close())
            .await
            .map_err(std::io::Error::other)?;
        tracing::info!("shut down cleanly");
        Ok(served?)
    }
}

/// Erases contacts whose restore window has passed, at start and then every
/// `rules.purge_interval_secs`, until `stop` turns true.
async fn purge_trash(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(state.config().rules.purge_interval_secs);
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        match state.store.purge_expired().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "erased contacts past the restore window"),
            Err(error) => tracing::error!(%error, "trash purge failed"),
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
