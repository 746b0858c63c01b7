#!/usr/bin/env bash
# Join-storm benchmark of the control plane on the local PostgreSQL: EVENTS
# joins and leaves of one project recorded through the event log by PRODUCERS
# concurrent producers, metered by the billing meter and delivered to one
# webhook endpoint on loopback, in one process. Reports the sustained rate
# (every event appended, metered and delivered) and each stage's rate and
# lag, after checking nothing was lost or doubled. Writes
# bench/results/join-storm.json.
#
#   bench/join-storm.sh
#   EVENTS=20000 bench/join-storm.sh
#   RATE=5000 ROOMS=100 bench/join-storm.sh
#   PROFILE=release bench/join-storm.sh   # the control plane fully optimised
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-100000}
# A storm has many joins in flight at once: at 5,000 a second and 50 ms a
# join, 250 (Little's law).
PRODUCERS=${PRODUCERS:-256}
ROOMS=${ROOMS:-1}
RATE=${RATE:-0}
TIMEOUT_S=${TIMEOUT_S:-600}
# sfu-bench builds in a fraction of a release build's time, but keeps the
# store, webhooks, billing and most dependencies (sqlx, serde_json, hyper) at
# opt-level 1 (see [profile.sfu-bench] in Cargo.toml).
PROFILE=${PROFILE:-sfu-bench}
ADMIN_URL=${SWITCHBOARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

cargo build --profile "$PROFILE" -p switchboard-bench --bin join-storm >/dev/null
dir=$PROFILE
[ "$PROFILE" = dev ] && dir=debug
result=$(./target/"$dir"/join-storm --admin-url "$ADMIN_URL" --events "$EVENTS" \
  --producers "$PRODUCERS" --rooms "$ROOMS" --rate "$RATE" --timeout-s "$TIMEOUT_S")

offered="as fast as the log takes them"
[ "$RATE" != 0 ] && offered="offered at $RATE events/s"
mkdir -p bench/results
cat >bench/results/join-storm.json <<JSON
{
  "benchmark": "join storm on PostgreSQL $(psql -At "$ADMIN_URL" -c 'SHOW server_version' 2>/dev/null || echo '?'): $EVENTS participant.joined/participant.left events of one project in $ROOMS room(s), recorded with store.events().record by $PRODUCERS concurrent producers $offered, metered by the billing meter and delivered by the webhook worker to one endpoint (a 204 receiver on loopback), all in one process with the server's default worker settings; sustained rate = events / time until all were appended, metered and delivered; $PROFILE build",
  "machine": "$(nproc) cores, $(uname -m)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "results": $result
}
JSON
cat bench/results/join-storm.json
