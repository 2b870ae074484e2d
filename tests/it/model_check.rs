//! Model-based check: after random create/patch/delete sequences, what search returns
//! equals a brute-force evaluation of the same query over a scan of the store.

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 50, ..ProptestConfig::default() })]

    #[test]
    fn search_agrees_with_a_scan_of_the_store(ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app = TestApp::spawn().await;
            run_ops(&app, &ops).await;
            app.wait_caught_up().await;
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
