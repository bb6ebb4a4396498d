#!/usr/bin/env bash
# Copies the binaries tools/bench/sync/run.sh runs (the services and
# bench_sync, built now) into DIR, laid out like bazel-bin, so that a later
# `BENCH_BIN=DIR tools/bench/sync/run.sh` runs this build while the tree
# moves on: before and after can then alternate on a shared machine.
#
#   tools/bench/sync/save-bin.sh DIR
set -euo pipefail
cd "$(dirname "$0")/../../.."
dir="${1:?usage: save-bin.sh DIR}"
targets=(//tools/bench/sync:bench_sync //services/auth:auth
  //services/tenants:tenants //services/orders:orders //services/sync:sync
  //services/gateway:gateway)
bazel build "${targets[@]}" >/dev/null 2>&1 || bazel build "${targets[@]}"
bin="$(bazel info bazel-bin 2>/dev/null)"
for rel in tools/bench/sync/bench_sync services/auth/auth \
  services/tenants/tenants services/orders/orders services/sync/sync \
  services/gateway/gateway; do
  mkdir -p "$dir/$(dirname "$rel")"
  cp -f "$bin/$rel" "$dir/$rel"
done
chmod -R a+rX "$dir"
