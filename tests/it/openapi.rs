//! `GET /openapi.json`: a valid OpenAPI 3 document that lists every route the server
//! answers (the route list of the key matrix, written apart from the router), with
//! its parameters, bodies and error answers.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::auth::every_route;
use crate::common::TestApp;

/// `/v1/contacts/{id}` for a matrix path such as `/v1/contacts/01JD…?permanent=true`.
fn pattern(path: &str) -> String {
    let path = path.split('?').next().unwrap();
    if path.starts_with("/assets/") {
        return "/assets/{file}".into();
    }
    path.split('/')
        .enumerate()
        .map(|(i, part)| {
            let id_like = part.len() == 26 && part.chars().all(|c| c.is_ascii_alphanumeric());
            match (i, part) {
                (3, _) if id_like || part.starts_with("no-such") || part.starts_with("no_such") => {
                    if path.starts_with("/v1/custom-fields") {
                        "{key}".to_string()
                    } else {
                        "{id}".to_string()
                    }
                }
                _ => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `$ref` in the document points at a component that exists.
fn check_refs(node: &Value, document: &Value, missing: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let found = target
                    .strip_prefix("#/")
                    .map(|p| p.split('/').try_fold(document, |at, key| at.get(key)))
                    .is_some_and(|found| found.is_some());
                if !found {
                    missing.push(target.clone());
                }
            }
            map.values().for_each(|v| check_refs(v, document, missing));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(v, document, missing)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_and_lists_every_route() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let spec = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);
    let document: Value = serde_json::from_str(&text).unwrap();
    let mut missing = Vec::new();
    check_refs(&document, &document, &mut missing);
    assert!(missing.is_empty(), "dangling $ref: {missing:?}");

    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "patch", "delete", "put"].contains(&m.as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = every_route()
        .iter()
        .map(|route| (route.method.to_string(), pattern(route.path)))
        .collect();
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but missing from the route matrix"
    );

    let mut operation_ids = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(operation_ids.insert(id.clone()), "operationId {id} twice");
        }
    }

    // Each operation names its errors; keyed ones their 401 and 403.
    for route in every_route() {
        let operation =
            &document["paths"][pattern(route.path)][route.method.as_str().to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        let what = format!("{} {}", route.method, route.path);
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no success"
        );
        assert!(
            responses.contains_key("400") && responses.contains_key("500"),
            "{what}"
        );
        assert_eq!(
            responses.contains_key("401"),
            route.needs.is_some(),
            "{what}: 401 iff it needs a key"
        );
    }
    let search = &document["paths"]["/v1/contacts"]["get"];
    let params: Vec<&str> = search["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "q", "filter", "sort", "limit", "cursor", "fields", "facets", "min_seq", "tz",
    ] {
        assert!(
            params.contains(&name),
            "search parameter {name} in {params:?}"
        );
    }
    let codes = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(codes.len(), contactd::api::Code::ALL.len());
    assert!(
        document["paths"]["/v1/contacts"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/ContactInput")
    );
    app.stop().await;
}
