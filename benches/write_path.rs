//! Write-path benchmark over real HTTP against an in-process server (release build):
//! single-contact create latency and throughput with 1 and 32 concurrent clients, and
//! how long a write takes to become searchable.
//!
//! Run: `cargo bench --bench write_path` (set `WRITE_BENCH_SECONDS` to change the
//! duration of the timed phases; default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use contactd::app::App;
use contactd::config::{Config, Overrides};
use serde_json::json;
use tokio::sync::Mutex;

struct Server {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), contactd::app::AppError>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        data_dir: Some(dir.path().to_path_buf()),
    };
    let config = Config::from_sources("", [], &overrides).expect("config");
    let app = tokio::task::spawn_blocking(move || App::open(config))
        .await
        .expect("join")
        .expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        stop,
        task,
        _dir: dir,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn report(label: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    println!(
        "{label:<34} {:>7} ops {:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
}

/// `clients` concurrent loops creating contacts for `duration`.
async fn create_load(base: &str, clients: usize, duration: Duration) -> (Vec<Duration>, Duration) {
    let client = reqwest::Client::new();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (client, base, latencies) = (client.clone(), base.to_string(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut mine = Vec::new();
            while started.elapsed() < duration {
                let body = json!({"name": format!("Bench Person{worker}x{n}"),
                                  "email": format!("c{clients}w{worker}n{n}@bench.example")});
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/v1/contacts"))
                    .json(&body)
                    .send()
                    .await;
                let ok = response.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED);
                assert!(ok, "create failed");
                mine.push(sent.elapsed());
                n += 1;
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().await);
    (latencies, elapsed)
}

/// Sequential writes, each followed by searching for it until found.
async fn write_to_searchable(base: &str, writes: usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(writes);
    for n in 0..writes {
        let token = format!("visible{n}q");
        let body =
            json!({"name": format!("Fresh {token}"), "email": format!("{token}@bench.example")});
        let sent = Instant::now();
        let response = client
            .post(format!("{base}/v1/contacts"))
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        loop {
            let found: serde_json::Value = client
                .get(format!("{base}/v1/contacts?q={token}&limit=1"))
                .send()
                .await
                .expect("search")
                .json()
                .await
                .expect("json");
            if found["total"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(sent.elapsed());
    }
    latencies
}

fn main() {
    let seconds: u64 = std::env::var("WRITE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = start().await;
        println!(
            "contactd write path ({} cores, {seconds} s per load phase, durable commits)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        for clients in [1, 32] {
            let (latencies, elapsed) = create_load(&server.base, clients, duration).await;
            report(&format!("create, {clients} client(s)"), latencies, elapsed);
        }
        let started = Instant::now();
        let visible = write_to_searchable(&server.base, 100).await;
        report(
            "write -> searchable (sequential)",
            visible,
            started.elapsed(),
        );
        let _ = server.stop.send(());
        server.task.await.expect("join").expect("clean shutdown");
    });
}
