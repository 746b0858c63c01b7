#!/usr/bin/env bash
# Broadcast fan-out benchmark: one publisher (VP8 + Opus) and C-1, 2C-1 and
# 3C-1 viewers over media nodes that each take C participants
# ([placement] max_participants), an API node, the local PostgreSQL and
# NATS, all on loopback. Reports where the viewers went, every viewer's loss,
# and the origin node's datagrams and CPU per step (they grow with the edge
# nodes, not with the viewers). In the last step one edge is killed with
# kill -9 while media flows: its viewers join again, as the SDK does.
# Writes bench/results/broadcast.json.
#
#   bench/broadcast.sh
#   bench/broadcast.sh --capacity 40 --duration 30s
set -euo pipefail
cd "$(dirname "$0")/.."
# The media path fully optimised (see [profile.sfu-bench] in Cargo.toml).
PROFILE=${PROFILE:-sfu-bench}
cargo build --profile "$PROFILE" -p switchboard -p switchboard-bench --bin switchboard --bin broadcast-bench >/dev/null
dir=$PROFILE
[ "$PROFILE" = dev ] && dir=debug
result=$(./target/"$dir"/broadcast-bench --switchboard ./target/"$dir"/switchboard "$@")
mkdir -p bench/results
cat >bench/results/broadcast.json <<JSON
{
  "benchmark": "broadcast fan-out: one publisher, viewers placed over media nodes of one region capped at capacity_per_node participants each, fed by relay links from the origin; origin datagrams/s and CPU over each step's steady media; the last step kills the fullest edge with kill -9 mid-run; $PROFILE build, everything on one machine over loopback",
  "machine": "$(nproc) cores, $(uname -m)",
  "commit": "$(git rev-parse --short HEAD)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "results": $result
}
JSON
cat bench/results/broadcast.json
