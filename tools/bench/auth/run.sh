#!/usr/bin/env bash
# Builds and runs the auth benchmark (bench_auth): token verification with
# libs/authn in-process (cached, uncached, raw paseto_verify reference) and
# logins per second against the auth service, which it starts itself on a
# throwaway PostgreSQL and Redis (tests/harness).
#
#   tools/bench/auth/run.sh [--secs 3] [--tokens 20000] [--clients 4] [--no-logins]
#
# BAZEL_OUTPUT_BASE selects a Bazel output base.
set -euo pipefail
cd "$(dirname "$0")/../../.."
. tools/bench/common.sh
bench_build //tools/bench/auth:bench_auth //services/auth
bin_dir="$bin"
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"
BAZEL_BIN="$bin_dir" PG_BIN="$pg_bin" "$bin_dir/tools/bench/auth/bench_auth" "$@"
