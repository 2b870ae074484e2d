//! Recovery: a lost index is rebuilt, a restart resumes, a crash loses nothing
//! acknowledged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Reply, ServerProcess, TestApp, remote};

#[tokio::test]
async fn a_deleted_index_directory_is_rebuilt_from_the_store() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_in(temp.path()).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let c = app
            .create(
                json!({"name": format!("Rebuilt Person{i}"), "email": format!("p{i}@example.com")}),
            )
            .await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let gone = &ids[3];
    app.delete(&format!("/v1/contacts/{gone}")).await;
    app.stop().await;

    std::fs::remove_dir_all(temp.path().join("search")).unwrap();
    let app = TestApp::spawn_in(temp.path()).await;
    let found: HashSet<String> = app.search_ids("rebuilt").await.into_iter().collect();
    let expected: HashSet<String> = ids.iter().filter(|id| *id != gone).cloned().collect();
    assert_eq!(found, expected);
    assert_eq!(app.search_ids("p7@example.com").await, [ids[7].clone()]);
    let stats = app.stats().await;
    assert_eq!(stats["store_seq"], stats["index_seq"]);
    app.stop().await;
}

#[tokio::test]
async fn an_unreadable_index_is_rebuilt_and_a_healthy_one_resumes() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_in(temp.path()).await;
    app.create(json!({"name": "Survivor One", "email": "s1@example.com"}))
        .await;
    app.stop().await;

    // A clean restart resumes from the commit payload: same index, nothing rebuilt.
    let meta = temp.path().join("search/meta.json");
    let meta_before = std::fs::read_to_string(&meta).unwrap();
    let app = TestApp::spawn_in(temp.path()).await;
    assert_eq!(std::fs::read_to_string(&meta).unwrap(), meta_before);
    assert_eq!(app.search_ids("survivor").await.len(), 1);
    app.stop().await;

    std::fs::write(&meta, "{ not json").unwrap();
    let app = TestApp::spawn_in(temp.path()).await;
    assert_eq!(app.search_ids("survivor").await.len(), 1);
    app.stop().await;
}

#[test]
fn reindex_command_rebuilds_offline() {
    let temp = tempfile::TempDir::new().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = TestApp::spawn_in(temp.path()).await;
        app.create(json!({"name": "Offline Rebuild", "email": "o@example.com"}))
            .await;
        app.stop().await;
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .args(["reindex", "--data-dir"])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 documents"));
    // The replaced index is removed before the command exits, not left for the next
    // start to find.
    let index_dirs: Vec<String> = std::fs::read_dir(temp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("search"))
        .collect();
    assert_eq!(index_dirs, ["search"]);
    runtime.block_on(async {
        let app = TestApp::spawn_in(temp.path()).await;
        assert_eq!(app.search_ids("offline").await.len(), 1);
        app.stop().await;
    });
}

/// kill -9 during a stream of concurrent writes: every acknowledged write is stored
/// and searchable after restart, and nothing is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_writes_loses_nothing_acknowledged() {
    let temp = tempfile::TempDir::new().unwrap();
    let data_dir = temp.path().join("data");
    let server = ServerProcess::start(&data_dir);
    let base = server.base.clone();
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let client = reqwest::Client::new();

    let mut writers = Vec::new();
    for writer in 0..16 {
        let (client, base, acknowledged) = (client.clone(), base.clone(), acknowledged.clone());
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let email = format!("n{n}w{writer}end@crash.example");
                let body =
                    json!({"name": format!("Crash Writer{writer} Number{n}"), "email": email});
                let Ok(response) = client
                    .post(format!("{base}/v1/contacts"))
                    .json(&body)
                    .send()
                    .await
                else {
                    return;
                };
                let reply = Reply::from(response).await;
                if reply.status != StatusCode::CREATED {
                    return;
                }
                let id = reply.body["id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push((id, email));
            }
        }));
    }
    // Let writes and index commits interleave, then pull the plug.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 300 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::spawn_blocking(move || server.kill_hard())
        .await
        .unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 300,
        "only {} writes acknowledged",
        acknowledged.len()
    );

    let app = TestApp::spawn_in(&data_dir).await;
    app.wait_caught_up().await;
    let stats = app.stats().await;
    let stored = stats["contacts"]["active"].as_u64().unwrap() as usize;
    // At most one in-flight (unacknowledged) write per writer may also have landed.
    assert!(
        stored >= acknowledged.len() && stored <= acknowledged.len() + 16,
        "{stored} stored"
    );
    assert_eq!(
        stats["index_docs"].as_u64().unwrap() as usize,
        stored,
        "no duplicate documents"
    );
    assert_eq!(
        app.search("crash").await["total"].as_u64().unwrap() as usize,
        stored
    );
    for (id, email) in acknowledged.iter().step_by(7) {
        assert_eq!(
            app.get(&format!("/v1/contacts/{id}")).await.status,
            StatusCode::OK
        );
        let filter = format!("email = \"{email}\"");
        let exact = app
            .post("/v1/contacts/search", json!({ "filter": filter }))
            .await;
        assert_eq!(
            crate::common::hit_ids(&exact.body),
            std::slice::from_ref(id),
            "{email}"
        );
    }
    app.stop().await;
}

/// NDJSON rows with external ids `bulk-0..count`.
fn bulk_rows(count: usize) -> String {
    (0..count)
        .map(|i| {
            json!({"external_id": format!("bulk-{i}"), "name": format!("Bulk Person{i}"),
                   "email": format!("bulk{i}@load.example")})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_an_import_job_resumes_it_with_every_row_applied_once() {
    const ROWS: usize = 30_000;
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    let client = reqwest::Client::new();
    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let job = remote::start_import(&client, &base, bulk_rows(ROWS)).await;

    // Kill once some rows are stored (the job reports them), well before the end.
    let deadline = Instant::now() + Duration::from_secs(120);
    let acknowledged = loop {
        let status = remote::get_json(&client, &format!("{base}/v1/jobs/{job}")).await;
        let created = status["created"].as_u64().unwrap_or(0);
        if created >= 2_000 || status["state"] == "done" {
            break created;
        }
        assert!(
            Instant::now() < deadline,
            "the import made no progress: {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.kill_hard();

    // Restart: the job is still listed, resumes from its last committed batch and
    // ends with every row applied exactly once. The import upserts by external id,
    // so a batch applied twice would show as `updated` rows: there must be none.
    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let listed = remote::get_json(&client, &format!("{base}/v1/jobs?kind=import")).await;
    assert_eq!(listed["jobs"][0]["id"], job.as_str(), "{listed}");
    let status = remote::wait_job(&client, &base, &job, Duration::from_secs(300)).await;
    assert_eq!(status["state"], "done", "{status}");
    assert!(
        status["resumed"].as_u64().unwrap() >= 1,
        "the kill came after the end: {status}"
    );
    assert!(acknowledged < ROWS as u64);
    assert_eq!(status["failed"], 0, "{}", status["errors"][0]);
    assert_eq!(status["created"], ROWS as u64, "{status}");
    assert_eq!(status["updated"], 0, "no batch applied twice: {status}");
    assert_eq!(status["processed"], ROWS as u64);
    let stats = remote::wait_caught_up(&client, &base).await;
    assert_eq!(stats["contacts"]["active"], ROWS as u64);
    let everyone = remote::search(&client, &base, &json!({"q": "", "limit": 1})).await;
    assert_eq!(
        everyone["total"], ROWS as u64,
        "the index holds what the store holds"
    );
    let first = remote::search(&client, &base, &json!({"q": "bulk0@load.example"})).await;
    assert_eq!(first["hits"][0]["external_id"], "bulk-0");
    let last = format!("bulk{}@load.example", ROWS - 1);
    let last = remote::search(&client, &base, &json!({ "q": last })).await;
    assert_eq!(last["total"], 1);
    // The spooled upload is gone once the job is done.
    let spool = std::fs::read_dir(data.join("jobs")).map_or(0, |d| d.count());
    assert_eq!(spool, 0, "spool files left");
}

/// The segment ids named by an index's `meta.json`.
fn segment_ids(index_dir: &std::path::Path) -> HashSet<String> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(index_dir.join("meta.json")).unwrap())
            .unwrap();
    meta["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|segment| segment["segment_id"].as_str().unwrap().to_string())
        .collect()
}

/// The index syncs its files in the background, and a marker says so. After kill -9
/// a file of the last commit that does not read back whole (as after a power loss)
/// is found at the next start: the index is rebuilt from the store, and every
/// acknowledged contact is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_damaged_index_file_is_found_and_the_index_rebuilt() {
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    let index_dir = data.join("search");
    let client = reqwest::Client::new();
    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    for i in 0..20 {
        let body = json!({"name": format!("Damaged Person{i}"), "email": format!("d{i}@unsynced.example")});
        let response = client
            .post(format!("{base}/v1/contacts?wait=indexed"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    assert!(index_dir.join("contactd-unsynced").exists());
    server.kill_hard();
    assert!(
        index_dir.join("contactd-unsynced").exists(),
        "no clean stop"
    );

    let before = segment_ids(&index_dir);
    let mut damaged = 0;
    for entry in std::fs::read_dir(&index_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().replace('-', "");
        if path.extension().is_some_and(|e| e == "idx")
            && before.iter().any(|id| name == id.replace('-', ""))
        {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[0] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no postings file among {before:?}");

    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let stats = remote::wait_caught_up(&client, &base).await;
    assert_eq!(stats["index_docs"], 20);
    assert!(
        segment_ids(&index_dir).is_disjoint(&before),
        "rebuilt: no segment of the damaged index is left"
    );
    let found = remote::search(&client, &base, &json!({"q": "damaged"})).await;
    assert_eq!(found["total"], 20);
    let one = remote::search(&client, &base, &json!({"q": "d7@unsynced.example"})).await;
    assert_eq!(one["total"], 1);
    drop(server);
}
