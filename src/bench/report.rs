//! The bench's results: a table for people, the same as JSON for machines, with the
//! targets of the 1M-contact reference run beside each line.

use std::fmt::Write;

use serde::Serialize;

use super::BenchArgs;
use super::measure::{LoadResult, Summary};

#[derive(Debug, Serialize)]
pub struct ExportResult {
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct ImportResult {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub rejected: u64,
    pub bytes: u64,
    /// From the first uploaded byte until the job had stored every row.
    pub stored_seconds: f64,
    /// From the first uploaded byte until the index had applied every row.
    pub searchable_seconds: f64,
    /// From the first uploaded byte until the index was merged after the load (when
    /// the server merged it).
    pub merged_seconds: Option<f64>,
    /// From the first uploaded byte until the store file was packed after the load
    /// (when the server packed it).
    pub packed_seconds: Option<f64>,
    /// Rows over `searchable_seconds`.
    pub rows_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct LatencyResult {
    pub overall: Summary,
    pub by_kind: Vec<(String, Summary)>,
}

#[derive(Debug, Serialize)]
pub struct WriteToSearchable {
    pub latency: Summary,
    /// The first part of each sample: until the write was acknowledged.
    pub write_latency: Summary,
    /// Writes a `min_seq` search did not find (always 0 unless something is broken).
    pub missing: u64,
    pub background_searches_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct ReindexResult {
    pub documents: u64,
    pub seconds: f64,
    pub documents_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    pub os: String,
}

impl Machine {
    fn read() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .map(|kib| kib * 1024)
        });
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            os: std::env::consts::OS.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub machine: Machine,
    pub dataset: String,
    /// Active contacts the server held when searching started.
    pub contacts: u64,
    pub seconds_per_scenario: f64,
    pub import: Option<ImportResult>,
    /// `GET /v1/contacts/export` of every contact, right after the import.
    pub export: Option<ExportResult>,
    pub mix_queries: usize,
    /// Kinds of the mix none of whose queries found anything (should be empty).
    pub kinds_without_hits: Vec<String>,
    pub latency: Option<LatencyResult>,
    pub throughput: Vec<LoadResult>,
    pub writes: Option<LoadResult>,
    pub write_to_searchable: Option<WriteToSearchable>,
    pub rss_bytes: Option<u64>,
    pub store_bytes: u64,
    pub index_bytes: u64,
    pub restart_ready_seconds: Option<f64>,
    pub reindex: Option<ReindexResult>,
    pub maintenance: Vec<super::maintenance::MaintenanceResult>,
}

impl Report {
    pub fn new(args: &BenchArgs) -> Report {
        let dataset = match (&args.dataset, args.skip_import) {
            (_, true) => "the server's own contacts".to_string(),
            (Some(path), _) => path.display().to_string(),
            (None, _) => format!("{} generated contacts, seed {}", args.count, args.seed),
        };
        Report {
            version: env!("CARGO_PKG_VERSION"),
            machine: Machine::read(),
            dataset,
            contacts: 0,
            seconds_per_scenario: args.seconds,
            import: None,
            mix_queries: 0,
            kinds_without_hits: Vec::new(),
            latency: None,
            throughput: Vec::new(),
            writes: None,
            write_to_searchable: None,
            rss_bytes: None,
            store_bytes: 0,
            index_bytes: 0,
            restart_ready_seconds: None,
            reindex: None,
            maintenance: Vec::new(),
            export: None,
        }
    }

    /// The results as a text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
        let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
        let _ = writeln!(
            out,
            "\ncontactd {} bench: {} ({} active), {} × {}, {:.1} GiB RAM",
            self.version,
            self.dataset,
            self.contacts,
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory_bytes.map_or(0.0, gib),
        );
        let mut rows: Vec<(String, String, &str)> = Vec::new();
        if let Some(import) = &self.import {
            rows.push((
                "import until all searchable".into(),
                format!(
                    "{:.1} s, {:.0} rows/s ({} rejected; stored after {:.1} s{}{})",
                    import.searchable_seconds,
                    import.rows_per_second,
                    import.rejected,
                    import.stored_seconds,
                    import
                        .merged_seconds
                        .map(|s| format!("; merged after {s:.1} s"))
                        .unwrap_or_default(),
                    import
                        .packed_seconds
                        .map(|s| format!("; store packed after {s:.1} s"))
                        .unwrap_or_default()
                ),
                "≤ 40 s for 1M",
            ));
        }
        if let Some(export) = &self.export {
            rows.push((
                "export of every contact (NDJSON)".into(),
                format!(
                    "{:.1} s, {:.0} rows/s, {:.0} MiB",
                    export.seconds,
                    export.rows_per_second,
                    mib(export.bytes)
                ),
                "≥ 100,000 rows/s",
            ));
        }
        if let Some(latency) = &self.latency {
            let o = latency.overall;
            rows.push((
                "search, 1 client, the mix".into(),
                format!(
                    "p50 {:.2} · p90 {:.2} · p99 {:.2} · max {:.2} ms",
                    o.p50_ms, o.p90_ms, o.p99_ms, o.max_ms
                ),
                "p50 ≤ 2 ms, p99 ≤ 10 ms",
            ));
        }
        for load in &self.throughput {
            rows.push((
                format!("search throughput, {} clients", load.clients),
                format!(
                    "{:.0} req/s (p50 {:.2}, p99 {:.2} ms, {} errors)",
                    load.per_second, load.latency.p50_ms, load.latency.p99_ms, load.errors
                ),
                if load.clients == 8 {
                    "≥ 2,000 req/s"
                } else {
                    ""
                },
            ));
        }
        if let Some(writes) = &self.writes {
            rows.push((
                "writes, 32 clients (durable)".into(),
                format!(
                    "{:.0} /s (p50 {:.2}, p99 {:.2} ms, {} errors)",
                    writes.per_second, writes.latency.p50_ms, writes.latency.p99_ms, writes.errors
                ),
                "≥ 3,000 /s",
            ));
        }
        if let Some(w2s) = &self.write_to_searchable {
            rows.push((
                "write → searchable".into(),
                format!(
                    "p50 {:.1} · p99 {:.1} · max {:.1} ms, of which the write p50 {:.1} · p99 {:.1} ms ({} samples, {:.0} searches/s beside, {} missing)",
                    w2s.latency.p50_ms,
                    w2s.latency.p99_ms,
                    w2s.latency.max_ms,
                    w2s.write_latency.p50_ms,
                    w2s.write_latency.p99_ms,
                    w2s.latency.count,
                    w2s.background_searches_per_second,
                    w2s.missing
                ),
                "p99 ≤ 250 ms at 200 searches/s",
            ));
        }
        rows.push((
            "server memory (RSS)".into(),
            self.rss_bytes
                .map_or("unknown".into(), |b| format!("{:.0} MiB", mib(b))),
            "≤ 1.5 GiB",
        ));
        rows.push((
            "data dir (store + index)".into(),
            format!(
                "{:.0} MiB ({:.0} + {:.0})",
                mib(self.store_bytes + self.index_bytes),
                mib(self.store_bytes),
                mib(self.index_bytes)
            ),
            "≤ 2 GiB",
        ));
        if let Some(seconds) = self.restart_ready_seconds {
            rows.push((
                "restart to ready".into(),
                format!("{seconds:.2} s"),
                "≤ 3 s",
            ));
        }
        if let Some(reindex) = &self.reindex {
            rows.push((
                "reindex".into(),
                format!(
                    "{:.0} contacts/s ({} in {:.1} s)",
                    reindex.documents_per_second, reindex.documents, reindex.seconds
                ),
                "≥ 40,000 /s",
            ));
        }
        for run in &self.maintenance {
            rows.push((
                format!("writes during: {}", run.action),
                format!(
                    "max {:.0} ms, p99 {:.0} ms (baseline max {:.0}, p99 {:.0}); took {:.1} s{}",
                    run.during.max_ms,
                    run.during.p99_ms,
                    run.baseline.max_ms,
                    run.baseline.p99_ms,
                    run.seconds,
                    // The server's last store compaction (an erase's scrub), if one ran.
                    run.compaction_swap_ms
                        .map(|ms| format!(", store copy swapped in {ms:.0} ms"))
                        .unwrap_or_default(),
                ),
                "no wait > 100 ms",
            ));
        }
        let _ = writeln!(out, "\n{:<32} {:<72} target (1M)", "scenario", "result");
        for (what, result, target) in rows {
            let _ = writeln!(out, "{what:<32} {result:<72} {target}");
        }
        if let Some(latency) = &self.latency {
            let _ = writeln!(
                out,
                "\n{:<28} {:>7} {:>8} {:>8} {:>8} {:>8}",
                "query kind (1 client)", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
            );
            for (kind, s) in &latency.by_kind {
                let _ = writeln!(
                    out,
                    "{kind:<28} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
                );
            }
        }
        if !self.kinds_without_hits.is_empty() {
            let _ = writeln!(
                out,
                "\nkinds whose queries found nothing: {}",
                self.kinds_without_hits.join(", ")
            );
        }
        out
    }
}
