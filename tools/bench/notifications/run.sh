#!/usr/bin/env bash
# The notifications benchmark of docs/PERFORMANCE.md ("Notifications"),
# one run: signed webhooks to a local receiver, jobs/s and enqueue-to-
# delivery latency p50/p99, notifications against BullMQ (npm) on the same
# Redis doing the same HTTP deliveries to the same receiver, at equal
# concurrency, side by side. See tools/bench/notifications/README.md.
#
#   tools/bench/notifications/run.sh [N=2000] [CONCS="4 16"] [SN=1000] [RATE=100]
#
# Phases per concurrency (PHASES, default "burst drain steady"): burst (N
# jobs made as fast as the producer goes), drain (DN=1000 jobs queued
# while the receiver holds its answers, then drained: the senders alone),
# steady (SN jobs at RATE/s: latency).
#
# Needs node and npm (bullmq is installed by `npm ci` into client/
# node_modules on first use), Bazel, PostgreSQL 15 and Redis. Everything
# listens on 127.0.0.1 and stops by itself; BAZEL_OUTPUT_BASE selects a
# Bazel output base. ONLY=notifications or ONLY=BullMQ measures one side
# (BullMQ still needs the bodies of a notifications phase: it runs that
# phase's notifications side once). KEEPALIVE=0 makes BullMQ's worker
# open a connection per request (by default both sides keep them open).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export N="${1:-2000}" CONCS="${2:-4 16}" SN="${3:-1000}" RATE="${4:-100}"
. tools/bench/common.sh
bench_build //tools/bench/notifications:ntf_system
client=tools/bench/notifications/client
[[ -f $client/node_modules/bullmq/package.json ]] ||
  (cd "$client" && npm ci --no-audit --no-fund >/dev/null)

tmp="$(mktemp -d)"
driver=
cleanup() {
  # The driver's children (receiver, BullMQ worker, the system) stop when
  # their stdin closes, i.e. when the driver exits; the system stops
  # PostgreSQL, Redis and the services itself.
  [[ -n $driver ]] && kill "$driver" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), node $(node --version)," \
  "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), bullmq" \
  "$(node -p "require('./$client/node_modules/bullmq/package.json').version")"
echo "== N=$N CONCS=\"$CONCS\" SN=$SN RATE=$RATE"
FIXTURE="$bin/tools/bench/notifications/ntf_system" BAZEL_BIN="$bin" TMP="$tmp" \
  node "$client/bench.js" &
driver=$!
rc=0
wait "$driver" || rc=$?
driver=
[[ $rc -ne 0 && -s $tmp/sys.err ]] && tail -50 "$tmp/sys.err" >&2
exit "$rc"
