//! Scoped keys: a key with a filter sees and changes only the contacts the filter
//! selects; a key with a field list reads and writes only those fields.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use contactd::auth::{KeyConfig, Role, generate_key, hash_key};

use crate::common::{Reply, TestApp, hit_ids, test_config};

struct Scoped {
    app: TestApp,
    owner: String,
    /// A manager scoped to `assignee = agent-12`.
    team: String,
    /// An agent scoped to agent-12's contacts that reads only a few fields.
    narrow: String,
    _temp: tempfile::TempDir,
}

impl Scoped {
    async fn start() -> Scoped {
        let temp = tempfile::TempDir::new().unwrap();
        let mut config = test_config(temp.path());
        let (owner, team, narrow) = (
            generate_key().unwrap(),
            generate_key().unwrap(),
            generate_key().unwrap(),
        );
        let key =
            |name: &str, role, secret: &str, filter: Option<&str>, fields: Option<&[&str]>| {
                KeyConfig {
                    name: name.into(),
                    role,
                    sha256: hash_key(secret),
                    created_at: None,
                    filter: filter.map(String::from),
                    fields: fields.map(|f| f.iter().map(|s| s.to_string()).collect()),
                }
            };
        let filter = Some("assignee = agent-12");
        config.auth.keys = vec![
            key("owner", Role::Owner, &owner, None, None),
            key("team-12", Role::Manager, &team, filter, None),
            key(
                "narrow-12",
                Role::Agent,
                &narrow,
                filter,
                Some(&["name", "email", "assignee", "tags"]),
            ),
        ];
        config.validate().unwrap();
        Scoped {
            app: TestApp::spawn_with(config).await,
            owner,
            team,
            narrow,
            _temp: temp,
        }
    }

    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.unwrap()).await
    }

    async fn get(&self, key: &str, path: &str) -> Reply {
        self.call(key, Method::GET, path, None).await
    }

    async fn create(&self, key: &str, body: Value) -> Reply {
        self.call(key, Method::POST, "/v1/contacts?wait=indexed", Some(body))
            .await
    }
}

fn ids_of(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    hit_ids(&reply.body)
}

#[tokio::test]
async fn a_scoped_key_reaches_only_the_contacts_its_filter_selects() {
    let s = Scoped::start().await;
    let company = s
        .call(
            &s.owner,
            Method::POST,
            "/v1/companies",
            Some(json!({"name": "Shared Co"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for i in 0..6 {
        let assignee = if i % 2 == 0 { "agent-12" } else { "agent-7" };
        let contact = s
            .create(
                &s.owner,
                json!({"name": format!("Person {i}"), "email": format!("person{i}@shared.example"),
                       "assignee": assignee, "company_id": company, "tags": ["vip"],
                       "country": if i < 3 { "FR" } else { "DE" }}),
            )
            .await;
        assert_eq!(contact.status, StatusCode::CREATED, "{}", contact.body);
        let id = contact.body["id"].as_str().unwrap().to_string();
        if assignee == "agent-12" {
            inside.push(id);
        } else {
            outside.push(id);
        }
    }
    inside.sort();

    // Search, count, facets and every page of a cursor walk: the scope only.
    let all = s
        .get(
            &s.team,
            "/v1/contacts?q=person&facets=tags,country&limit=1000",
        )
        .await;
    let mut found = ids_of(&all);
    found.sort();
    assert_eq!(found, inside);
    assert_eq!(all.body["total"], 3);
    assert_eq!(all.body["facets"]["tags"]["vip"], 3);
    let countries: u64 = all.body["facets"]["country"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(countries, 3);
    let mut walked = Vec::new();
    let mut path = "/v1/contacts?limit=1&sort=name:asc".to_string();
    loop {
        let page = s.get(&s.team, &path).await;
        walked.extend(ids_of(&page));
        assert_eq!(page.body["total"], 3);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/contacts?limit=1&sort=name:asc&cursor={cursor}"),
            None => break,
        }
    }
    walked.sort();
    assert_eq!(walked, inside);
    // A key without a field list projects by `fields` like any caller.
    let projected = s.get(&s.team, "/v1/contacts?fields=name&limit=1").await;
    assert_eq!(
        projected.body["hits"][0].as_object().unwrap().len(),
        2,
        "{}",
        projected.body
    );
    let one = s
        .get(&s.team, &format!("/v1/contacts/{}?fields=name", inside[0]))
        .await;
    assert_eq!(one.body.as_object().unwrap().len(), 2, "{}", one.body);
    let posted = s
        .call(
            &s.team,
            Method::POST,
            "/v1/contacts/search",
            Some(json!({"filter": "assignee = agent-7 OR tags = vip"})),
        )
        .await;
    assert_eq!(
        posted.body["total"], 3,
        "the key's filter is ANDed: {}",
        posted.body
    );
    for hit in posted.body["hits"].as_array().unwrap() {
        assert_eq!(hit["assignee"], "agent-12");
    }

    // Listings: company contacts, recipients, inbox counts, export.
    let listed = s
        .get(
            &s.team,
            &format!("/v1/companies/{company}/contacts?limit=100"),
        )
        .await;
    assert_eq!(listed.body["total"], 3);
    let recipients = s
        .get(&s.team, &format!("/v1/companies/{company}/recipients"))
        .await;
    assert_eq!(recipients.status, StatusCode::OK, "{}", recipients.body);
    assert_eq!(recipients.body["others"].as_array().unwrap().len(), 3);
    let inbox = s
        .call(
            &s.owner,
            Method::POST,
            "/v1/inboxes",
            Some(json!({"name": "VIPs", "filter": "tags = vip"})),
        )
        .await;
    assert_eq!(inbox.status, StatusCode::CREATED, "{}", inbox.body);
    let inboxes = s.get(&s.team, "/v1/inboxes?counts=true").await;
    for entry in inboxes.body["inboxes"].as_array().unwrap() {
        assert_eq!(entry["count"], 3, "{entry}");
    }
    let inbox_id = inbox.body["id"].as_str().unwrap();
    let in_inbox = s
        .get(&s.team, &format!("/v1/inboxes/{inbox_id}/contacts"))
        .await;
    assert_eq!(in_inbox.body["total"], 3);
    let export = s
        .app
        .client
        .get(s.app.url("/v1/contacts/export?format=ndjson"))
        .bearer_auth(&s.team)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported: Vec<Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(exported.len(), 3, "{export}");
    assert!(exported.iter().all(|c| c["assignee"] == "agent-12"));
    let filtered_export = s
        .app
        .client
        .get(
            s.app
                .url("/v1/contacts/export?format=csv&filter=tags%20%3D%20vip"),
        )
        .bearer_auth(&s.team)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(filtered_export.lines().count(), 1 + 3, "{filtered_export}");

    // A contact outside the scope does not exist for the key, whatever the route.
    let other = &outside[0];
    let version_before =
        s.get(&s.owner, &format!("/v1/contacts/{other}")).await.body["version"].clone();
    let attempts = [
        (Method::GET, format!("/v1/contacts/{other}"), None),
        (
            Method::PATCH,
            format!("/v1/contacts/{other}"),
            Some(json!({"notes": "x"})),
        ),
        (Method::DELETE, format!("/v1/contacts/{other}"), None),
        (Method::POST, format!("/v1/contacts/{other}/restore"), None),
        (
            Method::POST,
            format!("/v1/contacts/{other}/events"),
            Some(json!({"type": "message_in", "channel": "email"})),
        ),
        (
            Method::POST,
            format!("/v1/contacts/{}/merge", inside[0]),
            Some(json!({"other_id": other})),
        ),
        (
            Method::POST,
            format!("/v1/contacts/{other}/merge"),
            Some(json!({"other_id": inside[0]})),
        ),
        (
            Method::GET,
            "/v1/contacts/lookup?email=person1@shared.example".to_string(),
            None,
        ),
        (
            Method::POST,
            "/v1/contacts/identify".to_string(),
            Some(json!({"email": "person1@shared.example", "notes": "found"})),
        ),
    ];
    for (method, path, body) in attempts {
        let reply = s.call(&s.team, method.clone(), &path, body).await;
        reply.expect_error(StatusCode::NOT_FOUND, "not_found");
        // The answer is the one for an id that never existed.
        let text = reply.body.to_string();
        let echoed = format!("contact {other} not found");
        assert!(
            !text.replace(&echoed, "").contains(other.as_str())
                && !text.contains("person1@")
                && !text.contains("agent-7"),
            "{method} {path} shows the hidden contact: {text}"
        );
    }
    let erase = s
        .call(
            &s.owner,
            Method::GET,
            &format!("/v1/contacts/{other}"),
            None,
        )
        .await;
    assert_eq!(erase.body["version"], version_before, "nothing changed it");
    let batch = s
        .call(
            &s.team,
            Method::POST,
            "/v1/events",
            Some(json!({"events": [
                {"contact_id": other, "type": "message_in", "channel": "email"},
                {"contact_id": inside[0], "type": "message_in", "channel": "email"}]})),
        )
        .await;
    assert_eq!(batch.body["applied"], 1, "{}", batch.body);
    assert_eq!(batch.body["failed"][0]["error"]["code"], "not_found");

    // Writes may not leave the scope, and refused writes change nothing.
    let before = s.get(&s.owner, "/v1/contacts?limit=1").await.body["total"].clone();
    s.create(
        &s.team,
        json!({"name": "Elsewhere", "email": "elsewhere@x.example", "assignee": "agent-7"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    s.create(
        &s.team,
        json!({"name": "Nobody's", "email": "nobody@x.example"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        s.get(&s.owner, "/v1/contacts?limit=1&min_seq=1").await.body["total"],
        before
    );
    let mine = &inside[0];
    s.call(
        &s.team,
        Method::PATCH,
        &format!("/v1/contacts/{mine}"),
        Some(json!({"assignee": "agent-7"})),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        s.get(&s.owner, &format!("/v1/contacts/{mine}")).await.body["assignee"],
        "agent-12"
    );
    let patched = s
        .call(
            &s.team,
            Method::PATCH,
            &format!("/v1/contacts/{mine}"),
            Some(json!({"notes": "mine to change"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    // A claim held outside the scope is refused without naming its holder.
    let taken = s
        .create(
            &s.team,
            json!({"name": "Copycat", "email": "person1@shared.example", "assignee": "agent-12"}),
        )
        .await;
    taken.expect_error(StatusCode::CONFLICT, "identity_taken");
    assert!(
        !taken.body.to_string().contains(other.as_str()),
        "{}",
        taken.body
    );
    let created = s
        .create(
            &s.team,
            json!({"name": "New Mine", "email": "new@shared.example", "assignee": "agent-12"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // A bulk action by filter sweeps only the scope; by ids, the others are not found.
    let swept = s
        .call(
            &s.team,
            Method::POST,
            "/v1/contacts/bulk?wait=indexed",
            Some(json!({"action": "add_tags", "filter": "tags = vip", "tags": ["swept"]})),
        )
        .await;
    assert_eq!(swept.status, StatusCode::OK, "{}", swept.body);
    assert_eq!(swept.body["matched"], 3, "{}", swept.body);
    let by_ids = s
        .call(
            &s.team,
            Method::POST,
            "/v1/contacts/bulk",
            Some(json!({"action": "delete", "ids": [other, &inside[1]]})),
        )
        .await;
    assert_eq!(by_ids.body["changed"], 1, "{}", by_ids.body);
    assert_eq!(by_ids.body["failed"][0]["code"], "not_found");
    assert_eq!(
        s.get(&s.owner, &format!("/v1/contacts/{other}")).await.body["status"],
        "active"
    );
    let swept_all = s
        .get(&s.owner, "/v1/contacts?filter=tags%20%3D%20swept&min_seq=1")
        .await;
    for hit in swept_all.body["hits"].as_array().unwrap() {
        assert_eq!(hit["assignee"], "agent-12", "{hit}");
    }

    // Routes over the whole base are refused to a scoped key.
    s.get(&s.team, "/v1/stats")
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    s.app.stop().await;
}

#[tokio::test]
async fn a_key_with_a_field_list_reads_and_writes_only_those_fields() {
    let s = Scoped::start().await;
    let contact = s
        .create(
            &s.owner,
            json!({"name": "Hélène Dupont", "email": "helene@x.example", "phone": "+33 6 12 34 56 78",
                   "notes": "secret note", "assignee": "agent-12", "tags": ["vip"]}),
        )
        .await;
    let id = contact.body["id"].as_str().unwrap().to_string();
    let allowed = ["id", "name", "email", "assignee", "tags"];
    let only_allowed = |value: &Value| {
        let object = value.as_object().expect("a contact object");
        assert!(
            object.keys().all(|k| allowed.contains(&k.as_str())),
            "{value}"
        );
        assert!(!value.to_string().contains("secret note"), "{value}");
    };

    let one = s.get(&s.narrow, &format!("/v1/contacts/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    only_allowed(&one.body);
    assert_eq!(one.body["email"], "helene@x.example");
    let listed = s
        .get(&s.narrow, "/v1/contacts?filter=name%20CONTAINS%20helene")
        .await;
    assert_eq!(listed.body["total"], 1, "{}", listed.body);
    only_allowed(&listed.body["hits"][0]);
    // Asking for a hidden field does not show it.
    let asked = s
        .get(&s.narrow, "/v1/contacts?fields=name,notes,phone")
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    only_allowed(&asked.body["hits"][0]);

    // Filters, sorts, facets, lookups and q that read hidden fields are refused.
    for path in [
        "/v1/contacts?filter=country%20EXISTS",
        "/v1/contacts?filter=phone%20CONTAINS%20612",
        "/v1/contacts?sort=created_at:desc",
        "/v1/contacts?facets=country",
        "/v1/contacts?q=helene",
        "/v1/contacts/lookup?phone=%2B33612345678",
    ] {
        s.get(&s.narrow, path)
            .await
            .expect_error(StatusCode::FORBIDDEN, "forbidden");
    }
    let unreadable = s
        .get(&s.narrow, "/v1/contacts?filter=country%20EXISTS")
        .await;
    assert!(
        unreadable.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("country"),
        "{}",
        unreadable.body
    );

    // Writes of hidden fields are refused; visible ones work and answer projected.
    s.call(
        &s.narrow,
        Method::PATCH,
        &format!("/v1/contacts/{id}"),
        Some(json!({"notes": "overwritten"})),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let patched = s
        .call(
            &s.narrow,
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(json!({"tags": ["vip", "called"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    only_allowed(&patched.body);
    let stored = s.get(&s.owner, &format!("/v1/contacts/{id}")).await.body;
    assert_eq!(stored["notes"], "secret note");
    assert_eq!(stored["tags"], json!(["vip", "called"]));
    s.app.stop().await;
}

#[tokio::test]
async fn a_key_whose_filter_no_longer_types_is_refused_not_widened() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    let (owner, region) = (generate_key().unwrap(), generate_key().unwrap());
    for (name, secret, filter) in [
        ("owner", &owner, None),
        ("region", &region, Some("custom.region = north")),
    ] {
        config.auth.keys.push(KeyConfig {
            name: name.into(),
            role: if filter.is_some() {
                Role::Agent
            } else {
                Role::Owner
            },
            sha256: hash_key(secret),
            created_at: None,
            filter: filter.map(String::from),
            fields: None,
        });
    }
    let app = TestApp::spawn_with(config).await;
    let call = |key: &str, method: Method, path: &str, body: Option<Value>| {
        let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { Reply::from(request.send().await.unwrap()).await }
    };
    // No field `region` yet: the key's filter does not type, so it sees nothing.
    call(&region, Method::GET, "/v1/contacts", None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let defined = call(
        &owner,
        Method::POST,
        "/v1/custom-fields",
        Some(
            json!({"key": "region", "label": "Region", "type": "dropdown",
                    "options": ["north", "south"]}),
        ),
    )
    .await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.body);
    for region_value in ["north", "south"] {
        let created = call(
            &owner,
            Method::POST,
            "/v1/contacts?wait=indexed",
            Some(json!({"name": format!("In the {region_value}"),
                        "email": format!("{region_value}@x.example"),
                        "custom_fields": {"region": region_value}})),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let seen = call(&region, Method::GET, "/v1/contacts", None).await;
    assert_eq!(seen.body["total"], 1, "{}", seen.body);
    assert_eq!(seen.body["hits"][0]["name"], "In the north");
    app.stop().await;
}
