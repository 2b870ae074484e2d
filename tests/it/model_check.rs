//! Model-based check: after random sequences of create, patch, delete, restore,
//! identify, merge and unmerge, what search returns, in its order, equals a
//! brute-force evaluation and ranking of the same query over a scan of the store
//! ([`text_query::score`], then newest first, then id), and no identity has two
//! active holders.

use contactd::index::SearchableText;
use contactd::index::text_query;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::TestApp;

const FIRST: [&str; 10] = [
    "Hélène",
    "Helene",
    "Łukasz",
    "Zoë",
    "Jean-Pierre",
    "Åsa",
    "Núñez",
    "Ann",
    "Anne",
    "Mårten",
];
const LAST: [&str; 9] = [
    "Dupont", "Müller", "Mueller", "Straße", "Martin", "Lemartin", "O'Brien", "Dupond", "Ng",
];
const DOMAINS: [&str; 4] = ["orange.fr", "gmail.com", "example.de", "mail.pl"];
const TAGS: [&str; 5] = ["vip", "Lead", "newsletter", "churn-risk", "VIP"];
/// Query material: prefixes, substrings, accents, case, typos that must not match,
/// and phone fragments in several formats.
/// Prefixes of 1–3 letters are edge gram terms, of 4 a word start ("mart"), longer
/// ones a phrase led by the word start ("dupon", "lemarti", "ann.mar"): all are here,
/// and so are international phone prefixes of each length ("+33 6", "+33 61", "+33 6
/// 12 34"), which look up marked words only.
const QUERIES: [&str; 34] = [
    "",
    "mart",
    "dupon",
    "lemarti",
    "ann.mar",
    "+33 6 12 34",
    "06 12 34 0",
    "hel",
    "HELENE",
    "hélène dupont",
    "pont",
    "mül",
    "mueller",
    "muller",
    "strasse",
    "ann",
    "anne martin",
    "lemar",
    "artin",
    "o'brien",
    "brien",
    "jean pierre",
    "nunez",
    "asa",
    "zoe",
    "gmail",
    "orange.fr",
    "06 12",
    "+33 6",
    "+33 61",
    "+39 336",
    "612",
    "vip",
    "churn",
];

#[derive(Debug, Clone)]
enum Op {
    Create {
        first: usize,
        last: usize,
        domain: usize,
        phone: Option<u32>,
        tags: Vec<usize>,
    },
    Rename {
        target: usize,
        first: usize,
        last: usize,
    },
    SetPhone {
        target: usize,
        phone: Option<u32>,
    },
    Delete {
        target: usize,
    },
    Restore {
        target: usize,
    },
    /// Find-or-create by a WhatsApp number (collides with existing phones on purpose).
    Identify {
        phone: u32,
        first: usize,
    },
    Merge {
        target: usize,
        other: usize,
    },
    Unmerge {
        merge: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..FIRST.len(), 0..LAST.len(), 0..DOMAINS.len(), proptest::option::of(0u32..400), proptest::collection::vec(0..TAGS.len(), 0..3))
            .prop_map(|(first, last, domain, phone, tags)| Op::Create { first, last, domain, phone, tags }),
        2 => (any::<usize>(), 0..FIRST.len(), 0..LAST.len())
            .prop_map(|(target, first, last)| Op::Rename { target, first, last }),
        1 => (any::<usize>(), proptest::option::of(0u32..400))
            .prop_map(|(target, phone)| Op::SetPhone { target, phone }),
        1 => any::<usize>().prop_map(|target| Op::Delete { target }),
        1 => any::<usize>().prop_map(|target| Op::Restore { target }),
        2 => (0u32..400, 0..FIRST.len()).prop_map(|(phone, first)| Op::Identify { phone, first }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(target, other)| Op::Merge { target, other }),
        1 => any::<usize>().prop_map(|merge| Op::Unmerge { merge }),
    ]
}

fn phone(n: u32) -> String {
    // French mobiles in both formats; small range so fragments collide often. Some
    // Italian mobiles, whose national digits (336…, no trunk prefix) start like the
    // French international ones: `+33 6` must not find them.
    if n.is_multiple_of(7) {
        format!("+39 336 286 {:04}", n)
    } else if n.is_multiple_of(2) {
        format!("+33 6 12 34 {:02} {:02}", n / 100, n % 100)
    } else {
        format!("06 12 34 {:02} {:02}", n / 100, n % 100)
    }
}

async fn run_ops(app: &TestApp, ops: &[Op]) {
    let mut ids: Vec<String> = Vec::new();
    let mut merges: Vec<(String, String)> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let pick = |target: usize| (!ids.is_empty()).then(|| ids[target % ids.len()].clone());
        match op {
            Op::Create {
                first,
                last,
                domain,
                phone: p,
                tags,
            } => {
                let body = json!({
                    "name": format!("{} {}", FIRST[*first], LAST[*last]),
                    "email": format!("{}.{}{n}@{}", FIRST[*first], LAST[*last], DOMAINS[*domain]).replace(['\'', ' '], ""),
                    "phone": p.map(phone),
                    "tags": tags.iter().map(|t| TAGS[*t]).collect::<Vec<_>>(),
                });
                let reply = app.post("/v1/contacts", body).await;
                // 409/422 (phone collisions, accented emails) are fine: the model is the store.
                if reply.status.is_success() {
                    ids.push(reply.body["id"].as_str().unwrap().to_string());
                }
            }
            Op::Rename {
                target,
                first,
                last,
            } => {
                if let Some(id) = pick(*target) {
                    app.patch(
                        &format!("/v1/contacts/{id}"),
                        json!({"name": format!("{} {}", FIRST[*first], LAST[*last])}),
                    )
                    .await;
                }
            }
            Op::SetPhone { target, phone: p } => {
                if let Some(id) = pick(*target) {
                    app.patch(
                        &format!("/v1/contacts/{id}"),
                        json!({"phone": p.map(phone)}),
                    )
                    .await;
                }
            }
            Op::Delete { target } => {
                if let Some(id) = pick(*target) {
                    app.delete(&format!("/v1/contacts/{id}")).await;
                }
            }
            Op::Restore { target } => {
                if let Some(id) = pick(*target) {
                    app.post(&format!("/v1/contacts/{id}/restore"), json!({}))
                        .await;
                }
            }
            Op::Identify { phone: p, first } => {
                let body = json!({"identities": [{"channel": "whatsapp", "value": phone(*p)}], "name": FIRST[*first]});
                let reply = app.post("/v1/contacts/identify", body).await;
                if reply.status == reqwest::StatusCode::CREATED {
                    ids.push(reply.body["contact"]["id"].as_str().unwrap().to_string());
                }
            }
            Op::Merge { target, other } => {
                if let (Some(id), Some(other_id)) = (pick(*target), pick(*other)) {
                    let reply = app
                        .post(
                            &format!("/v1/contacts/{id}/merge"),
                            json!({"other_id": other_id}),
                        )
                        .await;
                    if reply.status.is_success() {
                        merges.push((id, other_id));
                    }
                }
            }
            Op::Unmerge { merge } => {
                if !merges.is_empty() {
                    let (id, other_id) = merges.remove(merge % merges.len());
                    app.post(
                        &format!("/v1/contacts/{id}/unmerge"),
                        json!({"other_id": other_id}),
                    )
                    .await;
                }
            }
        }
    }
}

/// Ids the reference rules say `q` matches, best first: by score, then newest, then
/// id; typo matches only when there are fewer than the threshold without them.
pub fn expected_ranking(app: &TestApp, q: &str) -> Vec<String> {
    let parts = text_query::parse(q);
    let scan = |typos: bool| {
        let mut ranked: Vec<(u32, i64, String)> = Vec::new();
        app.store
            .scan(
                |contact, context| -> Result<(), contactd::store::StoreError> {
                    let text = SearchableText::of(&contact, context);
                    if let Some(score) = text_query::score(&parts, &text, typos)
                        && contact.is_active()
                    {
                        ranked.push((score, contact.created_at.timestamp_millis(), contact.id));
                    }
                    Ok(())
                },
            )
            .unwrap();
        ranked
    };
    let mut ranked = scan(false);
    if ranked.len() < text_query::TYPO_THRESHOLD && parts.iter().any(|p| p.allows_typos()) {
        ranked = scan(true);
    }
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    ranked.into_iter().map(|(_, _, id)| id).collect()
}

/// Every hit of `q`, page after page of `page` hits, following `next_cursor`.
async fn walk_pages(app: &TestApp, q: &str, page: usize) -> Vec<String> {
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"q": q, "limit": page});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let reply = app.post("/v1/contacts/search", body).await;
        assert_eq!(reply.status, reqwest::StatusCode::OK, "{}", reply.body);
        walked.extend(crate::common::hit_ids(&reply.body));
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return walked,
        }
        assert!(walked.len() < 10_000, "runaway cursor for q={q:?}");
    }
}

/// No identity is held by two active contacts, and lookups resolve to the holder.
async fn check_identities_are_unique(app: &TestApp) {
    let mut holders: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut active = Vec::new();
    app.store
        .scan(|contact, _| -> Result<(), contactd::store::StoreError> {
            if contact.is_active() {
                active.push(contact);
            }
            Ok(())
        })
        .unwrap();
    for contact in &active {
        let mut points: Vec<String> = contact.email.iter().map(|e| format!("email:{e}")).collect();
        points.extend(contact.phone_e164.iter().map(|p| format!("phone:{p}")));
        points.extend(
            contact
                .identities
                .iter()
                .map(|i| format!("{}:{}", i.channel, i.value.to_lowercase())),
        );
        for point in points {
            if let Some(previous) = holders.insert(point.clone(), contact.id.clone()) {
                assert_eq!(
                    previous, contact.id,
                    "{point} is held by two active contacts"
                );
            }
        }
    }
    for contact in active.iter().filter(|c| c.email.is_some()).take(10) {
        let email = contact.email.as_deref().unwrap().replace('@', "%40");
        assert_eq!(
            app.get(&format!("/v1/contacts/lookup?email={email}"))
                .await
                .body["id"],
            contact.id.as_str()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 50, ..ProptestConfig::default() })]

    #[test]
    fn search_agrees_with_a_scan_of_the_store(
        ops in proptest::collection::vec(op(), 1..30),
        walk_min in prop_oneof![Just(0usize), Just(3), Just(1_000_000)],
        page in 1usize..6,
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app = TestApp::spawn_with_walk_min(walk_min).await;
            run_ops(&app, &ops).await;
            app.wait_caught_up().await;
            check_identities_are_unique(&app).await;
            for q in QUERIES {
                let body: Value = app.search(q).await;
                let found = crate::common::hit_ids(&body);
                let expected = expected_ranking(&app, q);
                assert_eq!(found, expected, "q={q:?} ops={ops:?}");
                assert_eq!(body["total"].as_u64().unwrap() as usize, expected.len(), "q={q:?}");
                assert_eq!(walk_pages(&app, q, page).await, expected, "q={q:?} by pages of {page}");
            }
            app.stop().await;
        });
    }
}

/// Names, emails and tags that put the words of [`RANKED_QUERIES`] at every level:
/// exact, prefix and substring, in the name, the email, the phone and the tags.
const RANKED_NAMES: [&str; 8] = [
    "Mar Lopez",
    "Martin Roux",
    "Lemar Petit",
    "Anna Marek",
    "Omar Dupont",
    "Dupont Marie",
    "Paul Dupond",
    "Zoe Blanc",
];
const RANKED_EMAILS: [&str; 6] = [
    "mar@example.com",
    "marketing@example.com",
    "amar@example.com",
    "dupont@example.com",
    "zoe.dupont@example.com",
    "x@example.com",
];
const RANKED_TAGS: [&str; 4] = ["mar", "marine", "dupontfan", "vip"];
const RANKED_QUERIES: [&str; 6] = [
    "mar",
    "dupont",
    "mar dupont",
    "ma",
    "dupont@",
    "mar@example.com",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 30, ..ProptestConfig::default() })]

    /// Pages of a relevance-ranked search, followed by cursor, give exactly the
    /// reference ranking, whichever way the server collects them.
    #[test]
    fn ranked_pages_follow_the_reference_ranking(
        contacts in proptest::collection::vec(
            (0..RANKED_NAMES.len(), 0..RANKED_EMAILS.len(), proptest::collection::vec(0..RANKED_TAGS.len(), 0..2), 0..1000u32),
            5..40,
        ),
        walk_min in prop_oneof![Just(0usize), Just(2), Just(1_000_000)],
        page in 1usize..5,
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app = TestApp::spawn_with_walk_min(walk_min).await;
            for (n, (name, email, tags, day)) in contacts.iter().enumerate() {
                let (local, domain) = RANKED_EMAILS[*email].split_once('@').unwrap();
                let tags: Vec<&str> = tags.iter().map(|t| RANKED_TAGS[*t]).collect();
                app.post("/v1/contacts", json!({
                    "name": RANKED_NAMES[*name],
                    "email": format!("{local}{n}@{domain}"),
                    "tags": tags,
                    // Few distinct days, so ties on the date fall back to the id.
                    "created_at": format!("2025-01-{:02}", 1 + day % 5),
                })).await;
            }
            app.wait_caught_up().await;
            for q in RANKED_QUERIES {
                let expected = expected_ranking(&app, q);
                assert_eq!(walk_pages(&app, q, page).await, expected, "q={q:?} by pages of {page}");
                let first = app.search(q).await;
                assert_eq!(crate::common::hit_ids(&first), expected, "q={q:?}");
            }
            app.stop().await;
        });
    }
}
