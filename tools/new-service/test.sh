#!/usr/bin/env bash
# test.sh - proves that tools/new-service/new-service makes a service that
# builds, passes its tests and its manifests' checks, in a throwaway copy
# of the tree (the working tree is never touched).
#
#   tools/new-service/test.sh [--keep]
#
# Design. Bazel cannot run inside a Bazel test, so this is a script (run by
# hand or by CI after the generator or the template changes; see
# services/TEMPLATE.md): it copies the repository without .git, .run and
# bazel-* into a temporary directory, checks that the generator refuses bad
# and existing names there without writing anything, generates the service
# "zzdemo", checks that its C files are formatted, then in the copy runs
# `bazel build //...`, `bazel test //...` (every unit test, the access
# doc test included), the generated integration test the way tools/dev
# runs integration tests, and
# deploy/k8s/check.py (with kubectl renders when kubectl is installed).
# The copy has its own Bazel output base, so the first build is a full one:
# expect several minutes on two cores. Everything is removed at the end,
# output base included, unless --keep.
#
# Environment: JOBS (default 2) for bazel --jobs.
# Exit status: 0 all passed; 1 a step failed (its log is printed).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1
JOBS="${JOBS:-2}"
NAME=zzdemo
T0=$(date +%s)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/new-service-test.XXXXXX")"
REPO="$TMP/repo"
OUTPUT_BASE=""
cleanup() {
  if [[ -n "$OUTPUT_BASE" ]]; then
    (cd "$REPO" && bazel shutdown >/dev/null 2>&1) || true
  fi
  if [[ "$KEEP" == 1 ]]; then
    echo "test.sh: kept $TMP"
    return
  fi
  [[ -n "$OUTPUT_BASE" && -d "$OUTPUT_BASE" ]] && rm -rf "$OUTPUT_BASE"
  rm -rf "$TMP"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s (%ds)\033[0m\n' "$*" $(($(date +%s) - T0)); }
fail() { printf '\033[31mtest.sh: FAIL: %s\033[0m\n' "$*" >&2; exit 1; }
run_logged() { # name, command...
  local log="$TMP/$1.log"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -60 "$log"
    fail "$* (log: $log)"
  fi
}

step "copy the tree to $REPO"
mkdir -p "$REPO"
tar -C "$SRC" --exclude=./.git --exclude=./.run --exclude='./bazel-*' -cf - . |
  tar -C "$REPO" -xf -
GEN="$REPO/tools/new-service/new-service"

step "refused names write nothing"
before="$(cd "$REPO" && find . -type f | sort | md5sum)"
for bad in Zzdemo 1zz zz-demo zz_demo "" int store auth orders gateway \
  abcdefghijklmnopqrstu; do
  rc=0
  "$GEN" --no-bazel "$bad" >"$TMP/refuse.log" 2>&1 || rc=$?
  [[ "$rc" == 2 ]] || { cat "$TMP/refuse.log"; fail "name '$bad' was not refused (exit $rc)"; }
done
after="$(cd "$REPO" && find . -type f | sort | md5sum)"
[[ "$before" == "$after" ]] || fail "a refused name changed the tree"

step "generate $NAME"
run_logged generate "$GEN" "$NAME"
cat "$TMP/generate.log"
rc=0
"$GEN" --no-bazel "$NAME" >"$TMP/twice.log" 2>&1 || rc=$?
[[ "$rc" == 2 ]] || fail "generating $NAME twice was not refused (exit $rc)"

cd "$REPO"
step "the generated C files are formatted"
for f in $(find "services/$NAME" "tests/$NAME" -name '*.[ch]'); do
  clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1 ||
    fail "$f is not formatted as .clang-format says"
done

OUTPUT_BASE="$(bazel info output_base 2>/dev/null)"

step "bazel build //..."
run_logged build bazel build --jobs="$JOBS" //...

step "bazel test //..."
run_logged unit bazel test --jobs="$JOBS" //...
grep -E "^//(services|tools/protoaccess|deploy)" "$TMP/unit.log" | grep -E "$NAME|rpc_access|check_test" || true

step "integration test tests/$NAME/${NAME}_itest"
run_logged itest-build bazel build --jobs="$JOBS" "//tests/$NAME:${NAME}_itest"
BAZEL_BIN="$(bazel info bazel-bin 2>/dev/null)"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | tail -1)"
run_logged itest env BAZEL_BIN="$BAZEL_BIN" PG_BIN="$PG_BIN" \
  "$BAZEL_BIN/tests/$NAME/${NAME}_itest"
grep -E "^[0-9]+%: Checks" "$TMP/itest.log" || true

step "deploy/k8s/check.py"
run_logged k8s python3 deploy/k8s/check.py
tail -1 "$TMP/k8s.log"

step "PASS: generated, built, unit + integration tests, manifests"
echo "test.sh: $(($(date +%s) - T0)) s in all"
