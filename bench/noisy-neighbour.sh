#!/usr/bin/env bash
# Noisy-neighbour benchmark: a quiet project's webhook and function latency
# (p50, p99) alone, then beside a noisy project whose webhook endpoint holds
# every request until the timeout and whose function spins until its
# deadline, against a release server on SQLite, then on PostgreSQL, in one
# run. Writes bench/results/noisy-neighbour.json.
#
#   bench/noisy-neighbour.sh
#   RATE=20 NOISE_RATE=50 SECONDS_PER_RUN=20 NOISE=both bench/noisy-neighbour.sh
#   PROFILE=sfu-bench bench/noisy-neighbour.sh   # quicker to build
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20}
NOISE_RATE=${NOISE_RATE:-50}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
NOISE=${NOISE:-both}
PORT=${BENCH_PORT:-7934}
# The server with the request budgets off, the build ($bin), $work and PG_ADMIN.
source bench/backends.sh

run_noisy() { # label database_url
  local label=$1 url=$2
  DATABASE_URL=$url ./$bin/switchboard serve --dev --config "$work/unlimited.toml" \
    --data-dir "$work/$label" --http-addr 127.0.0.1:"$PORT" --function-cache-dir "$work/$label-cache" \
    >"$work/$label.out" 2>"$work/$label.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/$label.out" 2>/dev/null && break; sleep 0.1; done
  local noisy
  noisy=$(DATABASE_URL=$url ./$bin/switchboard project create noisy --json --data-dir "$work/$label")
  ./$bin/noisy-bench --url http://127.0.0.1:"$PORT" --label "$label" --noise "$NOISE" \
    --noisy-key "$(echo "$noisy" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')" \
    --noisy-secret "$(echo "$noisy" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')" \
    --rate "$RATE" --noise-rate "$NOISE_RATE" --seconds "$SECONDS_PER_RUN"
  kill -TERM $pid; wait $pid || true
}

db=sbbench_$(date +%s)
psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
sqlite=$(run_noisy sqlite "sqlite://$work/sqlite.db")
postgres=$(run_noisy postgres "${PG_ADMIN%/*}/$db")
psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null

mkdir -p bench/results
cat >bench/results/noisy-neighbour.json <<JSON
{
  "benchmark": "a quiet project creating $RATE rooms/s (webhook to a 204 receiver, a function returning at once, both on room.started) for ${SECONDS_PER_RUN}s alone, then beside a noisy project creating $NOISE_RATE rooms/s whose endpoint holds every request until the server's timeout and whose function spins until its deadline (noise: $NOISE); latency from the event's created_at to the delivery's arrival and to the invocation's end, $PROFILE build",
  "machine": "$(nproc) cores, $(uname -m)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "sqlite": $sqlite,
  "postgres": $postgres
}
JSON
cat bench/results/noisy-neighbour.json
