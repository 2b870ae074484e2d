//! Filters, sort, projection, facets, cursors and saved inboxes over HTTP.

use std::collections::HashSet;

use contactd::clock::Clock;
use contactd::model::ContactInput;
use contactd::store::Command;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, hit_ids, test_config};

async fn search(app: &TestApp, body: Value) -> Value {
    let reply = app.post("/v1/contacts/search", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn seed(app: &TestApp) -> Vec<String> {
    app.post(
        "/v1/custom-fields",
        json!({"key": "plan", "type": "dropdown", "options": ["free", "pro"]}),
    )
    .await;
    app.post(
        "/v1/custom-fields",
        json!({"key": "lifetime_value", "type": "number"}),
    )
    .await;
    let mut ids = Vec::new();
    for contact in [
        json!({"name": "Hélène Dupont", "email": "h@orange.fr", "country": "FR", "tags": ["vip", "lead"],
               "custom_fields": {"plan": "pro", "lifetime_value": 1500}, "created_at": "2026-01-10",
               "identities": [{"channel": "whatsapp", "value": "+33 6 12 34 56 78"}]}),
        json!({"name": "Anna Schmidt", "email": "anna@web.de", "country": "DE", "tags": ["lead"],
               "custom_fields": {"plan": "free", "lifetime_value": 20}, "created_at": "2026-02-10", "assignee": "agent-12"}),
        json!({"name": "Zoë Martin", "email": "zoe@example.com", "country": "FR",
               "custom_fields": {"plan": "pro"}, "created_at": "2026-03-10"}),
    ] {
        ids.push(
            app.create(contact).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

#[tokio::test]
async fn filters_select_by_every_kind_of_field() {
    let app = TestApp::spawn().await;
    let ids = seed(&app).await;
    let cases: [(&str, Vec<&str>); 9] = [
        ("country = FR AND tags IN [vip, lead]", vec![&ids[0]]),
        ("NOT assignee EXISTS", vec![&ids[2], &ids[0]]),
        (
            "custom.plan = pro AND custom.lifetime_value > 1000",
            vec![&ids[0]],
        ),
        ("lifetime_value 10 TO 100", vec![&ids[1]]),
        (
            "name CONTAINS \"pont\" OR email CONTAINS \"web\"",
            vec![&ids[1], &ids[0]],
        ),
        ("created_at 2026-02-01 TO 2026-02-28", vec![&ids[1]]),
        ("channel = whatsapp", vec![&ids[0]]),
        ("tags IS EMPTY", vec![&ids[2]]),
        ("created_at = 2026-03-10", vec![&ids[2]]),
    ];
    for (filter, expected) in cases {
        let body = search(&app, json!({"filter": filter})).await;
        assert_eq!(hit_ids(&body), expected, "{filter}");
        assert_eq!(body["total"], expected.len(), "{filter}");
    }
    // GET takes the same parameters.
    let got = app.get("/v1/contacts?filter=country%20%3D%20DE").await;
    assert_eq!(hit_ids(&got.body), [ids[1].as_str()]);
    // Deleted contacts appear only when the filter names status.
    app.delete(&format!("/v1/contacts/{}", ids[1])).await;
    app.wait_caught_up().await;
    assert_eq!(
        search(&app, json!({"filter": "country = DE"})).await["total"],
        0
    );
    assert_eq!(
        hit_ids(&search(&app, json!({"filter": "status = deleted"})).await),
        [ids[1].as_str()]
    );
    app.stop().await;
}

#[tokio::test]
async fn broken_filters_are_400_with_the_position() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/v1/contacts/search",
            json!({"filter": "country = FR AND shoe_size > 3"}),
        )
        .await;
    let error = reply.expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    assert_eq!(error["details"][0]["position"], 17);
    let reply = app.get("/v1/contacts?filter=created_at%20%3E%3D").await;
    let error = reply.expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    assert_eq!(error["details"][0]["position"], 13);
    // Relative times past chrono's range are a 400, not a panic.
    for filter in [
        "created_at > now+3000000000h",
        "created_at > now-100000000d",
        "updated_at < now+4000000000w",
    ] {
        app.post("/v1/contacts/search", json!({"filter": filter}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    }
    // Within chrono's range but past the index's (year 10,000): answered, not a panic.
    let far = app
        .post(
            "/v1/contacts/search",
            json!({"filter": "created_at >= now+4294967295m"}),
        )
        .await;
    assert_eq!(far.status, StatusCode::OK, "{}", far.body);
    // A q of thousands of words is refused at once, not searched word by word.
    let many_words = "a ".repeat(20_000);
    app.post("/v1/contacts/search", json!({"q": many_words}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "limit_exceeded");
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    for bad in [
        json!({"sort": "shoe_size:asc"}),
        json!({"sort": "name:up"}),
        json!({"facets": "email"}),
        json!({"fields": "name,shoe_size"}),
        json!({"cursor": "nonsense"}),
        json!({"tz": "Mars/Olympus"}),
    ] {
        app.post("/v1/contacts/search", bad)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn sort_projection_and_facets() {
    let app = TestApp::spawn().await;
    let ids = seed(&app).await;
    let by_name = search(&app, json!({"sort": "name:asc"})).await;
    assert_eq!(
        hit_ids(&by_name),
        [ids[1].clone(), ids[0].clone(), ids[2].clone()]
    );
    let by_value = search(&app, json!({"sort": "custom.lifetime_value:desc,name:asc"})).await;
    assert_eq!(
        hit_ids(&by_value),
        [ids[0].clone(), ids[1].clone(), ids[2].clone()],
        "missing values last"
    );

    let projected = search(&app, json!({"fields": ["name", "country"], "limit": 1})).await;
    assert_eq!(
        projected["hits"][0].as_object().unwrap().len(),
        3,
        "{}",
        projected["hits"][0]
    );
    assert!(projected["hits"][0]["id"].is_string());

    let faceted = search(
        &app,
        json!({"filter": "country = FR", "facets": "tags,country,custom.plan", "limit": 1}),
    )
    .await;
    assert_eq!(faceted["facets"]["tags"], json!({"vip": 1, "lead": 1}));
    assert_eq!(faceted["facets"]["country"], json!({"FR": 2}));
    assert_eq!(faceted["facets"]["custom.plan"], json!({"pro": 2}));
    assert_eq!(
        faceted["hits"].as_array().unwrap().len(),
        1,
        "facets count the whole result, not the page"
    );
    app.stop().await;
}

#[tokio::test]
async fn saved_inboxes_validate_count_and_move_with_the_clock() {
    let temp = tempfile::TempDir::new().unwrap();
    let clock = Clock::default();
    let app = TestApp::spawn_with_clock(test_config(temp.path()), clock.clone()).await;
    let ids = seed(&app).await;
    let fresh = app
        .create(json!({"email": "new@example.com", "name": "New Comer"}))
        .await;

    app.post(
        "/v1/inboxes",
        json!({"name": "Broken", "filter": "country = "}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    app.post(
        "/v1/inboxes",
        json!({"name": "Bad columns", "columns": ["nope"]}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let french = app.post("/v1/inboxes", json!({"name": "French", "filter": "country = FR", "sort": "name:asc", "columns": ["name", "email"]})).await;
    assert_eq!(french.status, StatusCode::CREATED, "{}", french.body);
    let recent = app
        .post(
            "/v1/inboxes",
            json!({"name": "Recent", "filter": "created_at >= now-7d"}),
        )
        .await
        .body;

    let listed = app.get("/v1/inboxes?counts=true").await.body;
    let counts: Vec<(String, u64)> = listed["inboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts[0], ("all".to_string(), 4));
    assert!(counts.contains(&(french.body["id"].as_str().unwrap().to_string(), 2)));
    assert!(counts.contains(&(recent["id"].as_str().unwrap().to_string(), 1)));

    let french_id = french.body["id"].as_str().unwrap();
    let contacts = app
        .get(&format!(
            "/v1/inboxes/{french_id}/contacts?filter=tags%20%3D%20vip"
        ))
        .await
        .body;
    assert_eq!(
        hit_ids(&contacts),
        [ids[0].as_str()],
        "the request's filter is ANDed"
    );
    assert_eq!(
        contacts["hits"][0].as_object().unwrap().len(),
        3,
        "the inbox's columns project"
    );

    let recent_path = format!("/v1/inboxes/{}/contacts", recent["id"].as_str().unwrap());
    assert_eq!(
        hit_ids(&app.get(&recent_path).await.body),
        [fresh["id"].as_str().unwrap()]
    );
    clock.advance(chrono::Duration::days(8));
    assert_eq!(
        app.get(&recent_path).await.body["total"],
        0,
        "'last 7 days' moved with the clock"
    );

    let renamed = app
        .patch(
            &format!("/v1/inboxes/{french_id}"),
            json!({"name": "France"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["version"], 2);
    app.patch("/v1/inboxes/all", json!({"name": "x"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.delete("/v1/inboxes/all")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        app.delete(&format!("/v1/inboxes/{french_id}")).await.status,
        StatusCode::OK
    );
    app.get(&format!("/v1/inboxes/{french_id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

/// 100,000 matches walked page by page while writes happen: every original contact
/// exactly once, no gaps, no duplicates, no 10,000 cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_walks_100_000_matches_while_writes_happen() {
    let app = TestApp::spawn().await;
    const COUNT: usize = 100_000;
    let mut originals = HashSet::with_capacity(COUNT);
    for chunk in 0..COUNT / 2_000 {
        let mut writes = Vec::with_capacity(2_000);
        for i in 0..2_000 {
            let store = app.store.clone();
            writes.push(tokio::spawn(async move {
                let input = ContactInput {
                    email: Some(format!("walk{chunk}x{i}@example.com")),
                    ..ContactInput::default()
                };
                store.write(Command::Create(Box::new(input))).await.unwrap()
            }));
        }
        for write in writes {
            if let contactd::store::Written::Contact(c) = write.await.unwrap().written {
                originals.insert(c.id.clone());
            }
        }
    }
    app.wait_caught_up().await;

    let writer = {
        let (client, url) = (app.client.clone(), app.url("/v1/contacts"));
        tokio::spawn(async move {
            for n in 0..200 {
                let body = json!({"email": format!("during{n}@example.com")});
                client.post(&url).json(&body).send().await.unwrap();
            }
        })
    };
    let mut seen = HashSet::with_capacity(COUNT);
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body =
            json!({"filter": "email CONTAINS \"walk\"", "sort": "created_at:asc", "limit": 1000});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page = search(&app, body).await;
        for id in hit_ids(&page) {
            assert!(seen.insert(id), "a contact came twice");
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    writer.await.unwrap();
    assert_eq!(pages, COUNT / 1000);
    assert_eq!(seen, originals, "every contact exactly once, none missing");
    app.stop().await;
}
