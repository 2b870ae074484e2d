//! Duplicate suggestions: found by shared match keys, scored with reasons, paged over
//! the whole base, and gone once the pair is merged.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, test_config};

fn ids_of_pair(pair: &Value) -> (String, String) {
    let id = |i: usize| pair["contacts"][i]["id"].as_str().unwrap().to_string();
    (id(0), id(1))
}

fn sorted(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likely_duplicates_are_suggested_with_reasons_and_leave_once_merged() {
    let temp = tempfile::TempDir::new().unwrap();
    let mut config = test_config(temp.path());
    // Shared emails and phones are possible only without unique identities.
    config.rules.unique_identities = false;
    let app = TestApp::spawn_with(config).await;
    let id = |c: &Value| c["id"].as_str().unwrap().to_string();
    let a = app
        .create(
            json!({"name": "Hélène Dupont", "email": "helene.dupont@gmail.com", "country": "FR"}),
        )
        .await;
    let b = app
        .create(json!({"name": "Helene  DUPONT", "email": "helenedupont+shop@gmail.com", "country": "FR"}))
        .await;
    let c = app
        .create(json!({"name": "Marc Vidal", "phone": "06 12 34 56 78"}))
        .await;
    let d = app
        .create(json!({"name": "M. Vidal", "phone": "+33 6 12 34 56 78"}))
        .await;
    let e = app
        .create(json!({"name": "Paul Lemaire", "email": "plemaire@orange.fr"}))
        .await;
    let f = app
        .create(json!({"name": "Paul Lemaitre", "email": "plemaire@free.fr"}))
        .await;
    // One typo apart, phones sharing their last seven digits (not their last nine).
    let g = app
        .create(json!({"name": "Anna Kowalska", "phone": "+48 512 345 678"}))
        .await;
    let h = app
        .create(json!({"name": "Anna Kowalski", "phone": "+48 502 345 678"}))
        .await;
    let unrelated = app
        .create(json!({"name": "Zoé Martin", "email": "zoe@martin.example"}))
        .await;
    let trashed = app
        .create(json!({"name": "Old Helene", "email": "helene.dupont@gmail.com"}))
        .await;
    assert_eq!(
        app.delete(&format!("/v1/contacts/{}", id(&trashed)))
            .await
            .status,
        StatusCode::OK
    );
    app.wait_caught_up().await;

    let of_a = app
        .get(&format!("/v1/contacts/{}/duplicates", id(&a)))
        .await;
    assert_eq!(of_a.status, StatusCode::OK, "{}", of_a.body);
    let found = of_a.body["duplicates"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", of_a.body);
    assert_eq!(found[0]["contact"]["id"], b["id"]);
    assert_eq!(
        found[0]["reasons"],
        json!(["same_email", "same_name_and_country"])
    );
    assert!(found[0]["score"].as_f64().unwrap() > 0.9);
    let of_c = app
        .get(&format!("/v1/contacts/{}/duplicates", id(&c)))
        .await
        .body;
    assert_eq!(of_c["duplicates"][0]["contact"]["id"], d["id"]);
    assert_eq!(of_c["duplicates"][0]["reasons"], json!(["same_phone"]));
    let of_e = app
        .get(&format!("/v1/contacts/{}/duplicates", id(&e)))
        .await
        .body;
    assert_eq!(of_e["duplicates"][0]["contact"]["id"], f["id"]);
    assert_eq!(
        of_e["duplicates"][0]["reasons"],
        json!(["similar_name_and_contact"])
    );
    let of_g = app
        .get(&format!("/v1/contacts/{}/duplicates", id(&g)))
        .await
        .body;
    assert_eq!(of_g["duplicates"][0]["contact"]["id"], h["id"], "{of_g}");
    assert_eq!(
        of_g["duplicates"][0]["reasons"],
        json!(["similar_name_and_contact"])
    );
    let none = app
        .get(&format!("/v1/contacts/{}/duplicates", id(&unrelated)))
        .await
        .body;
    assert_eq!(none["duplicates"], json!([]));
    app.get("/v1/contacts/01JD3Z6K8W6B9V8Y0Q4T2H5N7M/duplicates")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // The whole base, best first, one pair a page.
    let all = app.get("/v1/duplicates").await.body;
    assert_eq!(all["total"], 4, "{all}");
    let pairs: Vec<(String, String)> = all["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids_of_pair)
        .collect();
    // Equal scores are ordered by their ids.
    let mut similar = vec![sorted(&id(&e), &id(&f)), sorted(&id(&g), &id(&h))];
    similar.sort();
    let mut expected = vec![sorted(&id(&a), &id(&b)), sorted(&id(&c), &id(&d))];
    expected.extend(similar);
    assert_eq!(pairs, expected);
    let scores: Vec<f64> = all["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/duplicates?limit=1&cursor={cursor}"),
            None => "/v1/duplicates?limit=1".into(),
        };
        let page = app.get(&path).await.body;
        walked.extend(page["pairs"].as_array().unwrap().iter().map(ids_of_pair));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, pairs);
    app.get("/v1/duplicates?limit=0")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/v1/duplicates?cursor=nonsense")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");

    // Merged: the pair is gone.
    let merged = app
        .post(
            &format!("/v1/contacts/{}/merge?wait=indexed", id(&a)),
            json!({"other_id": id(&b)}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    let all = app.get("/v1/duplicates").await.body;
    assert_eq!(all["total"], 3, "{all}");
    let of_a = app
        .get(&format!("/v1/contacts/{}/duplicates", id(&a)))
        .await
        .body;
    assert_eq!(of_a["duplicates"], json!([]));
    app.stop().await;
}
