#!/usr/bin/env bash
# Replicas benchmark of docs/PERFORMANCE.md ("Replicas"): throughput with
# 1, 2 and 3 replicas of orders behind one gateway, and where the CPU goes.
#
# For each replica count the whole system is brought up afresh
# (tools/bench/gateway/bench_system with BENCH_ORDERS_REPLICAS=N: real
# PostgreSQL, Redis, auth, tenants, N orders processes, one gateway
# dialling every orders replica), then two workloads run through the
# gateway with wrk:
#   create  POST /v1/orders, two random products of 20 (the orders
#           benchmark's script, tools/bench/orders/create_order.lua)
#   read    GET /v1/products/{id}, a random product of the 20
# While each runs, every process's CPU time is read from /proc/<pid>/stat
# (utime + stime) before and after: "cores" = CPU seconds / wall seconds,
# per process (orders summed over its replicas, PostgreSQL over the
# postmaster and all its backends, wrk itself too). On a 2-core machine
# the sum is at most 2: the row shows which process the machine's cores
# went to, and whether adding replicas could help.
#
#   tools/bench/replicas/run.sh [SECS=10] [CONNS=16] [COUNTS="1 2 3"] [ROUNDS=1]
#
# The machine may be shared: compare rows of one run only (the load
# average is printed per row). Needs wrk, bc. BAZEL_OUTPUT_BASE selects a
# Bazel output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
secs="${1:-10}"
conns="${2:-16}"
counts="${3:-1 2 3}"
rounds="${4:-1}"
. tools/bench/common.sh
bench_need_wrk
bench_build //tools/bench/gateway:bench_system //services/gateway //services/auth \
  //services/tenants //services/orders
hz="$(getconf CLK_TCK)"
bench_tmp

# Every descendant of pid (PostgreSQL's backends).
descendants() { # pid
  local kids k
  kids="$(ps -o pid= --ppid "$1" 2>/dev/null || true)"
  for k in $kids; do echo "$k"; descendants "$k"; done
}

# CPU ticks (utime + stime) of the pids given; gone ones count 0.
ticks() { # pid...
  local p t=0 v
  for p in "$@"; do
    v="$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
    t=$((t + v))
  done
  echo "$t"
}

# The process groups of the running system: "name pid pid ..." lines.
groups() {
  local entry name pid
  declare -A g=()
  for entry in $PIDS; do
    name="${entry%%:*}"; pid="${entry#*:}"
    name="${name%%-*}" # orders-1 -> orders
    g[$name]="${g[$name]:-} $pid"
  done
  g[postgres]="$PG_PID $(descendants "$PG_PID" | tr '\n' ' ')"
  for name in gateway orders postgres auth tenants redis; do
    echo "$name ${g[$name]:-}"
  done
}

start_system() { # replicas
  bench_fixture_start 'GATEWAY_PORT|TOKEN|PRODUCTS|PIDS|PG_PID' \
    "$bin/tools/bench/gateway/bench_system" BENCH_ORDERS_REPLICAS="$1" \
    BENCH_PRODUCTS=20 BENCH_STOCK=1000000 BAZEL_BIN="$bin"
  export TOKEN PRODUCTS
}

cat >"$tmp/read.lua" <<'EOF'
-- GET /v1/products/{id} of a random product of PRODUCTS, as the owner.
local products = {}
for id in string.gmatch(os.getenv("PRODUCTS") or "", "[^,]+") do
  products[#products + 1] = id
end
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
local statuses = {}
local threads = {}
function setup(thread)
  thread:set("statuses", {})
  table.insert(threads, thread)
end
function init(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end
function request()
  return wrk.format("GET", "/v1/products/" .. products[math.random(#products)])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d: %d\n", k, v)) end
end
EOF

script_of() { # workload
  if [[ "$1" == create ]]; then echo tools/bench/orders/create_order.lua; else echo "$tmp/read.lua"; fi
}

# One measured wrk run with per-process CPU; prints a row.
measure() { # replicas workload
  local n="$1" w="$2" url="http://127.0.0.1:$GATEWAY_PORT" ok
  ok=$([[ "$w" == create ]] && echo 201 || echo 200)
  wrk -t2 -c"$conns" -d2s -s "$(script_of "$w")" "$url" >/dev/null # warm-up
  mapfile -t rows < <(groups)
  local -a before=()
  local i
  for i in "${!rows[@]}"; do
    # shellcheck disable=SC2086
    before[i]="$(ticks ${rows[i]#* })"
  done
  local t0 load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  t0="$(date +%s.%N)"
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$(script_of "$w")" "$url" >"$tmp/w.txt" &
  local wrk_pid=$! wrk_ticks=0
  while kill -0 "$wrk_pid" 2>/dev/null; do
    wrk_ticks="$(ticks "$wrk_pid")"
    sleep 0.2
  done
  wait "$wrk_pid"
  local wall
  wall="$(echo "$(date +%s.%N) - $t0" | bc -l)"
  local rps p99 bad cpu=""
  rps="$(awk '/Requests\/sec/ {print $2}' "$tmp/w.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$tmp/w.txt")"
  bad="$(grep -E '^status ' "$tmp/w.txt" | grep -v "^status $ok" || true)"
  for i in "${!rows[@]}"; do
    # shellcheck disable=SC2086
    local now d
    now="$(ticks ${rows[i]#* })"
    d=$((now - before[i]))
    cpu+="$(printf ' %5.2f' "$(echo "$d / $hz / $wall" | bc -l)")"
  done
  cpu+="$(printf ' %5.2f' "$(echo "$wrk_ticks / $hz / $wall" | bc -l)")"
  printf "%-3s %-7s %9.0f %9s %5s%s\n" "$n" "$w" "$rps" "$p99" "$load" "$cpu"
  [[ -z "$bad" ]] || { echo "    other answers:"; echo "$bad" | sed 's/^/    /'; }
}

bench_banner
echo "== orders replicas ${counts}, $conns connections, ${secs}s per workload, $rounds round(s)"
echo "   cores used per process (CPU s / wall s): gateway, orders (all replicas),"
echo "   postgres (all backends), auth, tenants, redis, wrk"
printf "%-3s %-7s %9s %9s %5s %5s %5s %5s %5s %5s %5s %5s\n" N work rps p99 load \
  gw ord pg auth ten redis wrk
for _ in $(seq "$rounds"); do
  for n in $counts; do
    start_system "$n"
    measure "$n" create
    measure "$n" read
    bench_fixture_stop
  done
done
echo "(p99 as wrk prints it, with its unit; the CPU columns sum to at most $(nproc))"
