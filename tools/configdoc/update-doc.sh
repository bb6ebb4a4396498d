#!/usr/bin/env bash
# Regenerates docs/CONFIG.md from the services' configuration tables
# (each binary's --print-config), for the binaries listed in SERVICES in
# tools/configdoc/BUILD, in that order.
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t targets < <(sed -n '/^SERVICES = \[/,/^\]/p' tools/configdoc/BUILD |
  grep -o '"//services/[a-z_]*:[a-z_]*"' | tr -d '"')
[[ ${#targets[@]} -gt 0 ]] || { echo "no SERVICES in tools/configdoc/BUILD" >&2; exit 1; }
bazel build "${targets[@]}" >/dev/null 2>&1 || bazel build "${targets[@]}"
bin="$(bazel info bazel-bin 2>/dev/null)"
bins=()
for t in "${targets[@]}"; do
  t="${t#//}"
  bins+=("$bin/${t/://}")
done
tools/configdoc/configdoc.sh tools/configdoc/config_header.md "${bins[@]}" >docs/CONFIG.md.new
mv -f docs/CONFIG.md.new docs/CONFIG.md
chmod 644 docs/CONFIG.md
echo "docs/CONFIG.md updated"
