//! Every rejected request answers the contract's error shape and changes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

/// Store sequence and contact count: unchanged when a request is rejected.
async fn fingerprint(app: &TestApp) -> (u64, Value) {
    let stats = app.stats().await;
    (app.store.committed().get(), stats["contacts"].clone())
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_400() {
    let app = TestApp::spawn().await;
    let before = fingerprint(&app).await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/v1/contacts"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        r#"{"name": "#,
        "[1,2]",
        r#"{"name": 5}"#,
        r#"{"tags": "vip"}"#,
        r#"{"nmae": "typo"}"#,
    ] {
        let reply = crate::common::Reply::from(raw(body).await.unwrap()).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    let no_type = app
        .client
        .post(app.url("/v1/contacts"))
        .body("{}")
        .send()
        .await
        .unwrap();
    crate::common::Reply::from(no_type)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(fingerprint(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn every_broken_field_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let before = fingerprint(&app).await;
    let reply = app
        .post(
            "/v1/contacts",
            json!({
                "email": "not-an-email",
                "phone": "call me maybe",
                "country": "France",
                "language": "french",
                "tags": ["ok", "  "],
                "avatar_url": "ftp://x",
                "last_interaction_at": "yesterday",
                "identities": [{"channel": "whatsapp", "value": "abc"}],
                "custom_fields": {"Bad Key": 1, "nested": {"a": 1}}
            }),
        )
        .await;
    let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for expected in [
        "email",
        "phone",
        "country",
        "language",
        "tags[1]",
        "avatar_url",
        "last_interaction_at",
        "identities[0].value",
        "custom_fields.Bad Key",
        "custom_fields.nested",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    assert_eq!(fingerprint(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn require_rule_defaults_to_email_or_phone() {
    let app = TestApp::spawn().await;
    let reply = app
        .post("/v1/contacts", json!({"name": "Nameless Reach"}))
        .await;
    let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "email");
    app.create(json!({"name": "Phone Only", "phone": "06 11 22 33 44"}))
        .await;
    app.stop().await;
}

#[tokio::test]
async fn taken_identities_name_their_holder_and_change_nothing() {
    let app = TestApp::spawn().await;
    let holder = app
        .create(
            json!({"email": "owner@example.com", "phone": "+33 6 00 00 00 01",
                       "identities": [{"channel": "telegram", "value": "@Owner"}],
                       "external_id": "crm-1"}),
        )
        .await;
    let holder_id = holder["id"].as_str().unwrap();
    let before = fingerprint(&app).await;

    // Same email in another case, same phone in national format, same handle.
    let reply = app
        .post(
            "/v1/contacts",
            json!({"email": "OWNER@example.com", "phone": "06 00 00 00 01",
                   "identities": [{"channel": "telegram", "value": "@owner"}]}),
        )
        .await;
    let error = reply.expect_error(StatusCode::CONFLICT, "identity_taken");
    let details = error["details"].as_array().unwrap();
    assert_eq!(details.len(), 3, "{error}");
    assert!(details.iter().all(|d| d["contact_id"] == holder_id));

    let reply = app
        .post(
            "/v1/contacts",
            json!({"email": "new@example.com", "external_id": "crm-1"}),
        )
        .await;
    let error = reply.expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(error["details"][0]["contact_id"], holder_id);

    // A patch of another contact onto a taken identity is refused too.
    let other = app.create(json!({"email": "other@example.com"})).await;
    let path = format!("/v1/contacts/{}", other["id"].as_str().unwrap());
    let before_patch = fingerprint(&app).await;
    app.patch(&path, json!({"phone": "+33600000001"}))
        .await
        .expect_error(StatusCode::CONFLICT, "identity_taken");
    assert_eq!(fingerprint(&app).await, before_patch);
    assert_eq!(app.get(&path).await.body["version"], 1);
    assert_ne!(before, before_patch, "the create in between was stored");
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = crate::common::test_config(temp.path());
    config.max_body_bytes = 2048;
    let app = TestApp::spawn_with(config).await;
    let before = fingerprint(&app).await;
    let notes = "x".repeat(4096);
    app.post(
        "/v1/contacts",
        json!({"email": "big@example.com", "notes": notes}),
    )
    .await
    .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(fingerprint(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/contacts?limit=0",
        "/v1/contacts?limit=1001",
        "/v1/contacts?limit=ten",
        "/v1/contacts?no_such_param=1",
        "/v1/contacts?min_seq=-1",
    ] {
        app.get(path)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    app.post(
        "/v1/contacts?wait=forever",
        json!({"email": "w@example.com"}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(app.stats().await["contacts"]["active"], 0);
    app.stop().await;
}
