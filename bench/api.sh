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
PORT=${BENCH_PORT:-7931}
source bench/backends.sh

on_both_backends "$PORT" api-bench --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_RUN"

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
