//! Partial matching, ranking and read-your-writes through the HTTP search API.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, hit_ids};

#[tokio::test]
async fn partial_matching_finds_the_examples_of_the_contract() {
    let app = TestApp::spawn().await;
    let helene = app
        .create(
            json!({"name": "Hélène Dupont", "email": "helene.dupont@orange.fr",
                       "phone": "+33 6 12 34 56 78"}),
        )
        .await;
    let lukasz = app
        .create(json!({"name": "Łukasz Müller", "email": "l.mueller@example.de"}))
        .await;
    let strasse = app
        .create(json!({"name": "Anna Straße", "phone": "+49 30 1234567"}))
        .await;
    // Decoys that share fragments but must not match.
    app.create(
        json!({"name": "Paul Martin", "email": "paul@orange.com", "phone": "+33 7 98 76 54 32"}),
    )
    .await;

    let helene_id = helene["id"].as_str().unwrap();
    for q in [
        "hel",
        "HELENE",
        "pont",
        "dupont hel",
        "orange.fr",
        "dupont@",
        "06 12 34",
        "+33 6 12",
        "612 34",
        "5678",
        "Hélène",
        "hélène dupont",
        "0612345678",
        "+33612345678",
    ] {
        assert_eq!(app.search_ids(q).await, [helene_id], "q={q}");
    }
    let lukasz_id = lukasz["id"].as_str().unwrap();
    for q in ["lukasz", "muller", "MÜL", "mueller", "MULLER", "łuk", "uka"] {
        assert_eq!(app.search_ids(q).await, [lukasz_id], "q={q}");
    }
    let strasse_id = strasse["id"].as_str().unwrap();
    for q in ["strasse", "straße", "STRAS", "030 123", "+49 30"] {
        assert_eq!(app.search_ids(q).await, [strasse_id], "q={q}");
    }
    // Words of five letters or more forgive one typo (two from nine).
    for q in ["dupontx", "duopnt", "helen dupond", "lukas", "strase"] {
        let ids = app.search_ids(q).await;
        assert_eq!(ids.len(), 1, "q={q} finds one contact with a typo: {ids:?}");
    }
    for q in ["zzz", "helene martin", "po", "+34 6", "dupxntx", "hxlxnx"] {
        assert!(
            app.search_ids(q).await.is_empty(),
            "q={q} should find nothing"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn identities_tags_custom_values_and_notes_are_searchable() {
    let app = TestApp::spawn().await;
    crate::crud::define_sample_fields(&app).await;
    let contact = app
        .create(json!({
            "email": "someone@example.com",
            "identities": [{"channel": "telegram", "value": "@quokkafan"},
                           {"channel": "whatsapp", "value": "+44 7911 123456"}],
            "tags": ["Enterprise-Lead"],
            "custom_fields": {"plan": "Platinum", "interests": ["kitesurf"], "seats": 42},
            "notes": "Met at the Zürich fair"
        }))
        .await;
    let id = contact["id"].as_str().unwrap();
    for q in [
        "quokka",
        "kkaf",
        "enterprise",
        "lead",
        "platinum",
        "kitesurf",
        "zurich",
        "zuerich",
        "07911 123",
        "+44 7911",
    ] {
        assert_eq!(app.search_ids(q).await, [id], "q={q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn ranking_puts_exact_before_prefix_before_substring_and_name_first() {
    let app = TestApp::spawn().await;
    let substring = app
        .create(json!({"name": "Ann Lemartin", "email": "a1@example.com"}))
        .await;
    let prefix = app
        .create(json!({"name": "Ann Martinez", "email": "a2@example.com"}))
        .await;
    let exact = app
        .create(json!({"name": "Ann Martin", "email": "a3@example.com"}))
        .await;
    let email_only = app
        .create(json!({"name": "Zoe Blanc", "email": "martin@example.com"}))
        .await;
    let ids = app.search_ids("martin").await;
    let expected: Vec<&str> = [&exact, &email_only, &prefix, &substring]
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected, "exact name, exact email, prefix, substring");
    app.stop().await;
}

/// Prefixes of any length rank as prefixes: past three letters no edge gram is
/// indexed, and a long prefix is found through its word start, in every group.
#[tokio::test]
async fn long_prefixes_rank_as_prefixes_in_names_handles_and_phones() {
    let app = TestApp::spawn().await;
    // Created first: equal levels would list the newer one first.
    let starts = app
        .create(
            json!({"name": "Ann Wolfeschlegelsteinhausenbergerdorff", "email": "a2@example.com"}),
        )
        .await;
    let inside = app
        .create(json!({"name": "Ann Xwolfeschlegelsteinhausenberger", "email": "a1@example.com"}))
        .await;
    let id = |c: &serde_json::Value| c["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.search_ids("wolfeschlegelsteinhausen").await,
        [id(&starts), id(&inside)],
        "a 24-letter prefix ranks above the same letters inside a word"
    );
    let handle = app
        .create(json!({"email": "b@example.com",
                       "identities": [{"channel": "telegram", "value": "+33.wolfe_fan"}]}))
        .await;
    let phoned = app
        .create(json!({"email": "c@example.com", "phone": "+33 6 98 76 54 32"}))
        .await;
    // `+33 6 98 7` is a phone prefix: it finds the phone, not the identity that also
    // starts with `+33`.
    assert_eq!(app.search_ids("+33 6 98 7").await, [id(&phoned)]);
    assert_eq!(app.search_ids("+33.wolfe").await, [id(&handle)]);
    let filtered = app
        .get("/v1/contacts?filter=name%20CONTAINS%20%22wolfeschlegel%22")
        .await;
    let ids: Vec<String> = crate::common::hit_ids(&filtered.body);
    assert_eq!(ids.len(), 2, "{}", filtered.body);
    app.stop().await;
}

#[tokio::test]
async fn empty_query_lists_newest_first_with_total_and_limit() {
    let app = TestApp::spawn().await;
    let old = app
        .create(json!({"email": "old@example.com", "created_at": "2020-01-01"}))
        .await;
    let mid = app
        .create(json!({"email": "mid@example.com", "created_at": "2023-06-01T12:00:00Z"}))
        .await;
    let new = app.create(json!({"email": "new@example.com"})).await;
    let all = app.search("").await;
    assert_eq!(all["total"], 3);
    let expected: Vec<&str> = [&new, &mid, &old]
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(hit_ids(&all), expected);
    assert!(all["took_ms"].as_f64().unwrap() >= 0.0);
    assert!(all["index_seq"].as_u64().unwrap() >= 3);

    let page = app.get("/v1/contacts?limit=2").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body["total"], 3,
        "total counts every match, not the page"
    );
    assert_eq!(page.body["hits"].as_array().unwrap().len(), 2);

    let posted = app
        .post("/v1/contacts/search", json!({"q": "mid", "limit": 5}))
        .await;
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(hit_ids(&posted.body), [mid["id"].as_str().unwrap()]);
    app.stop().await;
}

#[tokio::test]
async fn writes_with_wait_indexed_are_found_by_the_very_next_search() {
    let app = TestApp::spawn().await;
    for i in 0..10 {
        let email = format!("ryw{i}@example.com");
        let created = app
            .create(json!({"name": format!("Reader {i} Writes"), "email": email}))
            .await;
        assert_eq!(
            app.search_ids(&email).await,
            [created["id"].as_str().unwrap()]
        );
        let path = format!(
            "/v1/contacts/{}?wait=indexed",
            created["id"].as_str().unwrap()
        );
        let patched = app
            .patch(&path, json!({"name": format!("Renamed{i} Quickly")}))
            .await;
        assert_eq!(patched.status, StatusCode::OK);
        let found = app.search_ids(&format!("renamed{i}")).await;
        assert_eq!(
            found.first().map(String::as_str),
            created["id"].as_str(),
            "exact match ranks first"
        );
        assert!(
            app.search_ids(&format!("reader {i} writes"))
                .await
                .is_empty()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn min_seq_gives_read_your_writes_to_a_client_holding_x_seq() {
    let app = TestApp::spawn().await;
    let reply = app
        .post(
            "/v1/contacts",
            json!({"email": "seq@example.com", "name": "Sequence Holder"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let seq = reply.header("x-seq").unwrap().to_string();
    let found = app
        .get(&format!("/v1/contacts?q=sequence&min_seq={seq}"))
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body["total"], 1);
    assert!(found.body["index_seq"].as_u64().unwrap() >= seq.parse::<u64>().unwrap());

    // A sequence no write has produced yet is a wrong number, answered at once (no
    // acknowledged write can hand it out), not a lag to wait out.
    let started = std::time::Instant::now();
    let error = app
        .get("/v1/contacts?min_seq=999999")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request")
        .clone();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("ahead of the store")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    app.stop().await;
}

#[tokio::test]
async fn email_and_handle_fragments_match_contiguously_and_whole_values_rank_first() {
    let app = TestApp::spawn().await;
    let laurent = app
        .create(json!({"name": "Laurent Perret", "email": "laurent.perret@gmail.com"}))
        .await;
    app.create(json!({"name": "Louis Perret", "email": "lperret@gmail.com"}))
        .await;
    app.create(json!({"name": "Laurent Gmail", "email": "perret.laurent@gmail.com"}))
        .await;
    let anna = app
        .create(json!({"name": "Anna Zielke", "email": "anna.zielke@web.de"}))
        .await;
    // The word is in the name and in the email, but never followed by '@'.
    app.create(json!({"name": "Zielke Bauer", "email": "bauer@web.de"}))
        .await;
    app.create(json!({"name": "Ola Zielkemann", "email": "zielkemann@web.de"}))
        .await;
    let prefix = app
        .create(json!({"name": "Maria Rossi", "email": "cirino.c@example.it"}))
        .await;
    let inside = app
        .create(json!({"name": "Paolo Bianchi", "email": "paolo.cirino.conti@example.it"}))
        .await;
    app.create(json!({"name": "Cirino Costa", "email": "costa.c@example.it"}))
        .await;
    let id = |c: &serde_json::Value| c["id"].as_str().unwrap().to_string();

    // A whole address finds that address only, not others sharing its words.
    assert_eq!(
        app.search_ids("laurent.perret@gmail.com").await,
        [id(&laurent)]
    );
    assert_eq!(
        app.search_ids("Laurent.Perret@GMAIL.com").await,
        [id(&laurent)]
    );
    // "zielke@": the fragment must appear in an email, with the '@' after it.
    assert_eq!(app.search_ids("zielke@").await, [id(&anna)]);
    // "cirino.c": every hit holds the fragment; a start of the address ranks first.
    assert_eq!(app.search_ids("cirino.c").await, [id(&prefix), id(&inside)]);
    // Fragments combine with words like any other part.
    assert_eq!(app.search_ids("paolo cirino.c").await, [id(&inside)]);

    // An identity typed whole ranks above one that merely starts with it.
    let handle = app
        .create(json!({"email": "x1@example.org",
                       "identities": [{"channel": "telegram", "value": "paul.martin"}]}))
        .await;
    let longer = app
        .create(json!({"email": "paul.martin@example.org"}))
        .await;
    assert_eq!(
        app.search_ids("paul.martin").await,
        [id(&handle), id(&longer)]
    );
    // A phone typed whole ranks above a name holding the same digits.
    let named = app
        .create(json!({"name": "Agent 0611223344", "email": "agent@example.org"}))
        .await;
    let phoned = app
        .create(json!({"email": "phone@example.org", "phone": "+33 6 11 22 33 44"}))
        .await;
    assert_eq!(
        app.search_ids("0611223344").await,
        [id(&phoned), id(&named)]
    );
    assert_eq!(app.search_ids("+33611223344").await, [id(&phoned)]);
    app.stop().await;
}

#[tokio::test]
async fn typos_are_searched_only_when_few_contacts_match_without_them() {
    let app = TestApp::spawn().await;
    let threshold = contactd::index::text_query::TYPO_THRESHOLD;
    let mut exact = Vec::new();
    for i in 0..threshold {
        let created = app
            .create(json!({"name": format!("Dupont {i}"), "email": format!("d{i}@example.com")}))
            .await;
        exact.push(created["id"].as_str().unwrap().to_string());
    }
    let typo = app
        .create(json!({"name": "Dupond", "email": "typo@example.com"}))
        .await;
    let found = app.search("dupont").await;
    assert_eq!(
        found["total"], threshold,
        "enough exact matches: no typo matches"
    );
    assert!(!hit_ids(&found).contains(&typo["id"].as_str().unwrap().to_string()));

    let gone = app.delete(&format!("/v1/contacts/{}", exact[0])).await;
    assert!(gone.status.is_success(), "{}", gone.body);
    app.wait_caught_up().await;
    let found = app.search("dupont").await;
    assert_eq!(
        found["total"],
        threshold,
        "{} exact + 1 typo",
        threshold - 1
    );
    assert_eq!(
        hit_ids(&found).last().map(String::as_str),
        typo["id"].as_str(),
        "a typo match ranks after every exact one"
    );
    app.stop().await;
}
