//! Criterion benches for the index layer over generated contacts: building documents,
//! indexing a batch, and each kind of `q` (prefix, substring, multi-word, phone
//! fragment, accents, empty) over a 100k-contact index.
//!
//! Run: `cargo bench --bench search`.

use std::hint::black_box;
use std::time::Duration;

use contactd::index::{SearchIndex, SearchRequest};
use contactd::model::ContactContext;
use contactd::query::{TimeContext, parse, resolve};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;

use common::{build_index, generate};

fn indexing(c: &mut Criterion) {
    let contacts = generate(1_000);
    let context = ContactContext::default();
    let mut group = c.benchmark_group("indexing");
    group.sample_size(10);
    group.bench_function("documents for 1000 contacts", |b| {
        let fields = contactd::index::Fields::build();
        b.iter(|| {
            for contact in &contacts {
                black_box(contactd::index::document::to_document(
                    contact, &context, &fields,
                ));
            }
        })
    });
    group.bench_function("add + commit 1000 contacts", |b| {
        b.iter_batched(
            || tempfile::TempDir::new().expect("dir"),
            |dir| {
                let index = SearchIndex::create(dir.path()).expect("index");
                let mut updater = index.updater(64 << 20, 1).expect("writer");
                for contact in &contacts {
                    updater.add(contact, &context).expect("add");
                }
                updater.commit(1).expect("commit");
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn searching(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().expect("dir");
    let index = build_index(dir.path(), &generate(100_000));
    let mut group = c.benchmark_group("search 100k");
    group.measurement_time(Duration::from_secs(4));
    for q in [
        "",
        "m",
        "mar",
        "dupont",
        "helene dup",
        "artin",
        "wisniew",
        "06 12",
        "+33 6 4",
        "5678",
        "gmail lefevre",
    ] {
        let request = SearchRequest {
            q: q.to_string(),
            limit: 20,
            ..SearchRequest::default()
        };
        group.bench_function(format!("q={q:?}"), |b| {
            b.iter(|| black_box(index.search(&request).expect("search")))
        });
    }
    group.finish();
}

fn filter_parsing(c: &mut Criterion) {
    let time = TimeContext {
        now: chrono::Utc::now(),
        tz: chrono_tz::UTC,
        default_country: phonenumber::country::Id::FR,
    };
    let defs = contactd::model::CustomFieldDefs::new();
    let mut group = c.benchmark_group("filter parse+resolve");
    for filter in [
        "country = FR",
        "country = FR AND tags IN [vip, lead] AND created_at >= now-7d",
        "NOT assignee EXISTS OR (tags = vip AND last_interaction_at < now-24h) OR name CONTAINS \"pont\"",
    ] {
        group.bench_function(filter, |b| {
            b.iter(|| black_box(resolve(&parse(filter).unwrap().unwrap(), &defs, &time).unwrap()))
        });
    }
    group.finish();
}

/// The query mix of `contactd bench`, in-process (no HTTP), per kind, over 100k
/// generated contacts: what the server spends inside the index.
fn query_mix(c: &mut Criterion) {
    use contactd::bench::mix;
    let (contacts, defs) = common::generate_realistic(100_000, 1);
    let dir = tempfile::TempDir::new().expect("dir");
    let index = build_index(dir.path(), &contacts);
    let samples: Vec<mix::Sample> = contacts
        .iter()
        .step_by(97)
        .map(|contact| mix::Sample::from_json(&serde_json::to_value(contact).unwrap()))
        .collect();
    let time = TimeContext {
        now: chrono::Utc::now(),
        tz: chrono_tz::UTC,
        default_country: phonenumber::country::Id::FR,
    };
    let requests: Vec<(&str, SearchRequest)> = mix::build(&samples, 240, 1)
        .into_iter()
        .map(|query| {
            let filter = query
                .filter
                .map(|f| resolve(&parse(&f).unwrap().unwrap(), &defs, &time).unwrap());
            let sort = query
                .sort
                .map(|s| contactd::index::sort::parse_sort(&s, &defs).unwrap());
            let request = SearchRequest {
                q: query.q,
                filter,
                sort,
                limit: 20,
                ..SearchRequest::default()
            };
            (query.kind, request)
        })
        .collect();
    let mut group = c.benchmark_group("query mix 100k");
    group.measurement_time(Duration::from_secs(3));
    for kind in mix::KINDS {
        let of_kind: Vec<&SearchRequest> = requests
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| r)
            .collect();
        group.bench_function(format!("{kind} ({} queries)", of_kind.len()), |b| {
            b.iter(|| {
                for request in &of_kind {
                    black_box(index.search(request).expect("search"));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, indexing, searching, filter_parsing, query_mix);
criterion_main!(benches);
