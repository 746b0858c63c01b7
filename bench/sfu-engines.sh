#!/usr/bin/env bash
# Two `switchboard` binaries through bench/sfu.sh's capacity search,
# alternately, in one run: each binary serves and loads with its own engine
# (the load tester shares the engine, so it changes too). Prints each run's
# most subscribers under the pass rule and the ratio of the medians; writes
# bench/results/sfu-engines.json.
#
#   bench/sfu-engines.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- sfu-bench options]
#
# Build the old binary from its commit in a worktree with the same profile:
#   git worktree add /tmp/old cbffadd
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --profile sfu-bench \
#      --no-default-features -p switchboard --bin switchboard)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
cargo build --quiet --profile sfu-bench --no-default-features -p switchboard-bench --bin sfu-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq "$rounds"); do
  for which in old new; do
    binary=$old; [ "$which" = new ] && binary=$new
    echo "round $round: $which ($binary)" >&2
    ./target/sfu-bench/sfu-bench --switchboard "$binary" "$@" >"$work/$which-$round.json" 2>"$work/$which-$round.log"
  done
done
mkdir -p bench/results
python3 - "$work" "$rounds" "$old" "$new" "$@" <<'PY' | tee bench/results/sfu-engines.json
import json, statistics, sys, datetime
work, rounds, old, new, options = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
runs = {w: [json.load(open(f"{work}/{w}-{r}.json")) for r in range(1, rounds + 1)] for w in ("old", "new")}
best = {w: [r["max_subscribers"] for r in runs[w]] for w in runs}
med = {w: statistics.median(best[w]) for w in best}
print(json.dumps({
    "benchmark": runs["new"][0]["benchmark"] + "; the two binaries alternately, each its own load tester",
    "date": datetime.date.today().isoformat(),
    "options": options,
    "old": {"binary": old, "max_subscribers": best["old"], "at_max": [r["at_max"] for r in runs["old"]]},
    "new": {"binary": new, "max_subscribers": best["new"], "at_max": [r["at_max"] for r in runs["new"]]},
    "ratio_of_medians": (med["new"] / med["old"]) if med["old"] else None,
}, indent=2))
PY
