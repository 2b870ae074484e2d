//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs) driven over WebDriver against a real
//! server with real data. Each main view's screenshot goes to
//! `target/browser-artifacts/`.

use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium under its own chromedriver, closed when dropped.
struct Browser {
    client: Client,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: the browser tests need Debian's {package} package \
             (`apt-get install chromium chromium-driver`; .ci/run installs them)"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::TempDir::new().unwrap();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,720",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }
    });
    let capabilities = match capabilities {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not answer: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    Browser {
        client,
        driver,
        _profile: profile,
    }
}

/// Runs `script` in the page until it returns something truthy; returns that.
async fn until(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if truthy {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} (last: {value})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn eval(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of the table's rows, once the page shows `total` contacts.
async fn rows_when_total(client: &Client, total: u64) -> Vec<String> {
    let expected = format!("{} contact", total);
    let script = format!(
        "const t = document.querySelector('#total').textContent.replace(/[^0-9a-z ]/g, '');
         return t.startsWith({:?}) && document.body.dataset.loading !== 'true'
            ? [...document.querySelectorAll('#table tbody tr')].map(r => r.textContent) : null;",
        expected
    );
    let rows = until(client, &format!("a total of {total}"), &script).await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn artifacts() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// A server with generated contacts and custom fields, and a few known ones.
async fn server_with_contacts() -> TestApp {
    let app = TestApp::spawn().await;
    for definition in contactd::generate::field_definitions() {
        let created = app.post("/v1/custom-fields", definition).await;
        assert_eq!(
            created.status,
            reqwest::StatusCode::CREATED,
            "{}",
            created.body
        );
    }
    let mut generator = contactd::generate::Generator::new(7);
    let rows: String = (0..300)
        .map(|n| serde_json::to_string(&generator.contact(n)).unwrap() + "\n")
        .collect();
    let job = crate::common::remote::start_import(&app.client, &app.base, rows).await;
    crate::common::remote::wait_job(&app.client, &app.base, &job, Duration::from_secs(60)).await;
    for contact in [
        json!({"name": "Hélène Dupont", "email": "helene.dupont@orange.fr", "phone": "+33 6 12 34 56 78", "country": "FR"}),
        json!({"name": "Marc Vidal", "email": "marc.vidal@gmail.com", "country": "FR", "tags": ["vip"]}),
        json!({"name": "Marc Vidal", "email": "marcvidal+shop@gmail.com", "country": "FR", "notes": "second"}),
    ] {
        app.create(contact).await;
    }
    app.wait_caught_up().await;
    app
}

async fn api_total(app: &TestApp, query: Value) -> u64 {
    let mut body = query;
    body["limit"] = json!(1);
    app.post("/v1/contacts/search", body).await.body["total"]
        .as_u64()
        .unwrap()
}

async fn open(client: &Client, url: &str) {
    client.goto(url).await.unwrap();
    until(
        client,
        "the dashboard to start",
        "return document.body.dataset.ready === 'true';",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filter_sort_deep_link_and_bulk_in_the_browser() {
    let app = server_with_contacts().await;
    let browser = browser().await;
    let client = &browser.client;
    open(client, &app.base).await;
    let everyone = api_total(&app, json!({})).await;
    rows_when_total(client, everyone).await;

    // Search as you type: each keystroke searches; the match is marked.
    let q = client.find(Locator::Css("#q")).await.unwrap();
    for key in ["h", "e", "l", "e", "n"] {
        q.send_keys(key).await.unwrap();
    }
    let marked = until(
        client,
        "Hélène marked",
        "const m = [...document.querySelectorAll('#table tbody mark')].map(m => m.textContent);
         return m.includes('Hélèn') ? m : null;",
    )
    .await;
    assert!(
        marked.as_array().unwrap().iter().any(|m| m == "Hélèn"),
        "{marked}"
    );
    assert_eq!(eval(client, "return location.search;").await, "?q=helen");
    screenshot(client, "search").await;
    // Keyboard: down to the first row, Enter opens its card, Esc closes it.
    q.send_keys(&Key::Down.to_string()).await.unwrap();
    q.send_keys(&Key::Enter.to_string()).await.unwrap();
    let title = until(
        client,
        "the contact card",
        "const d = document.querySelector('#card'); return d.open && d.querySelector('h2')?.textContent;",
    )
    .await;
    assert_eq!(title, "Hélène Dupont");
    screenshot(client, "card").await;
    client
        .find(Locator::Css("#card"))
        .await
        .unwrap()
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    until(
        client,
        "the card to close",
        "return !document.querySelector('#card').open;",
    )
    .await;
    q.send_keys(&Key::Escape.to_string()).await.unwrap();
    rows_when_total(client, everyone).await;

    // Filter drawer → filter text → results.
    click(client, "#filters-toggle").await;
    click(
        client,
        "#filter-builder .group > .row button:nth-of-type(1)",
    )
    .await;
    client
        .find(Locator::Css("#filter-builder select[aria-label=Field]"))
        .await
        .unwrap()
        .select_by_value("country")
        .await
        .unwrap();
    client
        .find(Locator::Css("#filter-builder input[aria-label=Value]"))
        .await
        .unwrap()
        .send_keys("FR")
        .await
        .unwrap();
    let text = eval(
        client,
        "return document.querySelector('#filter-text').value;",
    )
    .await;
    assert_eq!(text, "country = FR");
    click(client, "#filter-apply").await;
    let french = api_total(&app, json!({"filter": "country = FR"})).await;
    assert!(french > 3 && french < everyone);
    rows_when_total(client, french).await;
    screenshot(client, "filter").await;
    // A filter that does not parse: the error points at its position.
    let area = client.find(Locator::Css("#filter-text")).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys("country = FR AND (").await.unwrap();
    click(client, "#filter-apply").await;
    let position = until(
        client,
        "the parse error",
        "const e = document.querySelector('#filter-error [data-position]'); return e && e.dataset.position;",
    )
    .await;
    assert_eq!(position, "18");

    // Sort by a header.
    open(client, &format!("{}/?filter=country%20%3D%20FR", app.base)).await;
    rows_when_total(client, french).await;
    click(client, "th[data-column=name] button").await;
    until(
        client,
        "name ascending",
        "return document.querySelector('th[data-column=name]').getAttribute('aria-sort') === 'ascending' && location.search.includes('sort=name');",
    )
    .await;
    let expected: Vec<Value> = app
        .post(
            "/v1/contacts/search",
            json!({"filter": "country = FR", "sort": "name:asc", "limit": 10}),
        )
        .await
        .body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].clone())
        .collect();
    let script = format!(
        "const names = [...document.querySelectorAll('#table tbody td[data-column=name]')].slice(0, 10).map(c => c.textContent);
         return JSON.stringify(names) === {:?} ? names : null;",
        serde_json::to_string(&expected).unwrap()
    );
    until(client, "rows sorted by name", &script).await;

    // A deep link reproduces a view: text, filter, sort and columns.
    let link = format!(
        "{}/?q=marc&filter=country%20%3D%20FR&sort=name%3Adesc&columns=name%2Cemail%2Ccountry",
        app.base
    );
    open(client, &link).await;
    let headers = until(
        client,
        "the linked columns",
        "const h = [...document.querySelectorAll('#table thead th[data-column]')].map(t => t.dataset.column);
         return h.length ? h : null;",
    )
    .await;
    assert_eq!(headers, json!(["name", "email", "country"]));
    assert_eq!(
        eval(client, "return document.querySelector('#q').value;").await,
        "marc"
    );
    assert_eq!(
        eval(
            client,
            "return document.querySelector('#filter-text').value;"
        )
        .await,
        "country = FR"
    );
    let marcs = api_total(&app, json!({"q": "marc", "filter": "country = FR"})).await;
    let rows = rows_when_total(client, marcs).await;
    assert!(rows.iter().all(|r| r.contains("FR")), "{rows:?}");

    // Bulk: tag every match (more than a page) with a confirmation naming the count.
    let germans = api_total(&app, json!({"filter": "country = DE"})).await;
    assert!(germans > 10, "{germans}");
    open(
        client,
        &format!("{}/?filter=country%20%3D%20DE&limit=10", app.base),
    )
    .await;
    rows_when_total(client, germans).await;
    click(client, "#table thead input[type=checkbox]").await;
    until(client, "select all matching", "return [...document.querySelectorAll('#selection button')].find(b => b.textContent.startsWith('Select all'));").await;
    eval(client, "[...document.querySelectorAll('#selection button')].find(b => b.textContent.startsWith('Select all')).click(); return true;").await;
    click(client, "[data-bulk=add_tags]").await;
    let question = until(client, "the confirmation", "const d = document.querySelector('#confirm'); return d.open && document.querySelector('#confirm-text').textContent;").await;
    assert!(
        question.as_str().unwrap().contains(&germans.to_string()),
        "{question}"
    );
    client
        .find(Locator::Css("#confirm-input"))
        .await
        .unwrap()
        .send_keys("bulk-de")
        .await
        .unwrap();
    click(client, "#confirm-ok").await;
    until(
        client,
        "the bulk's answer",
        "return document.querySelector('#toast').textContent.startsWith('Done');",
    )
    .await;
    app.wait_caught_up().await;
    assert_eq!(
        api_total(&app, json!({"filter": "tags = bulk-de"})).await,
        germans
    );
    screenshot(client, "bulk").await;

    // Phone width, dark.
    client.set_window_size(390, 844).await.unwrap();
    click(client, "#view-menu summary").await;
    click(client, "#theme").await;
    screenshot(client, "phone-dark").await;
    browser.client.clone().close().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_unmerge_and_import_in_the_browser() {
    let app = server_with_contacts().await;
    let browser = browser().await;
    let client = &browser.client;
    open(
        client,
        &format!("{}/?q=marc%20vidal&columns=name%2Cemail%2Cnotes", app.base),
    )
    .await;
    let rows = rows_when_total(client, 2).await;
    assert_eq!(rows.len(), 2);

    // Merge from the duplicate suggestion, previewed, then undone.
    eval(client, "[...document.querySelectorAll('#table tbody tr')].find(r => !r.textContent.includes('second')).click(); return true;").await;
    until(
        client,
        "the suggestion",
        "return document.querySelector('#card [data-merge]');",
    )
    .await;
    click(client, "#card [data-merge]").await;
    until(
        client,
        "the merge dialog",
        "return document.querySelector('#merge').open;",
    )
    .await;
    click(client, "#merge input[aria-label='notes: keep other']").await;
    eval(client, "[...document.querySelectorAll('#merge button')].find(b => b.textContent.startsWith('Preview')).click(); return true;").await;
    let preview = until(
        client,
        "the preview",
        "return document.querySelector('#merge pre').textContent;",
    )
    .await;
    assert!(
        preview.as_str().unwrap().contains("\"notes\": \"second\""),
        "{preview}"
    );
    screenshot(client, "merge").await;
    eval(client, "[...document.querySelectorAll('#merge button')].find(b => b.textContent === 'Merge').click(); return true;").await;
    until(client, "the merged card", "return [...document.querySelectorAll('#card button')].find(b => b.textContent === 'Undo the merge');").await;
    app.wait_caught_up().await;
    let merged = app
        .post("/v1/contacts/search", json!({"q": "marc vidal"}))
        .await
        .body;
    assert_eq!(merged["total"], 1);
    assert_eq!(merged["hits"][0]["notes"], "second");
    eval(client, "[...document.querySelectorAll('#card button')].find(b => b.textContent === 'Undo the merge').click(); return true;").await;
    until(
        client,
        "the unmerge",
        "return document.querySelector('#toast').textContent === 'Unmerged.';",
    )
    .await;
    app.wait_caught_up().await;
    assert_eq!(
        app.post("/v1/contacts/search", json!({"q": "marc vidal"}))
            .await
            .body["total"],
        2
    );

    // Import with a bad row: the row's error is listed.
    let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(
        file.path(),
        "name,email,country\nIvy Import,ivy@import.example,FR\nNo Way,,FR\nJon Import,jon@import.example,DE\n",
    )
    .unwrap();
    click(client, "#view-menu summary").await;
    click(client, "#import-open").await;
    client
        .find(Locator::Css("#import input[type=file]"))
        .await
        .unwrap()
        .send_keys(&file.path().display().to_string())
        .await
        .unwrap();
    eval(client, "[...document.querySelectorAll('#import button')].find(b => b.textContent === 'Import').click(); return true;").await;
    let errors = until(
        client,
        "the row errors",
        "const rows = [...document.querySelectorAll('#import table tr')].slice(1).map(r => r.textContent);
         return rows.length ? rows : null;",
    )
    .await;
    assert!(errors[0].as_str().unwrap().starts_with('3'), "{errors}");
    let status = eval(
        client,
        "return document.querySelector('#import [aria-live]').textContent;",
    )
    .await;
    assert!(status.as_str().unwrap().contains("2 created"), "{status}");
    screenshot(client, "import").await;
    app.wait_caught_up().await;
    assert_eq!(app.search("import.example").await["total"], 2);
    browser.client.clone().close().await.unwrap();
    app.stop().await;
}
