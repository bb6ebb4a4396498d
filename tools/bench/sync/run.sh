#!/usr/bin/env bash
# The sync benchmark of docs/PERFORMANCE.md ("Sync"), one run:
#
# Push: devices push batches of 50 createOrder mutations over HTTP (the
# gateway, sync, orders over RPC with each mutation's Idempotency-Key,
# sync's record) against pgbench running the same SQL (push.sql: orders'
# keyed CreateOrder transaction and sync's record transaction) directly on
# the same PostgreSQL, in alternating rounds. Target: mutations/s >= 0.5x
# pgbench's rate. Pull: 10,000 changes from cursor 0 in pages of 1000,
# target < 1 s. Heartbeats: devices beating back to back, target 5,000/s
# sustained.
#
#   tools/bench/sync/run.sh [SECS=10] [ROUNDS=3]
#
# BENCH_PHASES ("push pull beat") picks phases. BENCH_PUSHERS (4)
# devices push at once and pgbench runs as many
# clients; BENCH_BEATERS (8) devices beat. Needs pgbench (Debian's
# postgresql package). BAZEL_OUTPUT_BASE selects a Bazel output base;
# BENCH_BIN=<dir> runs binaries saved from another build instead
# (tools/bench/sync/save-bin.sh <dir>: before/after in alternation).
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs="${1:-10}"
rounds="${2:-3}"
pushers="${BENCH_PUSHERS:-4}"
. tools/bench/common.sh
pgbench="$(bench_pgbench)"
if [[ -n "${BENCH_BIN:-}" ]]; then
  bin="$BENCH_BIN" # binaries saved from another build (A/B comparisons)
else
  bench_build //tools/bench/sync:bench_sync
fi
bench_tmp
# bench_sync reads its commands from stdin (fd 9 here): exit lets it stop
# by itself rather than be killed mid-command.
trap 'exec 9>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT

bench_banner
bench_fixture_start 'TENANT_ID|PG_URL|PRODUCTS|PGB_DEVICES' \
  "$bin/tools/bench/sync/bench_sync" BAZEL_BIN="$bin" BENCH_PUSHERS="$pushers"

# One command to bench_sync; its RESULT line into $line (no subshell: the
# count of answers read so far must persist).
results=0
line=
cmd() {
  echo "$1" >&9
  results=$((results + 1))
  for _ in $(seq 6000); do
    [[ $(grep -c '^RESULT\|^FAIL' "$tmp/sys.out") -ge $results ]] && break
    sleep 0.1
  done
  line="$(grep '^RESULT\|^FAIL' "$tmp/sys.out" | sed -n "${results}p")"
  [[ $line == RESULT* ]] || { echo "$line"; tail -20 "$tmp/sys.err"; exit 1; }
}
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }

IFS=, read -r -a ids <<<"$PRODUCTS"
IFS=, read -r -a devs <<<"$PGB_DEVICES"
pgvars=(-D "tid=$TENANT_ID")
for i in "${!ids[@]}"; do pgvars+=(-D "p$((i + 1))=${ids[$i]}"); done
for i in "${!devs[@]}"; do pgvars+=(-D "d$i=${devs[$i]}"); done
cp tools/bench/sync/push.sql "$tmp/push.sql"
chmod 644 "$tmp/push.sql"
pg_run() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pgb() { # secs -> pgbench output
  (cd "$tmp" && pg_run "$pgbench" -n -M prepared -c "$pushers" -j 2 -T "$1" \
    -f "$tmp/push.sql" "${pgvars[@]}" "$PG_URL")
}

phases="${BENCH_PHASES:-push pull beat}" # a subset to repeat one phase
has() { [[ " $phases " == *" $1 "* ]]; }

# Warm-up: both paths once.
cmd "push 2"
pgb 2 >/dev/null

if has push; then
echo "== push: batches of 50 createOrder, $pushers devices / pgbench clients, ${secs}s per side, $rounds rounds"
printf "%-6s %16s %16s %8s\n" round pgbench_mut_s system_mut_s ratio
sum_p=0; sum_s=0
for r in $(seq "$rounds"); do
  pgb "$secs" >"$tmp/p.txt" 2>&1
  grep -q 'number of failed transactions: 0' "$tmp/p.txt" ||
    { echo "pgbench reported failures:"; cat "$tmp/p.txt"; }
  p="$(awk '/^tps = / {print $3; exit}' "$tmp/p.txt")"
  cmd "push $secs"
  s="$(field rate "$line")"
  sum_p="$(echo "$sum_p + $p" | bc -l)"; sum_s="$(echo "$sum_s + $s" | bc -l)"
  printf "%-6s %16.0f %16.0f %8.2f\n" "$r" "$p" "$s" "$(echo "$s / $p" | bc -l)"
done
printf "%-6s %16.0f %16.0f %8.2f\n" all "$sum_p" "$sum_s" "$(echo "$sum_s / $sum_p" | bc -l)"
echo "(pgbench's tps: one mutation = orders' keyed CreateOrder + sync's record)"
fi

if has pull; then
  echo "== pull: 10,000 changes from cursor 0, pages of 1000, as staff"
  for r in $(seq "$rounds"); do cmd pull; echo "$line"; done
fi
if has beat; then
  echo "== heartbeats: ${BENCH_BEATERS:-8} devices back to back, ${secs}s"
  for r in $(seq "$rounds"); do cmd "beat $secs"; echo "$line"; done
fi
echo "== load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
