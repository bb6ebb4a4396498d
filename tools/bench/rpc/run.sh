#!/usr/bin/env bash
# Builds and runs the RPC benchmark: libs/rpc against raw nng req/rep
# (bench_rpc, built by Bazel) and, when gRPC C++ is installed, against
# gRPC C++ unary calls (grpc/build.sh, built with g++), one after the
# other in the same run, then prints one table with the ratios.
#
#   tools/bench/rpc/run.sh [--rounds 3] [--secs 3] [--seq 5000] [--payload 64]
#
# BAZEL_OUTPUT_BASE selects a Bazel output base; NO_GRPC=1 skips gRPC.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bazel_cmd=(bazel)
if [[ -n "${BAZEL_OUTPUT_BASE:-}" ]]; then
  bazel_cmd+=(--output_base="$BAZEL_OUTPUT_BASE")
fi
if ! "${bazel_cmd[@]}" build --symlink_prefix=/ //tools/bench/rpc:bench_rpc >/dev/null 2>&1; then
  "${bazel_cmd[@]}" build --symlink_prefix=/ //tools/bench/rpc:bench_rpc
  exit 1
fi
bin="$("${bazel_cmd[@]}" info bazel-bin 2>/dev/null)/tools/bench/rpc/bench_rpc"

grpc_bin=""
if [[ -z "${NO_GRPC:-}" ]] && command -v grpc_cpp_plugin >/dev/null &&
  pkg-config --exists grpc++ protobuf; then
  if grpc_bin="$(tools/bench/rpc/grpc/build.sh 2>/dev/null | tail -1)"; then :; else
    echo "gRPC reference did not build; skipping it" >&2
    grpc_bin=""
  fi
else
  echo "gRPC C++ not installed (libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc); skipping it" >&2
fi

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== libs/rpc vs raw nng"
out="$("$bin" "$@")"
echo "$out"
if [[ -n "$grpc_bin" ]]; then
  echo "== gRPC C++ $(pkg-config --modversion grpc++)"
  gout="$("$grpc_bin" "$@")"
  echo "$gout"
  res="$(grep '^RESULT' <<<"$out") $(grep '^RESULT' <<<"$gout")"
  awk -v r="$res" 'BEGIN {
    n = split(r, kv, " ");
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    printf "\n%-24s %9s %9s %9s %9s %9s %9s %9s %9s\n", "", "raw nng", "rpc", "rpc-nb",
      "gRPC C++", "rpc/raw", "nb/raw", "rpc/gRPC", "nb/gRPC";
    printf "%-24s %9.1f %9.1f %9.1f %9.1f %9.3f %9.3f %9.3f %9.3f\n", "sequential p50 (us)",
      v["raw_p50_us"], v["rpc_p50_us"], v["nb_p50_us"], v["grpc_p50_us"],
      v["rpc_p50_us"] / v["raw_p50_us"], v["nb_p50_us"] / v["raw_p50_us"],
      v["rpc_p50_us"] / v["grpc_p50_us"], v["nb_p50_us"] / v["grpc_p50_us"];
    printf "%-24s %9.1f %9.1f %9.1f %9.1f %9.3f %9.3f %9.3f %9.3f\n", "sequential p99 (us)",
      v["raw_p99_us"], v["rpc_p99_us"], v["nb_p99_us"], v["grpc_p99_us"],
      v["rpc_p99_us"] / v["raw_p99_us"], v["nb_p99_us"] / v["raw_p99_us"],
      v["rpc_p99_us"] / v["grpc_p99_us"], v["nb_p99_us"] / v["grpc_p99_us"];
    printf "%-24s %9.0f %9.0f %9.0f %9.0f %9.3f %9.3f %9.3f %9.3f\n", "throughput (calls/s)",
      v["raw_rps"], v["rpc_rps"], v["nb_rps"], v["grpc_rps"],
      v["rpc_rps"] / v["raw_rps"], v["nb_rps"] / v["raw_rps"],
      v["rpc_rps"] / v["grpc_rps"], v["nb_rps"] / v["grpc_rps"];
  }'
fi
