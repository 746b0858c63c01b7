#!/usr/bin/env bash
# How long a fresh clone takes to build the README's first command,
# `cargo run --release -- serve --dev`, on this machine, and where the time
# goes: a release build of the server in an empty target directory (the
# crates themselves already downloaded, as after any first `cargo fetch`),
# with cargo's --timings report read for each crate's compile time.
# Writes bench/results/build-time.json and prints the table the README quotes.
#
#   bench/build-time.sh        # about 16 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
cargo fetch --quiet
start=$(date +%s.%N)
CARGO_TARGET_DIR="$target" cargo build --quiet --release -p switchboard --bin switchboard --timings
end=$(date +%s.%N)
mkdir -p bench/results
python3 - "$target/cargo-timings/cargo-timing.html" "$start" "$end" "$(nproc)" <<'PY'
import json, re, sys, datetime
report, start, end, cores = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
html = open(report).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
by_crate = {}
for u in units:
    by_crate[u["name"]] = by_crate.get(u["name"], 0.0) + u["duration"]
work = sum(by_crate.values())
top = sorted(by_crate.items(), key=lambda kv: -kv[1])[:15]
result = {
    "date": datetime.date.today().isoformat(),
    "command": "cargo build --release -p switchboard --bin switchboard (empty target dir)",
    "cores": cores,
    "wall_s": round(end - start, 1),
    "compile_work_s": round(work, 1),
    "units": len(units),
    "floor_s": round(work / cores, 1),
    "largest_crates_s": {name: round(s, 1) for name, s in top},
}
json.dump(result, open("bench/results/build-time.json", "w"), indent=2)
print(f"wall {result['wall_s']} s on {cores} cores; {result['compile_work_s']} s of compile work "
      f"over {len(units)} units, so at least {result['floor_s']} s however they are scheduled")
print("| crate | compile time |\n| --- | ---: |")
for name, s in top:
    print(f"| {name} | {s:.0f} s |")
PY
