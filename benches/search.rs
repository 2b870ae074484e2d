//! Criterion benches for the index layer over generated contacts: building documents,
//! indexing a batch, and each kind of `q` (prefix, substring, multi-word, phone
//! fragment, accents, empty) over a 100k-contact index.
//!
//! Run: `cargo bench --bench search`.

use std::hint::black_box;
use std::time::Duration;

use contactd::index::{SearchIndex, SearchRequest};
use contactd::model::{Contact, ContactContext, ContactInput, RequireRule, Rules};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const FIRST: [&str; 16] = [
    "Hélène",
    "Jean",
    "Łukasz",
    "Zoë",
    "Maria",
    "João",
    "Sören",
    "Anna",
    "Pierre",
    "Ines",
    "Björn",
    "Agnieszka",
    "Luca",
    "Sophie",
    "Mateo",
    "Emma",
];
const LAST: [&str; 16] = [
    "Dupont",
    "Müller",
    "Kowalski",
    "García",
    "Rossi",
    "Silva",
    "Jansen",
    "Smith",
    "Martin",
    "Nowak",
    "Fernández",
    "Bianchi",
    "de Vries",
    "Schäfer",
    "Lefèvre",
    "Wiśniewska",
];
const DOMAINS: [&str; 6] = [
    "orange.fr",
    "gmail.com",
    "web.de",
    "wp.pl",
    "libero.it",
    "acme.io",
];
const TAGS: [&str; 6] = [
    "vip",
    "lead",
    "newsletter",
    "churn-risk",
    "partner",
    "trial",
];

/// Deterministic contacts (a small LCG, so runs compare).
fn generate(count: usize) -> Vec<Contact> {
    let rules = Rules {
        require: RequireRule::None,
        default_country: phonenumber::country::Id::FR,
        unique_name: false,
        unique_identities: true,
        restore_window_days: 60,
    };
    let defs = contactd::model::CustomFieldDefs::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 33) as usize) % bound
    };
    let now = chrono::Utc::now();
    (0..count)
        .map(|n| {
            let (first, last) = (FIRST[next(FIRST.len())], LAST[next(LAST.len())]);
            let input = ContactInput {
                name: Some(format!("{first} {last}")),
                email: Some(
                    format!("{}.{}{n}@{}", first, last, DOMAINS[next(DOMAINS.len())])
                        .to_lowercase()
                        .replace(' ', ""),
                ),
                phone: Some(format!(
                    "+33 6 {:02} {:02} {:02} {:02}",
                    next(100),
                    next(100),
                    next(100),
                    next(100)
                )),
                tags: Some(vec![TAGS[next(TAGS.len())].to_string()]),
                notes: (n % 5 == 0).then(|| "Prefers WhatsApp after 6pm".to_string()),
                ..ContactInput::default()
            };
            // Generated emails may carry accents the validator rejects; drop those.
            let input = match input.clone().validate(&rules, &defs) {
                Ok(valid) => valid,
                Err(_) => ContactInput {
                    email: None,
                    ..input
                }
                .validate(&rules, &defs)
                .expect("valid"),
            };
            input.into_new_contact(ulid::Ulid::generate().to_string(), now)
        })
        .collect()
}

fn build_index(dir: &std::path::Path, contacts: &[Contact]) -> SearchIndex {
    let context = ContactContext::default();
    let index = SearchIndex::create(dir).expect("index");
    let mut updater = index.updater(256 << 20, 2).expect("writer");
    for contact in contacts {
        updater.add(contact, &context).expect("add");
    }
    updater.commit(1).expect("commit");
    updater.wait_merging_threads().expect("merge");
    index.reload().expect("reload");
    index
}

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

criterion_group!(benches, indexing, searching);
criterion_main!(benches);
