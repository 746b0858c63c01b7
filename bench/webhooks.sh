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
PORT=${BENCH_PORT:-7932}
source bench/backends.sh

on_both_backends "$PORT" webhook-bench --rate "$RATE" --seconds "$SECONDS_PER_RUN"

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
