//! Catalog changes that touch thousands of contacts (a forced custom-field change, a
//! company rename or delete) run in chunks between other writes, answer with exact
//! counts once done, and resume after a crash.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{ServerProcess, TestApp, remote};

/// Members of the big company: more than two chunks of a company task, and more
/// contacts than one chunk of a field task reads.
const MEMBERS: usize = 4_500;

/// NDJSON rows of `count` contacts of `company_id`; with `plan`, every other one is
/// on plan "pro" and the others on "free".
fn member_rows(company_id: &str, count: usize, plan: bool) -> String {
    (0..count)
        .map(|i| {
            let mut row = json!({"name": format!("Member {i}"),
                "email": format!("member{i}@big.example"), "company_id": company_id});
            if plan {
                let plan = if i % 2 == 0 { "pro" } else { "free" };
                row["custom_fields"] = json!({"plan": plan});
            }
            row.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Uploads rows and waits for the import job to finish without a refused row.
async fn import(client: &reqwest::Client, base: &str, rows: String) {
    let id = remote::start_import(client, base, rows).await;
    let job = remote::wait_job(client, base, &id, Duration::from_secs(120)).await;
    assert_eq!(job["failed"], 0, "first errors: {}", job["errors"][0]);
}

/// How many contacts match a filter (search total).
async fn count(client: &reqwest::Client, base: &str, filter: &str) -> u64 {
    let body = remote::search(client, base, &json!({"filter": filter, "limit": 1})).await;
    body["total"].as_u64().unwrap_or_else(|| panic!("{body}"))
}

/// Creates contacts back to back until told to stop; returns how many were created
/// and refused (each must be created).
fn keep_writing(
    app: &TestApp,
) -> (
    tokio::task::JoinHandle<(usize, usize)>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let client = app.client.clone();
    let base = app.url("");
    let writer = tokio::spawn(async move {
        let (mut created, mut refused) = (0, 0);
        while !*stopped.borrow() {
            let reply = client
                .post(format!("{base}/v1/contacts"))
                .json(&json!({"email": format!("bystander{created}@elsewhere.example")}))
                .send()
                .await
                .unwrap();
            if reply.status() == StatusCode::CREATED {
                created += 1;
            } else {
                refused += 1;
            }
        }
        (created, refused)
    });
    (writer, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_catalog_changes_run_in_chunks_with_exact_counts() {
    let app = TestApp::spawn().await;
    let base = app.url("");
    let field =
        json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": ["free", "pro"]});
    assert_eq!(
        app.post("/v1/custom-fields", field).await.status,
        StatusCode::CREATED
    );
    let company = app
        .post("/v1/companies", json!({"name": "Bigcorp"}))
        .await
        .body;
    let company_id = company["id"].as_str().unwrap().to_string();
    import(&app.client, &base, member_rows(&company_id, MEMBERS, true)).await;
    let pro = MEMBERS.div_ceil(2);

    // Removing an option that stored values use is refused unless forced, and the
    // refusal changes nothing.
    let refused = app
        .patch("/v1/custom-fields/plan", json!({"options": ["free"]}))
        .await;
    refused.expect_error(StatusCode::CONFLICT, "conflict");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&pro.to_string())
    );
    app.wait_caught_up().await;
    assert_eq!(count(&app.client, &base, "plan = pro").await, pro as u64);

    // A label change touches no contact at all.
    let relabeled = app
        .patch("/v1/custom-fields/plan", json!({"label": "Billing plan"}))
        .await;
    assert_eq!(relabeled.status, StatusCode::OK);
    assert_eq!(relabeled.body["cleared_values"], 0);

    // Forced, while another client keeps creating contacts.
    let (writer, stop) = keep_writing(&app);
    let forced = app
        .patch(
            "/v1/custom-fields/plan?force=true",
            json!({"options": ["free"]}),
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    assert_eq!(forced.body["cleared_values"], pro);

    // Renaming re-indexes every member: they are found by the new name.
    let renamed = app
        .patch(
            &format!("/v1/companies/{company_id}"),
            json!({"name": "Megacorp"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    app.wait_caught_up().await;
    assert_eq!(app.search("megacorp").await["total"], MEMBERS);
    assert_eq!(app.search("bigcorp").await["total"], 0);

    // Deleting unlinks every member.
    let deleted = app.delete(&format!("/v1/companies/{company_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["contacts_unlinked"], MEMBERS);
    stop.send(true).unwrap();
    let (created, refused) = writer.await.unwrap();
    assert!(created > 0);
    assert_eq!(refused, 0, "writes go on during catalog changes");

    app.wait_caught_up().await;
    assert_eq!(count(&app.client, &base, "plan = pro").await, 0);
    assert_eq!(
        count(&app.client, &base, "plan = free").await,
        (MEMBERS - pro) as u64
    );
    let linked = format!("company_id = \"{company_id}\"");
    assert_eq!(count(&app.client, &base, &linked).await, 0);
    let member = app.search("member0@big.example").await["hits"][0].clone();
    assert_eq!(member["email"], "member0@big.example");
    assert_eq!(member["company_id"], Value::Null);
    assert!(member["custom_fields"].get("plan").is_none());
    assert_eq!(app.stats().await["tasks"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_delete_killed_midway_finishes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();
    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let company: Value = client
        .post(format!("{base}/v1/companies"))
        .json(&json!({"name": "Doomed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let company_id = company["id"].as_str().unwrap().to_string();
    let members = 3 * MEMBERS;
    import(&client, &base, member_rows(&company_id, members, false)).await;

    // Start the delete, and kill the server once the task has made some progress
    // (or, on a fast machine, whenever it is seen).
    let delete = tokio::spawn({
        let (client, url) = (client.clone(), format!("{base}/v1/companies/{company_id}"));
        async move { client.delete(url).send().await.map(|r| r.status()) }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_midway = false;
    while Instant::now() < deadline && !delete.is_finished() {
        let stats = remote::get_json(&client, &format!("{base}/v1/stats")).await;
        if stats["tasks"][0]["unlinked"]
            .as_u64()
            .is_some_and(|n| n > 0)
        {
            seen_midway = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_hard();
    let _ = delete.await;

    let server = ServerProcess::start(&data);
    let base = server.base.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = remote::wait_caught_up(&client, &base).await;
        if stats["tasks"] == json!([]) {
            assert_eq!(stats["contacts"]["active"], members, "{stats}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the task did not resume: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = client
        .get(format!("{base}/v1/companies/{company_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let linked = format!("company_id = \"{company_id}\"");
    assert_eq!(count(&client, &base, &linked).await, 0);
    eprintln!("killed with the task midway: {seen_midway}");
}
