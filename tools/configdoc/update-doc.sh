#!/usr/bin/env bash
# Regenerates docs/CONFIG.md from the services' configuration tables
# (each binary's --print-config). Keep the list in step with BUILD.
set -euo pipefail
cd "$(dirname "$0")/../.."
services=(auth tenants orders gateway)
targets=()
for s in "${services[@]}"; do targets+=("//services/$s:$s"); done
bazel build "${targets[@]}" >/dev/null 2>&1 || bazel build "${targets[@]}"
bin="$(bazel info bazel-bin 2>/dev/null)"
bins=()
for s in "${services[@]}"; do bins+=("$bin/services/$s/$s"); done
tools/configdoc/configdoc.sh tools/configdoc/config_header.md "${bins[@]}" >docs/CONFIG.md.new
mv -f docs/CONFIG.md.new docs/CONFIG.md
chmod 644 docs/CONFIG.md
echo "docs/CONFIG.md updated"
