//! Bounded inputs: each limit of `[limits]` answers a clear 4xx naming its key, before
//! any work, and changes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, remote, test_config};

#[tokio::test]
async fn search_inputs_over_their_limits_are_refused_by_name() {
    let app = TestApp::spawn().await;
    let many_words = vec!["a"; 20_000].join(" ");
    let cases = [
        (json!({"q": many_words}), "q_max_bytes"),
        (json!({"q": vec!["ab"; 33].join(" ")}), "q_max_words"),
        (json!({"filter": "x".repeat(20_000)}), "filter_max_bytes"),
        (
            json!({"filter": vec!["country = FR"; 201].join(" OR ")}),
            "filter_max_conditions",
        ),
        (
            json!({"filter": format!("tags IN [{}]", (0..1001).map(|n| format!("t{n}")).collect::<Vec<_>>().join(", "))}),
            "filter_max_in_values",
        ),
        (
            json!({"sort": "name,created_at,updated_at,last_interaction_at,last_incoming_message_at"}),
            "sort_max_keys",
        ),
    ];
    for (body, limit) in cases {
        let reply = app.post("/v1/contacts/search", body).await;
        let error = reply.expect_error(StatusCode::BAD_REQUEST, "limit_exceeded");
        assert_eq!(error["details"][0]["limit"], limit, "{error}");
    }
    // Within the limits the same kinds of input are fine.
    let reply = app
        .post(
            "/v1/contacts/search",
            json!({"q": vec!["ab"; 32].join(" "), "filter": vec!["country = FR"; 200].join(" OR "),
                   "sort": "name,created_at,updated_at,last_interaction_at"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // The example of the issue: a GET with 20,000 words answers at once.
    let reply = app
        .get(&format!("/v1/contacts?q={}", vec!["a"; 20_000].join("+")))
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "limit_exceeded");
    // A relative time past chrono's range is an invalid filter, not a 500.
    let reply = app
        .get("/v1/contacts?filter=created_at%20%3E%20now%2B3000000000h")
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    app.stop().await;
}

#[tokio::test]
async fn imports_over_the_byte_or_line_limit_get_413_and_import_nothing() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    config.limits.import_max_bytes = 20_000;
    config.limits.import_max_line_bytes = 2_000;
    config.limits.imports_max_running = 1;
    let app = TestApp::spawn_with(config).await;
    let upload = |body: String| {
        app.client
            .post(app.url("/v1/contacts/import"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let row =
        |n: usize| format!("{{\"name\":\"Limit Person{n}\",\"email\":\"limit{n}@x.example\"}}\n");
    let big: String = (0..1_000).map(row).collect();
    assert!(big.len() > 20_000);
    let reply = crate::common::Reply::from(upload(big).await.unwrap()).await;
    reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let long_line = format!(
        "{{\"name\":\"{}\",\"email\":\"long@x.example\"}}\n",
        "x".repeat(3_000)
    );
    let reply = crate::common::Reply::from(upload(row(1) + &long_line).await.unwrap()).await;
    let error = reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("import_max_line_bytes")
    );
    assert_eq!(
        app.stats().await["contacts"]["active"],
        0,
        "nothing was imported"
    );

    // Refused uploads do not hold a place: an import within the limits runs.
    let small: String = (0..10).map(row).collect();
    let job = remote::start_import(&app.client, &app.base, small).await;
    let status = remote::wait_job(
        &app.client,
        &app.base,
        &job,
        std::time::Duration::from_secs(30),
    )
    .await;
    assert_eq!(status["created"], 10, "{status}");
    app.stop().await;
}

#[tokio::test]
async fn per_contact_lists_facets_and_options_are_bounded() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    config.limits.facet_max_values = 3;
    config.limits.options_max = 10;
    let app = TestApp::spawn_with(config).await;

    // Repeated values count as sent: a body of 200,000 identical tags is refused at
    // once instead of being de-duplicated pairwise.
    for (body, field, limit) in [
        (
            json!({"name": "Many Tags", "email": "tags@x.example", "tags": vec!["vip"; 200_000]}),
            "tags",
            "limits.tags_max",
        ),
        (
            json!({"name": "Many Ids", "email": "ids@x.example",
                   "identities": vec![json!({"channel": "telegram", "value": "@same"}); 51]}),
            "identities",
            "limits.identities_max",
        ),
        (
            json!({"name": "Many Values", "email": "cv@x.example",
                   "custom_fields": (0..101).map(|i| (format!("k{i}"), json!(null))).collect::<serde_json::Map<_, _>>()}),
            "custom_fields",
            "limits.custom_values_max",
        ),
    ] {
        let started = std::time::Instant::now();
        let reply = app.post("/v1/contacts", body).await;
        let error = reply.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["details"][0]["field"], field, "{error}");
        assert!(
            error["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains(limit)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    assert_eq!(app.stats().await["contacts"]["active"], 0);

    // Options of a definition.
    let options: Vec<String> = (0..11).map(|i| format!("o{i}")).collect();
    let reply = app
        .post(
            "/v1/custom-fields",
            json!({"key": "size", "type": "dropdown", "options": options}),
        )
        .await;
    let error = reply.expect_error(StatusCode::BAD_REQUEST, "limit_exceeded");
    assert_eq!(error["details"][0]["limit"], "options_max");
    let reply = app
        .post(
            "/v1/custom-fields",
            json!({"key": "size", "type": "multiselect", "options": ["s", "m"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app
        .patch(
            "/v1/custom-fields/size",
            json!({"options": (0..11).map(|i| format!("o{i}")).collect::<Vec<_>>()}),
        )
        .await;
    reply.expect_error(StatusCode::BAD_REQUEST, "limit_exceeded");
    // Repeated choices are folded in linear time.
    let reply = app
        .post(
            "/v1/contacts?wait=indexed",
            json!({"name": "Picky", "email": "picky@x.example",
                   "custom_fields": {"size": vec!["s"; 500_000]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["custom_fields"]["size"], json!(["s"]));

    // Facets: the most frequent values only, with exact counts.
    for i in 0..6 {
        let tags: Vec<String> = (0..=i).map(|t| format!("t{t}")).collect();
        app.create(json!({"name": format!("Faceted {i}"), "email": format!("f{i}@x.example"), "tags": tags}))
            .await;
    }
    let reply = app.get("/v1/contacts?facets=tags").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["facets"]["tags"],
        json!({"t0": 6, "t1": 5, "t2": 4})
    );
    app.stop().await;
}
