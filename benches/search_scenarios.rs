//! Search scenarios over a generated 100k-contact index, in-process, reporting
//! p50/p99/max per scenario (the numbers criterion's means hide):
//! 1. prefix query + country filter + created_at sort;
//! 2. substring query with facets on tags and country;
//! 3. the live counts of 10 saved inboxes.
//!
//! Run: `cargo bench --bench search_scenarios` (`SCENARIO_CONTACTS` sets the size).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use contactd::index::sort::parse_sort;
use contactd::index::{SearchIndex, SearchRequest};
use contactd::model::CustomFieldDefs;
use contactd::query::{TimeContext, parse, resolve};

fn filter(text: &str) -> Option<contactd::query::Resolved> {
    let time = TimeContext {
        now: chrono::Utc::now(),
        tz: chrono_tz::UTC,
        default_country: phonenumber::country::Id::FR,
    };
    parse(text)
        .unwrap()
        .map(|e| resolve(&e, &CustomFieldDefs::new(), &time).unwrap())
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{label:<58} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn time(rounds: usize, mut work: impl FnMut(usize)) -> Vec<Duration> {
    (0..rounds)
        .map(|round| {
            let started = Instant::now();
            work(round);
            started.elapsed()
        })
        .collect()
}

fn main() {
    let count: usize = std::env::var("SCENARIO_CONTACTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::TempDir::new().expect("dir");
    let started = Instant::now();
    let index: SearchIndex = common::build_index(dir.path(), &common::generate(count));
    println!(
        "indexed {count} generated contacts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let prefixes = ["m", "ma", "mar", "du", "sop", "kow", "wis", "le", "j", "ro"];
    let substrings = ["art", "ont", "owa", "ilv", "ans", "ier", "sch", "ues"];
    let sort = parse_sort("created_at:desc", &CustomFieldDefs::new()).unwrap();
    let fr = filter("country = FR");
    let scenario =
        |q: &str, filter: Option<contactd::query::Resolved>, facets: Vec<String>| SearchRequest {
            q: q.to_string(),
            filter,
            sort: Some(sort.clone()),
            limit: 20,
            facets,
            ..SearchRequest::default()
        };
    let prefix_requests: Vec<SearchRequest> = prefixes
        .iter()
        .map(|q| scenario(q, fr.clone(), vec![]))
        .collect();
    report(
        "prefix q + country = FR + sort created_at:desc (top 20)",
        time(1000, |i| {
            index
                .search(&prefix_requests[i % prefix_requests.len()])
                .unwrap();
        }),
    );
    let facet_requests: Vec<SearchRequest> = substrings
        .iter()
        .map(|q| SearchRequest {
            sort: None,
            ..scenario(q, None, vec!["tags".into(), "country".into()])
        })
        .collect();
    report(
        "substring q + facets tags,country (top 20)",
        time(1000, |i| {
            index
                .search(&facet_requests[i % facet_requests.len()])
                .unwrap();
        }),
    );
    let inboxes: Vec<SearchRequest> = [
        "country = FR",
        "country IN [DE, NL]",
        "tags = vip",
        "tags IN [lead, trial] AND country = PL",
        "created_at >= now-30d",
        "created_at >= now-7d AND tags = lead",
        "NOT tags EXISTS",
        "email CONTAINS \"gmail\"",
        "country = ES OR country = IT",
        "tags = churn-risk AND created_at < now-1y",
    ]
    .iter()
    .map(|f| SearchRequest {
        filter: filter(f),
        limit: 1,
        ..SearchRequest::default()
    })
    .collect();
    report(
        "counts of 10 inboxes (all ten, per round)",
        time(300, |_| {
            for inbox in &inboxes {
                index.count(inbox).unwrap();
            }
        }),
    );
}
