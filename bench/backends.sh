# Sourced by the control-plane benchmarks (api.sh, webhooks.sh): runs a load
# generator against a release server in --dev mode on SQLite, then on
# PostgreSQL, one after the other on this machine.
#
#   on_both_backends PORT BENCH-BINARY [ARGS...]
#
# runs `target/release/BENCH-BINARY --url http://127.0.0.1:PORT --label LABEL ARGS...`
# once per backend and sets $sqlite and $postgres to what it printed.
PG_ADMIN=${SWITCHBOARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# PROFILE=sfu-bench builds in a fraction of a release build's time (see Cargo.toml).
PROFILE=${PROFILE:-release}
bin=target/$PROFILE
cargo build --profile "$PROFILE" -p switchboard -p switchboard-bench >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# The benchmarks measure the server's throughput, not its per-key request limits.
cat >"$work/unlimited.toml" <<'TOML'
[limits]
requests_per_key = { per_second = 0, burst = 0 }
requests_per_project = { per_second = 0, burst = 0 }
TOML

run_on() { # label database_url port binary args...
  local label=$1 url=$2 port=$3 binary=$4
  shift 4
  DATABASE_URL=$url ./$bin/switchboard serve --dev --config "$work/unlimited.toml" \
    --data-dir "$work/$label" --http-addr 127.0.0.1:"$port" >"$work/$label.out" 2>"$work/$label.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/$label.out" 2>/dev/null && break; sleep 0.1; done
  ./$bin/"$binary" --url http://127.0.0.1:"$port" --label "$label" "$@"
  kill -TERM $pid; wait $pid || true
}

on_both_backends() { # port binary args...
  local db
  db=sbbench_$(date +%s)
  psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
  sqlite=$(run_on sqlite "sqlite://$work/sqlite.db" "$@")
  postgres=$(run_on postgres "${PG_ADMIN%/*}/$db" "$@")
  psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
}
