//! Live config: saving config.toml changes keys, limits and rules within a second,
//! without a restart; a broken file is refused and the running config stays.

use std::path::Path;
use std::time::{Duration, Instant};

use contactd::auth::{generate_key, hash_key};
use contactd::config::Overrides;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestApp;

/// Saves the way editors do: a temporary file renamed over the config.
fn save(path: &Path, text: &str) {
    let temporary = path.with_extension("toml.swp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// Polls `check` until it holds (at most 5 s; a reload takes ~0.1 s).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < until, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_the_config_changes_keys_limits_and_rules_live() {
    let temp = tempfile::TempDir::new().unwrap();
    let path = temp.path().join("config.toml");
    save(&path, "");
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(temp.path().join("data")),
    };
    let app = TestApp::spawn_watching(&path, overrides).await;
    let status_of = async |request: reqwest::RequestBuilder| request.send().await.unwrap().status();

    // The default rules want an email or a phone.
    let nameless = json!({"name": "Only A Name"});
    assert_eq!(
        app.post("/v1/contacts", nameless.clone()).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.get("/v1/contacts").await.status, StatusCode::OK);

    // A key, a tighter limit and looser rules, saved at once.
    let key = generate_key().unwrap();
    let config = format!(
        "[limits]\nq_max_words = 2\n[rules]\nrequire = \"none\"\n\
         [[auth.keys]]\nname = \"live\"\nrole = \"owner\"\nsha256 = \"{}\"\n",
        hash_key(&key)
    );
    save(&path, &config);
    eventually("requests need the new key", async || {
        status_of(app.client.get(app.url("/v1/contacts"))).await == StatusCode::UNAUTHORIZED
    })
    .await;
    let with_key = |request: reqwest::RequestBuilder| request.bearer_auth(&key);
    assert_eq!(
        status_of(with_key(app.client.get(app.url("/v1/contacts")))).await,
        StatusCode::OK
    );
    let words = status_of(with_key(app.client.get(app.url("/v1/contacts?q=a+b+c")))).await;
    assert_eq!(words, StatusCode::BAD_REQUEST, "q_max_words = 2 applies");
    let created = status_of(with_key(
        app.client.post(app.url("/v1/contacts")).json(&nameless),
    ))
    .await;
    assert_eq!(
        created,
        StatusCode::CREATED,
        "require = none reached the writer"
    );

    // A broken save is refused whole: the key still rules.
    save(&path, "[limits\nq_max_words = ");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_of(app.client.get(app.url("/v1/contacts"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(with_key(app.client.get(app.url("/v1/contacts?q=a+b")))).await,
        StatusCode::OK
    );

    // Removing the keys opens the loopback server again; a new listen address waits
    // for a restart (the server keeps serving where it is).
    save(&path, "listen = \"127.0.0.1:1\"\n");
    eventually("the key is gone", async || {
        status_of(app.client.get(app.url("/v1/contacts"))).await == StatusCode::OK
    })
    .await;
    app.stop().await;
}
