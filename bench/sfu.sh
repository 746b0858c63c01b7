#!/usr/bin/env bash
# SFU capacity benchmark: the most subscribers of one 1.5 Mbps VP8 + Opus
# publisher served with < 1% loss and < 50 ms p99 latency, and the server's CPU
# per forwarded Mbit and packet. Release build, loopback, server and load
# tester on this machine. Writes bench/results/sfu.json.
#
#   bench/sfu.sh                       # 20 s per run
#   bench/sfu.sh --duration 30s --steps 10,50,100
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchboard -p switchboard-bench >/dev/null
mkdir -p bench/results
./target/release/sfu-bench "$@" >bench/results/sfu.json.tmp
mv bench/results/sfu.json.tmp bench/results/sfu.json
cat bench/results/sfu.json
