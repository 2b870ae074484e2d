//! Lossless migration: a whole-server dump (`GET /v1/admin/dump`, `contactd export
//! --all`) loaded into an empty server (`POST /v1/admin/load`, `contactd import
//! --all`) gives back the same records, and the loaded server works on them: search,
//! unmerge, restore from the trash, claims.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

async fn dump(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/v1/admin/dump"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The records of a dump without its header (which names when it was taken).
fn records(dump: &str) -> Vec<Value> {
    let mut lines = dump
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let header = lines.next().unwrap();
    assert_eq!(header["kind"], "header");
    assert_eq!(header["format"], 1);
    lines.collect()
}

async fn load(app: &TestApp, dump: String) -> crate::common::Reply {
    let response = app
        .client
        .post(app.url("/v1/admin/load"))
        .header("content-type", "application/x-ndjson")
        .body(dump)
        .send()
        .await
        .unwrap();
    crate::common::Reply::from(response).await
}

/// Loads `dump` and checks it is refused with a 400 whose message names `needle`.
async fn load_refused(app: &TestApp, dump: String, needle: &str) {
    let refused = load(app, dump).await;
    refused.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle}: {message}");
}

fn contactd(args: &[&std::ffi::OsStr]) -> std::process::Output {
    crate::common::run_contactd(args, None, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_loaded_into_an_empty_server_gives_back_every_record() {
    let temp = tempfile::TempDir::new().unwrap();
    let source_dir = temp.path().join("source");
    let source = TestApp::spawn_in(&source_dir).await;
    let field = source
        .post(
            "/v1/custom-fields",
            json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": ["free", "pro"]}),
        )
        .await;
    assert_eq!(field.status, StatusCode::CREATED);
    let company = source
        .post(
            "/v1/companies",
            json!({"name": "Acme", "domain": "acme.example"}),
        )
        .await
        .body;
    let survivor = source
        .create(
            json!({"name": "Hélène Dupont", "email": "helene@acme.example",
                        "phone": "+33 6 12 34 56 78", "company_id": company["id"],
                        "tags": ["vip"], "custom_fields": {"plan": "pro"},
                        "identities": [{"channel": "whatsapp", "value": "+33 6 12 34 56 78"}]}),
        )
        .await;
    let survivor_id = survivor["id"].as_str().unwrap().to_string();
    let other = source
        .create(json!({"name": "H. Dupont", "email": "h.dupont@gmail.com", "external_id": "crm-7"}))
        .await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let merged = source
        .post(
            &format!("/v1/contacts/{survivor_id}/merge"),
            json!({"other_id": other_id}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    let trashed = source
        .create(json!({"name": "In The Trash", "email": "trash@acme.example"}))
        .await;
    let trashed_id = trashed["id"].as_str().unwrap().to_string();
    assert_eq!(
        source
            .delete(&format!("/v1/contacts/{trashed_id}"))
            .await
            .status,
        StatusCode::OK
    );
    let erased = source
        .create(json!({"name": "Erased", "email": "erased@acme.example"}))
        .await;
    let erased_id = erased["id"].as_str().unwrap();
    assert_eq!(
        source
            .delete(&format!("/v1/contacts/{erased_id}?permanent=true"))
            .await
            .status,
        StatusCode::OK
    );
    for i in 0..30 {
        source
            .create(json!({"name": format!("Plain Person{i}"), "phone": format!("+33 6 00 00 00 {i:02}")}))
            .await;
    }
    let inbox = source
        .post(
            "/v1/inboxes",
            json!({"name": "Pro", "filter": "custom.plan = pro", "columns": ["name", "email"]}),
        )
        .await;
    assert_eq!(inbox.status, StatusCode::CREATED);

    let over_http = dump(&source).await;
    let kinds: Vec<String> = records(&over_http)
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    for kind in ["custom_field", "company", "inbox", "contact", "merge"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in the dump");
    }
    assert!(
        !over_http.contains("erased@acme.example"),
        "an erased contact is not dumped"
    );
    source.stop().await;

    // The CLI dump of the stopped data directory holds the same records.
    let file = temp.path().join("dump.ndjson");
    let exported = contactd(&[
        "export".as_ref(),
        "--all".as_ref(),
        "--config".as_ref(),
        "/dev/null".as_ref(),
        "--data-dir".as_ref(),
        source_dir.as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let from_cli = std::fs::read_to_string(&file).unwrap();
    assert_eq!(records(&from_cli), records(&over_http));

    // Over HTTP into an empty server: every record comes back as it was, from the
    // store file packed after the load (the threshold lowered to see it).
    let target_dir = tempfile::TempDir::new().unwrap();
    let mut config = crate::common::test_config(target_dir.path());
    config.store.compact_after_import_rows = 10;
    let target = TestApp::spawn_with(config).await;
    let loaded = load(&target, over_http.clone()).await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.body);
    assert_eq!(loaded.body["contacts"], 33);
    assert_eq!(loaded.body["merges"], 1);
    target.wait_compactions(1).await;
    assert_eq!(
        records(&dump(&target).await),
        records(&over_http),
        "record by record"
    );
    target.wait_caught_up().await;

    // ... and the server works on them.
    let found = target.search("helene").await;
    assert_eq!(
        crate::common::hit_ids(&found),
        std::slice::from_ref(&survivor_id)
    );
    let by_phone = target.search("06 00 00 00 07").await;
    assert_eq!(by_phone["total"], 1);
    target
        .post(
            "/v1/contacts",
            json!({"name": "Copy", "email": "helene@acme.example"}),
        )
        .await
        .expect_error(StatusCode::CONFLICT, "identity_taken");
    let unmerged = target
        .post(
            &format!("/v1/contacts/{survivor_id}/unmerge"),
            json!({"other_id": other_id}),
        )
        .await;
    assert_eq!(unmerged.status, StatusCode::OK, "{}", unmerged.body);
    let back = target.get(&format!("/v1/contacts/{other_id}")).await.body;
    assert_eq!(back["status"], "active");
    assert_eq!(back["external_id"], "crm-7");
    let restored = target
        .post(&format!("/v1/contacts/{trashed_id}/restore"), json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    let stats = target.stats().await;
    assert_eq!(stats["contacts"]["active"], 33, "{stats}");

    // A server that holds records refuses a load, and changes nothing.
    let before = dump(&target).await;
    load(&target, over_http.clone())
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(records(&dump(&target).await), records(&before));
    target.stop().await;

    let empty = TestApp::spawn().await;
    load(&empty, "{\"kind\": \"contact\"}\n".into())
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let no_header: String = over_http
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    load_refused(&empty, no_header, "line 1").await;
    // Claims store ids as ULID bits: a dump whose ids are not ULIDs is refused.
    let foreign_id: String = over_http
        .lines()
        .map(|line| {
            let mut line: Value = serde_json::from_str(line).unwrap();
            if line["kind"] == "contact" {
                line["record"]["id"] = json!("crm-contact-7");
            }
            format!("{line}\n")
        })
        .collect();
    load_refused(&empty, foreign_id, "crm-contact-7").await;
    assert_eq!(
        empty.stats().await["store_seq"],
        0,
        "a refused load changes nothing"
    );
    empty.stop().await;

    // The CLI loads a dump into a stopped, empty data directory, and packs the store
    // file before it exits (the threshold lowered to see it).
    let offline_dir = temp.path().join("offline");
    let imported = crate::common::run_contactd(
        &[
            "import".as_ref(),
            file.as_os_str(),
            "--all".as_ref(),
            "--config".as_ref(),
            "/dev/null".as_ref(),
            "--data-dir".as_ref(),
            offline_dir.as_os_str(),
        ],
        None,
        &[("CONTACTD_STORE__COMPACT_AFTER_IMPORT_ROWS", "10")],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let printed = String::from_utf8_lossy(&imported.stdout);
    assert!(printed.contains("store file packed"), "{printed}");
    let offline = TestApp::spawn_in(&offline_dir).await;
    assert_eq!(records(&dump(&offline).await), records(&over_http));
    assert_eq!(offline.search("helene").await["total"], 1);
    offline.stop().await;
}
