//! Import and export: round trips, per-row errors, dry runs, upserts.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Reply, TestApp};

const FIELDS: [&str; 5] = [
    r#"{"key": "plan", "type": "dropdown", "options": ["free", "pro"]}"#,
    r#"{"key": "score", "type": "number"}"#,
    r#"{"key": "skills", "type": "multiselect", "options": ["rust", "sales"]}"#,
    r#"{"key": "renewal", "type": "date"}"#,
    r#"{"key": "vip", "type": "checkbox"}"#,
];

async fn define_fields(app: &TestApp) {
    for field in FIELDS {
        let reply = app
            .post("/v1/custom-fields", serde_json::from_str(field).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
}

async fn upload(app: &TestApp, query: &str, content_type: &str, body: String) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/v1/contacts/import{query}")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let reply = Reply::from(response).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_string();
    for _ in 0..500 {
        let job = app.get(&format!("/v1/jobs/{id}")).await.body;
        if job["state"] == "done" || job["state"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("import job {id} did not finish");
}

async fn export(app: &TestApp, query: &str) -> String {
    let response = app
        .client
        .get(app.url(&format!("/v1/contacts/export{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Every stored active contact as its exported row, keyed by email.
async fn rows_by_email(app: &TestApp) -> BTreeMap<String, Value> {
    export(app, "?format=ndjson")
        .await
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|row| (row["email"].as_str().unwrap().to_string(), row))
        .collect()
}

async fn seed(app: &TestApp) {
    define_fields(app).await;
    for contact in [
        json!({"name": "Hélène Dupont", "email": "helene@orange.fr", "phone": "+33 6 12 34 56 78",
               "external_id": "crm-1", "country": "FR", "language": "fr", "tags": ["vip", "Lead"],
               "identities": [{"channel": "whatsapp", "value": "+33 7 81 22 33 44", "account": "wa-main"},
                              {"channel": "telegram", "value": "@helene"}],
               "custom_fields": {"plan": "pro", "score": 12.5, "skills": ["rust", "sales"], "renewal": "2027-03-01", "vip": true},
               "notes": "Préfère WhatsApp; rappeler \"demain\"", "assignee": "agent-12", "favorite": true,
               "last_interaction_at": "2026-11-02T10:00:00Z", "last_interacted_channel": "whatsapp",
               "created_at": "2024-01-15T08:30:00.250Z"}),
        json!({"name": "Łukasz Müller", "email": "lukasz@example.de", "tags": [], "created_at": "2025-06-01"}),
        json!({"email": "nameless@example.com", "custom_fields": {"score": -3}}),
    ] {
        app.create(contact).await;
    }
}

#[tokio::test]
async fn export_then_import_into_an_empty_server_gives_back_the_same_contacts() {
    let source = TestApp::spawn().await;
    seed(&source).await;
    let original = rows_by_email(&source).await;
    assert_eq!(original.len(), 3);

    for (format, content_type) in [("ndjson", "application/x-ndjson"), ("csv", "text/csv")] {
        let file = export(&source, &format!("?format={format}")).await;
        let target = TestApp::spawn().await;
        define_fields(&target).await;
        let job = upload(&target, "", content_type, file).await;
        assert_eq!(job["state"], "done", "{format}: {job}");
        assert_eq!(job["created"], 3, "{format}: {job}");
        assert_eq!(job["failed"], 0, "{format}: {job}");
        target.wait_caught_up().await;
        assert_eq!(
            rows_by_email(&target).await,
            original,
            "{format} round trip"
        );
        assert_eq!(
            target.search_ids("helene").await.len(),
            1,
            "imported contacts are searchable"
        );
        target.stop().await;
    }
    source.stop().await;
}

#[tokio::test]
async fn export_honours_filters_and_fields() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let ndjson = export(&app, "?filter=country%20%3D%20FR&fields=name,email").await;
    let rows: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows,
        [json!({"name": "Hélène Dupont", "email": "helene@orange.fr"})]
    );
    let csv = export(&app, "?format=csv&fields=email,tags&q=helene").await;
    assert_eq!(csv, "email,tags\nhelene@orange.fr,vip;Lead\n");
    app.get("/v1/contacts/export?format=xml")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/contacts/export?filter=nope%20%3D%201")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    app.stop().await;
}

#[tokio::test]
async fn bad_rows_are_reported_with_line_and_field_and_never_stop_good_ones() {
    let app = TestApp::spawn().await;
    app.create(json!({"email": "taken@example.com"})).await;
    let file = [
        r#"{"name": "Good One", "email": "good1@example.com"}"#,
        r#"{"name": "Bad Email", "email": "not-an-email"}"#,
        r#"{"name": "Unknown Field", "email": "u@example.com", "shoe": 42}"#,
        "",
        r#"{"name": "Broken JSON", "email": "#,
        r#"{"name": "Taken", "email": "TAKEN@example.com"}"#,
        r#"{"name": "Good Two", "email": "good2@example.com", "created_at": "2020-02-02"}"#,
    ]
    .join("\n");

    let dry = upload(
        &app,
        "?dry_run=true&mode=create",
        "application/x-ndjson",
        file.clone(),
    )
    .await;
    assert_eq!(
        (dry["created"].as_u64(), dry["failed"].as_u64()),
        (Some(2), Some(4)),
        "{dry}"
    );
    assert_eq!(
        app.stats().await["contacts"]["active"],
        1,
        "a dry run stores nothing"
    );

    let job = upload(&app, "?mode=create", "application/x-ndjson", file).await;
    assert_eq!(job["state"], "done");
    assert_eq!(job["total"], 6);
    assert_eq!(
        (job["created"].as_u64(), job["failed"].as_u64()),
        (Some(2), Some(4)),
        "{job}"
    );
    let errors: Vec<(u64, String)> = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (2, "email".into()),
            (3, "row".into()),
            (5, "row".into()),
            (6, "email".into())
        ],
        "{job}"
    );
    app.wait_caught_up().await;
    let good = app.search("good").await;
    assert_eq!(good["total"], 2);
    app.stop().await;
}

#[tokio::test]
async fn upsert_matches_by_external_id_email_or_identity() {
    let app = TestApp::spawn().await;
    let existing = app
        .create(json!({"external_id": "crm-7", "email": "old@example.com", "name": "Old Name", "tags": ["keep"]}))
        .await;
    let job = upload(
        &app,
        "",
        "text/csv",
        "external_id,name,country,email\ncrm-7,New Name,DE,\ncrm-8,Fresh,FR,fresh@example.com\n"
            .into(),
    )
    .await;
    assert_eq!(
        (job["created"].as_u64(), job["updated"].as_u64()),
        (Some(1), Some(1)),
        "{job}"
    );
    let updated = app
        .get(&format!(
            "/v1/contacts/{}",
            existing["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(updated["name"], "New Name");
    assert_eq!(updated["country"], "DE");
    assert_eq!(
        updated["tags"],
        json!(["keep"]),
        "columns absent from the row are kept"
    );
    assert_eq!(updated["email"], "old@example.com");

    let job = upload(
        &app,
        "?match=email",
        "application/x-ndjson",
        r#"{"email": "OLD@example.com", "assignee": "agent-1"}"#.into(),
    )
    .await;
    assert_eq!(job["updated"], 1, "{job}");
    let job = upload(
        &app,
        "?match=identity",
        "application/x-ndjson",
        r#"{"email": "old@example.com", "language": "de"}"#.into(),
    )
    .await;
    assert_eq!(job["updated"], 1, "{job}");
    let after = app
        .get(&format!(
            "/v1/contacts/{}",
            existing["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(
        (after["assignee"].as_str(), after["language"].as_str()),
        (Some("agent-1"), Some("de"))
    );

    let failed = upload(&app, "", "text/csv", "email,shoe_size\na@b.co,42\n".into()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let reply = app
        .client
        .post(app.url("/v1/contacts/import"))
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    Reply::from(reply)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/jobs/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

/// A load keeps several batches of rows queued on the writer at once (they share
/// group commits); the rows still apply in file order. Here a contact created in
/// the first batch is updated in the second and again in the third, and the last
/// row wins.
#[tokio::test]
async fn rows_apply_in_file_order_across_batches_queued_together() {
    let app = TestApp::spawn().await;
    let mut lines: Vec<String> = (0..4_500)
        .map(|i| {
            json!({"external_id": format!("ext-{i}"), "email": format!("row{i}@order.example")})
                .to_string()
        })
        .collect();
    lines[2_500] = json!({"external_id": "ext-7", "name": "Second batch"}).to_string();
    lines[4_400] = json!({"external_id": "ext-7", "name": "Third batch"}).to_string();
    let job = upload(&app, "", "application/x-ndjson", lines.join("\n")).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        (job["created"].as_u64(), job["updated"].as_u64()),
        (Some(4_498), Some(2)),
        "{job}"
    );
    app.wait_caught_up().await;
    let found = app
        .get("/v1/contacts?filter=external_id%20%3D%20%22ext-7%22")
        .await
        .body;
    assert_eq!(found["hits"][0]["name"], "Third batch", "{found}");
    assert_eq!(found["hits"][0]["email"], "row7@order.example", "{found}");
    app.stop().await;
}

#[tokio::test]
async fn generated_contacts_are_valid_and_deterministic() {
    let run = |seed: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
            .args(["generate", "--count", "3000", "--seed", seed])
            .output()
            .unwrap()
    };
    let (first, again, other) = (run("42"), run("42"), run("43"));
    assert!(first.status.success());
    assert_eq!(first.stdout, again.stdout, "same seed, same bytes");
    assert_ne!(first.stdout, other.stdout);

    let definitions = std::process::Command::new(env!("CARGO_BIN_EXE_contactd"))
        .args(["generate", "--definitions"])
        .output()
        .unwrap();
    let definitions: Vec<Value> = serde_json::from_slice(&definitions.stdout).unwrap();
    let app = TestApp::spawn().await;
    for definition in definitions {
        assert_eq!(
            app.post("/v1/custom-fields", definition).await.status,
            StatusCode::CREATED
        );
    }
    let job = upload(
        &app,
        "?mode=create",
        "application/x-ndjson",
        String::from_utf8(first.stdout).unwrap(),
    )
    .await;
    assert_eq!(
        (job["created"].as_u64(), job["failed"].as_u64()),
        (Some(3000), Some(0)),
        "{job}"
    );
    app.wait_caught_up().await;
    let facets = app
        .post(
            "/v1/contacts/search",
            json!({"facets": ["country", "custom.plan"], "limit": 1}),
        )
        .await
        .body;
    assert_eq!(
        facets["facets"]["country"].as_object().unwrap().len(),
        8,
        "every locale is represented"
    );
    assert!(
        app.search("muller").await["total"].as_u64().unwrap() > 0,
        "accents fold"
    );
    app.stop().await;
}
