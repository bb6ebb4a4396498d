#!/usr/bin/env bash
# Regenerates docs/RPC-ACCESS.md from the (rpc.v1.access) declarations.
set -euo pipefail
cd "$(dirname "$0")/../.."
bazel build //tools/protoaccess:rpc_access_md >/dev/null 2>&1
cp -f "$(bazel info bazel-bin 2>/dev/null)/tools/protoaccess/RPC-ACCESS.md" docs/RPC-ACCESS.md
chmod 644 docs/RPC-ACCESS.md
echo "docs/RPC-ACCESS.md updated"
