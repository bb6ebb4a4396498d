#!/usr/bin/env bash
# The HTTP engine comparison of docs/adr/0003-gateway-http-engine.md:
# GET /healthz on nng's HTTP server, on libmicrohttpd and on nginx (fixed
# 200), one after the other in rounds, on the same machine in one run.
#
#   tools/bench/gateway/engines.sh [ROUNDS=5] [SECS=8] [CONNS=64]
#
# Needs wrk and nginx (apt-get install wrk nginx). BAZEL_OUTPUT_BASE
# selects a Bazel output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds="${1:-5}"
secs="${2:-8}"
conns="${3:-64}"
. tools/bench/common.sh
bench_need_wrk
bench_build //tools/bench/gateway:nng_healthz //tools/bench/gateway:mhd_healthz
bin="$bin/tools/bench/gateway"
bench_tmp
p_nginx="$(bench_free_port)"; p_nng="$(bench_free_port)"; p_mhd="$(bench_free_port)"
$(tools/bench/gateway/nginx_conf.sh "$tmp/nginx" "$p_nginx") & pids+=($!)
"$bin/nng_healthz" "$p_nng" & pids+=($!)
"$bin/mhd_healthz" "$p_mhd" 2 & pids+=($!)
for p in "$p_nginx" "$p_nng" "$p_mhd"; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
done
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c$conns -d${secs}s"
printf "%-6s %12s %12s %8s %12s %8s\n" round nginx nng nng/ngx mhd mhd/ngx
rps() { wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$1/healthz" | awk '/Requests\/sec/ {print $2}'; }
for r in $(seq "$rounds"); do
  a="$(rps "$p_nginx")"; b="$(rps "$p_nng")"; c="$(rps "$p_mhd")"
  printf "%-6s %12.0f %12.0f %8.2f %12.0f %8.2f\n" "$r" "$a" "$b" \
    "$(echo "$b / $a" | bc -l)" "$c" "$(echo "$c / $a" | bc -l)"
done
