//! Filter oracle: random contacts and random filters (every operator and field type,
//! nesting, relative times, a random sort); the server's cursor walk must return exactly
//! the contacts a brute-force evaluation of the same filter accepts, in the same order.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};
use contactd::model::{Contact, ContactContext, name_key, parse_time};
use contactd::query::{TimeContext, evaluate, parse, resolve};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::TestApp;

const NAMES: [&str; 8] = [
    "Hélène Dupont",
    "Ann Martin",
    "Zoë Lemartin",
    "Łukasz Müller",
    "Jean Dupond",
    "anne marie",
    "",
    "Ng",
];
const COUNTRIES: [&str; 4] = ["FR", "DE", "PL", ""];
const TAGS: [&str; 4] = ["vip", "Lead", "trial", "churn-risk"];
const PLANS: [&str; 3] = ["free", "pro", "team"];

#[derive(Debug, Clone)]
struct Seed {
    name: usize,
    country: usize,
    tags: Vec<usize>,
    favorite: bool,
    age_days: i64,
    active_days: Option<i64>,
    score: Option<i32>,
    plan: Option<usize>,
    renewal_days: Option<i64>,
    whatsapp: bool,
    assignee: Option<u8>,
    delete: bool,
    language: Option<usize>,
    active: Option<bool>,
    skills: Vec<usize>,
    motto: Option<usize>,
    phone: Option<u32>,
}

const LANGUAGES: [&str; 3] = ["fr", "de", "pl"];
const SKILLS: [&str; 3] = ["rust", "sales", "support"];
const MOTTOS: [&str; 3] = ["Carpe diem", "Keep it simple", "Fortune favours the bold"];

fn seed() -> impl Strategy<Value = Seed> {
    (
        (
            0..NAMES.len(),
            0..COUNTRIES.len(),
            proptest::collection::vec(0..TAGS.len(), 0..3),
            any::<bool>(),
        ),
        (
            0i64..400,
            proptest::option::of(0i64..60),
            proptest::option::of(-5i32..100),
            proptest::option::of(0..PLANS.len()),
        ),
        (
            proptest::option::of(-90i64..90),
            any::<bool>(),
            proptest::option::of(0u8..3),
            proptest::bool::weighted(0.15),
        ),
        (
            proptest::option::of(0..LANGUAGES.len()),
            proptest::option::of(any::<bool>()),
            proptest::collection::vec(0..SKILLS.len(), 0..3),
            proptest::option::of(0..MOTTOS.len()),
            proptest::option::of(0u32..100),
        ),
    )
        .prop_map(
            |(
                (name, country, tags, favorite),
                (age_days, active_days, score, plan),
                (renewal_days, whatsapp, assignee, delete),
                (language, active, skills, motto, phone),
            )| Seed {
                name,
                country,
                tags,
                favorite,
                age_days,
                active_days,
                score,
                plan,
                renewal_days,
                whatsapp,
                assignee,
                delete,
                language,
                active,
                skills,
                motto,
                phone,
            },
        )
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..COUNTRIES.len() - 1).prop_map(|c| format!("country = {}", COUNTRIES[c].to_lowercase())),
        (0..COUNTRIES.len() - 1).prop_map(|c| format!("country != {}", COUNTRIES[c])),
        Just("country IN [FR, PL]".to_string()),
        Just("country IS EMPTY".to_string()),
        (0..TAGS.len()).prop_map(|t| format!("tags = {}", TAGS[t])),
        Just("tags NOT IN [vip, trial]".to_string()),
        Just("tags IS NOT EMPTY".to_string()),
        any::<bool>().prop_map(|b| format!("favorite = {b}")),
        (1i64..400).prop_map(|d| format!("created_at >= now-{d}d")),
        (1i64..400).prop_map(|d| format!("created_at < now-{d}d")),
        (1i64..300).prop_map(|d| format!("created_at {} TO now-{d}d", "now-300d")),
        (1i64..60).prop_map(|d| format!("last_interaction_at > now-{d}d")),
        Just("last_interaction_at EXISTS".to_string()),
        Just("NOT last_interaction_at EXISTS".to_string()),
        (-5i32..100).prop_map(|n| format!("custom.score > {n}")),
        (-5i32..100).prop_map(|n| format!("custom.score <= {n}")),
        (-5i32..100).prop_map(|n| format!("custom.score = {n}")),
        (0i32..50, 50i32..100).prop_map(|(a, b)| format!("score {a} TO {b}")),
        (0..PLANS.len()).prop_map(|p| format!("custom.plan = {}", PLANS[p])),
        (0..PLANS.len()).prop_map(|p| format!("custom.plan != {}", PLANS[p])),
        Just("custom.plan IN [pro, team]".to_string()),
        (-90i64..90).prop_map(|d| format!(
            "custom.renewal_date >= now{}{}d",
            if d < 0 { "-" } else { "+" },
            d.abs()
        )),
        Just("custom.renewal_date EXISTS".to_string()),
        prop_oneof![
            Just("pont"),
            Just("mar"),
            Just("du"),
            Just("lukasz"),
            Just("luka"),
            Just("ann"),
            Just("tin")
        ]
        .prop_map(|w| format!("name CONTAINS \"{w}\"")),
        Just("name EXISTS".to_string()),
        Just("email CONTAINS \"example\"".to_string()),
        Just("channel = whatsapp".to_string()),
        (0u8..3).prop_map(|a| format!("assignee = agent-{a}")),
        Just("NOT assignee EXISTS".to_string()),
        Just("status = deleted".to_string()),
        Just("status IN [active, deleted]".to_string()),
        Just("pending_actions IS EMPTY".to_string()),
        (0..LANGUAGES.len()).prop_map(|l| format!("language = {}", LANGUAGES[l].to_uppercase())),
        Just("language NOT IN [fr, de]".to_string()),
        any::<bool>().prop_map(|b| format!("custom.active = {b}")),
        Just("custom.active EXISTS".to_string()),
        (0..SKILLS.len()).prop_map(|k| format!("skills = {}", SKILLS[k])),
        Just("custom.skills IN [rust, sales]".to_string()),
        prop_oneof![Just("carpe"), Just("simp"), Just("ortun"), Just("bo")]
            .prop_map(|w| format!("custom.motto CONTAINS \"{w}\"")),
        (0u32..100).prop_map(|n| format!("phone = \"06 12 34 56 {n:02}\"")),
        prop_oneof![Just("0612"), Just("3456"), Just("56 7")]
            .prop_map(|d| format!("phone CONTAINS \"{d}\"")),
        Just("phone EXISTS".to_string()),
        Just("email EXISTS".to_string()),
        Just("email = \"PERSON3@example.com\"".to_string()),
        (1i64..30).prop_map(|d| format!("updated_at >= now-{d}d")),
        Just("last_interacted_channel IS EMPTY".to_string()),
    ]
}

fn filter() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} AND {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

const SORTS: [&str; 6] = [
    "",
    "name:asc",
    "created_at:desc",
    "custom.score:asc,name:desc",
    "last_interaction_at:desc",
    "custom.renewal_date:asc",
];

async fn load(app: &TestApp, seeds: &[Seed], now: DateTime<Utc>) {
    for def in [
        json!({"key": "score", "type": "number"}),
        json!({"key": "plan", "type": "dropdown", "options": PLANS}),
        json!({"key": "renewal_date", "type": "date"}),
        json!({"key": "active", "type": "checkbox"}),
        json!({"key": "skills", "type": "multiselect", "options": SKILLS}),
        json!({"key": "motto", "type": "text"}),
    ] {
        app.post("/v1/custom-fields", def).await;
    }
    // Times sit at noon, whole days from now: never on a relative boundary.
    let at = |days: i64| (now - Duration::days(days) - Duration::hours(12)).to_rfc3339();
    for (n, s) in seeds.iter().enumerate() {
        let mut custom = serde_json::Map::new();
        if let Some(score) = s.score {
            custom.insert("score".into(), json!(score));
        }
        if let Some(plan) = s.plan {
            custom.insert("plan".into(), json!(PLANS[plan]));
        }
        if let Some(active) = s.active {
            custom.insert("active".into(), json!(active));
        }
        if !s.skills.is_empty() {
            custom.insert(
                "skills".into(),
                json!(s.skills.iter().map(|k| SKILLS[*k]).collect::<Vec<_>>()),
            );
        }
        if let Some(motto) = s.motto {
            custom.insert("motto".into(), json!(MOTTOS[motto]));
        }
        if let Some(days) = s.renewal_days {
            custom.insert(
                "renewal_date".into(),
                json!((now + Duration::days(days)).format("%Y-%m-%d").to_string()),
            );
        }
        let email = format!("person{n}@example.com");
        let mut body = json!({
            "tags": s.tags.iter().map(|t| TAGS[*t]).collect::<Vec<_>>(),
            "favorite": s.favorite,
            "created_at": at(s.age_days),
            "custom_fields": custom,
        });
        // A third of the contacts with a phone have no email (for `email EXISTS`).
        if s.phone.is_none() || n % 3 != 0 {
            body["email"] = json!(email);
        }
        if !NAMES[s.name].is_empty() {
            body["name"] = json!(NAMES[s.name]);
        }
        if !COUNTRIES[s.country].is_empty() {
            body["country"] = json!(COUNTRIES[s.country]);
        }
        if let Some(days) = s.active_days {
            body["last_interaction_at"] = json!(at(days));
        }
        if s.whatsapp {
            body["identities"] = json!([{"channel": "whatsapp", "value": format!("+33 6 00 00 {:02} {:02}", n / 100, n % 100)}]);
        }
        if let Some(a) = s.assignee {
            body["assignee"] = json!(format!("agent-{a}"));
        }
        if let Some(l) = s.language {
            body["language"] = json!(LANGUAGES[l]);
        }
        if let Some(p) = s.phone {
            // Numbers ending in 00-99 collide on purpose across contacts: only some
            // get stored (identity taken), which the oracle reads from the store.
            body["phone"] = json!(format!("+33 6 12 34 56 {p:02}"));
        }
        let mut reply = app.post("/v1/contacts", body.clone()).await;
        if reply.status == reqwest::StatusCode::CONFLICT {
            body.as_object_mut().unwrap().remove("phone");
            body["email"] = json!(email);
            reply = app.post("/v1/contacts", body).await;
        }
        assert!(reply.status.is_success(), "{}", reply.body);
        if s.delete {
            app.delete(&format!(
                "/v1/contacts/{}",
                reply.body["id"].as_str().unwrap()
            ))
            .await;
        }
    }
}

/// The oracle's order: the sort fields (missing last), ties on id.
fn oracle_order(sort: &str, a: &Contact, b: &Contact) -> Ordering {
    let specs: Vec<(&str, bool)> = if sort.is_empty() {
        vec![("created_at", true)]
    } else {
        sort.split(',')
            .map(|s| {
                let (f, d) = s.split_once(':').unwrap();
                (f, d == "desc")
            })
            .collect()
    };
    let key = |c: &Contact, field: &str| -> Option<(f64, String)> {
        match field {
            "name" => c.name.as_deref().map(|n| (0.0, name_key(n))),
            "created_at" => Some((c.created_at.timestamp_millis() as f64, String::new())),
            "last_interaction_at" => c
                .last_interaction_at
                .map(|t| (t.timestamp_millis() as f64, String::new())),
            "custom.score" => c
                .custom_fields
                .get("score")
                .and_then(Value::as_f64)
                .map(|n| (n, String::new())),
            "custom.renewal_date" => c
                .custom_fields
                .get("renewal_date")
                .and_then(Value::as_str)
                .and_then(|d| parse_time(d).ok())
                .map(|t| (t.timestamp_millis() as f64, String::new())),
            other => panic!("no oracle key for {other}"),
        }
    };
    for (field, descending) in specs {
        let ordering = match (key(a, field), key(b, field)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let natural = x.partial_cmp(&y).unwrap();
                if descending {
                    natural.reverse()
                } else {
                    natural
                }
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.id.cmp(&b.id)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, max_shrink_iters: 30, ..ProptestConfig::default() })]

    #[test]
    fn filters_sorts_and_cursor_walks_agree_with_brute_force(
        seeds in proptest::collection::vec(seed(), 5..30),
        filters in proptest::collection::vec(filter(), 6),
        sort in 0..SORTS.len(),
        page in 1usize..8,
        walk_min in prop_oneof![Just(0usize), Just(4), Just(1_000_000)],
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            // Every page strategy: walking the sort order always, sometimes, never.
            let app = TestApp::spawn_with_walk_min(walk_min).await;
            let now = Utc::now();
            load(&app, &seeds, now).await;
            app.wait_caught_up().await;
            let mut contacts = Vec::new();
            let mut context = ContactContext::default();
            app.store.scan(|c, ctx| -> Result<(), contactd::store::StoreError> {
                contacts.push(c);
                context = ctx.clone();
                Ok(())
            }).unwrap();
            let time = TimeContext { now: Utc::now(), tz: chrono_tz::UTC, default_country: phonenumber::country::Id::FR };
            for filter in &filters {
                let resolved = resolve(&parse(filter).unwrap().unwrap(), &context.defs, &time).unwrap();
                let mut expected: Vec<&Contact> = contacts.iter().filter(|c| evaluate(&resolved, c, &context)).collect();
                expected.sort_by(|a, b| oracle_order(SORTS[sort], a, b));
                let expected: Vec<&str> = expected.iter().map(|c| c.id.as_str()).collect();

                let mut walked: Vec<String> = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let mut body = json!({"filter": filter, "limit": page});
                    if !SORTS[sort].is_empty() { body["sort"] = json!(SORTS[sort]); }
                    if let Some(c) = &cursor { body["cursor"] = json!(c); }
                    let reply = app.post("/v1/contacts/search", body).await;
                    assert_eq!(reply.status, reqwest::StatusCode::OK, "{filter}: {}", reply.body);
                    assert_eq!(reply.body["total"].as_u64().unwrap() as usize, expected.len(), "total for {filter}");
                    walked.extend(crate::common::hit_ids(&reply.body));
                    match reply.body["next_cursor"].as_str() {
                        Some(next) => cursor = Some(next.to_string()),
                        None => break,
                    }
                    assert!(walked.len() <= expected.len() + page, "runaway cursor for {filter}");
                }
                assert_eq!(walked, expected, "filter {filter} sort {:?}", SORTS[sort]);
            }
            app.stop().await;
        });
    }
}
