//! Shared handler state: cheap clones of `Arc`s.

use std::sync::Arc;

use crate::config::Config;
use crate::index::SharedIndex;
use crate::signal::SeqSignal;
use crate::store::Store;

use super::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The index searches use (replaced whole by `POST /v1/admin/reindex`).
    pub index: Arc<SharedIndex>,
    /// The last change-log sequence the index has applied and made searchable.
    pub indexed: Arc<SeqSignal>,
    /// The running configuration (keys, limits, rules change on a reload).
    pub live: Arc<crate::live::Live>,
    pub clock: crate::clock::Clock,
    /// The jobs running in this process (their records are in the store).
    pub jobs: Arc<crate::jobs::Jobs>,
    pub sync_health: Arc<crate::sync::SyncHealth>,
    /// Rebuilds the index online (`POST /v1/admin/reindex`).
    pub reindexer: crate::sync::Reindexer,
    /// The whole base's duplicate pairs, kept until the index moves on.
    pub duplicates: Arc<super::routes::duplicates::PairsCache>,
    /// Admits blocking reads (see [`super::admission`]).
    pub reads: Arc<super::admission::ReadGate>,
}

impl AppState {
    /// The configuration as of now (a reload may replace it between two calls).
    pub fn config(&self) -> Arc<Config> {
        self.live.config()
    }

    /// Waits until the index has applied `seq`, or answers 503 `index_lagging`.
    pub async fn wait_indexed(&self, seq: u64) -> Result<(), ApiError> {
        if self
            .indexed
            .wait_for(seq, self.config().wait_timeout())
            .await
        {
            Ok(())
        } else {
            Err(ApiError::index_lagging(seq))
        }
    }

    /// `?wait=indexed`: waits for `seq` when asked.
    pub async fn wait_if_asked(
        &self,
        wait: Option<&super::routes::WaitFor>,
        seq: u64,
    ) -> Result<(), ApiError> {
        match wait {
            Some(super::routes::WaitFor::Indexed) => self.wait_indexed(seq).await,
            None => Ok(()),
        }
    }

    /// Runs blocking store/index work off the async runtime, once the read gate
    /// admits it (see [`super::admission`]): 503 `overloaded` when too many wait.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let config = self.config();
        let _slot = self
            .reads
            .enter(config.reads_max_running(), config.limits.reads_queue_max)
            .await
            .map_err(|_| ApiError::reads_overloaded())?;
        self.blocking_ungated(work).await
    }

    /// [`Self::blocking`] without the read gate, for what must answer under any load
    /// (`/v1/stats`, `/metrics`) and for work that is not a request's read.
    pub async fn blocking_ungated<T: Send + 'static>(
        &self,
        work: impl FnOnce(AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || work(state)).await?
    }
}
