#!/usr/bin/env bash
# The packet path's cost in instructions per delivered packet: one publisher's
# video to N subscribers in process on a made-up clock (no sockets; SRTP
# decrypt once, route, rewrite, marshal and SRTP encrypt per subscriber), as
# counted by `valgrind --tool=callgrind`, which counts the same on a busy or an
# idle machine. Fails when the figure is more than 10% above the committed
# baseline in bench/results/packet-path.json; --update rewrites the baseline.
#
#   bench/packet-path.sh            # check (CI runs this)
#   bench/packet-path.sh --update   # after an intended change, commit the new figure
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSCRIBERS=${SUBSCRIBERS:-50}
PACKETS=${PACKETS:-400}
baseline=bench/results/packet-path.json

cargo build --quiet --profile sfu-bench -p switchboard-media --example packet-path
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$work/out" \
  --toggle-collect='*packet_path_steady_state*' \
  ./target/sfu-bench/examples/packet-path "$SUBSCRIBERS" "$PACKETS" >"$work/run.json" 2>"$work/valgrind.log"
instructions=$(callgrind_annotate "$work/out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
delivered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["delivered"])' "$work/run.json")
python3 - "$instructions" "$delivered" "$baseline" "${1:-}" "$SUBSCRIBERS" "$PACKETS" <<'PY'
import json, sys, datetime
instructions, delivered, path, mode, subs, packets = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
if instructions <= 0 or delivered <= 0:
    sys.exit(f"nothing measured: {instructions} instructions for {delivered} packets")
per_packet = instructions / delivered
print(f"packet path: {per_packet:.0f} instructions per delivered packet "
      f"({instructions} for {delivered}: {packets} received, {subs} subscribers)")
if mode == "--update":
    json.dump({
        "benchmark": f"one publisher's VP8 ({packets} packets of 1100 bytes after 200 of warm-up) to {subs} subscribers "
                     "in process: SRTP decrypt, Fanout::on_rtp, rewrite, marshal and SRTP encrypt per subscriber; "
                     "instructions counted by callgrind inside the steady state only",
        "date": datetime.date.today().isoformat(),
        "instructions_per_delivered_packet": round(per_packet),
    }, open(path, "w"), indent=2)
    open(path, "a").write("\n")
    print(f"baseline written to {path}")
    sys.exit(0)
base = json.load(open(path))["instructions_per_delivered_packet"]
ratio = per_packet / base
print(f"baseline {base}: {ratio:.3f}x")
if ratio > 1.10:
    sys.exit(f"the packet path costs {ratio:.2f}x its baseline ({per_packet:.0f} against {base} instructions "
             "per delivered packet); find the regression, or run bench/packet-path.sh --update if it is intended")
PY
