#!/usr/bin/env bash
# Recording benchmark: the SFU's extra CPU per recorded track. The same load
# (8 publishers of 1.5 Mbps VP8 + Opus, one subscriber) runs alternately in a
# plain room and in a room created with `record: true`, 3 times each, against
# one release server on loopback. Writes bench/results/recording.json.
#
#   bench/recording.sh
#   bench/recording.sh --publishers 4 --duration 30s --rounds 5
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchboard -p switchboard-bench >/dev/null
mkdir -p bench/results
./target/release/record-bench "$@" >bench/results/recording.json.tmp
mv bench/results/recording.json.tmp bench/results/recording.json
cat bench/results/recording.json
