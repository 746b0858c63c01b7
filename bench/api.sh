#!/usr/bin/env bash
# Control-plane benchmark: POST /v1/rooms + POST /v1/tokens against a release
# server, first on SQLite, then on PostgreSQL, in one run on this machine.
# Writes bench/results/api.json.
#
#   bench/api.sh                     # 10 s per backend, 16 clients
#   SECONDS_PER_RUN=30 CONCURRENCY=32 bench/api.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-16}
PG_ADMIN=${SWITCHBOARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${BENCH_PORT:-7931}

cargo build --release -p switchboard -p switchboard-bench >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # label database_url
  local label=$1 url=$2
  DATABASE_URL=$url ./target/release/switchboard serve --dev --data-dir "$work/$label" \
    --http-addr 127.0.0.1:$PORT >"$work/$label.out" 2>"$work/$label.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/$label.out" 2>/dev/null && break; sleep 0.1; done
  ./target/release/api-bench --url http://127.0.0.1:$PORT --concurrency "$CONCURRENCY" \
    --seconds "$SECONDS_PER_RUN" --label "$label"
  kill -TERM $pid; wait $pid || true
}

db=sbbench_$(date +%s)
psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
sqlite=$(run sqlite "sqlite://$work/sqlite.db")
postgres=$(run postgres "${PG_ADMIN%/*}/$db")
psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null

mkdir -p bench/results
cat >bench/results/api.json <<JSON
{
  "benchmark": "POST /v1/rooms then POST /v1/tokens, $CONCURRENCY concurrent clients, ${SECONDS_PER_RUN}s per backend, release build, loopback",
  "machine": "$(nproc) cores, $(uname -m)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "sqlite": $sqlite,
  "postgres": $postgres
}
JSON
cat bench/results/api.json
