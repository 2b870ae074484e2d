#!/usr/bin/env python3
"""Helpers of benches/vs_postgres.sh: turn contactd's query mix into pgbench scripts, and
print both sides of the side-by-side run with the ratios.

  vs_postgres.py scripts MIX.ndjson OUT_DIR   pgbench scripts + their parameters
  vs_postgres.py report CONTACTD.json PG_DIR  the tables (Markdown) on stdout

Standard library only. Every query of the mix becomes the SQL a CRM team would write
over the same rows: each typed word (or phone digit run) is a `LIKE '%word%'` on the
folded searchable text (served by the pg_trgm GIN index), the mix's filters and sorts
map to plain columns with btree/GIN indexes, and every query returns the page (20
rows) with the exact total (`count(*)`), as contactd does, in one pgbench transaction.
"""

import json
import math
import os
import re
import sys
from collections import defaultdict

FILTERS = {
    "country = FR AND tags IN [vip, lead]": "country = 'FR' AND tags && '{vip,lead}'",
    "tags = customer AND custom.plan IN [pro, enterprise]":
        "tags @> '{customer}' AND custom->>'plan' IN ('pro', 'enterprise')",
    "custom.newsletter = true AND last_interaction_at >= 2026-01-01":
        "(custom->>'newsletter')::boolean AND last_interaction_at >= '2026-01-01'",
    "assignee EXISTS AND country IN [DE, PL, NL]":
        "assignee IS NOT NULL AND country IN ('DE', 'PL', 'NL')",
}
SORTS = {
    None: "created_at DESC, id",
    "last_interaction_at:desc": "last_interaction_at DESC NULLS LAST, id",
    "name:asc": "name_sort ASC NULLS LAST, id",
    "created_at:desc": "created_at DESC, id",
    "custom.seats:desc": "((custom->>'seats')::int) DESC NULLS LAST, id",
}
PHONE_TOKEN = re.compile(r"^[0-9+\-.()/]*[0-9][0-9+\-.()/]*$")


def like_pattern(text):
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def patterns(q):
    """The LIKE patterns of a typed query: digit runs joined, other tokens as typed."""
    out, digits = [], ""
    for token in q.split():
        if PHONE_TOKEN.match(token):
            digits += re.sub(r"\D", "", token)
            continue
        if digits:
            out.append(like_pattern(digits))
            digits = ""
        out.append(like_pattern(token.lower()))
    if digits:
        out.append(like_pattern(digits))
    return out


def scripts(mix_path, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    groups = {}
    params = []
    with open(mix_path) as mix:
        for line in mix:
            query = json.loads(line)
            words = patterns(query["q"])
            shape = (query["kind"], len(words), query.get("filter"), query.get("sort"))
            group = groups.setdefault(shape, {"number": len(groups) + 1, "count": 0})
            group["count"] += 1
            params.append((group["number"], group["count"], words))
    width = max([len(w) for _, _, w in params] + [1])
    with open(os.path.join(out_dir, "params.csv"), "w") as out:
        for number, i, words in params:
            cells = [str(number), str(i)] + [
                '"' + w.replace('"', '""') + '"' for w in words
            ] + [""] * (width - len(words))
            out.write(",".join(cells) + "\n")
    manifest = []
    for (kind, word_count, filter_text, sort), group in groups.items():
        conditions = [f"search_text LIKE :p{n + 1}" for n in range(word_count)]
        if filter_text:
            conditions.append(f"({FILTERS[filter_text]})")
        where = " AND ".join(conditions) or "true"
        lines = [f"\\set i random(1, {group['count']})"]
        if word_count:
            columns = ", ".join(f"p{n + 1}" for n in range(word_count))
            lines.append(
                f"SELECT {columns} FROM bench_params WHERE grp = {group['number']} "
                f"AND i = :i \\gset"
            )
        # The total and the page, as two statements: in one (a window count) the
        # planner walks the sort index for the page and filters every row.
        lines.append(f"SELECT count(*) FROM contacts WHERE {where};")
        lines.append(f"SELECT * FROM contacts WHERE {where} ORDER BY {SORTS[sort]} LIMIT 20;")
        name = f"group{group['number']:03}.sql"
        with open(os.path.join(out_dir, name), "w") as script:
            script.write("\n".join(lines) + "\n")
        manifest.append({"script": name, "kind": kind, "weight": group["count"]})
    with open(os.path.join(out_dir, "manifest.json"), "w") as out:
        json.dump({"param_columns": width, "scripts": manifest}, out, indent=1)


def percentile(sorted_ms, p):
    if not sorted_ms:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


def read_pgbench_log(pg_dir, clients):
    """Latencies (ms) by script index from pgbench's per-transaction logs."""
    by_script = defaultdict(list)
    prefix = f"pgbench_{clients}"
    for name in os.listdir(pg_dir):
        suffix = name[len(prefix) + 1:]
        if not name.startswith(prefix + ".") or not suffix.replace(".", "").isdigit():
            continue
        with open(os.path.join(pg_dir, name)) as log:
            for line in log:
                fields = line.split()
                # client_id transaction_no time_us script_no epoch_s epoch_us
                if len(fields) >= 4 and fields[2].isdigit():
                    by_script[int(fields[3])].append(int(fields[2]) / 1000.0)
    return by_script


def summary(samples):
    samples = sorted(samples)
    return {
        "count": len(samples),
        "p50": percentile(samples, 50),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
    }


def ratio(ours, theirs, higher_is_better=False):
    if not ours or not theirs or math.isnan(ours) or math.isnan(theirs):
        return "–"
    return f"{(ours / theirs if higher_is_better else theirs / ours):.1f}×"


def report(contactd_path, pg_dir):
    contactd = json.load(open(contactd_path))
    pg = json.load(open(os.path.join(pg_dir, "results.json")))
    manifest = json.load(open(os.path.join(pg_dir, "scripts", "manifest.json")))
    kinds_of_script = [entry["kind"] for entry in manifest["scripts"]]

    pg_latency = read_pgbench_log(pg_dir, 1)
    pg_all, pg_by_kind = [], defaultdict(list)
    for script, samples in pg_latency.items():
        pg_all += samples
        pg_by_kind[kinds_of_script[script]] += samples
    pg_overall = summary(pg_all)
    ours = contactd["latency"]["overall"]
    ours_by_kind = dict(contactd["latency"]["by_kind"])

    def rate(results, clients):
        for result in results:
            if result["clients"] == clients:
                return result["per_second"]
        return float("nan")

    pg_rate = {c: pg["throughput"].get(str(c), float("nan")) for c in (1, 8)}
    imported = contactd.get("import") or {}
    mib = 1 << 20
    ours_bytes = contactd["store_bytes"] + contactd["index_bytes"]
    print(f"## contactd vs PostgreSQL 15 + pg_trgm: {contactd['contacts']:,} contacts\n")
    print(f"Same machine, same rows, same {contactd['mix_queries']}-query mix; contactd over "
          f"HTTP, PostgreSQL queried directly by pgbench (prepared statements).\n")
    print("| | contactd | PostgreSQL | ratio (goal) |")
    print("|---|---|---|---|")
    print(f"| median, 1 client | {ours['p50_ms']:.2f} ms | {pg_overall['p50']:.2f} ms | "
          f"{ratio(ours['p50_ms'], pg_overall['p50'])} faster (≥ 4×) |")
    print(f"| p90, 1 client | {ours['p90_ms']:.2f} ms | {pg_overall['p90']:.2f} ms | "
          f"{ratio(ours['p90_ms'], pg_overall['p90'])} faster |")
    print(f"| p99, 1 client | {ours['p99_ms']:.2f} ms | {pg_overall['p99']:.2f} ms | "
          f"{ratio(ours['p99_ms'], pg_overall['p99'])} faster (≥ 10×) |")
    for clients in (1, 8):
        ours_rate = rate(contactd["throughput"], clients)
        goal = " (≥ 5×)" if clients == 8 else ""
        print(f"| requests/s, {clients} client{'s' if clients > 1 else ''} | {ours_rate:,.0f} | "
              f"{pg_rate[clients]:,.0f} | {ratio(ours_rate, pg_rate[clients], True)}{goal} |")
    if imported:
        print(f"| load until searchable | {imported['searchable_seconds']:.1f} s (HTTP import) | "
              f"{pg['load_seconds']:.1f} s (COPY + transform + indexes) | "
              f"{ratio(imported['searchable_seconds'], pg['load_seconds'])} faster (≥ 2×) |")
    print(f"| data on disk | {ours_bytes / mib:,.0f} MiB | {pg['database_bytes'] / mib:,.0f} MiB | "
          f"{ratio(ours_bytes, pg['database_bytes'])} smaller (≥ 1×) |")
    exported = contactd.get("export")
    if exported and "export_seconds" in pg:
        pg_rows_per_second = exported["rows"] / pg["export_seconds"]
        print(f"| export of every contact | {exported['seconds']:.1f} s, "
              f"{exported['rows_per_second']:,.0f} rows/s (NDJSON over HTTP) | "
              f"{pg['export_seconds']:.1f} s, {pg_rows_per_second:,.0f} rows/s "
              f"(COPY TO of row_to_json) | {ratio(exported['seconds'], pg['export_seconds'])} "
              f"faster (≥ 100,000 rows/s) |")
    print("\nPer query kind, 1 client (ms):\n")
    print("| kind | contactd p50 | p99 | PostgreSQL p50 | p99 | p50 ratio | p99 ratio |")
    print("|---|---|---|---|---|---|---|")
    for kind, s in contactd["latency"]["by_kind"]:
        theirs = summary(pg_by_kind.get(kind, []))
        print(f"| {kind} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {theirs['p50']:.2f} | "
              f"{theirs['p99']:.2f} | {ratio(s['p50_ms'], theirs['p50'])} | "
              f"{ratio(s['p99_ms'], theirs['p99'])} |")
    print(f"\n(Ratios above 1× favour contactd. A PostgreSQL transaction is a primary-key "
          f"read of the query's parameters, the count and the page; text queries there are "
          f"ordered by created_at, contactd ranks by relevance.)")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "scripts":
        scripts(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
