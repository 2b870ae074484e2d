//! Test harness: [`TestApp`] runs the server in-process on port 0 over a temp data
//! directory; [`ServerProcess`] runs the real binary (for crash tests).

#![allow(dead_code)] // each test module uses a different part of the harness

use std::path::{Path, PathBuf};
use std::sync::Once;

use contactd::app::{App, AppError};
use contactd::clock::Clock;
use contactd::config::{Config, Overrides};
use contactd::store::Store;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs the real `contactd` binary to its end, with extra environment variables
/// (`CONTACTD_*` settings) and, when given, a working directory.
pub fn run_contactd<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    dir: Option<&Path>,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"));
    command.args(args).envs(env.iter().copied());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command.output().expect("the contactd binary runs")
}

static TRACING: Once = Once::new();

fn init_test_logging() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            contactd::cli::init_tracing("info,contactd=debug", contactd::config::LogFormat::Text);
        }
    });
}

/// A test config whose erases are scrubbed from the files at once (bound 0).
pub fn scrub_now_config(data_dir: &Path) -> Config {
    let mut config = test_config(data_dir);
    config.store.scrub_within_secs = 0;
    config
}

/// A config for tests: a given data dir, port 0, defaults otherwise.
pub fn test_config(data_dir: &Path) -> Config {
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(data_dir.to_path_buf()),
    };
    let mut config = Config::from_sources("", [], &overrides).expect("test config is valid");
    // The suite runs a hundred servers and a browser at once on two cores, with every
    // index worker at background priority: a `?wait=indexed` past the default 5 s
    // there is the load, not a lost write.
    config.wait_timeout_ms = 30_000;
    config
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub store: Store,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), AppError>>>,
    _temp: Option<TempDir>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl TestApp {
    /// A server over a fresh temp directory.
    pub async fn spawn() -> TestApp {
        let temp = TempDir::new().unwrap();
        let mut app = Self::spawn_with(test_config(temp.path())).await;
        app._temp = Some(temp);
        app
    }

    /// A server over a fresh temp directory whose sorted pages walk the sort order
    /// from `walk_min` matches per segment (0: always), so small test data exercises
    /// the path large results take.
    pub async fn spawn_with_walk_min(walk_min: usize) -> TestApp {
        let temp = TempDir::new().unwrap();
        let mut config = test_config(temp.path());
        config.search.walk_min_matches = walk_min;
        let mut app = Self::spawn_with(config).await;
        app._temp = Some(temp);
        app
    }

    /// A server over `data_dir` (kept after the app stops, for restart tests).
    pub async fn spawn_in(data_dir: &Path) -> TestApp {
        Self::spawn_with(test_config(data_dir)).await
    }

    pub async fn spawn_with(config: Config) -> TestApp {
        Self::spawn_with_clock(config, Clock::default()).await
    }

    /// A server configured by the file `path` (with `overrides`), reloading it live as
    /// `contactd serve` does.
    pub async fn spawn_watching(path: &Path, overrides: Overrides) -> TestApp {
        init_test_logging();
        let config = Config::load(path, true, &overrides).expect("config loads");
        let (path, watch_overrides) = (path.to_path_buf(), overrides.clone());
        Self::spawn_app(config, Clock::default(), move |app| {
            Some(
                app.watch_config(path, watch_overrides)
                    .expect("config watch starts"),
            )
        })
        .await
    }

    /// A server whose clock the test can move forward.
    pub async fn spawn_with_clock(config: Config, clock: Clock) -> TestApp {
        init_test_logging();
        Self::spawn_app(config, clock, |_| None).await
    }

    async fn spawn_app(
        config: Config,
        clock: Clock,
        before_serving: impl FnOnce(&App) -> Option<notify::RecommendedWatcher>,
    ) -> TestApp {
        let data_dir = config.data_dir.clone();
        let app = tokio::task::spawn_blocking(move || App::open_with_clock(config, clock))
            .await
            .unwrap()
            .expect("app opens");
        let watcher = before_serving(&app);
        let store = app.state().store.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            client: Client::new(),
            store,
            data_dir,
            shutdown: Some(shutdown),
            server: Some(server),
            _temp: None,
            _watcher: watcher,
        }
    }

    /// Graceful shutdown, as on SIGTERM; returns once the store is closed.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().expect("server stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; returns status, headers and the JSON body (Null when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a contact, waits until it is searchable, returns it.
    pub async fn create(&self, contact: Value) -> Value {
        let reply = self.post("/v1/contacts?wait=indexed", contact).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Runs a search (`q` only) and returns the response body.
    pub async fn search(&self, q: &str) -> Value {
        let url = reqwest::Url::parse_with_params(
            &self.url("/v1/contacts"),
            &[("q", q), ("limit", "1000")],
        )
        .unwrap();
        let reply = Reply::from(self.client.get(url).send().await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Ids of the hits of a search, in order.
    pub async fn search_ids(&self, q: &str) -> Vec<String> {
        hit_ids(&self.search(q).await)
    }

    pub async fn stats(&self) -> Value {
        self.get("/v1/stats").await.body
    }

    /// Waits until no erase is left to scrub from the store or index files.
    pub async fn wait_scrubbed(&self) -> Value {
        let started = std::time::Instant::now();
        loop {
            let stats = self.stats().await;
            if stats["scrubs"]["pending"] == 0 {
                return stats;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "scrubs still pending: {}",
                stats["scrubs"]
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` store-file compactions have completed and none runs or
    /// waits to start.
    pub async fn wait_compactions(&self, count: u64) {
        let started = std::time::Instant::now();
        loop {
            let compaction = self.stats().await["scrubs"]["compaction"].clone();
            let idle = compaction["running"] == false && compaction["pack_pending"] == false;
            if idle && compaction["completed"].as_u64().unwrap() >= count {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "compaction {count} never ran: {compaction}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until the index has applied everything the store has committed.
    pub async fn wait_caught_up(&self) {
        let seq = self.store.committed().get();
        let reply = self
            .get(&format!("/v1/contacts?limit=1&min_seq={seq}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A test that panicked before stop(): signal the server so its task ends.
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .expect("hits is an array")
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error shape and code; returns the error object.
    pub fn expect_error(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        error
    }
}

/// The real `contactd` binary, serving a data directory on a free port.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl ServerProcess {
    pub fn start(data_dir: &Path) -> ServerProcess {
        Self::start_with_config(data_dir, "")
    }

    /// With `config_toml` as its config file.
    pub fn start_with_config(data_dir: &Path, config_toml: &str) -> ServerProcess {
        use std::io::BufRead;
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, config_toml).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the contactd binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("contactd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        ServerProcess { child, base }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Helpers for tests that talk to any server by URL (in-process or a [`ServerProcess`]).
pub mod remote {
    use std::time::{Duration, Instant};

    use reqwest::{Client, StatusCode};
    use serde_json::Value;

    use super::Reply;

    pub async fn get_json(client: &Client, url: &str) -> Value {
        client.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Uploads NDJSON rows to `POST /v1/contacts/import`; returns the job id.
    pub async fn start_import(client: &Client, base: &str, rows: String) -> String {
        start_import_with(client, base, "", rows).await
    }

    /// [`start_import`] with a query string (`?dry_run=true`, ...).
    pub async fn start_import_with(
        client: &Client,
        base: &str,
        query: &str,
        rows: String,
    ) -> String {
        let response = client
            .post(format!("{base}/v1/contacts/import{query}"))
            .header("content-type", "application/x-ndjson")
            .body(rows)
            .send()
            .await
            .unwrap();
        let reply = Reply::from(response).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// The job's status once it is done (panics if it fails, is cancelled or takes
    /// over `limit`).
    pub async fn wait_job(client: &Client, base: &str, id: &str, limit: Duration) -> Value {
        let job = wait_ended(client, base, id, limit).await;
        assert_eq!(job["state"], "done", "{}", job["errors"][0]);
        job
    }

    /// The job's status once it has ended, in any state (panics past `limit`).
    pub async fn wait_ended(client: &Client, base: &str, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let job = get_json(client, &format!("{base}/v1/jobs/{id}")).await;
            if ["done", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or_default())
            {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/v1/stats` once the index has applied every change (at most a minute).
    pub async fn wait_caught_up(client: &Client, base: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = get_json(client, &format!("{base}/v1/stats")).await;
            if stats["lag"] == 0 {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "the index did not catch up: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /v1/contacts/search` with `body`.
    pub async fn search(client: &Client, base: &str, body: &Value) -> Value {
        client
            .post(format!("{base}/v1/contacts/search"))
            .json(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
