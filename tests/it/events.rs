//! Activity events update the activity fields and never move a time backwards.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn events_move_activity_forward_only() {
    let app = TestApp::spawn().await;
    let contact = app.create(json!({"email": "busy@example.com"})).await;
    let path = format!("/v1/contacts/{}/events", contact["id"].as_str().unwrap());

    let reply = app
        .post(
            &path,
            json!({"type": "message_in", "channel": "whatsapp", "at": "2026-11-02T10:00:00Z"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let c = &reply.body;
    assert_eq!(c["last_interaction_at"], "2026-11-02T10:00:00Z");
    assert_eq!(c["last_interacted_channel"], "whatsapp");
    assert_eq!(c["last_incoming_message_at"], "2026-11-02T10:00:00Z");
    assert_eq!(c["version"], 2);

    // An older event arriving late changes nothing.
    let late = app
        .post(
            &path,
            json!({"type": "message_in", "channel": "email", "at": "2026-11-01T09:00:00Z"}),
        )
        .await;
    assert_eq!(late.body["last_interaction_at"], "2026-11-02T10:00:00Z");
    assert_eq!(late.body["last_interacted_channel"], "whatsapp");
    assert_eq!(late.body["version"], 2, "no change, no new version");

    let out = app
        .post(
            &path,
            json!({"type": "message_out", "channel": "email", "at": "2026-11-03T08:00:00Z"}),
        )
        .await;
    assert_eq!(out.body["last_interaction_at"], "2026-11-03T08:00:00Z");
    assert_eq!(out.body["last_interacted_channel"], "email");
    assert_eq!(
        out.body["last_incoming_message_at"], "2026-11-02T10:00:00Z",
        "outgoing messages are not incoming"
    );

    // Open/close out of order: the close (later) arrives first; the open stays closed.
    let closed = app
        .post(
            &path,
            json!({"type": "conversation_closed", "at": "2026-11-04T12:00:00Z"}),
        )
        .await;
    assert_eq!(closed.body["conversation_opened_at"], json!(null));
    let reopened_late = app
        .post(
            &path,
            json!({"type": "conversation_opened", "at": "2026-11-04T11:00:00Z"}),
        )
        .await;
    assert_eq!(reopened_late.body["conversation_opened_at"], json!(null));
    let opened = app
        .post(
            &path,
            json!({"type": "conversation_opened", "at": "2026-11-05T09:00:00Z"}),
        )
        .await;
    assert_eq!(
        opened.body["conversation_opened_at"],
        "2026-11-05T09:00:00Z"
    );

    app.post(&path, json!({"type": "smoke_signal"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.post(&path, json!({"type": "message_in", "at": "2999-01-01"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/events",
        json!({"type": "message_in"}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn batched_events_apply_each_on_its_own() {
    let app = TestApp::spawn().await;
    let a = app.create(json!({"email": "a@example.com"})).await;
    let b = app.create(json!({"email": "b@example.com"})).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let reply = app
        .post(
            "/v1/events",
            json!({"events": [
                {"contact_id": a_id, "type": "message_in", "channel": "sms", "at": "2026-10-01T00:00:00Z"},
                {"contact_id": "01JD3Z6K8W6B9V8Y0Q4T2H5N7M", "type": "message_in"},
                {"contact_id": b_id, "type": "teleport"},
                {"contact_id": b_id, "type": "message_out", "channel": "email", "at": "2026-10-02T00:00:00Z"},
                {"contact_id": a_id, "type": "message_in", "at": "2026-09-01T00:00:00Z"}
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["applied"], 3);
    let failed: Vec<u64> = reply.body["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [1, 2], "{}", reply.body);
    let a = app.get(&format!("/v1/contacts/{a_id}")).await.body;
    assert_eq!(a["last_incoming_message_at"], "2026-10-01T00:00:00Z");
    let b = app.get(&format!("/v1/contacts/{b_id}")).await.body;
    assert_eq!(b["last_interacted_channel"], "email");
    app.stop().await;
}
