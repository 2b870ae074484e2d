//! Online compaction: erases are scrubbed while writes go on, and nothing written
//! during a compaction is lost, whether it finishes or the process dies mid-way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Reply, ServerProcess, TestApp, remote, scrub_now_config};

/// What a writer last saw acknowledged for each of its contacts (`None`: erased).
type Model = HashMap<String, Option<Value>>;

/// One writer's loop over its own contacts: creates, renames with a new email, soft
/// deletes and permanent erases (each erase starts a compaction when none runs).
async fn write_own_contacts(
    client: reqwest::Client,
    base: String,
    writer: usize,
    until: Instant,
    model: Arc<Mutex<Model>>,
) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(writer as u64);
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let email = format!("w{writer}n{n}@compact.example");
        let pick = (!mine.is_empty()).then(|| mine[rng.random_range(0..mine.len())].clone());
        let request = match (rng.random_range(0..10), pick) {
            (0..=4, _) | (_, None) => client.post(format!("{base}/v1/contacts")).json(
                &json!({"name": format!("Compact Writer{writer} N{n}"), "email": email,
                              "tags": [format!("t{}", n % 3)]}),
            ),
            (5..=7, Some(id)) => client
                .patch(format!("{base}/v1/contacts/{id}"))
                .json(&json!({"name": format!("Renamed Writer{writer} N{n}"), "email": email})),
            (8, Some(id)) => client.delete(format!("{base}/v1/contacts/{id}")),
            (_, Some(id)) => client.delete(format!("{base}/v1/contacts/{id}?permanent=true")),
        };
        let Ok(response) = request.send().await else {
            return; // the server went away
        };
        let reply = Reply::from(response).await;
        let mut model = model.lock().unwrap();
        match reply.status {
            StatusCode::CREATED => {
                let id = reply.body["id"].as_str().unwrap().to_string();
                mine.push(id.clone());
                model.insert(id, Some(reply.body));
            }
            StatusCode::OK if reply.body.get("erased").is_some() => {
                let id = reply.body["erased"].as_str().unwrap().to_string();
                mine.retain(|m| *m != id);
                model.insert(id, None);
            }
            StatusCode::OK => {
                let id = reply.body["id"].as_str().unwrap().to_string();
                model.insert(id, Some(reply.body));
            }
            // A patch of a contact this writer soft-deleted: refused, changes nothing.
            StatusCode::CONFLICT => {}
            status if status.is_server_error() => return,
            status => panic!("unexpected {status}: {}", reply.body),
        }
    }
}

/// Every contact is as last acknowledged, its email finds it, and erased ones are gone.
async fn check_against(app: &TestApp, model: &Model) {
    for (id, expected) in model {
        let reply = app.get(&format!("/v1/contacts/{id}")).await;
        match expected {
            None => assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id} was erased"),
            Some(expected) => {
                assert_eq!(reply.status, StatusCode::OK, "{id}");
                assert_eq!(reply.body["version"], expected["version"], "{id}");
                assert_eq!(reply.body["name"], expected["name"], "{id}");
                assert_eq!(reply.body["status"], expected["status"], "{id}");
                if expected["status"] == "active" {
                    let email = expected["email"].as_str().unwrap();
                    let found = app.get(&format!("/v1/contacts/lookup?email={email}")).await;
                    assert_eq!(found.body["id"], id.as_str(), "{email}");
                }
            }
        }
    }
    let active = model
        .values()
        .flatten()
        .filter(|c| c["status"] == "active")
        .count();
    assert_eq!(app.stats().await["contacts"]["active"], active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_compactions_are_kept_exactly() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_with(scrub_now_config(temp.path())).await;
    let model: Arc<Mutex<Model>> = Arc::default();
    let until = Instant::now() + Duration::from_secs(4);
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            tokio::spawn(write_own_contacts(
                app.client.clone(),
                app.base.clone(),
                writer,
                until,
                model.clone(),
            ))
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stats = app.wait_scrubbed().await;
    let completed = stats["scrubs"]["compaction"]["completed"].as_u64().unwrap();
    assert!(completed >= 2, "{}", stats["scrubs"]);
    let model = model.lock().unwrap().clone();
    assert!(
        model.values().any(Option::is_none),
        "some contacts were erased"
    );
    check_against(&app, &model).await;

    // The swapped-in file is the durable one.
    app.stop().await;
    let again = TestApp::spawn_with(scrub_now_config(temp.path())).await;
    again.wait_caught_up().await;
    check_against(&again, &model).await;
    assert_eq!(
        again.stats().await["index_docs"],
        model.values().flatten().count(),
        "one document per stored contact"
    );
    again.stop().await;
}

/// kill -9 while a compaction copies the store: the restart removes the partial
/// copy, keeps every acknowledged write, and the erase is scrubbed after all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_compaction_loses_nothing_and_the_scrub_completes() {
    let temp = tempfile::TempDir::new().unwrap();
    let data_dir = temp.path().join("data");
    let server = ServerProcess::start_with_config(&data_dir, "[store]\nscrub_within_secs = 0\n");
    let client = reqwest::Client::new();
    // Enough rows that copying them takes a while.
    let rows: String = (0..20_000)
        .map(|n| format!("{{\"name\":\"Bulk Person{n}\",\"email\":\"bulk{n}@compact.example\"}}\n"))
        .collect();
    let job = remote::start_import(&client, &server.base, rows).await;
    remote::wait_job(&client, &server.base, &job, Duration::from_secs(120)).await;
    let model: Arc<Mutex<Model>> = Arc::default();
    let until = Instant::now() + Duration::from_secs(60);
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            tokio::spawn(write_own_contacts(
                client.clone(),
                server.base.clone(),
                writer,
                until,
                model.clone(),
            ))
        })
        .collect();
    // Pull the plug while a copy is being built.
    let copy = data_dir.join("contacts.redb.compact");
    let seen = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while !copy.exists() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let seen = copy.exists();
        server.kill_hard();
        seen
    })
    .await
    .unwrap();
    assert!(seen, "no compaction started");
    for writer in writers {
        writer.await.unwrap();
    }
    let model = model.lock().unwrap().clone();

    let app = TestApp::spawn_with(scrub_now_config(&data_dir)).await;
    app.wait_caught_up().await;
    let stats = app.wait_scrubbed().await;
    let writes = check_writes_survived(&app, &model).await;
    assert!(writes > 0);
    assert_eq!(
        stats["index_docs"].as_u64().unwrap(),
        stats["contacts"]["active"].as_u64().unwrap()
            + stats["contacts"]["deleted"].as_u64().unwrap(),
        "one document per stored contact"
    );
    app.stop().await;
}

/// After a crash, each acknowledged write is there, except that a contact may be at a
/// later version than acknowledged (its next write landed but was not answered).
async fn check_writes_survived(app: &TestApp, model: &Model) -> usize {
    for (id, expected) in model {
        let reply = app.get(&format!("/v1/contacts/{id}")).await;
        match expected {
            None => assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id} was erased"),
            Some(expected) if reply.status == StatusCode::OK => {
                assert!(
                    reply.body["version"].as_u64() >= expected["version"].as_u64(),
                    "{id}"
                );
            }
            // Erased by a write that landed without its answer.
            Some(_) => assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}"),
        }
    }
    model.len()
}

/// Imports `rows` new contacts (numbered from `first`) and waits for the job's end.
async fn import_rows(app: &TestApp, first: usize, rows: usize, dry_run: bool) -> Value {
    let body: String = (first..first + rows)
        .map(|n| {
            format!(
                "{}\n",
                json!({"name": format!("Loaded Person{n}"), "email": format!("load{n}@pack.example"),
                       "tags": ["loaded"]})
            )
        })
        .collect();
    let query = format!("?dry_run={dry_run}");
    let id = remote::start_import_with(&app.client, &app.base, &query, body).await;
    remote::wait_job(&app.client, &app.base, &id, Duration::from_secs(60)).await
}

/// No compaction runs or waits to start (whether a pack is wanted is decided in the
/// commit of the rows, before the import job can end).
async fn assert_no_compaction_after(app: &TestApp, completed: u64) {
    let compaction = app.stats().await["scrubs"]["compaction"].clone();
    assert_eq!(compaction["running"], false, "{compaction}");
    assert_eq!(compaction["pack_pending"], false, "{compaction}");
    assert_eq!(compaction["completed"], completed, "{compaction}");
}

/// A large import is followed by a pack of the store file; a dry run, a load below
/// the threshold and a load under a quarter of the store are not; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_packs_the_store_file_and_keeps_every_contact() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = crate::common::test_config(temp.path());
    config.store.compact_after_import_rows = 100;
    let app = TestApp::spawn_with(config.clone()).await;

    let job = import_rows(&app, 0, 300, false).await;
    assert_eq!(job["created"], 300, "{job}");
    // The pack waits a few seconds in case another load follows, and one does.
    import_rows(&app, 300, 100, false).await;
    let compaction = app.stats().await["scrubs"]["compaction"].clone();
    assert_eq!(compaction["pack_pending"], true, "{compaction}");
    assert_eq!(compaction["running"], false, "{compaction}");
    assert_eq!(compaction["completed"], 0, "{compaction}");
    app.wait_compactions(1).await;

    // Not counted: a dry run writes nothing.
    let job = import_rows(&app, 1_000, 150, true).await;
    assert_eq!(job["created"], 150, "{job}");
    assert_no_compaction_after(&app, 1).await;
    // Enough rows, but a small part of the store (100 of 500).
    import_rows(&app, 2_000, 100, false).await;
    assert_no_compaction_after(&app, 1).await;
    // 200 of 600 since the last pack: at least a quarter.
    import_rows(&app, 3_000, 100, false).await;
    app.wait_compactions(2).await;

    // Every contact is in the packed file, and writes go on after it.
    let created = app
        .create(json!({"name": "After Pack", "email": "after@pack.example"}))
        .await;
    assert_eq!(app.stats().await["contacts"]["active"], 601);
    for n in [0, 399, 2_050, 3_099] {
        let email = format!("load{n}@pack.example");
        let found = app.search(&email).await;
        let emails: Vec<&Value> = found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| &hit["email"])
            .collect();
        assert!(emails.contains(&&json!(email)), "{email}: {emails:?}");
    }
    app.stop().await;
    let again = TestApp::spawn_with(config).await;
    again.wait_caught_up().await;
    assert_eq!(again.stats().await["contacts"]["active"], 601);
    assert_eq!(
        again
            .get(&format!("/v1/contacts/{}", created["id"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
    again.stop().await;
}

/// A pack that fails is retried after its pause with no write to wake the writer, and
/// succeeds once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pack_is_retried_until_it_succeeds() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = crate::common::test_config(temp.path());
    config.store.compact_after_import_rows = 100;
    // Retries come after a tenth of the scrub bound, at least a second.
    config.store.scrub_within_secs = 10;
    let app = TestApp::spawn_with(config).await;
    // The compactor cannot replace a directory with its copy: every attempt fails.
    let blocker = app.data_dir.join("contacts.redb.compact");
    std::fs::create_dir(&blocker).unwrap();

    import_rows(&app, 0, 200, false).await;
    let started = Instant::now();
    loop {
        let compaction = app.stats().await["scrubs"]["compaction"].clone();
        if compaction["failures"].as_u64().unwrap() >= 2 {
            assert_eq!(compaction["completed"], 0, "{compaction}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{compaction}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::remove_dir(&blocker).unwrap();
    app.wait_compactions(1).await;
    let stats = app.stats().await;
    assert_eq!(stats["scrubs"]["compaction"]["failures"], 0);
    assert_eq!(stats["contacts"]["active"], 200);
    app.stop().await;
}
