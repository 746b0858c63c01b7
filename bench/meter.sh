#!/usr/bin/env bash
# Metering benchmark on the local PostgreSQL: events per second the meter
# ingests from the log, and the monthly usage report, billing preview and a
# page of sessions for one project with 10 million sessions in a month, in
# the store and over HTTP from a release server. Writes bench/results/meter.json.
#
#   bench/meter.sh
#   SESSIONS=1000000 EVENTS=50000 bench/meter.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-10000000}
EVENTS=${EVENTS:-200000}
ADMIN_URL=${SWITCHBOARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

cargo build --release -p switchboard -p switchboard-bench >/dev/null
result=$(./target/release/meter-bench --admin-url "$ADMIN_URL" --sessions "$SESSIONS" --events "$EVENTS" \
  --server ./target/release/switchboard)

mkdir -p bench/results
cat >bench/results/meter.json <<JSON
{
  "benchmark": "metering on PostgreSQL $(psql -At "$ADMIN_URL" -c 'SHOW server_version' 2>/dev/null || echo '?'): the meter reading join/leave/track events from the log (one project), and usage reports for one project with $SESSIONS sessions in one month, release build",
  "machine": "$(nproc) cores, $(uname -m)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "results": $result
}
JSON
cat bench/results/meter.json
