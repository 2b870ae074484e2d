//! Companies, favorites, company search and recipients.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn company_crud_and_contacts_must_point_at_an_existing_company() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/v1/companies",
            json!({"name": "Acme Widgets", "domain": "ACME.io", "email": "Hello@Acme.io"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let acme = reply.body;
    assert_eq!(acme["domain"], "acme.io");
    assert_eq!(acme["email"], "hello@acme.io");
    let path = format!("/v1/companies/{}", acme["id"].as_str().unwrap());
    assert_eq!(app.get(&path).await.body["name"], "Acme Widgets");
    app.post("/v1/companies", json!({"domain": "nameless.io"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        app.get("/v1/companies").await.body["companies"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let reply = app
        .post(
            "/v1/contacts",
            json!({"email": "x@example.com", "company_id": "01JD3Z6K8W6B9V8Y0Q4T2H5N7M"}),
        )
        .await;
    let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["details"][0]["field"], "company_id");

    let patched = app.patch(&path, json!({"domain": null})).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["domain"], json!(null));
    assert_eq!(patched.body["version"], 2);
    app.get("/v1/companies/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn contacts_are_found_by_company_name_and_a_rename_reindexes_them() {
    let app = TestApp::spawn().await;
    let company = app
        .post("/v1/companies", json!({"name": "Quuxcorp Industries"}))
        .await
        .body;
    let company_id = company["id"].as_str().unwrap();
    let member = app
        .create(json!({"name": "Ada Member", "email": "ada@example.com", "company_id": company_id}))
        .await;
    app.create(json!({"name": "Bob Outsider", "email": "bob@example.com"}))
        .await;
    let member_id = member["id"].as_str().unwrap();
    assert_eq!(app.search_ids("quuxcorp").await, [member_id]);

    let renamed = app
        .patch(
            &format!("/v1/companies/{company_id}"),
            json!({"name": "Zorblax Holdings"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    app.wait_caught_up().await;
    assert_eq!(app.search_ids("zorblax").await, [member_id]);
    assert!(app.search_ids("quuxcorp").await.is_empty());

    let scoped = app
        .get(&format!("/v1/companies/{company_id}/contacts?q=ada"))
        .await;
    assert_eq!(scoped.status, StatusCode::OK, "{}", scoped.body);
    assert_eq!(scoped.body["total"], 1);
    let scoped_all = app
        .get(&format!("/v1/companies/{company_id}/contacts"))
        .await
        .body;
    assert_eq!(scoped_all["total"], 1, "only the company's contacts");
    let nobody = app
        .get(&format!("/v1/companies/{company_id}/contacts?q=bob"))
        .await
        .body;
    assert_eq!(nobody["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn recipients_put_the_company_and_favorites_in_to() {
    let app = TestApp::spawn().await;
    let company = app
        .post(
            "/v1/companies",
            json!({"name": "Acme", "email": "team@acme.io"}),
        )
        .await
        .body;
    let id = company["id"].as_str().unwrap();
    app.create(json!({"email": "fav@acme.io", "company_id": id, "favorite": true}))
        .await;
    app.create(json!({"email": "other@acme.io", "company_id": id}))
        .await;
    app.create(json!({"phone": "+33 6 99 88 77 66", "company_id": id}))
        .await;
    let gone = app
        .create(json!({"email": "gone@acme.io", "company_id": id}))
        .await;
    app.delete(&format!("/v1/contacts/{}", gone["id"].as_str().unwrap()))
        .await;
    app.create(json!({"email": "stranger@example.com"})).await;

    let reply = app.get(&format!("/v1/companies/{id}/recipients")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"to": ["team@acme.io", "fav@acme.io"], "others": ["other@acme.io"]})
    );

    // Deleting the company unlinks its contacts through the change log.
    let deleted = app.delete(&format!("/v1/companies/{id}")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["contacts_unlinked"], 4);
    app.wait_caught_up().await;
    let hits = app.search("acme").await["hits"].as_array().unwrap().clone();
    assert_eq!(
        hits.len(),
        2,
        "fav@ and other@ are still found by their emails"
    );
    assert!(
        hits.iter()
            .all(|h| h["company_id"].is_null() && h["favorite"] == false)
    );
    app.stop().await;
}
