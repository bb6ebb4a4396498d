#!/usr/bin/env bash
# no_test_hooks.sh - fails when a service binary contains a test hook.
#
# Test hooks (settings named *_TEST_*, e.g. TENANTS_TEST_CRASH_AFTER_OWNER,
# ORDERS_TEST_RELAY_DELAY) are compiled only into the *_testhooks binaries
# (local_defines TEST_HOOKS); a shipped binary that still holds the name of
# one could be switched into test behaviour by its environment. The names
# of settings are string constants of the binary's configuration table, so
# their absence from the binary's strings proves the setting is unknown
# and the code behind it absent.
#
# Usage: no_test_hooks.sh BINARY...
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 BINARY..." >&2; exit 2; }
rc=0
for bin in "$@"; do
  [[ -s "$bin" ]] || { echo "$bin: missing or empty" >&2; rc=1; continue; }
  # grep -a: the binary as text; the pattern is a setting name, not code.
  if hits="$(grep -aoE '[A-Z]+_TEST_[A-Z_]+' "$bin" | sort -u)" && [[ -n "$hits" ]]; then
    echo "$bin contains test hooks:" >&2
    echo "$hits" >&2
    rc=1
  else
    echo "$bin: no test hooks"
  fi
done
exit $rc
