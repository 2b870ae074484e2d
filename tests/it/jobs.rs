//! Durable jobs: listed, paged and filtered from the store; cancelled between chunks;
//! resumed after a kill -9 with every chunk applied once; forgotten after
//! `jobs.keep_finished_secs`. Online reindex under searches and writes; snapshot and
//! restore.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ServerProcess, TestApp, remote, test_config};

/// NDJSON rows `job0..count` at `domain`.
fn rows(count: usize, domain: &str) -> String {
    (0..count)
        .map(|i| {
            json!({"name": format!("Job Person{i}"), "email": format!("job{i}@{domain}")})
                .to_string()
                + "\n"
        })
        .collect()
}

async fn import(app: &TestApp, count: usize, domain: &str) -> Value {
    let id = remote::start_import(&app.client, &app.base, rows(count, domain)).await;
    let job = remote::wait_job(&app.client, &app.base, &id, Duration::from_secs(120)).await;
    app.wait_caught_up().await;
    job
}

#[tokio::test]
async fn jobs_are_listed_newest_first_filtered_and_paged() {
    let app = TestApp::spawn().await;
    let first = import(&app, 3, "a.example").await;
    let second = import(&app, 2, "b.example").await;
    let bulk = app
        .post(
            "/v1/contacts/bulk",
            json!({"action": "add_tags", "q": "job", "tags": ["seen"]}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.body);

    let all = app.get("/v1/jobs").await;
    assert_eq!(all.status, StatusCode::OK);
    let ids: Vec<&str> = all.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            second["id"].as_str().unwrap(),
            first["id"].as_str().unwrap()
        ]
    );
    assert_eq!(all.body["next_cursor"], Value::Null);
    assert_eq!(all.body["jobs"][0]["created"], 2);
    assert_eq!(all.body["jobs"][0]["processed"], 2);

    let page = app.get("/v1/jobs?limit=1").await.body;
    assert_eq!(page["jobs"][0]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!("/v1/jobs?limit=1&cursor={cursor}"))
        .await
        .body;
    assert_eq!(next["jobs"][0]["id"], first["id"]);
    assert_eq!(next["next_cursor"], Value::Null);

    let done = app.get("/v1/jobs?state=done&kind=import").await.body;
    assert_eq!(done["jobs"].as_array().unwrap().len(), 2);
    let none = app.get("/v1/jobs?state=running").await.body;
    assert_eq!(none["jobs"], json!([]));
    let none = app.get("/v1/jobs?kind=bulk").await.body;
    assert_eq!(
        none["jobs"],
        json!([]),
        "a bulk of 5 answers in the request"
    );

    app.get("/v1/jobs?state=finished")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/jobs?kind=erase")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/jobs?limit=0")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/jobs?cursor=not-a-job")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/jobs/01JD3Z6K8W6B9V8Y0Q4T2H5N7M")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let finished = first["id"].as_str().unwrap();
    app.post(&format!("/v1/jobs/{finished}/cancel"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.post("/v1/jobs/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/cancel", json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_bulk_stops_between_chunks_and_keeps_what_it_applied() {
    let app = TestApp::spawn().await;
    import(&app, 6_000, "cancel.example").await;
    let started = app
        .post(
            "/v1/contacts/bulk",
            json!({"action": "add_tags", "q": "cancel.example", "tags": ["swept"]}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let id = started.body["id"].as_str().unwrap();
    let cancel = app.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.body);
    let job = remote::wait_ended(&app.client, &app.base, id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let processed = job["processed"].as_u64().unwrap();
    assert!(processed < 6_000, "{job}");
    assert_eq!(processed % 250, 0, "stops between chunks: {job}");
    assert_eq!(job["updated"], processed);
    app.wait_caught_up().await;
    let tagged = app
        .post(
            "/v1/contacts/search",
            json!({"filter": "tags = swept", "limit": 1}),
        )
        .await;
    assert_eq!(
        tagged.body["total"], processed,
        "what the job counted is applied"
    );
    app.post(&format!("/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_bulk_job_resumes_it_and_applies_each_contact_once() {
    const CONTACTS: usize = 20_000;
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    let client = reqwest::Client::new();
    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let import = remote::start_import(&client, &base, rows(CONTACTS, "kill.example")).await;
    remote::wait_job(&client, &base, &import, Duration::from_secs(300)).await;
    remote::wait_caught_up(&client, &base).await;

    let started: Value = client
        .post(format!("{base}/v1/contacts/bulk"))
        .json(&json!({"action": "add_tags", "filter": "created_at > now-1d", "tags": ["kept"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["total"], CONTACTS as u64, "{started}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = remote::get_json(&client, &format!("{base}/v1/jobs/{id}")).await;
        if job["processed"].as_u64().unwrap_or(0) >= 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bulk made no progress: {job}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill_hard();

    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let job = remote::wait_job(&client, &base, &id, Duration::from_secs(300)).await;
    assert!(job["resumed"].as_u64().unwrap() >= 1, "{job}");
    // A chunk applied twice would find its contacts tagged already: `unchanged`.
    assert_eq!(job["updated"], CONTACTS as u64, "{job}");
    assert_eq!(job["unchanged"], 0, "no chunk applied twice: {job}");
    assert_eq!(job["processed"], CONTACTS as u64);
    remote::wait_caught_up(&client, &base).await;
    let tagged = remote::search(
        &client,
        &base,
        &json!({"filter": "tags = kept", "limit": 1}),
    )
    .await;
    assert_eq!(tagged["total"], CONTACTS as u64);
    let spool = std::fs::read_dir(data.join("jobs")).map_or(0, |d| d.count());
    assert_eq!(
        spool, 0,
        "the selection's spool file is removed once the job is done"
    );
}

#[tokio::test]
async fn finished_jobs_are_forgotten_after_keep_finished_secs() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    config.jobs.keep_finished_secs = 1;
    let app = TestApp::spawn_with(config).await;
    let job = import(&app, 2, "prune.example").await;
    let id = job["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get(&format!("/v1/jobs/{id}")).await.status == StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the finished job is still listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.get("/v1/jobs").await.body["jobs"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_swaps_a_fresh_index_in_while_searches_and_writes_go_on() {
    let app = TestApp::spawn().await;
    import(&app, 3_000, "swap.example").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Searches all along: none may fail, none may see fewer than the contacts
    // imported before the reindex.
    let searcher = {
        let (client, url, stop) = (
            app.client.clone(),
            app.url("/v1/contacts/search"),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut searches = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let response = client
                    .post(&url)
                    .json(&json!({"q": "swap.example", "limit": 1}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let body: Value = response.json().await.unwrap();
                assert!(body["total"].as_u64().unwrap() >= 3_000, "{body}");
                searches += 1;
            }
            searches
        })
    };
    // Writes all along: each must be searchable as soon as it is acknowledged as
    // indexed, before, during and after the swap.
    let writer = {
        let (client, base, stop) = (app.client.clone(), app.base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let email = format!("during{written}@write.example");
                let created = client
                    .post(format!("{base}/v1/contacts?wait=indexed"))
                    .json(&json!({"name": "During Reindex", "email": email}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(created.status(), StatusCode::CREATED);
                let found = remote::search(&client, &base, &json!({ "q": email })).await;
                assert_eq!(found["total"], 1, "{email} after its write: {found}");
                written += 1;
            }
            written
        })
    };

    let started = app.post("/v1/admin/reindex", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let id = started.body["id"].as_str().unwrap();
    let again = app.post("/v1/admin/reindex", json!({})).await;
    again.expect_error(StatusCode::CONFLICT, "conflict");
    let job = remote::wait_job(&app.client, &app.base, id, Duration::from_secs(120)).await;
    assert_eq!(job["kind"], "reindex");
    assert!(job["total"].as_u64().unwrap() >= 3_000, "{job}");
    // A few more writes and searches on the fresh index.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let searches = searcher.await.unwrap();
    let written = writer.await.unwrap();
    assert!(searches > 0 && written > 0);

    app.wait_caught_up().await;
    let everyone = app
        .post("/v1/contacts/search", json!({"q": "", "limit": 1}))
        .await;
    assert_eq!(everyone.body["total"], 3_000 + written);
    let stats = app.stats().await;
    assert_eq!(
        stats["index_docs"],
        3_000 + written,
        "no duplicates: {stats}"
    );
    app.stop().await;
}

/// Every active contact of the server, each as `GET /v1/contacts/{id}` answers it.
async fn every_contact(app: &TestApp) -> std::collections::BTreeMap<String, Value> {
    let page = app
        .post("/v1/contacts/search", json!({"q": "", "limit": 500}))
        .await;
    assert!(page.body["total"].as_u64().unwrap() < 500);
    let mut contacts = std::collections::BTreeMap::new();
    for id in crate::common::hit_ids(&page.body) {
        let full = app.get(&format!("/v1/contacts/{id}")).await;
        assert_eq!(full.status, StatusCode::OK);
        contacts.insert(id, full.body);
    }
    contacts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_the_store_as_it_was_when_taken() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_in(&temp.path().join("data")).await;
    import(&app, 50, "snap.example").await;
    let field = app
        .post(
            "/v1/custom-fields",
            json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": ["free", "pro"]}),
        )
        .await;
    assert_eq!(field.status, StatusCode::CREATED);
    let company = app
        .post("/v1/companies", json!({"name": "Acme"}))
        .await
        .body;
    let kept = app
        .create(json!({"name": "Kept Person", "email": "kept@snap.example",
                        "company_id": company["id"], "custom_fields": {"plan": "pro"}}))
        .await;
    let kept_id = kept["id"].as_str().unwrap();
    let gone = app
        .create(json!({"name": "Trashed", "email": "trash@snap.example"}))
        .await;
    let gone_id = gone["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/contacts/{gone_id}")).await.status,
        StatusCode::OK
    );
    let inbox = app
        .post(
            "/v1/inboxes",
            json!({"name": "Pro", "filter": "custom.plan = pro"}),
        )
        .await;
    assert_eq!(inbox.status, StatusCode::CREATED);
    app.wait_caught_up().await;
    let before = every_contact(&app).await;
    let trashed_before = app.get(&format!("/v1/contacts/{gone_id}")).await.body;

    let started = app.post("/v1/admin/snapshot", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let job = remote::wait_job(
        &app.client,
        &app.base,
        started.body["id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await;
    let snapshot = std::path::PathBuf::from(job["output"].as_str().unwrap());
    assert!(
        snapshot.starts_with(temp.path().join("data").join("backups")),
        "{job}"
    );

    // Later writes are not in the snapshot.
    app.create(json!({"name": "After Snapshot", "email": "after@snap.example"}))
        .await;
    let patched = app
        .patch(
            &format!("/v1/contacts/{kept_id}"),
            json!({"notes": "changed later"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    app.stop().await;

    let restored_dir = temp.path().join("restored");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .arg("restore")
        .arg(&snapshot)
        .args(["--config", "/dev/null", "--data-dir"])
        .arg(&restored_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .arg("restore")
        .arg(&snapshot)
        .args(["--config", "/dev/null", "--data-dir"])
        .arg(&restored_dir)
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a data dir with a store needs --force"
    );

    let restored = TestApp::spawn_in(&restored_dir).await;
    assert_eq!(every_contact(&restored).await, before, "contact by contact");
    assert_eq!(
        restored.get(&format!("/v1/contacts/{gone_id}")).await.body,
        trashed_before,
        "the trash too"
    );
    let after = restored.search("after@snap.example").await;
    assert_eq!(after["total"], 0);
    let inboxes = restored.get("/v1/inboxes?counts=true").await.body;
    assert!(inboxes.to_string().contains("\"Pro\""), "{inboxes}");
    let pro = restored
        .post(
            "/v1/contacts/search",
            json!({"filter": "custom.plan = pro"}),
        )
        .await;
    assert_eq!(crate::common::hit_ids(&pro.body), [kept_id]);
    let jobs = restored.get("/v1/jobs?kind=snapshot").await.body;
    assert_eq!(jobs["jobs"][0]["state"], "failed", "{jobs}");
    restored.stop().await;
}
