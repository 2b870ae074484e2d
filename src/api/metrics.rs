//! `GET /metrics` in Prometheus text, and the request counter/latency middleware.
//!
//! One process-wide recorder (the `metrics` facade is global) is installed by the first
//! app; counters and histograms are recorded where things happen (the store writer's
//! commits, the sync worker's index commits, imports, refused inputs), and gauges of
//! state (contacts by status, sequences, lag, writer queue) are read from the app at
//! each scrape.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::{ApiError, AppState};

/// Latency buckets, in seconds: from a cached lookup to a slow import batch.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The recorder's handle; installed once per process.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first: then ours renders
        // nothing, and the server still runs.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        handle
    })
}

/// Counts every request and times it, by route pattern (never the concrete path:
/// ids would make unbounded label values), method and status.
pub async fn record_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("contactd_http_requests_total",
        "route" => route.clone(), "method" => method.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("contactd_http_request_duration_seconds",
        "route" => route, "method" => method)
    .record(started.elapsed().as_secs_f64());
    response
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = state
        .blocking_ungated(|state| Ok(state.store.counts()?))
        .await?;
    for (status, count) in counts {
        metrics::gauge!("contactd_contacts", "status" => status.as_str()).set(count as f64);
    }
    let store_seq = state.store.committed().get();
    let index_seq = state.indexed.get();
    metrics::gauge!("contactd_store_seq").set(store_seq as f64);
    metrics::gauge!("contactd_index_seq").set(index_seq as f64);
    metrics::gauge!("contactd_sync_lag").set(store_seq.saturating_sub(index_seq) as f64);
    metrics::gauge!("contactd_writer_queue_depth").set(state.store.queue_depth() as f64);
    metrics::gauge!("contactd_index_segments").set(state.index.get().num_segments() as f64);
    let body = handle().render();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
