#!/usr/bin/env bash
# Webhook benchmark: event-to-delivery latency at a steady event rate, then
# sustained deliveries per second of a replayed backlog, to a receiver on
# loopback, against a release server on SQLite, then on PostgreSQL, in one run.
# Writes bench/results/webhooks.json.
#
#   bench/webhooks.sh                   # 100 events/s for 10 s per backend
#   RATE=200 SECONDS_PER_RUN=20 bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-100}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
PG_ADMIN=${SWITCHBOARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${BENCH_PORT:-7932}

cargo build --release -p switchboard -p switchboard-bench >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run() { # label database_url
  local label=$1 url=$2
  DATABASE_URL=$url SWITCHBOARD_LOG=warn ./target/release/switchboard serve --dev --data-dir "$work/$label" \
    --http-addr 127.0.0.1:$PORT >"$work/$label.out" 2>"$work/$label.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/$label.out" 2>/dev/null && break; sleep 0.1; done
  ./target/release/webhook-bench --url http://127.0.0.1:$PORT --rate "$RATE" \
    --seconds "$SECONDS_PER_RUN" --label "$label"
  kill -TERM $pid; wait $pid || true
}

db=sbbench_$(date +%s)
psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
sqlite=$(run sqlite "sqlite://$work/sqlite.db")
postgres=$(run postgres "${PG_ADMIN%/*}/$db")
psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null

mkdir -p bench/results
cat >bench/results/webhooks.json <<JSON
{
  "benchmark": "room.started events at $RATE/s for ${SECONDS_PER_RUN}s (latency from the event's created_at to arrival), then a replay of all of them at once (deliveries/s), to a 204 receiver on loopback, release build",
  "machine": "$(nproc) cores, $(uname -m)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "sqlite": $sqlite,
  "postgres": $postgres
}
JSON
cat bench/results/webhooks.json
