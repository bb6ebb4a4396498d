#!/usr/bin/env bash
# same_file_test.sh GENERATED CHECKED_IN - fails, showing the difference,
# when the checked-in file is not the generated one.
set -euo pipefail
if ! diff -u "$2" "$1"; then
  echo "$2 is stale: run tools/protoaccess/update-doc.sh" >&2
  exit 1
fi
