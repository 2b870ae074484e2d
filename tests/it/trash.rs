//! Trash: restore, its window and conflicts, the purge, and permanent erase.

use std::path::Path;

use contactd::clock::Clock;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, scrub_now_config, test_config};

#[tokio::test]
async fn restore_brings_a_contact_back_into_search() {
    let app = TestApp::spawn().await;
    let contact = app
        .create(json!({"name": "Lazarus Once", "email": "laz@example.com"}))
        .await;
    let path = format!("/v1/contacts/{}", contact["id"].as_str().unwrap());
    app.delete(&path).await;
    let restored = app
        .post(&format!("{path}/restore?wait=indexed"), json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    assert_eq!(restored.body["status"], "active");
    assert_eq!(restored.body["deleted_at"], json!(null));
    assert_eq!(app.search_ids("lazarus").await.len(), 1);
    assert_eq!(
        app.get("/v1/contacts/lookup?email=laz%40example.com")
            .await
            .status,
        StatusCode::OK
    );
    // Restoring an active contact is a conflict.
    app.post(&format!("{path}/restore"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.stop().await;
}

#[tokio::test]
async fn restore_refuses_when_an_identity_was_taken_meanwhile() {
    let app = TestApp::spawn().await;
    let first = app.create(json!({"email": "taken@example.com"})).await;
    let path = format!("/v1/contacts/{}", first["id"].as_str().unwrap());
    app.delete(&path).await;
    let newcomer = app.create(json!({"email": "taken@example.com"})).await;
    let error = app
        .post(&format!("{path}/restore"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "identity_taken")
        .clone();
    assert_eq!(error["details"][0]["contact_id"], newcomer["id"]);
    assert_eq!(app.get(&path).await.body["status"], "deleted");
    app.stop().await;
}

#[tokio::test]
async fn restore_window_ends_and_the_purge_erases_expired_contacts() {
    let temp = tempfile::TempDir::new().unwrap();
    let clock = Clock::default();
    let app = TestApp::spawn_with_clock(test_config(temp.path()), clock.clone()).await;
    let old = app.create(json!({"email": "old@example.com"})).await;
    let recent = app.create(json!({"email": "recent@example.com"})).await;
    let old_path = format!("/v1/contacts/{}", old["id"].as_str().unwrap());
    let recent_path = format!("/v1/contacts/{}", recent["id"].as_str().unwrap());
    app.delete(&old_path).await;
    clock.advance(chrono::Duration::days(59));
    app.delete(&recent_path).await;
    clock.advance(chrono::Duration::days(2));

    app.post(&format!("{old_path}/restore"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(app.store.purge_expired().await.unwrap(), 1);
    app.get(&old_path)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.post(&format!("{recent_path}/restore"), json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let stats = app.stats().await;
    assert_eq!(
        stats["contacts"],
        json!({"active": 1, "deleted": 0, "merged": 0})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_zero_window_makes_deletion_final() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    config.rules.restore_window_days = 0;
    let app = TestApp::spawn_with(config).await;
    let contact = app.create(json!({"email": "final@example.com"})).await;
    let path = format!("/v1/contacts/{}", contact["id"].as_str().unwrap());
    app.delete(&path).await;
    app.post(&format!("{path}/restore"), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.store.purge_expired().await.unwrap();
    app.get(&path)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.stop().await;
}

/// Whether any file under `path` contains `needle`.
fn files_contain(path: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![path.to_path_buf()];
    while let Some(next) = stack.pop() {
        if next.is_dir() {
            stack.extend(std::fs::read_dir(&next).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&next)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn permanent_erase_leaves_no_copy_in_the_store_file_or_the_index() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_with(scrub_now_config(temp.path())).await;
    // The email shares no four bytes with the name or the tag: records are compressed,
    // and a run repeated inside one record is stored as a back-reference, so only the
    // first spelling of a run is sure to be in the file as written.
    let email = "vexqombrith.gone@example.com";
    let keep = app
        .create(json!({"name": "Keeper Person", "email": "keeper@example.com"}))
        .await;
    let contact = app
        .create(
            json!({"name": "Zyxquorbath Erasable", "email": email, "tags": ["Zyxquorbath-Tag"]}),
        )
        .await;
    let id = contact["id"].as_str().unwrap();
    // Patch it a few times so older versions exist in freed pages too.
    for n in 0..3 {
        app.patch(
            &format!("/v1/contacts/{id}?wait=indexed"),
            json!({"notes": format!("revision {n}")}),
        )
        .await;
    }
    let store_file = app.data_dir.join("contacts.redb");
    let index_dir = app.data_dir.join("search");
    assert!(
        files_contain(&store_file, email.as_bytes()),
        "sanity: the store holds the email before"
    );
    assert!(
        files_contain(&store_file, b"Zyxquorbath"),
        "sanity: the store holds the name before"
    );
    assert!(
        files_contain(&index_dir, b"zyxquorbath"),
        "sanity: the index holds the name before"
    );

    let reply = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/contacts/{id}?permanent=true&wait=indexed"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["erased"], id);
    app.get(&format!("/v1/contacts/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(app.search_ids("zyxquorbath").await.is_empty());
    // Gone from every answer at once; gone from the files once scrubbed.
    let stats = app.wait_scrubbed().await;
    assert_eq!(stats["scrubs"]["compaction"]["failures"], 0);
    assert!(
        !files_contain(&store_file, email.as_bytes()),
        "the store file still holds the email"
    );
    assert!(
        !files_contain(&store_file, b"Zyxquorbath"),
        "the store file still holds the name"
    );
    assert!(
        !files_contain(&index_dir, b"zyxquorbath"),
        "the index still holds the name"
    );

    // Everything else is intact and the server keeps working after the file swap.
    assert_eq!(
        app.search_ids("keeper").await,
        [keep["id"].as_str().unwrap()]
    );
    app.create(json!({"email": email})).await;
    app.stop().await;
    let again = TestApp::spawn_in(temp.path()).await;
    assert_eq!(again.stats().await["contacts"]["active"], 2);
    assert_eq!(
        again.search("vexqombrith").await["total"],
        1,
        "the new contact only"
    );
    assert_eq!(again.search("zyxquorbath").await["total"], 0);
    again.stop().await;
}

/// A compaction that fails is retried, and the erase stays pending until one succeeds.
#[tokio::test]
async fn a_failed_scrub_is_retried_and_never_reported_done() {
    let temp = tempfile::TempDir::new().unwrap();
    let app = TestApp::spawn_with(scrub_now_config(temp.path())).await;
    let contact = app
        .create(json!({"name": "Qworvex Failing", "email": "qworvex@example.com"}))
        .await;
    // The compactor cannot replace a directory with its copy: every attempt fails.
    let blocker = app.data_dir.join("contacts.redb.compact");
    std::fs::create_dir(&blocker).unwrap();
    let id = contact["id"].as_str().unwrap();
    let reply = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/contacts/{id}?permanent=true"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let started = std::time::Instant::now();
    let stats = loop {
        let stats = app.stats().await;
        if stats["scrubs"]["compaction"]["failures"].as_u64().unwrap() >= 2 {
            break stats;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{}",
            stats["scrubs"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(stats["scrubs"]["pending_store"], 1, "{}", stats["scrubs"]);
    assert!(
        stats["scrubs"]["compaction"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    // Writes go on meanwhile.
    app.create(json!({"email": "still.writing@example.com"}))
        .await;

    std::fs::remove_dir(&blocker).unwrap();
    let stats = app.wait_scrubbed().await;
    assert_eq!(stats["scrubs"]["compaction"]["failures"], 0);
    assert!(!files_contain(
        &app.data_dir.join("contacts.redb"),
        b"qworvex@example.com"
    ));
    assert_eq!(stats["contacts"]["active"], 1);
    app.stop().await;
}
