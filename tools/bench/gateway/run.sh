#!/usr/bin/env bash
# The gateway benchmarks of docs/PERFORMANCE.md ("Gateway"), one run:
#
#  1. GET /healthz on the gateway against nginx answering a fixed 200 on
#     the same machine, in alternating rounds (target: >= 0.8x nginx).
#  2. An authenticated read through the whole system: GET /v1/tenant with
#     an owner's bearer token -> gateway (token verification, tenant,
#     rate limit, transcoding) -> tenants service (RPC, token check again,
#     PostgreSQL) -> back. Requests/s, p50/p99 (wrk --latency), and the
#     share of the gateway's time per stage from its /metrics
#     (gateway_stage_duration_seconds sums over the run).
#
#   tools/bench/gateway/run.sh [SECS=10] [CONNS=64] [ROUNDS=3]
#
# Needs wrk and nginx (apt-get install wrk nginx). BAZEL_OUTPUT_BASE
# selects a Bazel output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs="${1:-10}"
conns="${2:-64}"
rounds="${3:-3}"
. tools/bench/common.sh
bench_need_wrk
bench_build //tools/bench/gateway:bench_system //services/gateway //services/auth \
  //services/tenants //tools/token
bench_tmp
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

bench_banner

# The gateway's service identity (it needs one to start; nothing here
# calls a backend): a key and a trust bundle holding it.
"$bin/tools/token/token" keygen | sed -n 's/^secret_key=//p' >"$tmp/gateway.key"
echo "gateway $(cut -c65-128 "$tmp/gateway.key")" >"$tmp/trust"

# ---------------------------------------------------------------- 1 ----
p_nginx="$(bench_free_port)"; p_gw="$(bench_free_port)"; p_adm="$(bench_free_port)"
$(tools/bench/gateway/nginx_conf.sh "$tmp/nginx" "$p_nginx") & pids+=($!)
HTTP_ADDR=127.0.0.1 HTTP_PORT="$p_gw" ADMIN_ADDR=127.0.0.1 ADMIN_PORT="$p_adm" \
  AUTH_ADDR=tcp://127.0.0.1:9 TENANTS_ADDR=tcp://127.0.0.1:9 \
  REDIS_URL=redis://127.0.0.1:9 LOG_LEVEL=warn \
  SERVICE_KEY_FILE="$tmp/gateway.key" SERVICE_TRUST_FILE="$tmp/trust" \
  "$bin/services/gateway/gateway" >"$tmp/gw-healthz.log" 2>&1 & pids+=($!)
bench_wait_ok "http://127.0.0.1:$p_nginx/healthz"
bench_wait_ok "http://127.0.0.1:$p_gw/healthz"
echo "== 1. GET /healthz, wrk -t2 -c$conns -d${secs}s, $rounds rounds"
printf "%-6s %12s %12s %8s\n" round nginx gateway ratio
sum_n=0; sum_g=0
for r in $(seq "$rounds"); do
  wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$p_nginx/healthz" >"$tmp/n.txt"
  wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$p_gw/healthz" >"$tmp/g.txt"
  n="$(rps "$tmp/n.txt")"; g="$(rps "$tmp/g.txt")"
  sum_n="$(echo "$sum_n + $n" | bc -l)"; sum_g="$(echo "$sum_g + $g" | bc -l)"
  printf "%-6s %12.0f %12.0f %8.2f\n" "$r" "$n" "$g" "$(echo "$g / $n" | bc -l)"
done
printf "%-6s %12.0f %12.0f %8.2f\n" all "$sum_n" "$sum_g" "$(echo "$sum_g / $sum_n" | bc -l)"

# ---------------------------------------------------------------- 2 ----
echo "== 2. authenticated GET /v1/tenant through the system"
bench_fixture_start 'GATEWAY_PORT|ADMIN_PORT|TOKEN' \
  "$bin/tools/bench/gateway/bench_system" BAZEL_BIN="$bin"
url="http://127.0.0.1:$GATEWAY_PORT/v1/tenant"
curl -sf -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
# Warm-up (connections, caches), then the measured run.
wrk -t2 -c"$conns" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" >"$tmp/m0.txt"
wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $TOKEN" "$url" | tee "$tmp/read.txt" |
  grep -E 'Requests/sec|Latency  |50%|90%|99%|Non-2xx|Socket errors'
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
route = '{route="GET /v1/tenant",status="200"}'
total = delta('gateway_http_request_duration_seconds_sum', route)
n = delta('gateway_http_request_duration_seconds_count', route)
if n <= 0:
    print("no successful requests measured"); sys.exit(1)
print(f"gateway: {int(n)} requests, mean {1e3*total/n:.3f} ms arrival to answer")
for st in ['verify', 'tenant', 'ratelimit', 'transcode', 'rpc']:
    s = delta('gateway_stage_duration_seconds_sum', f'{{stage="{st}"}}')
    c = delta('gateway_stage_duration_seconds_count', f'{{stage="{st}"}}')
    print(f"  {st:10s} {100*s/total:5.1f}%   mean {1e6*s/max(c,1):8.1f} us")
other = total - sum(delta('gateway_stage_duration_seconds_sum', f'{{stage="{st}"}}') for st in ['verify','tenant','ratelimit','transcode','rpc'])
print(f"  {'http+queue':10s} {100*other/total:5.1f}%   (parsing, worker hand-off, answer)")
PY
bench_fixture_stop
