//! Identity resolution: lookup, identify (find-or-create), uniqueness rules.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, test_config};

#[tokio::test]
async fn lookup_resolves_emails_phones_and_channel_handles_exactly() {
    let app = TestApp::spawn().await;
    let contact = app
        .create(
            json!({"email": "Helene@Orange.fr", "phone": "+33 6 12 34 56 78",
                       "identities": [{"channel": "whatsapp", "value": "+33 7 81 22 33 44"},
                                      {"channel": "telegram", "value": "@HeleneD"}]}),
        )
        .await;
    let id = &contact["id"];
    for query in [
        "email=HELENE%40orange.fr",
        "phone=06%2012%2034%2056%2078",
        "phone=%2B33612345678",
        "phone=0781223344",
        "channel=whatsapp&value=%2B33781223344",
        "channel=telegram&value=%40helened",
    ] {
        let reply = app.get(&format!("/v1/contacts/lookup?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        assert_eq!(&reply.body["id"], id, "{query}");
    }
    for query in [
        "email=nobody%40orange.fr",
        "phone=0612345679",
        "channel=telegram&value=%40other",
    ] {
        app.get(&format!("/v1/contacts/lookup?{query}"))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    for query in [
        "",
        "email=a%40b.c&phone=0612345678",
        "email=not-an-email",
        "channel=telegram",
    ] {
        app.get(&format!("/v1/contacts/lookup?{query}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    // A deleted contact no longer resolves.
    app.delete(&format!("/v1/contacts/{}", id.as_str().unwrap()))
        .await;
    app.get("/v1/contacts/lookup?email=helene%40orange.fr")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn identify_creates_without_email_or_phone_then_finds_and_fills_only_empty_fields() {
    let app = TestApp::spawn().await;
    let first = app
        .post("/v1/contacts/identify?wait=indexed",
              json!({"identities": [{"channel": "instagram", "value": "@sunny.side"}], "name": "Sunny"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["created"], true);
    let contact = &first.body["contact"];
    assert_eq!(contact["pending_actions"], json!(["missing_contact_info"]));
    assert_eq!(contact["display_name"], "Sunny");
    let id = contact["id"].clone();

    let again = app
        .post(
            "/v1/contacts/identify",
            json!({"identities": [{"channel": "instagram", "value": "@Sunny.Side"},
                                    {"channel": "email", "value": "sunny@example.com"}],
                     "name": "Sunny From Another Channel", "language": "en"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["created"], false);
    let found = &again.body["contact"];
    assert_eq!(found["id"], id);
    assert_eq!(
        found["name"], "Sunny",
        "a filled field is never overwritten"
    );
    assert_eq!(found["language"], "en", "an empty field is filled");
    assert_eq!(
        found["email"], "sunny@example.com",
        "an email identity fills the empty email"
    );
    assert_eq!(found["pending_actions"], json!([]));

    // Nothing new: no write at all.
    let same = app
        .post(
            "/v1/contacts/identify",
            json!({"identities": [{"channel": "email", "value": "SUNNY@example.com"}]}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["contact"]["version"], found["version"]);
    app.post("/v1/contacts/identify", json!({"name": "No identity"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_identifies_create_exactly_one_contact() {
    let app = TestApp::spawn().await;
    let mut calls = Vec::new();
    for _ in 0..50 {
        let client = app.client.clone();
        let url = app.url("/v1/contacts/identify");
        calls.push(tokio::spawn(async move {
            let body = json!({"identities": [{"channel": "whatsapp", "value": "+33 6 55 44 33 22"}], "name": "Racy"});
            let response = client.post(url).json(&body).send().await.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::CREATED,
            "{status} {body}"
        );
        created += usize::from(body["created"] == true);
        ids.insert(body["contact"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "every call resolved to the same contact");
    assert_eq!(created, 1);
    assert_eq!(app.stats().await["contacts"]["active"], 1);
    app.stop().await;
}

#[tokio::test]
async fn unique_name_compares_case_and_accent_insensitively() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    config.rules.unique_name = true;
    let app = TestApp::spawn_with(config).await;
    let first = app
        .create(json!({"name": "Hélène Dupont", "email": "a@example.com"}))
        .await;
    let reply = app
        .post(
            "/v1/contacts",
            json!({"name": "helene  DUPONT", "email": "b@example.com"}),
        )
        .await;
    let error = reply.expect_error(StatusCode::CONFLICT, "name_taken");
    assert_eq!(error["details"][0]["contact_id"], first["id"]);
    // Once the first leaves (trash), the name is free.
    app.delete(&format!("/v1/contacts/{}", first["id"].as_str().unwrap()))
        .await;
    app.create(json!({"name": "Helene Dupont", "email": "b@example.com"}))
        .await;
    app.stop().await;
}

#[tokio::test]
async fn unique_identities_can_be_turned_off() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    config.rules.unique_identities = false;
    let app = TestApp::spawn_with(config).await;
    app.create(json!({"email": "shared@example.com", "name": "One"}))
        .await;
    app.create(json!({"email": "shared@example.com", "name": "Two"}))
        .await;
    assert_eq!(app.search("shared").await["total"], 2);
    assert_eq!(
        app.get("/v1/contacts/lookup?email=shared%40example.com")
            .await
            .status,
        StatusCode::OK
    );
    app.stop().await;
}
