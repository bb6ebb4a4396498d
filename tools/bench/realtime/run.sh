#!/usr/bin/env bash
# The realtime benchmark of docs/PERFORMANCE.md ("Realtime"), one run:
# N WebSocket connections subscribed across TENANTS tenants' orders.<tenant>
# channels, orders created through the gateway's HTTP API, against
# realtime and against a reference fan-out server on Node's `ws` package
# fed the same events, side by side. Reports resident memory per idle
# connection, publish->deliver latency p50/p99 at a steady order rate, and
# deliveries/s in a burst. See tools/bench/realtime/README.md.
#
#   tools/bench/realtime/run.sh [N=10000] [TENANTS=10] [RATE=20] [SECS=20] [BURST=300] [ROUNDS=1]
#
# Needs node and npm (the ws package is installed by `npm ci` into
# client/node_modules on first use). Everything listens on 127.0.0.1 and
# stops by itself; BAZEL_OUTPUT_BASE selects a Bazel output base. For
# experiments: ONLY=realtime (or "ws reference") measures one side;
# BURST_MODE=live creates the burst's orders during the fan-out instead of
# holding them (default held: README);
# REALTIME_MAX_SUBSCRIPTIONS, REALTIME_SEND_QUEUE_BYTES and
# REALTIME_MAX_CONNECTIONS_PER_IP reach realtime; REALTIME_BIN=<file> runs
# that realtime binary instead of the one built here (e.g. a copy built
# from another commit, to compare two versions on the same machine).
set -euo pipefail
cd "$(dirname "$0")/../../.."
n="${1:-10000}"
ntenants="${2:-10}"
rate="${3:-20}"
secs="${4:-20}"
burst="${5:-300}"
rounds="${6:-1}"
# Every connection is a descriptor in the server and in the client.
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) >= n + 1000 )) ||
  { echo "fd limit $(ulimit -n) too low for $n connections (ulimit -Hn)" >&2; exit 1; }
. tools/bench/common.sh
bench_build //tools/bench/realtime:rt_system
client=tools/bench/realtime/client
[[ -f $client/node_modules/ws/package.json ]] ||
  (cd "$client" && npm ci --no-audit --no-fund >/dev/null)

bench_tmp
cleanup() {
  exec 8>&- 2>/dev/null || true
  bench_cleanup
}
trap cleanup EXIT
if [[ -n "${REALTIME_BIN:-}" ]]; then
  # A shadow of bazel-bin: every entry linked, realtime's binary replaced.
  [[ -x "$REALTIME_BIN" ]] || { echo "REALTIME_BIN $REALTIME_BIN: not executable" >&2; exit 1; }
  mkdir -p "$tmp/bin/services/realtime"
  for e in "$bin"/*; do [[ $e == */services ]] || ln -s "$e" "$tmp/bin/"; done
  for e in "$bin"/services/*; do [[ $e == */realtime ]] || ln -s "$e" "$tmp/bin/services/"; done
  ln -s "$(realpath "$REALTIME_BIN")" "$tmp/bin/services/realtime/realtime"
  bin="$tmp/bin"
  echo "== realtime: $REALTIME_BIN"
fi
echo "== $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), node $(node --version)"
mkfifo "$tmp/refhold"
bench_fixture_start 'GATEWAY_PORT|WS_PORT|RT_PID|RT_METRICS' \
  "$bin/tools/bench/realtime/rt_system" BENCH_TENANTS="$ntenants" \
  BENCH_TOKENS="${TOKENS:-1}" BAZEL_BIN="$bin"
# A held burst stops realtime (SIGSTOP): never leave it stopped.
trap 'kill -CONT "$RT_PID" 2>/dev/null || true; cleanup' EXIT

ref_port="$(bench_free_port)"
PORT="$ref_port" UPSTREAM="ws://127.0.0.1:$WS_PORT/v1/realtime" TENANTS="$tmp/sys.out" \
  node "$client/ref_server.js" <"$tmp/refhold" >"$tmp/ref.out" 2>"$tmp/ref.err" &
ref_pid=$!
pids+=($ref_pid)
exec 8>"$tmp/refhold"
for _ in $(seq 300); do
  grep -q LISTENING "$tmp/ref.out" 2>/dev/null && break
  kill -0 "$ref_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q LISTENING "$tmp/ref.out" || { cat "$tmp/ref.err"; exit 1; }

GW="http://127.0.0.1:$GATEWAY_PORT" WS_OURS="ws://127.0.0.1:$WS_PORT/v1/realtime" \
  WS_REF="ws://127.0.0.1:$ref_port/" RT_PID="$RT_PID" RT_METRICS="$RT_METRICS" REF_PID="$ref_pid" \
  TENANTS="$tmp/sys.out" N="$n" RATE="$rate" SECS="$secs" BURST="$burst" \
  ROUNDS="$rounds" ONLY="${ONLY:-}" BURST_MODE="${BURST_MODE:-held}" node "$client/bench.js"
