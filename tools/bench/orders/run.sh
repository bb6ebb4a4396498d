#!/usr/bin/env bash
# The orders benchmark of docs/PERFORMANCE.md ("Orders"), one run:
#
# Order creation end to end - wrk POSTs /v1/orders (two random products of
# 20, as the owner) through the gateway (token check, tenant, rate limit,
# transcoding) to the orders service (token check again, one transaction:
# lock and decrement stock, order + lines, two outbox rows; relay to the
# bus) - against pgbench running the same SQL transaction directly on the
# same PostgreSQL, at the same concurrency, in alternating rounds.
# Target: >= 0.7x pgbench's transactions per second; p99 reported.
#
#   tools/bench/orders/run.sh [SECS=10] [CONNS=16] [ROUNDS=3]
#
# Needs wrk (installed with apt-get when missing and run as root) and
# pgbench (Debian's postgresql package). BAZEL_OUTPUT_BASE selects a Bazel
# output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs="${1:-10}"
conns="${2:-16}"
rounds="${3:-3}"
if ! command -v wrk >/dev/null; then
  [[ $(id -u) -eq 0 ]] || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
  apt-get install -y wrk >/dev/null
fi
pgbench="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pgbench"
bazel_cmd=(bazel)
[[ -n "${BAZEL_OUTPUT_BASE:-}" ]] && bazel_cmd+=(--output_base="$BAZEL_OUTPUT_BASE")
targets=(//tools/bench/gateway:bench_system //services/gateway //services/auth
  //services/tenants //services/orders)
if ! "${bazel_cmd[@]}" build --symlink_prefix=/ "${targets[@]}" >/dev/null 2>&1; then
  "${bazel_cmd[@]}" build --symlink_prefix=/ "${targets[@]}"
  exit 1
fi
bin="$("${bazel_cmd[@]}" info bazel-bin 2>/dev/null)"

tmp="$(mktemp -d)"
chmod 755 "$tmp"
pids=()
cleanup() {
  exec 9>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
mkfifo "$tmp/hold"
BENCH_PRODUCTS=20 BENCH_STOCK=1000000 BAZEL_BIN="$bin" \
  "$bin/tools/bench/gateway/bench_system" <"$tmp/hold" >"$tmp/sys.out" 2>"$tmp/sys.err" &
pids+=($!)
exec 9>"$tmp/hold"   # holds bench_system's stdin open
for _ in $(seq 900); do grep -q READY "$tmp/sys.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$tmp/sys.out" || { cat "$tmp/sys.err"; exit 1; }
eval "$(grep -E '^(GATEWAY_PORT|ADMIN_PORT|ORDERS_ADMIN_PORT|TOKEN|TENANT_ID|PG_URL|PRODUCTS)=' "$tmp/sys.out")"
export TOKEN PRODUCTS
url="http://127.0.0.1:$GATEWAY_PORT"
IFS=, read -r -a ids <<<"$PRODUCTS"
pgvars=(-D "tid=$TENANT_ID")
for i in "${!ids[@]}"; do pgvars+=(-D "p$((i + 1))=${ids[$i]}"); done
# pgbench runs as the postgres user (PostgreSQL runs as it; the harness
# made the cluster) from a directory it may read.
cp tools/bench/orders/create_order.sql "$tmp/create_order.sql"
chmod 644 "$tmp/create_order.sql"
pg_run() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pgb() { # secs -> pgbench output
  (cd "$tmp" && pg_run "$pgbench" -n -M prepared -c "$conns" -j 2 -T "$1" \
    -f "$tmp/create_order.sql" "${pgvars[@]}" "$PG_URL")
}
wrk_orders() { # secs [--latency] -> wrk output
  local s="$1"; shift
  wrk -t2 -c"$conns" -d"${s}s" "$@" -s tools/bench/orders/create_order.lua "$url"
}

# Warm-up: both paths once (connections, caches, plans).
wrk_orders 2 >/dev/null
pgb 2 >/dev/null

echo "== order creation, $conns concurrent, ${secs}s per side, $rounds rounds"
printf "%-6s %12s %12s %8s %10s %10s %10s\n" round pgbench_tps system_rps ratio \
  sys_p50_ms sys_p99_ms pgb_lat_ms
sum_p=0; sum_s=0
for r in $(seq "$rounds"); do
  pgb "$secs" >"$tmp/p.txt" 2>&1
  wrk_orders "$secs" --latency >"$tmp/w.txt"
  p="$(awk '/^tps = / {print $3; exit}' "$tmp/p.txt")"
  s="$(awk '/Requests\/sec/ {print $2}' "$tmp/w.txt")"
  p50="$(awk '$1 == "50%" {print $2}' "$tmp/w.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$tmp/w.txt")"
  plat="$(awk '/^latency average/ {print $4}' "$tmp/p.txt")"
  bad="$(grep -E '^status ' "$tmp/w.txt" | grep -v '^status 201' || true)"
  [[ -z "$bad" ]] || { echo "non-201 answers in round $r:"; echo "$bad"; }
  grep -q 'number of failed transactions: 0' "$tmp/p.txt" ||
    { echo "pgbench reported failures:"; cat "$tmp/p.txt"; }
  sum_p="$(echo "$sum_p + $p" | bc -l)"; sum_s="$(echo "$sum_s + $s" | bc -l)"
  printf "%-6s %12.0f %12.0f %8.2f %10s %10s %10s\n" "$r" "$p" "$s" \
    "$(echo "$s / $p" | bc -l)" "$p50" "$p99" "$plat"
done
printf "%-6s %12.0f %12.0f %8.2f\n" all "$sum_p" "$sum_s" "$(echo "$sum_s / $sum_p" | bc -l)"
echo "(wrk latencies carry units; pgbench's is its average per transaction)"
curl -s "http://127.0.0.1:$ORDERS_ADMIN_PORT/metrics" | grep -E '^orders_created_total|^outbox_published_total|^outbox_pending' || true
