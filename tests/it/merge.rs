//! Merge and unmerge: what moves, what comes back, and what survives a restart.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Reply, TestApp};

async fn pair(app: &TestApp) -> (Value, Value) {
    let this = app
        .create(json!({"name": "Hélène Dupont", "email": "helene@orange.fr", "tags": ["vip"],
                       "last_interaction_at": "2026-10-01T00:00:00Z", "last_interacted_channel": "email",
                       "created_at": "2025-05-01"}))
        .await;
    let other = app
        .create(json!({"name": "H. Dupont (WhatsApp)", "phone": "+33 6 12 34 56 78", "country": "FR",
                       "email": "h.dupont@gmail.com", "tags": ["VIP", "whatsapp-lead"],
                       "identities": [{"channel": "telegram", "value": "@hdupont"}],
                       "last_interaction_at": "2026-11-02T10:00:00Z", "last_interacted_channel": "whatsapp",
                       "created_at": "2024-01-15"}))
        .await;
    (this, other)
}

fn id(contact: &Value) -> &str {
    contact["id"].as_str().unwrap()
}

#[tokio::test]
async fn merge_unites_identities_and_tags_and_takes_the_chosen_sides() {
    let app = TestApp::spawn().await;
    let (this, other) = pair(&app).await;
    let body = json!({"other_id": id(&other), "keep": {"email": "other"}});

    let preview = app
        .post(
            &format!("/v1/contacts/{}/merge?dry_run=true", id(&this)),
            body.clone(),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["contact"]["email"], "h.dupont@gmail.com");
    assert_eq!(
        app.get(&format!("/v1/contacts/{}", id(&other))).await.body["status"],
        "active",
        "a dry run stores nothing"
    );

    let reply = app
        .post(
            &format!("/v1/contacts/{}/merge?wait=indexed", id(&this)),
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let merged = &reply.body["contact"];
    assert_eq!(merged["id"], this["id"]);
    assert_eq!(
        merged["name"], "Hélène Dupont",
        "not listed in keep: this side"
    );
    assert_eq!(merged["email"], "h.dupont@gmail.com", "keep.email = other");
    assert_eq!(
        merged["phone_e164"], "+33612345678",
        "empty here: filled from the other"
    );
    assert_eq!(merged["country"], "FR");
    assert_eq!(merged["tags"], json!(["vip", "whatsapp-lead"]));
    assert_eq!(
        merged["last_interaction_at"], "2026-11-02T10:00:00Z",
        "activity takes the latest"
    );
    assert_eq!(merged["last_interacted_channel"], "whatsapp");
    assert_eq!(merged["created_at"], "2024-01-15T00:00:00Z");
    let channels: Vec<(String, String)> = merged["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["channel"].as_str().unwrap().into(),
                i["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        channels.contains(&("telegram".into(), "@hdupont".into())),
        "{channels:?}"
    );
    assert!(
        channels.contains(&("email".into(), "helene@orange.fr".into())),
        "the old primary stays an identity"
    );

    let absorbed = app.get(&format!("/v1/contacts/{}", id(&other))).await.body;
    assert_eq!(absorbed["status"], "merged");
    assert_eq!(absorbed["merged_into"], this["id"]);
    assert_eq!(
        app.search_ids("dupont").await,
        [id(&this)],
        "the merged contact leaves search"
    );
    for query in [
        "email=helene%40orange.fr",
        "email=h.dupont%40gmail.com",
        "phone=0612345678",
        "channel=telegram&value=%40hdupont",
    ] {
        assert_eq!(
            app.get(&format!("/v1/contacts/lookup?{query}")).await.body["id"],
            this["id"],
            "{query}"
        );
    }

    // A merged contact cannot be merged again, nor into itself.
    app.post(
        &format!("/v1/contacts/{}/merge", id(&this)),
        json!({"other_id": id(&other)}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    app.post(
        &format!("/v1/contacts/{}/merge", id(&this)),
        json!({"other_id": id(&this)}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    app.stop().await;
}

#[tokio::test]
async fn merge_checks_if_match_and_keep_fields() {
    let app = TestApp::spawn().await;
    let (this, other) = pair(&app).await;
    let path = format!("/v1/contacts/{}/merge", id(&this));
    let stale = app
        .client
        .post(app.url(&path))
        .header("if-match", "\"9\"")
        .json(&json!({"other_id": id(&other)}))
        .send()
        .await
        .unwrap();
    Reply::from(stale)
        .await
        .expect_error(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    app.post(
        &path,
        json!({"other_id": id(&other), "keep": {"shoe_size": "other"}}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        &path,
        json!({"other_id": id(&other), "keep": {"name": "both"}}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.post(&path, json!({"other_id": "01JD3Z6K8W6B9V8Y0Q4T2H5N7M"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get(&format!("/v1/contacts/{}", id(&this))).await.body["version"],
        1
    );
    app.stop().await;
}

/// Fields that say what a contact is, without the bookkeeping of versions and times.
fn essence(contact: &Value) -> Value {
    let mut c = contact.clone();
    for field in ["version", "updated_at"] {
        c.as_object_mut().unwrap().remove(field);
    }
    c
}

#[tokio::test]
async fn merge_edit_restart_unmerge_restores_the_other_and_keeps_edits() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_in(temp.path()).await;
    let (this, other) = pair(&app).await;
    let merged = app
        .post(
            &format!("/v1/contacts/{}/merge", id(&this)),
            json!({"other_id": id(&other), "keep": {"email": "other"}}),
        )
        .await
        .body["contact"]
        .clone();
    // Edit after the merge: the country (taken from the other) is changed by hand.
    let edited = app
        .patch(
            &format!("/v1/contacts/{}", id(&this)),
            json!({"country": "BE", "notes": "called"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    app.stop().await;

    // The snapshot lives in redb: unmerge works after a restart.
    let app = TestApp::spawn_in(temp.path()).await;
    let reply = app
        .post(
            &format!("/v1/contacts/{}/unmerge?wait=indexed", id(&this)),
            json!({"other_id": id(&other)}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let survivor = &reply.body["contact"];
    let restored = &reply.body["restored"];

    assert_eq!(
        essence(restored),
        essence(&other),
        "the other comes back exactly"
    );
    assert!(restored["version"].as_u64().unwrap() > other["version"].as_u64().unwrap());
    assert_eq!(
        survivor["email"], "helene@orange.fr",
        "a taken field returns to its pre-merge value"
    );
    assert_eq!(survivor["phone"], json!(null));
    assert_eq!(
        survivor["country"], "BE",
        "a field edited since the merge keeps its edit"
    );
    assert_eq!(survivor["notes"], "called");
    assert_eq!(survivor["tags"], json!(["vip"]));
    assert_eq!(survivor["identities"], json!([]));
    assert_eq!(survivor["last_interaction_at"], this["last_interaction_at"]);
    assert_eq!(survivor["created_at"], this["created_at"]);
    assert_ne!(merged["email"], survivor["email"]);

    // Both are searchable again and each owns its identities.
    assert_eq!(app.search("dupont").await["total"], 2);
    assert_eq!(
        app.get("/v1/contacts/lookup?phone=0612345678").await.body["id"],
        other["id"]
    );
    assert_eq!(
        app.get("/v1/contacts/lookup?email=helene%40orange.fr")
            .await
            .body["id"],
        this["id"]
    );
    // Unmerging twice is a conflict.
    app.post(
        &format!("/v1/contacts/{}/unmerge", id(&this)),
        json!({"other_id": id(&other)}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    app.stop().await;
}

#[tokio::test]
async fn unmerge_refuses_when_an_identity_of_the_other_was_taken_meanwhile() {
    let app = TestApp::spawn().await;
    let (this, other) = pair(&app).await;
    app.post(
        &format!("/v1/contacts/{}/merge", id(&this)),
        json!({"other_id": id(&other)}),
    )
    .await;
    // The survivor drops the phone it took; a third contact claims it.
    app.patch(
        &format!("/v1/contacts/{}", id(&this)),
        json!({"phone": null}),
    )
    .await;
    let third = app.create(json!({"phone": "06 12 34 56 78"})).await;
    let error = app
        .post(
            &format!("/v1/contacts/{}/unmerge", id(&this)),
            json!({"other_id": id(&other)}),
        )
        .await
        .expect_error(StatusCode::CONFLICT, "identity_taken")
        .clone();
    assert_eq!(error["details"][0]["contact_id"], third["id"]);
    assert_eq!(
        app.get(&format!("/v1/contacts/{}", id(&other))).await.body["status"],
        "merged"
    );
    app.stop().await;
}
