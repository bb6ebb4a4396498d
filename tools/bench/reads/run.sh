#!/usr/bin/env bash
# The reads benchmark of docs/PERFORMANCE.md ("Reads"), one run:
#
# A customer's authenticated menu read - wrk GETs /v1/products?limit=100
# (the tenant has 100 products: one page, all of them) through the
# gateway (token check, tenant, rate limit, transcoding) to the orders
# service (token check again, the menu from cache) - against pgbench
# selecting the same 100 rows with the same SQL (menu.sql, the store's
# query, -M prepared) on the same PostgreSQL at the same concurrency;
# and the same customer's GET /v1/tenant. Alternating rounds in one run.
# Targets: menu read >= 0.5x pgbench, p99 <= 20 ms.
#
#   tools/bench/reads/run.sh [SECS=10] [CONNS=64] [ROUNDS=3]
#
# MENU_PATH overrides the menu request (default /v1/products?limit=100;
# builds from before pagination answer /v1/products with every product).
# SERVICES_BIN runs the services from another directory laid out like
# bazel-bin (services/<name>/<name>), e.g. binaries of an older commit,
# with this tree's fixture. Needs wrk and pgbench (Debian's wrk and
# postgresql packages). BAZEL_OUTPUT_BASE selects a Bazel output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs="${1:-10}"
conns="${2:-64}"
rounds="${3:-3}"
menu_path="${MENU_PATH:-/v1/products?limit=100}"
. tools/bench/common.sh
bench_need_wrk
pgbench="$(bench_pgbench)"
bench_build //tools/bench/gateway:bench_system //services/gateway //services/auth \
  //services/tenants //services/orders
svc_bin="${SERVICES_BIN:-$bin}"
bench_tmp
bench_banner
echo "== services from $svc_bin; menu request $menu_path"
bench_fixture_start 'GATEWAY_PORT|ADMIN_PORT|ORDERS_ADMIN_PORT|TOKEN|TENANT_ID|PG_URL' \
  "$bin/tools/bench/gateway/bench_system" BENCH_PRODUCTS=100 BENCH_STOCK=1000 \
  BAZEL_BIN="$svc_bin"
url="http://127.0.0.1:$GATEWAY_PORT"

# A customer of the tenant: registered and logged in through the gateway.
slug="$(curl -sf -H "Authorization: Bearer $TOKEN" "$url/v1/tenant" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["slug"])')"
cred='{"email":"diner@example.com","password":"diner password"}'
curl -sf -X POST -H "X-Tenant: $slug" -H 'Content-Type: application/json' \
  -d '{"email":"diner@example.com","password":"diner password","name":"Diner"}' \
  "$url/v1/auth/register" >/dev/null
CUSTOMER="$(curl -sf -X POST -H "X-Tenant: $slug" -H 'Content-Type: application/json' \
  -d "$cred" "$url/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
n="$(curl -sf -H "Authorization: Bearer $CUSTOMER" "$url$menu_path" |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)["products"]))')"
[[ "$n" == 100 ]] || { echo "the menu read answers $n products, want 100" >&2; exit 1; }

cp tools/bench/reads/menu.sql "$tmp/menu.sql"
chmod 644 "$tmp/menu.sql"
pg_run() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pgb() { # secs -> pgbench output
  (cd "$tmp" && pg_run "$pgbench" -n -M prepared -c "$conns" -j 2 -T "$1" \
    -f "$tmp/menu.sql" -D "tid=$TENANT_ID" "$PG_URL")
}
rows="$(cd "$tmp" && pg_run psql -At "$PG_URL" -c \
  "SELECT count(*) FROM orders.products WHERE tenant_id = '$TENANT_ID' AND deleted_at IS NULL AND active")"
[[ "$rows" == 100 ]] || { echo "pgbench would select $rows rows, want 100" >&2; exit 1; }
wrk_read() { # path secs [--latency] -> wrk output
  local p="$1" s="$2"; shift 2
  TOKEN="$CUSTOMER" READ_PATH="$p" wrk -t2 -c"$conns" -d"${s}s" "$@" \
    -s tools/bench/reads/read.lua "$url"
}
check_200() { # file round
  local bad
  bad="$(grep -E '^status ' "$1" | grep -v '^status 200' || true)"
  [[ -z "$bad" ]] || { echo "non-200 answers in round $2:"; echo "$bad"; }
  grep -q '^status 200' "$1" || { echo "no 200 answers in round $2"; cat "$1"; }
}

# Warm-up: every path once (connections, caches, plans).
wrk_read "$menu_path" 2 >/dev/null
wrk_read /v1/tenant 2 >/dev/null
pgb 2 >/dev/null

echo "== $conns concurrent, ${secs}s per side, $rounds rounds"
printf "%-6s %10s %10s %7s %8s %8s %10s %8s %8s %6s\n" round pgbench menu ratio \
  menu_p50 menu_p99 tenant tnt_p50 tnt_p99 load1
sum_p=0; sum_m=0; sum_t=0
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" >"$tmp/m0.txt"
for r in $(seq "$rounds"); do
  load1="$(cut -d' ' -f1 /proc/loadavg)"
  pgb "$secs" >"$tmp/p.txt" 2>&1
  wrk_read "$menu_path" "$secs" --latency >"$tmp/w.txt"
  wrk_read /v1/tenant "$secs" --latency >"$tmp/t.txt"
  p="$(awk '/^tps = / {print $3; exit}' "$tmp/p.txt")"
  m="$(awk '/Requests\/sec/ {print $2}' "$tmp/w.txt")"
  t="$(awk '/Requests\/sec/ {print $2}' "$tmp/t.txt")"
  check_200 "$tmp/w.txt" "$r (menu)"
  check_200 "$tmp/t.txt" "$r (tenant)"
  grep -q 'number of failed transactions: 0' "$tmp/p.txt" ||
    { echo "pgbench reported failures:"; cat "$tmp/p.txt"; }
  sum_p="$(echo "$sum_p + $p" | bc -l)"; sum_m="$(echo "$sum_m + $m" | bc -l)"
  sum_t="$(echo "$sum_t + $t" | bc -l)"
  printf "%-6s %10.0f %10.0f %7.2f %8s %8s %10.0f %8s %8s %6s\n" "$r" "$p" "$m" \
    "$(echo "$m / $p" | bc -l)" \
    "$(awk '$1 == "50%" {print $2}' "$tmp/w.txt")" "$(awk '$1 == "99%" {print $2}' "$tmp/w.txt")" \
    "$t" "$(awk '$1 == "50%" {print $2}' "$tmp/t.txt")" "$(awk '$1 == "99%" {print $2}' "$tmp/t.txt")" \
    "$load1"
done
printf "%-6s %10.0f %10.0f %7.2f %8s %8s %10.0f\n" all "$sum_p" "$sum_m" \
  "$(echo "$sum_m / $sum_p" | bc -l)" "" "" "$sum_t"
echo "(pgbench: transactions/s of one SELECT of the 100 rows; menu, tenant: requests/s; wrk latencies carry units)"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" >"$tmp/m1.txt"
python3 - "$tmp/m0.txt" "$tmp/m1.txt" <<'PY'
import re, sys
def load(p):
    d = {}
    for line in open(p):
        m = re.match(r'^(\w+)(\{[^}]*\})? ([0-9.eE+-]+)$', line.strip())
        if m: d[(m.group(1), m.group(2) or '')] = float(m.group(3))
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
def delta(name, labels): return b.get((name, labels), 0.0) - a.get((name, labels), 0.0)
for route in ['GET /v1/products', 'GET /v1/tenant']:
    lab = f'{{route="{route}",status="200"}}'
    total = delta('gateway_http_request_duration_seconds_sum', lab)
    n = delta('gateway_http_request_duration_seconds_count', lab)
    if n > 0:
        print(f"gateway {route}: {int(n)} answers, mean {1e3*total/n:.3f} ms arrival to answer")
stages = ['verify', 'tenant', 'ratelimit', 'transcode', 'rpc']
tot = sum(delta('gateway_http_request_duration_seconds_sum', f'{{route="{r}",status="200"}}') for r in ['GET /v1/products', 'GET /v1/tenant'])
if tot > 0:
    print("gateway stages over both routes (share of arrival-to-answer time, mean):")
    for st in stages:
        s = delta('gateway_stage_duration_seconds_sum', f'{{stage="{st}"}}')
        c = delta('gateway_stage_duration_seconds_count', f'{{stage="{st}"}}')
        print(f"  {st:10s} {100*s/tot:5.1f}%   mean {1e6*s/max(c,1):8.1f} us")
PY
curl -s "http://127.0.0.1:$ORDERS_ADMIN_PORT/metrics" | grep -E '^orders_menu_cache_total' || true
