#!/usr/bin/env bash
# contactd side by side with PostgreSQL 15 + pg_trgm, on this machine, in one run.
#
#   benches/vs_postgres.sh [--count N] [--seconds S] [--pg-seconds S] [--queries Q]
#                          [--out DIR] [--keep]
#
# --seconds is each contactd throughput run; --pg-seconds each pgbench run (default 60:
# PostgreSQL answers few queries a second at 1M, and every kind needs samples).
# --keep leaves the cluster running and its data in place, to look at plans with psql.
#
# 1. builds contactd (release) and generates N contacts with `contactd generate`;
# 2. measures contactd with `contactd bench --search-only` (HTTP import until searchable,
#    the query mix at 1 client for latency, 1 and 8 clients for throughput), which also
#    writes the mix it ran;
# 3. starts a private PostgreSQL cluster in a temporary directory, loads the same rows
#    (COPY, folded searchable text, pg_trgm GIN + btree/GIN indexes on the filter and
#    sort columns), exports every row as JSON lines (COPY TO of row_to_json, beside
#    contactd's NDJSON export over HTTP), and runs the same mix with pgbench at 1 and 8
#    clients;
# 4. prints both sides with the ratios (Markdown, also saved in DIR/report.md) and stops
#    the cluster.
# Both servers never run a load at the same time. Needs initdb, pg_ctl, psql and pgbench
# (PostgreSQL 15 or newer, with the pg_trgm and unaccent extensions) and python3.
set -euo pipefail

count=100000
seconds=10
pg_seconds=60
queries=5000
out=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --count) count=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --pg-seconds) pg_seconds=$2; shift 2 ;;
        --queries) queries=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

find_pg_bin() {
    local candidates=()
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
    fi
    for dir in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
        [ -d "$dir" ] && candidates+=("$dir")
    done
    for dir in "${candidates[@]}"; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}
if ! pg_bin=$(find_pg_bin); then
    echo "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or in" >&2
    echo "/usr/lib/postgresql/*/bin. On Debian: apt-get install postgresql postgresql-contrib" >&2
    exit 1
fi
for tool in psql pgbench python3; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$pg_bin/$tool" ]; then
        echo "$tool was not found (Debian: apt-get install postgresql-client python3)" >&2
        exit 1
    fi
done
psql_bin=$( [ -x "$pg_bin/psql" ] && echo "$pg_bin/psql" || command -v psql )
pgbench_bin=$( [ -x "$pg_bin/pgbench" ] && echo "$pg_bin/pgbench" || command -v pgbench )
pg_version=$("$pg_bin/postgres" --version | grep -oE '[0-9]+' | head -1)
if [ "$pg_version" -lt 15 ]; then
    echo "PostgreSQL $pg_version found in $pg_bin; 15 or newer is needed" >&2
    exit 1
fi

work=$(mktemp -d /tmp/contactd-vs-pg.XXXXXX)
chmod 755 "$work"
out=${out:-$work/results}
mkdir -p "$out"
rm -rf "$out/pg"  # pgbench logs of an earlier run would be read as this one's
port=$(( 20000 + RANDOM % 20000 ))

# PostgreSQL refuses to run as root: use the postgres account then.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_cluster() {
    if [ "$keep" = 1 ] && [ -f "$work/pg/postmaster.pid" ]; then
        echo "the cluster keeps running (--keep): psql -h $work/socket -p $port -U postgres"
        return
    fi
    if [ -f "$work/pg/postmaster.pid" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
    fi
    if [ "$keep" = 0 ]; then rm -rf "$work/pg" "$work/socket" "$work/rows.ndjson"; fi
}
trap stop_cluster EXIT

echo "== building contactd (release)"
(cd "$repo" && cargo build --release --quiet)
contactd="$repo/target/release/contactd"

echo "== generating $count contacts"
"$contactd" generate --count "$count" --seed 1 --out "$work/rows.ndjson"
chmod 644 "$work/rows.ndjson"

echo "== contactd: import over HTTP, then the query mix at 1 and 8 clients"
"$contactd" bench --count "$count" --dataset "$work/rows.ndjson" --search-only \
    --clients 1,8 --seconds "$seconds" --queries "$queries" \
    --mix-out "$out/mix.ndjson" --json "$out/contactd.json" | tee "$out/contactd.txt"

echo "== PostgreSQL $pg_version: a private cluster on port $port"
mkdir -p "$work/pg" "$work/socket"
if [ "$(id -u)" = 0 ]; then chown postgres "$work/pg" "$work/socket"; fi
as_pg "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
# A tuned OLTP setup for a 24 GiB, 2-core machine; no JIT (it only adds planning time
# to queries of this size); every execution planned with its own pattern, so the
# trigram index is used whenever it helps (a generic plan of `LIKE $1` scans the table).
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/socket/server.log" -w start -o \
    "-p $port -k $work/socket -c listen_addresses='' -c shared_buffers=2GB -c work_mem=64MB \
     -c maintenance_work_mem=1GB -c effective_cache_size=12GB -c jit=off \
     -c max_wal_size=8GB -c random_page_cost=1.1 -c plan_cache_mode=force_custom_plan" >/dev/null
psql_run() { "$psql_bin" -h "$work/socket" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

echo "== PostgreSQL: COPY, searchable text, indexes"
load_started=$(date +%s%N)
psql_run <<SQL
CREATE EXTENSION pg_trgm;
CREATE EXTENSION unaccent;
CREATE TABLE staging (doc jsonb);
COPY staging FROM '$work/rows.ndjson' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02');
CREATE TABLE contacts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text, email text, phone text, country text, language text,
    tags text[] NOT NULL DEFAULT '{}', identities jsonb, custom jsonb, assignee text,
    created_at timestamptz NOT NULL, last_interaction_at timestamptz,
    last_incoming_message_at timestamptz, name_sort text, search_text text);
INSERT INTO contacts (name, email, phone, country, language, tags, identities, custom,
    assignee, created_at, last_interaction_at, last_incoming_message_at, name_sort, search_text)
SELECT d->>'name', lower(d->>'email'), d->>'phone', d->>'country', d->>'language',
    ARRAY(SELECT jsonb_array_elements_text(coalesce(d->'tags', '[]'))),
    d->'identities', d->'custom_fields', d->>'assignee',
    (d->>'created_at')::timestamptz, (d->>'last_interaction_at')::timestamptz,
    (d->>'last_incoming_message_at')::timestamptz,
    lower(unaccent(d->>'name')),
    lower(unaccent(concat_ws(' ', d->>'name', d->>'email', d->>'phone',
        regexp_replace(d->>'phone', '\D', '', 'g'),
        (SELECT string_agg((i->>'value') || ' ' || regexp_replace(i->>'value', '\D', '', 'g'), ' ')
           FROM jsonb_array_elements(coalesce(d->'identities', '[]')) i),
        (SELECT string_agg(t, ' ') FROM jsonb_array_elements_text(coalesce(d->'tags', '[]')) t),
        d->'custom_fields'->>'plan', d->'custom_fields'->>'segment',
        (SELECT string_agg(t, ' ')
           FROM jsonb_array_elements_text(coalesce(d->'custom_fields'->'interests', '[]')) t),
        d->>'notes')))
FROM (SELECT doc AS d FROM staging) AS rows;
DROP TABLE staging;
CREATE INDEX contacts_search ON contacts USING gin (search_text gin_trgm_ops);
CREATE INDEX ON contacts (created_at);
CREATE INDEX ON contacts (last_interaction_at);
CREATE INDEX ON contacts (name_sort);
CREATE INDEX ON contacts (((custom->>'seats')::int));
CREATE INDEX ON contacts ((custom->>'plan'));
CREATE INDEX ON contacts (country);
CREATE INDEX ON contacts (assignee);
CREATE INDEX ON contacts USING gin (tags);
VACUUM ANALYZE contacts;
SQL
load_seconds=$(python3 -c "import sys; print((int(sys.argv[1]) - int(sys.argv[2])) / 1e9)" "$(date +%s%N)" "$load_started")
database_bytes=$(psql_run -c "SELECT pg_total_relation_size('contacts')")
echo "loaded in ${load_seconds} s, contacts table with indexes: $database_bytes bytes"

echo "== PostgreSQL: export of every row as JSON lines (COPY TO of row_to_json)"
export_started=$(date +%s%N)
psql_run -c "\\copy (SELECT row_to_json(c) FROM contacts c) TO '/dev/null'"
export_seconds=$(python3 -c "import sys; print((int(sys.argv[1]) - int(sys.argv[2])) / 1e9)" "$(date +%s%N)" "$export_started")
echo "exported in ${export_seconds} s"

echo "== pgbench: the same mix at 1 and 8 clients"
python3 "$here/vs_postgres.py" scripts "$out/mix.ndjson" "$out/pg/scripts"
columns=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['param_columns'])" \
    "$out/pg/scripts/manifest.json")
param_columns=$(for n in $(seq 1 "$columns"); do printf ', p%s text' "$n"; done)
psql_run -c "CREATE TABLE bench_params (grp int, i int$param_columns, PRIMARY KEY (grp, i))"
psql_run -c "\\copy bench_params FROM '$out/pg/scripts/params.csv' WITH (FORMAT csv)"
script_args=()
while read -r script weight; do
    script_args+=(-f "$out/pg/scripts/$script@$weight")
done < <(python3 -c "import json,sys
for s in json.load(open(sys.argv[1]))['scripts']: print(s['script'], s['weight'])" \
    "$out/pg/scripts/manifest.json")
declare -A rate
for clients in 1 8; do
    threads=$(( clients < 2 ? clients : 2 ))
    (cd "$out/pg" && "$pgbench_bin" -h "$work/socket" -p "$port" -U postgres -n -M prepared \
        -c "$clients" -j "$threads" -T "$pg_seconds" -l --log-prefix="pgbench_$clients" \
        "${script_args[@]}" postgres > "pgbench_$clients.txt" 2>&1) || {
        cat "$out/pg/pgbench_$clients.txt" >&2; exit 1; }
    rate[$clients]=$(grep -oE 'tps = [0-9.]+' "$out/pg/pgbench_$clients.txt" | head -1 | cut -d' ' -f3)
    echo "$clients client(s): ${rate[$clients]} transactions/s"
done
cat > "$out/pg/results.json" <<JSON
{"load_seconds": $load_seconds, "database_bytes": $database_bytes, "export_seconds": $export_seconds,
 "throughput": {"1": ${rate[1]}, "8": ${rate[8]}}}
JSON

echo
python3 "$here/vs_postgres.py" report "$out/contactd.json" "$out/pg" | tee "$out/report.md"
echo
echo "results in $out"
