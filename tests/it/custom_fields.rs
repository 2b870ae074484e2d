//! Custom field definitions: typed validation, search, and safe definition changes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

async fn define(app: &TestApp, def: Value) -> Value {
    let reply = app.post("/v1/custom-fields", def).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn definitions_are_created_listed_and_validated() {
    let app = TestApp::spawn().await;
    let plan = define(
        &app,
        json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": ["free", "pro"],
               "group": "Billing", "placeholder": "Choose a plan"}),
    )
    .await;
    assert_eq!(plan["type"], "dropdown");
    assert_eq!(plan["group"], "Billing");
    app.post("/v1/custom-fields", json!({"key": "plan", "type": "text"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    let error = app
        .post(
            "/v1/custom-fields",
            json!({"key": "Bad Key", "type": "multiselect"}),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .clone();
    assert_eq!(error["details"].as_array().unwrap().len(), 2, "{error}");
    app.post("/v1/custom-fields", json!({"key": "x", "type": "colour"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let list = app.get("/v1/custom-fields").await.body;
    assert_eq!(list["custom_fields"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/v1/custom-fields/plan").await.body["label"],
        "Plan"
    );
    app.get("/v1/custom-fields/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn contact_values_are_validated_by_type_with_every_error_reported() {
    let app = TestApp::spawn().await;
    let types = [
        ("t_text", json!({"type": "text"}), json!("hello"), json!(42)),
        (
            "t_number",
            json!({"type": "number"}),
            json!(12.5),
            json!("12"),
        ),
        (
            "t_date",
            json!({"type": "date"}),
            json!("2027-03-01"),
            json!("01/03/2027"),
        ),
        (
            "t_datetime",
            json!({"type": "datetime"}),
            json!("2026-11-02T11:00:00+01:00"),
            json!("tomorrow"),
        ),
        (
            "t_checkbox",
            json!({"type": "checkbox"}),
            json!(true),
            json!("yes"),
        ),
        (
            "t_dropdown",
            json!({"type": "dropdown", "options": ["a", "b"]}),
            json!("b"),
            json!("c"),
        ),
        (
            "t_multi",
            json!({"type": "multiselect", "options": ["a", "b"]}),
            json!(["a", "b"]),
            json!(["a", "z"]),
        ),
        (
            "t_url",
            json!({"type": "url"}),
            json!("https://acme.io"),
            json!("acme.io"),
        ),
        (
            "t_email",
            json!({"type": "email"}),
            json!("Ops@Acme.io"),
            json!("ops-at-acme"),
        ),
        (
            "t_phone",
            json!({"type": "phone"}),
            json!("06 12 34 56 78"),
            json!("ring ring"),
        ),
    ];
    for (key, def, _, _) in &types {
        let mut def = def.clone();
        def["key"] = json!(key);
        define(&app, def).await;
    }
    let good: serde_json::Map<String, Value> = types
        .iter()
        .map(|(k, _, g, _)| (k.to_string(), g.clone()))
        .collect();
    let created = app
        .create(json!({"email": "typed@example.com", "custom_fields": good}))
        .await;
    let stored = &created["custom_fields"];
    assert_eq!(stored["t_datetime"], "2026-11-02T10:00:00Z");
    assert_eq!(stored["t_email"], "ops@acme.io");
    assert_eq!(stored["t_phone"], "+33612345678");
    assert_eq!(stored["t_multi"], json!(["a", "b"]));

    let mut bad: serde_json::Map<String, Value> = types
        .iter()
        .map(|(k, _, _, b)| (k.to_string(), b.clone()))
        .collect();
    bad.insert("undefined_key".into(), json!("x"));
    let reply = app
        .post(
            "/v1/contacts",
            json!({"email": "bad@example.com", "custom_fields": bad}),
        )
        .await;
    let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<&str> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), types.len() + 1, "{fields:?}");
    assert!(fields.contains(&"custom_fields.undefined_key"));
    assert_eq!(app.stats().await["contacts"]["active"], 1);
    app.stop().await;
}

#[tokio::test]
async fn text_dropdown_and_multiselect_values_are_searchable_others_are_not() {
    let app = TestApp::spawn().await;
    define(&app, json!({"key": "motto", "type": "text"})).await;
    define(
        &app,
        json!({"key": "tier", "type": "dropdown", "options": ["Goldfinch", "Silver"]}),
    )
    .await;
    define(&app, json!({"key": "site", "type": "url"})).await;
    let contact = app
        .create(json!({"email": "s@example.com", "custom_fields":
            {"motto": "Carpe diem quokka", "tier": "Goldfinch", "site": "https://zebrafish.example"}}))
        .await;
    let id = contact["id"].as_str().unwrap();
    assert_eq!(app.search_ids("quokka").await, [id]);
    assert_eq!(app.search_ids("goldfin").await, [id]);
    assert!(
        app.search_ids("zebrafish").await.is_empty(),
        "url values are not searched"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_breaking_definition_change_is_refused_unless_forced_then_values_clear_through_the_log() {
    let app = TestApp::spawn().await;
    define(
        &app,
        json!({"key": "tier", "type": "dropdown", "options": ["gold", "silver", "bronze"]}),
    )
    .await;
    let gold = app
        .create(json!({"email": "g@example.com", "custom_fields": {"tier": "gold"}}))
        .await;
    let silver = app
        .create(json!({"email": "s@example.com", "custom_fields": {"tier": "silver"}}))
        .await;
    assert_eq!(app.search_ids("gold").await.len(), 1);

    // Removing an option in use: 409 and nothing changes.
    let narrowed = json!({"options": ["silver", "bronze"]});
    let reply = app.patch("/v1/custom-fields/tier", narrowed.clone()).await;
    reply.expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        app.get("/v1/custom-fields/tier").await.body["options"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Removing an unused option is fine.
    let reply = app
        .patch(
            "/v1/custom-fields/tier",
            json!({"options": ["gold", "silver"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let reply = app
        .patch(
            "/v1/custom-fields/tier?force=true",
            json!({"options": ["silver"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["cleared_values"], 1);
    let gold_path = format!("/v1/contacts/{}", gold["id"].as_str().unwrap());
    let cleared = app.get(&gold_path).await.body;
    assert_eq!(cleared["custom_fields"], json!({}));
    assert_eq!(cleared["version"], 2, "clearing is a change of its own");
    app.wait_caught_up().await;
    assert!(
        app.search_ids("gold").await.is_empty(),
        "the index followed the change log"
    );
    assert_eq!(
        app.get(&format!("/v1/contacts/{}", silver["id"].as_str().unwrap()))
            .await
            .body["custom_fields"]["tier"],
        "silver"
    );

    // Changing the type: text -> number would lose "silver" too.
    app.patch(
        "/v1/custom-fields/tier",
        json!({"type": "number", "options": null}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    // Deleting a used field needs force as well.
    app.delete("/v1/custom-fields/tier")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    let reply = app
        .call(
            reqwest::Method::DELETE,
            "/v1/custom-fields/tier?force=true",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["cleared_values"], 1);
    app.wait_caught_up().await;
    assert!(app.search_ids("silver").await.is_empty());
    app.post(
        "/v1/contacts",
        json!({"email": "n@example.com", "custom_fields": {"tier": "silver"}}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.stop().await;
}

#[tokio::test]
async fn searches_see_a_definition_as_soon_as_it_is_made_or_removed() {
    let app = TestApp::spawn().await;
    // Searches read the definitions (and may keep them) before the field exists.
    app.get("/v1/contacts?filter=custom.tier%20%3D%20gold")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    define(
        &app,
        json!({"key": "tier", "type": "dropdown", "options": ["gold", "silver"]}),
    )
    .await;
    let reply = app
        .get("/v1/contacts?filter=custom.tier%20%3D%20gold")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let removed = app.delete("/v1/custom-fields/tier").await;
    assert!(removed.status.is_success(), "{}", removed.body);
    app.get("/v1/contacts?filter=custom.tier%20%3D%20gold")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    app.stop().await;
}
