//! Generated requests: ≥ 1,000 requests over every route with parameters and bodies
//! drawn from valid, borderline and hostile values. None may answer 5xx, and none
//! answered 4xx may change anything (the store's sequence stays put).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;

const REQUESTS: usize = 3_000;
/// Independent request streams, interleaved.
const SEEDS: [u64; 3] = [11, 12, 13];

/// Texts that have broken parsers elsewhere: empty, huge, control characters,
/// numbers out of range, half-written filters, times past chrono's range.
const TEXTS: &[&str] = &[
    "",
    " ",
    "a",
    "hélène",
    "Dupont",
    "06 12 34",
    "+33 6 12",
    "dupont@",
    "\u{0}",
    "\u{202e}evil",
    "💥💥",
    "-1",
    "0",
    "1e309",
    "18446744073709551616",
    "NaN",
    "null",
    "true",
    "[",
    "{\"a\":",
    "((((((((((",
    "country = FR",
    "country = ",
    "tags IN [vip, lead]",
    "tags IN [",
    "created_at > now+3000000000h",
    "created_at > now-100000000d",
    "created_at > now-99999999999999999999d",
    "updated_at >= 2026-13-45",
    "custom.plan = pro",
    "custom.nope = 1",
    "name CONTAINS dup",
    "NOT NOT NOT country = FR",
    "email EXISTS OR phone IS EMPTY",
    "name:desc",
    "created_at:sideways",
    "custom.plan",
    "name,created_at,updated_at,last_interaction_at,last_incoming_message_at",
    "Europe/Paris",
    "Mars/Olympus",
    "ndjson",
    "csv",
    "indexed",
    "tags,country",
    "01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
    "../../etc/passwd",
    "%",
    "%00",
];

struct Generator {
    rng: ChaCha8Rng,
    ids: Vec<String>,
}

impl Generator {
    fn text(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0 => "x".repeat(self.rng.random_range(1_000..8_000)),
            1 => format!("{}", self.rng.random::<i64>()),
            2 => self.ids.choose(&mut self.rng).cloned().unwrap_or_default(),
            _ => TEXTS.choose(&mut self.rng).unwrap().to_string(),
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        match self.rng.random_range(0..if depth > 2 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.rng.random::<bool>()),
            2 => json!(self.rng.random::<i64>()),
            3 => json!(self.rng.random::<f64>() * 1e12),
            4 | 5 => json!(self.text()),
            6 => Value::Array(
                (0..self.rng.random_range(0..5))
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            _ => self.object(depth + 1),
        }
    }

    fn object(&mut self, depth: usize) -> Value {
        const KEYS: &[&str] = &[
            "name",
            "email",
            "phone",
            "tags",
            "country",
            "language",
            "notes",
            "external_id",
            "identities",
            "custom_fields",
            "company_id",
            "assignee",
            "favorite",
            "q",
            "filter",
            "sort",
            "limit",
            "cursor",
            "fields",
            "facets",
            "other_id",
            "keep",
            "type",
            "channel",
            "events",
            "key",
            "label",
            "options",
            "domain",
            "status",
            "created_at",
            "bogus",
        ];
        let mut object = serde_json::Map::new();
        for _ in 0..self.rng.random_range(0..6) {
            let key = KEYS.choose(&mut self.rng).unwrap().to_string();
            let value = match key.as_str() {
                "identities" => json!([{"channel": self.text(), "value": self.text()}]),
                "custom_fields" => json!({"plan": self.value(depth), "seats": self.value(depth)}),
                "tags" | "options" => json!([self.text(), self.text()]),
                "type" => {
                    json!(["text", "number", "dropdown", "date", "bogus"].choose(&mut self.rng))
                }
                _ => self.value(depth),
            };
            object.insert(key, value);
        }
        Value::Object(object)
    }

    fn query(&mut self, names: &[&str]) -> String {
        let mut pairs = Vec::new();
        for name in names {
            if self.rng.random_bool(0.5) {
                let value = self.text();
                pairs.push(format!("{name}={}", urlencode(&value)));
            }
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }

    fn request(&mut self) -> (Method, String, Option<Value>) {
        use Method as M;
        let id = if self.rng.random_bool(0.7) {
            self.ids.choose(&mut self.rng).cloned().unwrap()
        } else {
            urlencode(&self.text())
        };
        let search = [
            "q", "filter", "sort", "limit", "cursor", "fields", "facets", "tz", "min_seq",
        ];
        let body = Some(self.object(0));
        match self.rng.random_range(0..22) {
            0 => (M::GET, format!("/v1/contacts{}", self.query(&search)), None),
            1 => (M::POST, "/v1/contacts/search".into(), body),
            2 => (
                M::POST,
                format!("/v1/contacts{}", self.query(&["wait"])),
                body,
            ),
            3 => (
                M::GET,
                format!("/v1/contacts/{id}{}", self.query(&["fields"])),
                None,
            ),
            4 => (M::PATCH, format!("/v1/contacts/{id}"), Some(self.value(0))),
            5 => (
                M::DELETE,
                format!("/v1/contacts/{id}{}", self.query(&["permanent"])),
                None,
            ),
            6 => (M::POST, format!("/v1/contacts/{id}/restore"), None),
            7 => (
                M::POST,
                format!("/v1/contacts/{id}/merge{}", self.query(&["dry_run"])),
                body,
            ),
            8 => (M::POST, format!("/v1/contacts/{id}/unmerge"), body),
            9 => (
                M::GET,
                format!(
                    "/v1/contacts/lookup{}",
                    self.query(&["email", "phone", "external_id", "channel", "value"])
                ),
                None,
            ),
            10 => (M::POST, "/v1/contacts/identify".into(), body),
            11 => (M::POST, format!("/v1/contacts/{id}/events"), body),
            12 => (M::POST, "/v1/events".into(), body),
            13 => (
                M::GET,
                format!(
                    "/v1/contacts/export{}",
                    self.query(&["format", "q", "filter", "fields", "sort"])
                ),
                None,
            ),
            14 => (M::POST, "/v1/companies".into(), body),
            15 => (M::PATCH, format!("/v1/companies/{id}"), body),
            16 => (
                M::GET,
                format!("/v1/companies/{id}/contacts{}", self.query(&search)),
                None,
            ),
            17 => (M::POST, "/v1/inboxes".into(), body),
            18 => (
                M::GET,
                format!("/v1/inboxes/{id}/contacts{}", self.query(&search)),
                None,
            ),
            19 => (M::POST, "/v1/custom-fields".into(), body),
            20 => (
                M::PATCH,
                format!("/v1/custom-fields/{id}{}", self.query(&["force"])),
                body,
            ),
            _ => (M::GET, format!("/v1/jobs/{id}"), None),
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_generated_request_fails_the_server_or_changes_anything_on_4xx() {
    let app = TestApp::spawn().await;
    // Something to find, merge, conform and filter on.
    let field = app
        .post(
            "/v1/custom-fields",
            json!({"key": "plan", "label": "Plan", "type": "dropdown", "options": ["free", "pro"]}),
        )
        .await;
    assert!(field.status.is_success(), "{}", field.body);
    let mut ids = vec!["plan".to_string(), "all".to_string()];
    for n in 0..6 {
        let contact = app
            .create(
                json!({"name": format!("Gen Person{n}"), "email": format!("gen{n}@x.example"),
                           "phone": format!("+33 6 12 34 56 7{n}"), "tags": ["vip"],
                           "custom_fields": {"plan": "pro"}}),
            )
            .await;
        ids.push(contact["id"].as_str().unwrap().to_string());
    }
    let company = app.post("/v1/companies", json!({"name": "Gen Corp"})).await;
    ids.extend(company.body["id"].as_str().map(String::from));

    let mut generators: Vec<Generator> = SEEDS
        .iter()
        .map(|seed| Generator {
            rng: ChaCha8Rng::seed_from_u64(*seed),
            ids: ids.clone(),
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..REQUESTS {
        let generator = &mut generators[n % SEEDS.len()];
        let (method, path, body) = generator.request();
        let before = app.store.committed().get();
        let mut request = app.client.request(method.clone(), app.url(&path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        *statuses.entry(status.as_u16()).or_insert(0) += 1;
        let shown = |text: &str| text.chars().take(300).collect::<String>();
        assert!(
            !status.is_server_error(),
            "request {n}: {method} {} {} answered {status}: {}",
            shown(&path),
            body.map(|b| shown(&b.to_string())).unwrap_or_default(),
            shown(&text)
        );
        if status.is_client_error() {
            assert_eq!(
                app.store.committed().get(),
                before,
                "request {n}: {method} {} answered {status} but wrote: {}",
                shown(&path),
                shown(&text)
            );
            let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                error["error"]["code"].is_string(),
                "request {n}: a {status} without the error shape: {}",
                shown(&text)
            );
        }
    }
    // The mix reached both sides: refusals and successes.
    assert!(statuses.keys().any(|s| *s < 300), "{statuses:?}");
    assert!(
        statuses.keys().any(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
    assert_eq!(app.get("/readyz").await.status, reqwest::StatusCode::OK);
    app.stop().await;
}
