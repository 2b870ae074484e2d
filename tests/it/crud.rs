//! Create, read, patch (merge patch), soft delete; versions, ETag, If-Match, X-Seq.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::TestApp;

fn helene() -> serde_json::Value {
    json!({
        "external_id": "crm-000123",
        "name": "Hélène Dupont",
        "email": "Helene.Dupont@Orange.fr",
        "phone": "+33 6 12 34 56 78",
        "identities": [{"channel": "whatsapp", "value": "+33612345678", "account": "wa-main"},
                       {"channel": "email", "value": "h.dupont@gmail.com"}],
        "country": "fr",
        "language": "FR",
        "tags": ["vip", "VIP ", "newsletter"],
        "custom_fields": {"plan": "pro", "lifetime_value": 1234.5, "interests": ["ski", "jazz"]},
        "assignee": "agent-12",
        "notes": "Prefers WhatsApp",
        "last_interaction_at": "2026-11-02T11:00:00+01:00",
        "created_at": "2024-01-15"
    })
}

/// Defines the custom fields the sample contact uses.
pub async fn define_sample_fields(app: &TestApp) {
    for def in [
        json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": ["free", "pro", "Platinum"]}),
        json!({"key": "lifetime_value", "type": "number"}),
        json!({"key": "interests", "type": "multiselect", "options": ["ski", "jazz", "kitesurf"]}),
        json!({"key": "seats", "type": "number"}),
    ] {
        let reply = app.post("/v1/custom-fields", def).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
}

#[tokio::test]
async fn create_normalizes_computes_and_can_be_read_back() {
    let app = TestApp::spawn().await;
    define_sample_fields(&app).await;
    let reply = app.post("/v1/contacts", helene()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let contact = &reply.body;
    let id = contact["id"].as_str().unwrap();
    assert_eq!(id.len(), 26, "a ULID");
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/contacts/{id}").as_str())
    );
    assert_eq!(reply.header("etag"), Some("\"1\""));
    assert!(reply.header("x-seq").unwrap().parse::<u64>().unwrap() >= 1);

    assert_eq!(contact["email"], "helene.dupont@orange.fr");
    assert_eq!(contact["phone"], "+33 6 12 34 56 78");
    assert_eq!(contact["phone_e164"], "+33612345678");
    assert_eq!(contact["display_name"], "Hélène Dupont");
    assert_eq!(contact["country"], "FR");
    assert_eq!(contact["language"], "fr");
    assert_eq!(contact["tags"], json!(["vip", "newsletter"]));
    assert_eq!(contact["pending_actions"], json!([]));
    assert_eq!(contact["status"], "active");
    assert_eq!(contact["version"], 1);
    assert_eq!(contact["created_at"], "2024-01-15T00:00:00Z");
    assert_eq!(contact["last_interaction_at"], "2026-11-02T10:00:00Z");
    assert_eq!(contact["identities"].as_array().unwrap().len(), 2);

    let read = app.get(&format!("/v1/contacts/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, reply.body);
    assert_eq!(read.header("etag"), Some("\"1\""));
    app.stop().await;
}

#[tokio::test]
async fn display_name_falls_back_and_pending_actions_follow_contact_info() {
    let app = TestApp::spawn().await;
    let by_email = app.create(json!({"email": "a@example.com"})).await;
    assert_eq!(by_email["display_name"], "a@example.com");
    let by_phone = app.create(json!({"phone": "+49 30 1234567"})).await;
    assert_eq!(by_phone["display_name"], "+49 30 1234567");
    assert_eq!(by_phone["phone_e164"], "+49301234567");
    app.stop().await;
}

#[tokio::test]
async fn patch_is_a_json_merge_patch_with_versions() {
    let app = TestApp::spawn().await;
    define_sample_fields(&app).await;
    let created = app.create(helene()).await;
    let path = format!("/v1/contacts/{}", created["id"].as_str().unwrap());

    let reply = app
        .patch(&path, json!({"name": null, "notes": "Call after 6pm", "custom_fields": {"plan": null, "seats": 3}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let patched = &reply.body;
    assert_eq!(patched["name"], json!(null));
    assert_eq!(patched["display_name"], "helene.dupont@orange.fr");
    assert_eq!(patched["notes"], "Call after 6pm");
    assert_eq!(
        patched["custom_fields"],
        json!({"lifetime_value": 1234.5, "interests": ["ski", "jazz"], "seats": 3})
    );
    assert_eq!(patched["tags"], created["tags"], "untouched fields stay");
    assert_eq!(patched["created_at"], created["created_at"]);
    assert_eq!(patched["version"], 2);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    let seq_before: u64 = reply.header("x-seq").unwrap().parse().unwrap();

    // If-Match with a stale version: 412 and nothing changes.
    let stale = app
        .client
        .patch(app.url(&path))
        .header("if-match", "\"1\"")
        .json(&json!({"notes": "lost update"}))
        .send()
        .await
        .unwrap();
    let stale = crate::common::Reply::from(stale).await;
    stale.expect_error(StatusCode::PRECONDITION_FAILED, "version_mismatch");

    let fresh = app
        .client
        .patch(app.url(&path))
        .header("if-match", "\"2\"")
        .json(&json!({"notes": "kept"}))
        .send()
        .await
        .unwrap();
    let fresh = crate::common::Reply::from(fresh).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.body["version"], 3);
    let seq_after: u64 = fresh.header("x-seq").unwrap().parse().unwrap();
    assert!(seq_after > seq_before);

    // Removing both email and phone breaks the require rule.
    app.patch(&path, json!({"email": null, "phone": null}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // Read-only fields cannot be patched.
    app.patch(&path, json!({"version": 9}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.patch(&path, json!(["not", "an", "object"]))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let read = app.get(&path).await;
    assert_eq!(read.body["notes"], "kept");
    assert_eq!(read.body["version"], 3);
    app.stop().await;
}

#[tokio::test]
async fn delete_is_soft_leaves_search_and_releases_identities() {
    let app = TestApp::spawn().await;
    define_sample_fields(&app).await;
    let created = app.create(helene()).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/contacts/{id}");
    assert_eq!(app.search_ids("helene").await, [id]);

    let stale = app
        .client
        .delete(app.url(&path))
        .header("if-match", "\"5\"")
        .send()
        .await
        .unwrap();
    crate::common::Reply::from(stale)
        .await
        .expect_error(StatusCode::PRECONDITION_FAILED, "version_mismatch");

    let deleted = app
        .call(Method::DELETE, &format!("{path}?wait=indexed"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["status"], "deleted");
    assert!(deleted.body["deleted_at"].is_string());
    assert!(
        app.search_ids("helene").await.is_empty(),
        "deleted contacts leave search"
    );

    // GET still shows it (any status); a second delete is a conflict.
    assert_eq!(app.get(&path).await.body["status"], "deleted");
    app.delete(&path)
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.patch(&path, json!({"notes": "x"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");

    // Its identities are free again.
    let reuse = app
        .create(json!({"email": "helene.dupont@orange.fr", "phone": "06 12 34 56 78"}))
        .await;
    assert_ne!(reuse["id"], created["id"]);
    let stats = app.stats().await;
    assert_eq!(stats["contacts"]["active"], 1);
    assert_eq!(stats["contacts"]["deleted"], 1);
    app.stop().await;
}

#[tokio::test]
async fn unknown_contact_is_404_everywhere() {
    let app = TestApp::spawn().await;
    let missing = "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M";
    app.get(missing)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.patch(missing, json!({"name": "x"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete(missing)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/v1/nothing-here")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_single_contact_is_projected_by_fields() {
    let app = TestApp::spawn().await;
    let created = app
        .create(json!({"name": "Projected", "email": "p@x.example", "notes": "n"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let reply = app
        .get(&format!("/v1/contacts/{id}?fields=name,email"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"id": id, "name": "Projected", "email": "p@x.example"})
    );
    assert!(reply.header("etag").is_some());
    app.get(&format!("/v1/contacts/{id}?fields=password"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.stop().await;
}
