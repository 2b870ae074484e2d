//! The import drop folder: files renamed into it become import jobs once, then move
//! to `done/` or `failed/` beside a report; `.tmp` files wait; files dropped while
//! the server was down are imported at start.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{TestApp, test_config};

async fn spawn(data_dir: &Path) -> TestApp {
    let mut config = test_config(data_dir);
    config.jobs.drop_dir = "drop".into();
    TestApp::spawn_with(config).await
}

/// Waits for `path` to exist.
async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_files_are_imported_once_and_filed_with_a_report() {
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    let drop = data.join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    // Dropped while the server is down: imported at start.
    std::fs::write(
        drop.join("early.ndjson"),
        "{\"name\": \"Early Bird\", \"email\": \"early@drop.example\", \"external_id\": \"e-1\"}\n",
    )
    .unwrap();
    let app = spawn(&data).await;
    wait_for(&drop.join("done/early.ndjson")).await;
    let early = report(&drop.join("done/early.ndjson.report.json"));
    assert_eq!(early["state"], "done");
    assert_eq!(early["created"], 1);

    // Written as .tmp (ignored), then renamed: imported, the bad row reported.
    let rows = "name,email,external_id\nAda Drop,ada@drop.example,d-1\nNo Contact,,d-2\nBob Drop,bob@drop.example,d-3\n";
    std::fs::write(drop.join("batch.tmp"), rows).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(drop.join("batch.tmp").exists(), "a .tmp file waits");
    std::fs::rename(drop.join("batch.tmp"), drop.join("batch.csv")).unwrap();
    wait_for(&drop.join("done/batch.csv.report.json")).await;
    wait_for(&drop.join("done/batch.csv")).await;
    let batch = report(&drop.join("done/batch.csv.report.json"));
    assert_eq!(batch["created"], 2, "{batch}");
    assert_eq!(batch["failed"], 1);
    assert_eq!(batch["errors"][0]["line"], 3, "{batch}");
    assert!(!drop.join("batch.csv").exists());

    // A file the import cannot read at all goes to failed/.
    std::fs::write(drop.join("broken.csv"), "nonsense_column\nx\n").unwrap();
    wait_for(&drop.join("failed/broken.csv.report.json")).await;
    wait_for(&drop.join("failed/broken.csv")).await;
    assert_eq!(
        report(&drop.join("failed/broken.csv.report.json"))["state"],
        "failed"
    );

    app.wait_caught_up().await;
    assert_eq!(app.search("drop.example").await["total"], 3);
    let imports = app.get("/v1/jobs?kind=import").await.body;
    assert_eq!(imports["jobs"].as_array().unwrap().len(), 3, "{imports}");
    app.stop().await;

    // A restart imports nothing again.
    let app = spawn(&data).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let imports = app.get("/v1/jobs?kind=import").await.body;
    assert_eq!(imports["jobs"].as_array().unwrap().len(), 3, "{imports}");
    assert_eq!(app.stats().await["contacts"]["active"], 3);
    assert_eq!(
        std::fs::read_dir(drop.join("processing")).unwrap().count(),
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_file_whose_job_was_never_recorded_is_imported_at_start() {
    // What a crash between the claim (rename) and the job's record leaves behind.
    let temp = tempfile::TempDir::new().unwrap();
    let data = temp.path().join("data");
    let processing = data.join("drop/processing");
    std::fs::create_dir_all(&processing).unwrap();
    let id = "01JD3Z6K8W6B9V8Y0Q4T2H5N7M";
    std::fs::write(
        processing.join(format!("{id}--late.ndjson")),
        "{\"name\": \"Late Claim\", \"email\": \"late@drop.example\"}\n",
    )
    .unwrap();
    let app = spawn(&data).await;
    wait_for(&data.join("drop/done/late.ndjson")).await;
    let job = app.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(job["created"], 1, "{job}");
    app.wait_caught_up().await;
    assert_eq!(app.search("late@drop.example").await["total"], 1);
    app.stop().await;
}
