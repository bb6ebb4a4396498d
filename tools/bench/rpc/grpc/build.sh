#!/usr/bin/env bash
# Builds the optional gRPC C++ reference benchmark outside Bazel (the
# project's Bazel is offline and has no gRPC rules). Needs Debian's
# libgrpc++-dev, libprotobuf-dev and protobuf-compiler-grpc.
# Output: tools/bench/out/grpc_bench (gitignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../out"
gen="$out/grpc_gen"
mkdir -p "$gen"
protoc -I"$here" --cpp_out="$gen" --grpc_out="$gen" \
  --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" "$here/echo.proto"
# shellcheck disable=SC2046
g++ -std=c++17 -O2 -I"$gen" -o "$out/grpc_bench" "$here/grpc_bench.cc" \
  "$gen/echo.pb.cc" "$gen/echo.grpc.pb.cc" \
  $(pkg-config --cflags --libs grpc++ protobuf) -lpthread
echo "$out/grpc_bench"
