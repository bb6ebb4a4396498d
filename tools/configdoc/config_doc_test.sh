#!/usr/bin/env bash
# config_doc_test.sh CHECKED_IN HEADER CONFIGDOC BINARY... - fails, showing
# the difference, when docs/CONFIG.md is not what the binaries' tables
# generate.
set -euo pipefail
doc="$1" header="$2" gen="$3"
shift 3
out="${TEST_TMPDIR:-$(mktemp -d)}/CONFIG.md"
"$gen" "$header" "$@" >"$out"
if ! diff -u "$doc" "$out"; then
  echo "docs/CONFIG.md is stale: run tools/configdoc/update-doc.sh" >&2
  exit 1
fi
echo "docs/CONFIG.md matches the configuration tables of: $(for b in "$@"; do basename "$b"; done | tr '\n' ' ')"
