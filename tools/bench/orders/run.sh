#!/usr/bin/env bash
# The orders benchmark of docs/PERFORMANCE.md ("Orders"), one run:
#
# Order creation end to end - wrk POSTs /v1/orders (two random products of
# 20, as the owner) through the gateway (token check, tenant, rate limit,
# transcoding) to the orders service (token check again, one transaction:
# lock and decrement stock, order + lines, two outbox rows, the gateway's
# idempotency key; relay to the bus) - against pgbench on the same
# PostgreSQL at the same concurrency, in alternating rounds, running
#   lean: the minimum an order needs (lean_order.sql: lock and decrement
#         the stock rows, order + lines, one outbox row, commit) - the
#         reference of issue 14's target (>= 0.7x at 16 connections);
#   pipe: the same lean transaction in one pgbench pipeline
#         (\startpipeline ... \endpipeline: BEGIN to COMMIT in one round
#         trip) - the floor: the least work in the fewest waits;
#   own:  the service's transaction before issue 14 as create_order.sql
#         spells it out statement for statement (the first runs' reference).
# p50 and p99 of the system reported.
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
. tools/bench/common.sh
bench_need_wrk
pgbench="$(bench_pgbench)"
bench_build //tools/bench/gateway:bench_system //services/gateway //services/auth \
  //services/tenants //services/orders
bench_tmp
bench_banner
bench_fixture_start 'GATEWAY_PORT|ADMIN_PORT|ORDERS_ADMIN_PORT|TOKEN|TENANT_ID|PG_URL|PRODUCTS' \
  "$bin/tools/bench/gateway/bench_system" BENCH_PRODUCTS=20 BENCH_STOCK=1000000 \
  BAZEL_BIN="$bin"
export TOKEN PRODUCTS
url="http://127.0.0.1:$GATEWAY_PORT"
IFS=, read -r -a ids <<<"$PRODUCTS"
pgvars=(-D "tid=$TENANT_ID")
for i in "${!ids[@]}"; do pgvars+=(-D "p$((i + 1))=${ids[$i]}"); done
# pgbench runs as the postgres user (PostgreSQL runs as it; the harness
# made the cluster) from a directory it may read.
cp tools/bench/orders/create_order.sql tools/bench/orders/lean_order.sql "$tmp/"
sed -e 's/^BEGIN;$/\\startpipeline\nBEGIN;/' -e 's/^COMMIT;$/COMMIT;\n\\endpipeline/' \
  tools/bench/orders/lean_order.sql >"$tmp/lean_pipe.sql"
chmod 644 "$tmp/create_order.sql" "$tmp/lean_order.sql" "$tmp/lean_pipe.sql"
pg_run() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pgb() { # secs script -> pgbench output
  (cd "$tmp" && pg_run "$pgbench" -n -M prepared -c "$conns" -j 2 -T "$1" \
    -f "$tmp/$2" "${pgvars[@]}" "$PG_URL")
}
pgb_check() { # output file: pgbench's tps, complaining of failures
  grep -q 'number of failed transactions: 0' "$1" ||
    { echo "pgbench reported failures:" >&2; cat "$1" >&2; }
  awk '/^tps = / {print $3; exit}' "$1"
}
wrk_orders() { # secs [--latency] -> wrk output
  local s="$1"; shift
  wrk -t2 -c"$conns" -d"${s}s" "$@" -s tools/bench/orders/create_order.lua "$url"
}

# Warm-up: both paths once (connections, caches, plans).
wrk_orders 2 >/dev/null
pgb 2 lean_order.sql >/dev/null
pgb 2 lean_pipe.sql >/dev/null
pgb 2 create_order.sql >/dev/null

echo "== order creation, $conns concurrent, ${secs}s per side, $rounds rounds"
printf "%-5s %8s %8s %8s %8s %8s %8s %8s %9s %9s\n" round lean pipe own system \
  sys/lean sys/pipe sys/own sys_p50 sys_p99
sum_l=0; sum_q=0; sum_p=0; sum_s=0
ratio() { echo "$1 / $2" | bc -l; }
for r in $(seq "$rounds"); do
  pgb "$secs" lean_order.sql >"$tmp/l.txt" 2>&1
  pgb "$secs" lean_pipe.sql >"$tmp/q.txt" 2>&1
  pgb "$secs" create_order.sql >"$tmp/p.txt" 2>&1
  wrk_orders "$secs" --latency >"$tmp/w.txt"
  l="$(pgb_check "$tmp/l.txt")"
  q="$(pgb_check "$tmp/q.txt")"
  p="$(pgb_check "$tmp/p.txt")"
  s="$(awk '/Requests\/sec/ {print $2}' "$tmp/w.txt")"
  p50="$(awk '$1 == "50%" {print $2}' "$tmp/w.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$tmp/w.txt")"
  bad="$(grep -E '^status ' "$tmp/w.txt" | grep -v '^status 201' || true)"
  [[ -z "$bad" ]] || { echo "non-201 answers in round $r:"; echo "$bad"; }
  sum_l="$(echo "$sum_l + $l" | bc -l)"; sum_q="$(echo "$sum_q + $q" | bc -l)"
  sum_p="$(echo "$sum_p + $p" | bc -l)"; sum_s="$(echo "$sum_s + $s" | bc -l)"
  printf "%-5s %8.0f %8.0f %8.0f %8.0f %8.2f %8.2f %8.2f %9s %9s\n" "$r" \
    "$l" "$q" "$p" "$s" "$(ratio "$s" "$l")" "$(ratio "$s" "$q")" \
    "$(ratio "$s" "$p")" "$p50" "$p99"
done
printf "%-5s %8.0f %8.0f %8.0f %8.0f %8.2f %8.2f %8.2f\n" all "$sum_l" "$sum_q" \
  "$sum_p" "$sum_s" "$(ratio "$sum_s" "$sum_l")" "$(ratio "$sum_s" "$sum_q")" \
  "$(ratio "$sum_s" "$sum_p")"
echo "== load $(cut -d' ' -f1-3 /proc/loadavg) at the end"

# Where the CPU goes: ticks per process name over bench_system's tree
# (the services, PostgreSQL, Redis), counting the reaped children of each
# process (pgbench's backends exit with it), sampled around one more run
# of each side; CPU microseconds per order or transaction. CPU per unit
# holds better than throughput on a shared, loaded machine.
tree_cpu() { # root pid -> "name ticks" lines, summed by name
  local pids=("$1") all=() i=0
  while ((i < ${#pids[@]})); do
    all+=("${pids[$i]}")
    pids+=($(cat "/proc/${pids[$i]}/task/"*/children 2>/dev/null || true))
    i=$((i + 1))
  done
  for p in "${all[@]}"; do
    sed -E 's/^[0-9]+ \(([^)]*)\) /\1 /' "/proc/$p/stat" 2>/dev/null || true
  done | awk '{t[$1] += $13 + $14 + $15 + $16} END {for (n in t) print n, t[n]}'
}
cpu_per() { # before after count -> "name us/unit" for the busy names
  local hz; hz="$(getconf CLK_TCK)"
  awk -v n="$3" -v hz="$hz" 'NR == FNR {b[$1] = $2; next}
    {d = $2 - b[$1]; if (d > 0) printf "  %-12s %7.0f us\n", $1, d * 1e6 / hz / n}' "$1" "$2" |
    sort -k2 -n -r
}
root="${pids[0]}"
tree_cpu "$root" >"$tmp/c0"
pgb "$secs" lean_order.sql >"$tmp/l.txt" 2>&1
tree_cpu "$root" >"$tmp/c1"
wrk_orders "$secs" >"$tmp/w.txt"
tree_cpu "$root" >"$tmp/c2"
nl="$(awk '/^number of transactions actually processed/ {print $NF}' "$tmp/l.txt")"
ns="$(awk '/requests in/ {print $1}' "$tmp/w.txt")"
echo "== CPU per lean transaction ($nl in ${secs}s):"
cpu_per "$tmp/c0" "$tmp/c1" "$nl"
echo "== CPU per order through the system ($ns in ${secs}s):"
cpu_per "$tmp/c1" "$tmp/c2" "$ns"
echo "(lean, pipe, own: pgbench transactions/s; system: orders/s; wrk latencies carry units)"
curl -s "http://127.0.0.1:$ORDERS_ADMIN_PORT/metrics" | grep -E '^orders_created_total|^outbox_published_total|^outbox_pending' || true
