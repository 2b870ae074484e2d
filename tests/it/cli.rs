//! The command line as a user runs it: `generate`, `import` and `export` against a
//! data directory and against a running server, and `bench` on a tiny dataset. Every
//! command is the real binary.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{ServerProcess, run_contactd};

fn contactd(args: &[&str], dir: &Path) -> Output {
    run_contactd(args, Some(dir), &[])
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Rows of an NDJSON export, sorted, so two exports compare as sets.
fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn data_dir_import_then_export_through_csv_reproduces_every_contact() {
    let dir = tempfile::TempDir::new().unwrap();
    let work = dir.path();
    ok(contactd(
        &[
            "generate", "--count", "300", "--seed", "5", "--out", "c.ndjson",
        ],
        work,
    ));
    std::fs::write(
        work.join("defs.json"),
        ok(contactd(&["generate", "--definitions"], work)),
    )
    .unwrap();
    let first = ok(contactd(
        &[
            "import",
            "c.ndjson",
            "--data-dir",
            "a",
            "--define",
            "defs.json",
        ],
        work,
    ));
    assert!(
        first.contains("300 rows") && first.contains("300 created") && first.contains("0 rejected"),
        "{first}"
    );
    assert!(first.contains("all searchable"), "{first}");
    // 300 rows are under the default threshold of a pack.
    assert!(!first.contains("packed"), "{first}");

    ok(contactd(
        &["export", "--data-dir", "a", "--out", "a.csv"],
        work,
    ));
    ok(contactd(
        &["export", "--data-dir", "a", "--out", "a.ndjson"],
        work,
    ));
    // Over a lowered threshold the import packs the store file before it exits; the
    // comparison below checks the packed file.
    let second = ok(run_contactd(
        &[
            "import",
            "a.csv",
            "--data-dir",
            "b",
            "--define",
            "defs.json",
        ],
        Some(work),
        &[("CONTACTD_STORE__COMPACT_AFTER_IMPORT_ROWS", "100")],
    ));
    assert!(second.contains("300 created"), "{second}");
    assert!(second.contains("store file packed"), "{second}");
    assert!(
        !work.join("b/contacts.redb.compact").exists(),
        "no copy is left behind"
    );
    ok(contactd(
        &["export", "--data-dir", "b", "--out", "b.ndjson"],
        work,
    ));

    let (a, b) = (
        sorted_lines(&work.join("a.ndjson")),
        sorted_lines(&work.join("b.ndjson")),
    );
    assert_eq!(a.len(), 300);
    assert_eq!(a, b, "CSV export → import gives back the same contacts");
    // The generated data exercises what a round trip can lose.
    let all = a.join("\n");
    for needle in ["custom_fields", "identities", "tags", "é", "ł"] {
        assert!(all.contains(needle), "{needle} missing from the export");
    }

    // Importing the same file again upserts by external id... which generated rows lack,
    // so with `--match email` every row updates its contact instead.
    let again = ok(contactd(
        &["import", "c.ndjson", "--data-dir", "a", "--match", "email"],
        work,
    ));
    assert!(again.contains("0 created, 300 updated"), "{again}");

    // A filter narrows the export, and a broken one is refused with its message.
    ok(contactd(
        &[
            "export",
            "--data-dir",
            "a",
            "--filter",
            "country = PL",
            "--out",
            "pl.ndjson",
        ],
        work,
    ));
    let polish = sorted_lines(&work.join("pl.ndjson"));
    assert!(!polish.is_empty() && polish.len() < 300);
    assert!(polish.iter().all(|l| l.contains(r#""country":"PL""#)));
    let broken = contactd(
        &["export", "--data-dir", "a", "--filter", "country ="],
        work,
    );
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("invalid_filter"));
}

#[test]
fn server_import_reports_bad_rows_keeps_good_ones_and_exports() {
    let dir = tempfile::TempDir::new().unwrap();
    let work = dir.path();
    let server = ServerProcess::start(&work.join("data"));
    std::fs::write(
        work.join("rows.ndjson"),
        concat!(
            "{\"name\": \"Hélène Dupont\", \"email\": \"helene@example.fr\"}\n",
            "{\"name\": \"Broken\", \"email\": \"not-an-email\"}\n",
            "{\"name\": \"Łukasz Nowak\", \"phone\": \"+48 501 234 567\"}\n",
        ),
    )
    .unwrap();
    let output = contactd(&["import", "rows.ndjson", "--server", &server.base], work);
    assert_eq!(output.status.code(), Some(2), "rows were rejected: exit 2");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("2 created") && stdout.contains("1 rejected"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2, email"), "{stderr}");

    let exported = ok(contactd(
        &["export", "--server", &server.base, "--q", "helene"],
        work,
    ));
    let rows: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "Hélène Dupont");
    let csv = ok(contactd(
        &[
            "export",
            "--server",
            &server.base,
            "--format",
            "csv",
            "--fields",
            "name,phone",
        ],
        work,
    ));
    assert_eq!(csv.lines().next(), Some("name,phone"));
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let refused = contactd(
        &["import", "missing.ndjson", "--server", &server.base],
        work,
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("missing.ndjson"));
}

#[test]
fn bench_measures_every_scenario_on_a_tiny_dataset() {
    let dir = tempfile::TempDir::new().unwrap();
    let work = dir.path();
    let report = work.join("bench.json");
    let table = ok(contactd(
        &[
            "bench",
            "--count",
            "300",
            "--seconds",
            "0.3",
            "--queries",
            "60",
            "--data-dir",
            "data",
            "--json",
            "bench.json",
        ],
        work,
    ));
    for line in [
        "import until all searchable",
        "search throughput, 8 clients",
        "reindex",
    ] {
        assert!(table.contains(line), "{line} missing from:\n{table}");
    }
    let report: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let import = &report["import"];
    assert_eq!(import["rows"], 300);
    assert_eq!(import["created"], 300);
    assert_eq!(import["rejected"], 0);
    assert!(
        import["searchable_seconds"].as_f64().unwrap()
            >= import["stored_seconds"].as_f64().unwrap()
    );
    assert_eq!(
        report["contacts"], 300,
        "counted before the write scenarios"
    );
    assert_eq!(
        report["kinds_without_hits"],
        serde_json::json!([]),
        "every kind finds something"
    );
    let latency = &report["latency"];
    assert_eq!(latency["overall"]["count"], 60);
    assert_eq!(
        latency["by_kind"].as_array().unwrap().len(),
        contactd::bench::mix::KINDS.len()
    );
    let clients: Vec<u64> = report["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["errors"], 0, "{t}");
            assert!(t["requests"].as_u64().unwrap() > 0, "{t}");
            t["clients"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(clients, [1, 8, 32]);
    assert_eq!(report["writes"]["errors"], 0);
    assert!(report["writes"]["requests"].as_u64().unwrap() > 0);
    let searchable = &report["write_to_searchable"];
    assert!(searchable["latency"]["count"].as_u64().unwrap() > 0);
    assert_eq!(searchable["missing"], 0);
    assert!(report["rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(report["store_bytes"].as_u64().unwrap() > 0);
    assert!(report["restart_ready_seconds"].as_f64().unwrap() > 0.0);
    // The writes added contacts: reindex saw all of them.
    let written = report["writes"]["requests"].as_u64().unwrap()
        + searchable["latency"]["count"].as_u64().unwrap();
    assert_eq!(
        report["reindex"]["documents"].as_u64().unwrap(),
        300 + written
    );
    // A given --data-dir is kept, with the server's log.
    assert!(work.join("data/contacts.redb").exists());
    assert!(work.join("data/server.log").exists());
}

/// `keys create` on the file a server runs with: the server asks for a key within a
/// second, and the CLI's client sends the one in CONTACTD_API_KEY.
#[test]
fn a_key_created_by_the_cli_guards_the_running_server_at_once() {
    let dir = tempfile::TempDir::new().unwrap();
    let work = dir.path();
    let data = work.join("data");
    let server = ServerProcess::start(&data);
    let config = data.with_extension("toml");
    let export = |key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_contactd"));
        command
            .args(["export", "--server", &server.base])
            .current_dir(work)
            .env_remove("CONTACTD_API_KEY");
        if let Some(key) = key {
            command.env("CONTACTD_API_KEY", key);
        }
        command.output().expect("the contactd binary runs")
    };
    ok(export(None));

    let key = ok(contactd(
        &[
            "keys",
            "create",
            "--role",
            "manager",
            "--name",
            "cli",
            "--config",
            config.to_str().unwrap(),
        ],
        work,
    ));
    let key = key.trim();
    assert!(key.starts_with("cdk_"), "{key}");
    assert!(
        !std::fs::read_to_string(&config).unwrap().contains(key),
        "only the hash is kept"
    );
    let listed = ok(contactd(
        &["keys", "list", "--config", config.to_str().unwrap()],
        work,
    ));
    assert!(
        listed.contains("cli") && listed.contains("manager"),
        "{listed}"
    );

    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let refused = export(None);
        if !refused.status.success() {
            assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthorized"));
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the server never asked for the key"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ok(export(Some(key)));
    ok(contactd(
        &[
            "keys",
            "revoke",
            "cli",
            "--config",
            config.to_str().unwrap(),
        ],
        work,
    ));
}
