#!/usr/bin/env bash
# tools/lint/format.sh [--fix] - every C file git tracks formatted by
# .clang-format (clang-format 14, Debian's). Without --fix: lists the files
# that differ and exits 1 (tools/dev test runs it); with --fix: rewrites
# them in place. Generated code (bazel-*), templates (*.tmpl) and files
# outside git are not looked at.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang-format >/dev/null || { echo "clang-format not installed" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.h')
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i --style=file "${files[@]}"
  echo "formatted ${#files[@]} files"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (tools/lint/format.sh --fix)"
    bad=$((bad + 1))
  fi
done
if [[ $bad -ne 0 ]]; then
  echo "$bad of ${#files[@]} files not formatted" >&2
  exit 1
fi
echo "all ${#files[@]} C files formatted"
