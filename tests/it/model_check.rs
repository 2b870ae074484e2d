//! Model-based check: after random sequences of create, patch, delete, restore,
//! identify, merge and unmerge, what search returns equals a brute-force evaluation of
//! the same query over a scan of the store, and no identity has two active holders.

use std::collections::BTreeSet;

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
const QUERIES: [&str; 26] = [
    "",
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
    // French mobiles in both formats; small range so fragments collide often.
    if n.is_multiple_of(2) {
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

/// Ids the reference rules say `q` matches, over a scan of the store.
fn expected_ids(app: &TestApp, q: &str) -> BTreeSet<String> {
    let parts = text_query::parse(q);
    let mut ids = BTreeSet::new();
    app.store
        .scan(
            |contact, context| -> Result<(), contactd::store::StoreError> {
                let text = SearchableText::of(&contact, context);
                if contact.is_active() && parts.iter().all(|p| p.matches(&text)) {
                    ids.insert(contact.id);
                }
                Ok(())
            },
        )
        .unwrap();
    ids
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
    fn search_agrees_with_a_scan_of_the_store(ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app = TestApp::spawn().await;
            run_ops(&app, &ops).await;
            app.wait_caught_up().await;
            check_identities_are_unique(&app).await;
            for q in QUERIES {
                let body: Value = app.search(q).await;
                let found: BTreeSet<String> = crate::common::hit_ids(&body).into_iter().collect();
                let expected = expected_ids(&app, q);
                assert_eq!(found, expected, "q={q:?} ops={ops:?}");
                assert_eq!(body["total"].as_u64().unwrap() as usize, expected.len(), "q={q:?}");
            }
            app.stop().await;
        });
    }
}
