#!/usr/bin/env bash
# Functions benchmark: compile time, cold and warm invocation latency (p50,
# p99) and invocations per second on one core, for a WAT component and the
# JavaScript example (examples/functions, built with componentize-js), in
# process; then WebSocket join latency against a release server on SQLite
# with no hook, a WAT hook and the JS hook. Writes bench/results/functions.json.
#
#   bench/functions.sh
#   INVOCATIONS=5000 JOINS=500 bench/functions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
INVOCATIONS=${INVOCATIONS:-2000}
JOINS=${JOINS:-200}
PORT=${BENCH_PORT:-7933}

(cd examples/functions && { [ -d node_modules ] || npm install --no-audit --no-fund >/dev/null; } && npm run build >/dev/null)
cargo build --release -p switchboard -p switchboard-bench >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
./target/release/switchboard serve --dev --data-dir "$work" --http-addr 127.0.0.1:"$PORT" \
  --function-cache-dir "$work/cache" >"$work/out" 2>"$work/log" &
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
result=$(./target/release/function-bench --js examples/functions/gate.wasm --url http://127.0.0.1:"$PORT" \
  --invocations "$INVOCATIONS" --joins "$JOINS")

mkdir -p bench/results
cat >bench/results/functions.json <<JSON
{
  "benchmark": "function invocations in process (participant.joining hook; warm = instantiate from InstancePre + call; cold = a fresh host loading the cached artifact, then instantiate + call), and WebSocket join latency (connect to the join message) against a release server on SQLite, release build",
  "machine": "$(nproc) cores, $(uname -m)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "results": $result
}
JSON
cat bench/results/functions.json
