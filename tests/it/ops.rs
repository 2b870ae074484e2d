//! Health, readiness, stats, request ids, and the CLI's refusals.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn health_readiness_and_stats() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    app.create(json!({"email": "one@example.com"})).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");

    let stats = app.stats().await;
    assert_eq!(
        stats["contacts"],
        json!({"active": 1, "deleted": 0, "merged": 0})
    );
    assert_eq!(stats["store_seq"], stats["index_seq"]);
    assert_eq!(stats["lag"], 0);
    assert!(stats["index_bytes"].as_u64().unwrap() > 0);
    assert!(stats["store_bytes"].as_u64().unwrap() > 0);
    // Stats pass the read gate without a slot, so no read runs or waits here.
    assert_eq!(stats["reads"], json!({"running": 0, "waiting": 0}));
    assert_eq!(ready.body["writer"]["running"], true, "{}", ready.body);
    assert_eq!(ready.body["sync"]["failing_ticks"], 0, "{}", ready.body);
    app.stop().await;
}

/// Prometheus text with requests by route pattern, state gauges, commit histograms
/// and refused inputs by limit.
#[tokio::test]
async fn metrics_in_prometheus_text() {
    let app = TestApp::spawn().await;
    let created = app.create(json!({"email": "metrics@example.com"})).await;
    let id = created["id"].as_str().unwrap();
    app.get(&format!("/v1/contacts/{id}")).await;
    app.post(
        "/v1/contacts/search",
        json!({"q": vec!["ab"; 40].join(" ")}),
    )
    .await;
    app.wait_caught_up().await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        // By route pattern, never by concrete id.
        r#"contactd_http_requests_total{route="/v1/contacts/{id}",method="GET",status="200"}"#,
        r#"contactd_http_request_duration_seconds_bucket{route="/v1/contacts",method="POST""#,
        r#"contactd_contacts{status="active"} 1"#,
        "contactd_store_seq ",
        "contactd_sync_lag 0",
        "contactd_writer_queue_depth 0",
        "contactd_store_commit_seconds_bucket",
        "contactd_index_commit_seconds_bucket",
        r#"contactd_rejections_total{limit="q_max_words"}"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains(id), "no contact id in label values");
    app.stop().await;
}

#[tokio::test]
async fn readyz_reports_lag_when_the_index_is_behind() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = crate::common::test_config(temp.path());
    // Hold every index commit back for a while so the lag is observable.
    config.sync.batch_delay_ms = 3_000;
    config.ready_max_lag = 0;
    let app = TestApp::spawn_with(config).await;
    let created = app
        .post("/v1/contacts", json!({"email": "lag@example.com"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body["lag"], 1);
    app.wait_caught_up().await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn().await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.header("x-request-id").map(str::len), Some(26));
    let mine = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "trace-me-42");
    app.stop().await;
}

#[test]
fn serve_refuses_a_public_address_without_api_keys() {
    let temp = tempfile::TempDir::new().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(
        !temp.path().join("contacts.redb").exists(),
        "nothing was opened"
    );
}

#[test]
fn help_names_every_command() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["serve", "reindex", "contact"] {
        assert!(help.contains(word), "{help}");
    }
}

/// SIGTERM ends the process within the grace even while a request never finishes
/// (here an upload whose body never ends).
#[tokio::test]
async fn shutdown_ends_within_the_grace_whatever_is_running() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut server = crate::common::ServerProcess::start_with_config(
        &temp.path().join("data"),
        "shutdown_grace_ms = 300\n",
    );
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(b"{\"name\": \"Never Ending\"}\n".to_vec())
    });
    let endless = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    let client = reqwest::Client::new();
    let upload = client
        .post(format!("{}/v1/contacts/import", server.base))
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(endless))
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    upload.abort();
}
