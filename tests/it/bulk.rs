//! `POST /v1/contacts/bulk`: every action, by ids and by everything matching, counted
//! exactly; dry runs change nothing; a bulk over 1,000 contacts runs as a job; a
//! scoped key's bulk stays within its scope.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

async fn bulk(app: &TestApp, query: &str, body: Value) -> (StatusCode, Value) {
    let reply = app.post(&format!("/v1/contacts/bulk{query}"), body).await;
    (reply.status, reply.body)
}

async fn import_many(app: &TestApp, count: usize, tag: &str) {
    let rows: String = (0..count)
        .map(|i| {
            json!({"name": format!("Bulk Person {i}"), "email": format!("bulk{i}@{tag}.example"),
                   "tags": [tag], "country": if i % 2 == 0 { "FR" } else { "DE" }})
            .to_string()
                + "\n"
        })
        .collect();
    let response = app
        .client
        .post(app.url("/v1/contacts/import"))
        .header("content-type", "application/x-ndjson")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    wait_job(app, job["id"].as_str().unwrap()).await;
    app.wait_caught_up().await;
}

async fn wait_job(app: &TestApp, id: &str) -> Value {
    let limit = std::time::Duration::from_secs(120);
    crate::common::remote::wait_ended(&app.client, &app.base, id, limit).await
}

#[tokio::test]
async fn every_action_by_ids_and_by_filter_counts_exactly() {
    let app = TestApp::spawn().await;
    import_many(&app, 40, "small").await;
    let ids: Vec<String> = crate::common::hit_ids(
        &app.get("/v1/contacts?filter=country%20%3D%20FR&limit=100")
            .await
            .body,
    );
    assert_eq!(ids.len(), 20);

    // A dry run counts and changes nothing.
    let (status, result) = bulk(
        &app,
        "?dry_run=true",
        json!({"action": "add_tags", "filter": "country = FR", "tags": ["vip"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(
        (result["matched"].clone(), result["changed"].clone()),
        (json!(20), json!(20))
    );
    assert_eq!(
        app.get("/v1/contacts?filter=tags%20%3D%20vip").await.body["total"],
        0
    );

    // By filter, then again: the second time nothing changes.
    let (_, result) = bulk(
        &app,
        "?wait=indexed",
        json!({"action": "add_tags", "filter": "country = FR", "tags": ["vip", "VIP"]}),
    )
    .await;
    assert_eq!(result["changed"], 20, "{result}");
    assert_eq!(
        app.get("/v1/contacts?filter=tags%20%3D%20vip").await.body["total"],
        20
    );
    let (_, again) = bulk(
        &app,
        "",
        json!({"action": "add_tags", "filter": "country = FR", "tags": ["vip"]}),
    )
    .await;
    assert_eq!(
        (again["changed"].clone(), again["unchanged"].clone()),
        (json!(0), json!(20))
    );

    // By ids, with a missing id reported and the others applied.
    let mut some: Vec<Value> = ids[..5].iter().map(|id| json!(id)).collect();
    some.push(json!("01JD3Z6K8W6B9V8Y0Q4T2H5N7M"));
    let (_, result) = bulk(
        &app,
        "?wait=indexed",
        json!({"action": "assign", "ids": some, "assignee": "agent-3"}),
    )
    .await;
    assert_eq!(result["matched"], 6);
    assert_eq!(result["changed"], 5);
    assert_eq!(result["failed"][0]["code"], "not_found", "{result}");
    assert_eq!(
        app.get("/v1/contacts?filter=assignee%20%3D%20agent-3")
            .await
            .body["total"],
        5
    );
    let (_, result) = bulk(
        &app,
        "?wait=indexed",
        json!({"action": "remove_tags", "ids": &ids[..5], "tags": ["VIP"]}),
    )
    .await;
    assert_eq!(result["changed"], 5, "{result}");
    // set_fields validates each contact like a PATCH: a bad value fails that contact.
    let (_, result) = bulk(
        &app,
        "?wait=indexed",
        json!({"action": "set_fields", "ids": &ids[..3], "fields": {"language": "it", "favorite": true}}),
    )
    .await;
    assert_eq!(result["changed"], 3, "{result}");
    let (_, result) = bulk(
        &app,
        "",
        json!({"action": "set_fields", "ids": &ids[..3], "fields": {"email": "not-an-email"}}),
    )
    .await;
    assert_eq!(result["failed"].as_array().unwrap().len(), 3, "{result}");
    assert_eq!(result["failed"][0]["code"], "validation_failed");

    // Delete and restore.
    let (_, result) = bulk(
        &app,
        "?wait=indexed",
        json!({"action": "delete", "filter": "country = DE"}),
    )
    .await;
    assert_eq!(result["changed"], 20, "{result}");
    assert_eq!(app.get("/v1/contacts").await.body["total"], 20);
    let (_, result) = bulk(
        &app,
        "?wait=indexed",
        json!({"action": "restore", "filter": "status = deleted"}),
    )
    .await;
    assert_eq!(result["changed"], 20, "{result}");
    assert_eq!(app.get("/v1/contacts").await.body["total"], 40);

    // Bad requests change nothing.
    for body in [
        json!({"action": "add_tags", "filter": "country = FR"}),
        json!({"action": "delete"}),
        json!({"action": "delete", "ids": [], "filter": "country = FR"}),
        json!({"action": "explode", "ids": []}),
        json!({"action": "set_fields", "ids": ["x"]}),
    ] {
        let (status, body) = bulk(&app, "", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, body) = bulk(&app, "", json!({"action": "delete", "filter": "nope = 1"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_filter");
    app.stop().await;
}

#[tokio::test]
async fn over_a_thousand_contacts_run_as_a_job_on_the_set_fixed_at_the_start() {
    let app = TestApp::spawn().await;
    import_many(&app, 2500, "large").await;
    let response = app
        .client
        .post(app.url("/v1/contacts/bulk"))
        .json(&json!({"action": "add_tags", "filter": "tags = large", "tags": ["swept"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers().contains_key("location"));
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["kind"], "bulk");
    assert_eq!(job["total"], 2500);
    // A contact created while the job runs is not swept in.
    let late = app
        .create(json!({"name": "Late", "email": "late@large.example", "tags": ["large"]}))
        .await;
    let done = wait_job(&app, job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["processed"], 2500);
    assert_eq!(done["updated"], 2500);
    app.wait_caught_up().await;
    assert_eq!(
        app.get("/v1/contacts?filter=tags%20%3D%20swept&limit=1")
            .await
            .body["total"],
        2500
    );
    let late = app
        .get(&format!("/v1/contacts/{}", late["id"].as_str().unwrap()))
        .await;
    assert_eq!(late.body["tags"], json!(["large"]));
    app.stop().await;
}
