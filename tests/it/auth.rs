//! API keys and roles: every route × {no key, wrong key, agent, manager, owner, a
//! scoped key}.
//!
//! The expected role of each route is written out here, apart from the server's own
//! table, so a route that drifts to another role fails this test. What scoped keys
//! see and change is checked route by route in `scoped_keys`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use contactd::auth::{KeyConfig, Role, generate_key, hash_key};

use crate::common::{TestApp, test_config};

/// A route, a body it accepts, and the least role that may call it (`None`: public).
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    body: Option<Value>,
    pub needs: Option<Role>,
}

impl Route {
    /// Routes that work on the whole base, which a scoped key may not call whatever
    /// its role.
    fn whole_base(&self) -> bool {
        let path = self.path.split('?').next().unwrap_or_default();
        path == "/v1/stats"
            || path == "/v1/contacts/import"
            || path.starts_with("/v1/jobs")
            || path.starts_with("/v1/admin/")
            || path == "/v1/duplicates"
            || (self.method != Method::GET
                && (path.starts_with("/v1/companies") && !path.ends_with("/contacts")
                    || path.starts_with("/v1/custom-fields")))
    }
}

fn route(method: Method, path: &'static str, needs: Option<Role>) -> Route {
    Route {
        method,
        path,
        body: None,
        needs,
    }
}

fn with_body(mut route: Route, body: Value) -> Route {
    route.body = Some(body);
    route
}

/// Every route of the router. Ids that exist nowhere keep the destructive calls
/// harmless: an authorised caller gets 404 or 4xx, never 401/403.
pub fn every_route() -> Vec<Route> {
    use Method as M;
    use Role::*;
    vec![
        route(M::GET, "/healthz", None),
        route(M::GET, "/readyz", None),
        route(M::GET, "/openapi.json", None),
        route(M::GET, "/", None),
        route(M::GET, "/assets/app.js", None),
        // Any key (auth.public_metrics is off).
        route(M::GET, "/metrics", Some(Agent)),
        route(M::GET, "/v1/stats", Some(Agent)),
        route(M::GET, "/v1/contacts", Some(Agent)),
        with_body(
            route(M::POST, "/v1/contacts", Some(Agent)),
            json!({"name": "Auth Matrix", "assignee": "agent-12"}),
        ),
        with_body(
            route(M::POST, "/v1/contacts/search", Some(Agent)),
            json!({}),
        ),
        route(
            M::GET,
            "/v1/contacts/lookup?email=nobody@x.example",
            Some(Agent),
        ),
        with_body(
            route(M::POST, "/v1/contacts/identify", Some(Agent)),
            json!({"identities": []}),
        ),
        route(
            M::GET,
            "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
            Some(Agent),
        ),
        with_body(
            route(
                M::PATCH,
                "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
                Some(Agent),
            ),
            json!({"notes": "x"}),
        ),
        with_body(
            route(
                M::POST,
                "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/events",
                Some(Agent),
            ),
            json!({"type": "message_in", "channel": "email"}),
        ),
        with_body(
            route(M::POST, "/v1/events", Some(Agent)),
            json!({"events": []}),
        ),
        route(
            M::DELETE,
            "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
            Some(Manager),
        ),
        route(
            M::DELETE,
            "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M?permanent=true",
            Some(Owner),
        ),
        route(
            M::POST,
            "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/restore",
            Some(Manager),
        ),
        with_body(
            route(
                M::POST,
                "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/merge",
                Some(Manager),
            ),
            json!({"other_id": "01JD3Z6K8W6B9V8Y0Q4T2H5N7N"}),
        ),
        with_body(
            route(
                M::POST,
                "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/unmerge",
                Some(Manager),
            ),
            json!({"other_id": "01JD3Z6K8W6B9V8Y0Q4T2H5N7N"}),
        ),
        with_body(
            route(M::POST, "/v1/contacts/bulk", Some(Manager)),
            json!({"action": "add_tags", "ids": ["01JD3Z6K8W6B9V8Y0Q4T2H5N7M"], "tags": ["x"]}),
        ),
        route(M::GET, "/v1/contacts/export?format=ndjson", Some(Manager)),
        route(M::POST, "/v1/contacts/import?format=bogus", Some(Manager)),
        route(M::GET, "/v1/duplicates", Some(Manager)),
        route(
            M::GET,
            "/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/duplicates",
            Some(Agent),
        ),
        route(M::GET, "/v1/jobs", Some(Manager)),
        route(M::GET, "/v1/jobs/01JD3Z6K8W6B9V8Y0Q4T2H5N7M", Some(Manager)),
        route(
            M::POST,
            "/v1/jobs/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/cancel",
            Some(Manager),
        ),
        route(M::POST, "/v1/admin/reindex", Some(Owner)),
        route(M::POST, "/v1/admin/snapshot", Some(Owner)),
        route(M::GET, "/v1/admin/dump", Some(Owner)),
        route(M::POST, "/v1/admin/load", Some(Owner)),
        route(M::GET, "/v1/companies", Some(Agent)),
        with_body(route(M::POST, "/v1/companies", Some(Manager)), json!({})),
        route(
            M::GET,
            "/v1/companies/01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
            Some(Agent),
        ),
        with_body(
            route(
                M::PATCH,
                "/v1/companies/01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
                Some(Manager),
            ),
            json!({}),
        ),
        route(
            M::DELETE,
            "/v1/companies/01JD3Z6K8W6B9V8Y0Q4T2H5N7M",
            Some(Manager),
        ),
        route(
            M::GET,
            "/v1/companies/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/contacts",
            Some(Agent),
        ),
        route(
            M::GET,
            "/v1/companies/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/recipients",
            Some(Agent),
        ),
        route(M::GET, "/v1/inboxes", Some(Agent)),
        with_body(route(M::POST, "/v1/inboxes", Some(Manager)), json!({})),
        route(M::GET, "/v1/inboxes/no-such-inbox", Some(Agent)),
        with_body(
            route(M::PATCH, "/v1/inboxes/no-such-inbox", Some(Manager)),
            json!({}),
        ),
        route(M::DELETE, "/v1/inboxes/no-such-inbox", Some(Manager)),
        route(M::GET, "/v1/inboxes/no-such-inbox/contacts", Some(Agent)),
        route(M::GET, "/v1/custom-fields", Some(Agent)),
        with_body(route(M::POST, "/v1/custom-fields", Some(Owner)), json!({})),
        route(M::GET, "/v1/custom-fields/no_such_field", Some(Agent)),
        with_body(
            route(M::PATCH, "/v1/custom-fields/no_such_field", Some(Owner)),
            json!({}),
        ),
        route(M::DELETE, "/v1/custom-fields/no_such_field", Some(Owner)),
    ]
}

struct Keys {
    agent: String,
    manager: String,
    owner: String,
    /// An owner key scoped to `assignee = agent-12`.
    scoped: String,
}

async fn app_with_keys() -> (TestApp, Keys, tempfile::TempDir) {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    let keys = Keys {
        agent: generate_key().unwrap(),
        manager: generate_key().unwrap(),
        owner: generate_key().unwrap(),
        scoped: generate_key().unwrap(),
    };
    for (name, role, key) in [
        ("agent-1", Role::Agent, &keys.agent),
        ("manager-1", Role::Manager, &keys.manager),
        ("owner-1", Role::Owner, &keys.owner),
        ("scoped-1", Role::Owner, &keys.scoped),
    ] {
        config.auth.keys.push(KeyConfig {
            name: name.into(),
            role,
            sha256: hash_key(key),
            created_at: None,
            filter: (name == "scoped-1").then(|| "assignee = agent-12".into()),
            fields: None,
        });
    }
    config.validate().unwrap();
    (TestApp::spawn_with(config).await, keys, temp)
}

async fn send(app: &TestApp, route: &Route, key: Option<&str>) -> (StatusCode, Value, bool) {
    let mut request = app
        .client
        .request(route.method.clone(), app.url(route.path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = &route.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenged = response.headers().contains_key("www-authenticate");
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, challenged)
}

/// Whether an answer shows the out-of-scope contact: its id (beyond a "not found"
/// that echoes the id asked for), name, email or assignee.
fn shows_outside(text: &str, id: &str) -> bool {
    let echo = format!("contact {id} not found");
    text.replace(&echo, "").contains(id)
        || ["Outside Scope", "outside@", "agent-7"]
            .iter()
            .any(|part| text.contains(part))
}

#[tokio::test]
async fn every_route_checks_its_role() {
    let (app, keys, _temp) = app_with_keys().await;
    // A contact outside the scoped key's scope, in a company, tagged: no answer to
    // the scoped key may name it.
    let post_as_owner = |path: &'static str, body: Value| {
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(&keys.owner)
            .json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let company = post_as_owner("/v1/companies", json!({"name": "Matrix Co"})).await;
    let outside = post_as_owner(
        "/v1/contacts?wait=indexed",
        json!({"name": "Outside Scope", "email": "outside@x.example",
               "assignee": "agent-7", "company_id": company["id"], "tags": ["vip"]}),
    )
    .await;
    let outside_id = outside["id"].as_str().unwrap().to_string();
    let callers = [
        (Some(Role::Agent), keys.agent.as_str()),
        (Some(Role::Manager), keys.manager.as_str()),
        (Some(Role::Owner), keys.owner.as_str()),
    ];
    for route in every_route() {
        let what = format!("{} {}", route.method, route.path);
        let Some(needs) = route.needs else {
            let (status, ..) = send(&app, &route, None).await;
            assert_eq!(status, StatusCode::OK, "{what} is public");
            continue;
        };
        for key in [None, Some("cdk_not_a_key"), Some(&keys.agent[..20])] {
            let (status, body, challenged) = send(&app, &route, key).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what} with {key:?}: {body}"
            );
            assert_eq!(body["error"]["code"], "unauthorized", "{what}");
            assert!(challenged, "{what}: 401 names the Bearer scheme");
        }
        for (role, key) in callers {
            let (status, body, _) = send(&app, &route, Some(key)).await;
            if role < Some(needs) {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role:?}: {body}");
                assert_eq!(body["error"]["code"], "forbidden", "{what}");
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what} as {role:?} answered {status}: {body}"
                );
            }
        }
        let (status, body, _) = send(&app, &route, Some(&keys.scoped)).await;
        if route.whole_base() {
            assert_eq!(status, StatusCode::FORBIDDEN, "{what} as scoped: {body}");
            assert_eq!(body["error"]["code"], "forbidden", "{what}");
        } else {
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{what} as scoped answered {status}: {body}"
            );
        }
        assert!(
            !shows_outside(&body.to_string(), &outside_id),
            "{what} as scoped shows a contact outside its scope: {body}"
        );
    }
    // The same routes with the contact's own id and company: still nothing of it.
    let company_id = company["id"].as_str().unwrap();
    for path in [
        format!("/v1/contacts/{outside_id}"),
        "/v1/contacts/lookup?email=outside@x.example".to_string(),
        format!("/v1/companies/{company_id}/contacts"),
        format!("/v1/companies/{company_id}/recipients"),
        "/v1/contacts?q=outside&facets=tags".to_string(),
        "/v1/contacts/export?format=ndjson".to_string(),
        "/v1/inboxes?counts=true".to_string(),
    ] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&keys.scoped)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            !shows_outside(&text, &outside_id) && !text.contains("vip"),
            "GET {path} as scoped ({status}) shows a contact outside its scope: {text}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_key_does_the_work_of_its_role() {
    let (app, keys, _temp) = app_with_keys().await;
    let post = |path: &str, key: &str, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let created = post(
        "/v1/contacts?wait=indexed",
        &keys.agent,
        json!({"name": "Keyed Person", "email": "keyed@x.example"}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let found = app
        .client
        .get(app.url("/v1/contacts?q=keyed"))
        .bearer_auth(&keys.agent)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);

    // An agent may not erase; the manager's soft delete works, the erase is an owner's.
    let erase = |key: &str| {
        app.client
            .delete(app.url(&format!("/v1/contacts/{id}?permanent=true")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(
        erase(&keys.manager).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Spelled another way, it is still an erase.
    for disguised in [
        "permanent=%74rue",
        "permanent=false&permanent=true",
        "%70ermanent=true",
    ] {
        let response = app
            .client
            .delete(app.url(&format!("/v1/contacts/{id}?{disguised}")))
            .bearer_auth(&keys.manager)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{disguised}");
    }
    assert_eq!(erase(&keys.owner).await.unwrap().status(), StatusCode::OK);
    let gone = app
        .client
        .get(app.url(&format!("/v1/contacts/{id}")))
        .bearer_auth(&keys.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
