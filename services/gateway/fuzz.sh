#!/usr/bin/env bash
# Builds the gateway's libFuzzer target with clang and runs it for a bounded
# time over the corpus kept in the tree (services/gateway/fuzz_corpus; new
# inputs go to a temporary directory, the tree is not modified). Exits
# non-zero on a finding (crash, leak, UB, failed property), leaving the
# reproducer in the temporary directory it prints.
#
#   services/gateway/fuzz.sh [SECONDS=60]
#
# BAZEL_OUTPUT_BASE selects a Bazel output base (use one that is not used
# with gcc: the compiler change rebuilds everything).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
bazel_cmd=(bazel)
[[ -n "${BAZEL_OUTPUT_BASE:-}" ]] && bazel_cmd+=(--output_base="$BAZEL_OUTPUT_BASE")
if ! CC=clang "${bazel_cmd[@]}" build --symlink_prefix=/ --config=fuzz \
  //services/gateway:gateway_fuzz >/dev/null 2>&1; then
  CC=clang "${bazel_cmd[@]}" build --symlink_prefix=/ --config=fuzz //services/gateway:gateway_fuzz
  exit 1
fi
bin="$(CC=clang "${bazel_cmd[@]}" info --config=fuzz bazel-bin 2>/dev/null)/services/gateway/gateway_fuzz"
work="$(mktemp -d)"
echo "gateway_fuzz: ${secs}s, new inputs and any reproducer in $work"
cd "$work"
"$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work" "$OLDPWD/services/gateway/fuzz_corpus"
