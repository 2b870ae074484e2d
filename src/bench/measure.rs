//! Load generation against a server and latency summaries.
//!
//! Every request is a real HTTP round trip whose whole body is read; a non-2xx answer
//! counts as an error, never as a fast sample.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::client::Client;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(samples: &mut [Duration]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        // Nearest-rank percentile: the smallest sample with at least p of them at or below.
        let at = |p: f64| {
            let rank = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1000.0
        };
        Summary {
            count: samples.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// One GET whose body is read to the end (not parsed: the load generator shares the
/// machine with the server and must stay cheap).
pub async fn get(client: &Client, url: &reqwest::Url) -> anyhow::Result<()> {
    let response = client.http().get(url.clone()).send().await?;
    crate::client::check(url.path(), response)
        .await?
        .bytes()
        .await?;
    Ok(())
}

/// One search; the number of hits it reported.
pub async fn search_total(client: &Client, url: &reqwest::Url) -> anyhow::Result<u64> {
    let response = client.http().get(url.clone()).send().await?;
    let body: serde_json::Value = crate::client::check(url.path(), response)
        .await?
        .json()
        .await?;
    Ok(body["total"].as_u64().unwrap_or(0))
}

/// What a run of concurrent clients did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub clients: usize,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub latency: Summary,
}

/// `clients` tasks each sending requests back to back for `duration`; `request(i)`
/// sends the i-th request of a task.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    duration: Duration,
    progress: &indicatif::ProgressBar,
    request: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let request = Arc::new(request);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let (request, errors, progress) = (request.clone(), errors.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match request(client, i).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(error) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            progress.suspend(|| eprintln!("first error: {error:#}"));
                        }
                    }
                }
                progress.inc(1);
                i += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let seconds = started.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    LoadResult {
        clients,
        seconds,
        requests: latencies.len() as u64,
        errors,
        per_second: latencies.len() as f64 / seconds,
        latency: Summary::of(&mut latencies),
    }
}

/// Write → searchable: one contact at a time is created, then searched by its email
/// with `min_seq` set to the write's `X-Seq` (the server answers as soon as the index
/// has applied it). A sample runs from sending the write to the answer that finds it;
/// its first part, until the write is acknowledged (durable in the store), is
/// summarized apart.
pub async fn write_to_searchable(
    client: &Client,
    contact: impl Fn(u64) -> serde_json::Value,
    duration: Duration,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<WriteToSearchableSamples> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut acknowledged = Vec::new();
    let mut missing = 0u64;
    let mut n = 0u64;
    while started.elapsed() < duration || samples.is_empty() {
        let body = contact(n);
        n += 1;
        let email = body["email"].as_str().unwrap_or_default().to_string();
        let sent = Instant::now();
        let response = client
            .http()
            .post(client.url("/v1/contacts"))
            .json(&body)
            .send()
            .await?;
        let response = crate::client::check("/v1/contacts", response).await?;
        let written = sent.elapsed();
        let seq = response
            .headers()
            .get("x-seq")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .context("a write answered without X-Seq")?;
        let url = reqwest::Url::parse_with_params(
            &client.url("/v1/contacts"),
            [
                ("q", email.as_str()),
                ("min_seq", &seq.to_string()),
                ("limit", "1"),
            ],
        )?;
        let found = search_total(client, &url).await?;
        let elapsed = sent.elapsed();
        if found == 0 {
            missing += 1;
        } else {
            samples.push(elapsed);
            acknowledged.push(written);
        }
        progress.inc(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(WriteToSearchableSamples {
        searchable: Summary::of(&mut samples),
        acknowledged: Summary::of(&mut acknowledged),
        missing,
    })
}

/// What [`write_to_searchable`] measured.
pub struct WriteToSearchableSamples {
    /// From sending a write to the search that finds it.
    pub searchable: Summary,
    /// From sending a write to its acknowledgement.
    pub acknowledged: Summary,
    /// Writes a `min_seq` search did not find.
    pub missing: u64,
}

/// Sends `rate` requests per second (each on its own task, so a slow answer does not
/// slow the rate) until `stop` is set; returns how many completed.
pub fn open_loop<F, Fut>(
    rate: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
    request: F,
) -> tokio::task::JoinHandle<u64>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let completed = Arc::new(AtomicU64::new(0));
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut i = 0u64;
        let mut in_flight = tokio::task::JoinSet::new();
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            let (future, completed) = (request(i), completed.clone());
            in_flight.spawn(async move {
                if future.await.is_ok() {
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            });
            i += 1;
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
        completed.load(Ordering::Relaxed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let summary = Summary::of(&mut samples);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p90_ms, 90.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        assert_eq!(Summary::of(&mut []).count, 0);
    }
}
