#!/usr/bin/env bash
# Builds and runs the RPC benchmark (libs/rpc vs raw nng req/rep, and gRPC
# C++ when its optional build succeeds). Arguments go to bench_rpc:
#   tools/bench/rpc/run.sh [--rounds 3] [--secs 3] [--seq 5000] [--payload 64]
# Set BAZEL_OUTPUT_BASE to use a specific Bazel output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bazel_cmd=(bazel)
if [[ -n "${BAZEL_OUTPUT_BASE:-}" ]]; then
  bazel_cmd+=(--output_base="$BAZEL_OUTPUT_BASE")
fi
"${bazel_cmd[@]}" build --symlink_prefix=/ //tools/bench/rpc:bench_rpc >/dev/null 2>&1 ||
  { "${bazel_cmd[@]}" build --symlink_prefix=/ //tools/bench/rpc:bench_rpc; exit 1; }
bin="$("${bazel_cmd[@]}" info bazel-bin 2>/dev/null)/tools/bench/rpc/bench_rpc"
echo "== libs/rpc vs raw nng"
"$bin" "$@"
