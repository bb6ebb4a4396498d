#!/usr/bin/env bash
# Builds and runs the RPC benchmark: libs/rpc against raw nng req/rep,
# each with and without service identity (libs/svcid tokens checked by a
# server guard; mutual TLS on raw nng's tls+tcp://), all in one run
# (bench_rpc, built by Bazel), then, when gRPC C++ is installed, gRPC C++
# unary calls (grpc/build.sh, built with g++), and prints the tables with
# the ratios.
#
#   tools/bench/rpc/run.sh [--rounds 3] [--secs 3] [--seq 5000] [--payload 64]
#
# The TLS certificates (a throwaway CA, a server and a client certificate,
# EC P-256) are made with the openssl CLI in a temporary directory that
# is removed on exit; without openssl the raw-tls variant is skipped.
# BAZEL_OUTPUT_BASE selects a Bazel output base; NO_GRPC=1 skips gRPC.
set -euo pipefail
cd "$(dirname "$0")/../../.."
. tools/bench/common.sh
bench_build //tools/bench/rpc:bench_rpc
bin="$bin/tools/bench/rpc/bench_rpc"

grpc_bin=""
if [[ -z "${NO_GRPC:-}" ]] && command -v grpc_cpp_plugin >/dev/null &&
  pkg-config --exists grpc++ protobuf; then
  if grpc_bin="$(tools/bench/rpc/grpc/build.sh 2>/dev/null | tail -1)"; then :; else
    echo "gRPC reference did not build; skipping it" >&2
    grpc_bin=""
  fi
else
  echo "gRPC C++ not installed (libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc); skipping it" >&2
fi

# make_certs DIR: CA, then server and client certificates it signs, both
# valid for localhost and 127.0.0.1 (the client checks the server's name).
make_certs() {
  local d="$1" n
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$d/ca.key" -out "$d/ca.crt" -subj /CN=bench-ca -days 1 2>/dev/null
  for n in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$d/$n.key" -out "$d/$n.csr" -subj "/CN=bench-$n" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/$n.ext"
    openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
      -CAcreateserial -out "$d/$n.crt" -days 1 -extfile "$d/$n.ext" 2>/dev/null
  done
}

tls_args=()
if command -v openssl >/dev/null; then
  certs="$(mktemp -d)"
  trap 'rm -rf "$certs"' EXIT
  if make_certs "$certs"; then
    tls_args=(--tls-dir "$certs")
  else
    echo "openssl could not make the certificates; skipping mutual TLS" >&2
  fi
else
  echo "openssl CLI not installed; skipping mutual TLS (raw-tls)" >&2
fi

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== libs/rpc vs raw nng, with and without service identity"
out="$("$bin" "${tls_args[@]}" "$@")"
echo "$out"
if [[ -n "$grpc_bin" ]]; then
  echo "== gRPC C++ $(pkg-config --modversion grpc++)"
  gout="$("$grpc_bin" "$@")"
  echo "$gout"
  res="$(grep '^RESULT' <<<"$out") $(grep '^RESULT' <<<"$gout")"
  awk -v r="$res" 'BEGIN {
    n = split(r, kv, " ");
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    printf "\n%-24s %9s %9s %9s %9s %9s %9s %9s %9s\n", "", "raw nng", "rpc", "rpc-nb",
      "gRPC C++", "rpc/raw", "nb/raw", "rpc/gRPC", "nb/gRPC";
    printf "%-24s %9.1f %9.1f %9.1f %9.1f %9.3f %9.3f %9.3f %9.3f\n", "sequential p50 (us)",
      v["raw_p50_us"], v["rpc_p50_us"], v["nb_p50_us"], v["grpc_p50_us"],
      v["rpc_p50_us"] / v["raw_p50_us"], v["nb_p50_us"] / v["raw_p50_us"],
      v["rpc_p50_us"] / v["grpc_p50_us"], v["nb_p50_us"] / v["grpc_p50_us"];
    printf "%-24s %9.1f %9.1f %9.1f %9.1f %9.3f %9.3f %9.3f %9.3f\n", "sequential p99 (us)",
      v["raw_p99_us"], v["rpc_p99_us"], v["nb_p99_us"], v["grpc_p99_us"],
      v["rpc_p99_us"] / v["raw_p99_us"], v["nb_p99_us"] / v["raw_p99_us"],
      v["rpc_p99_us"] / v["grpc_p99_us"], v["nb_p99_us"] / v["grpc_p99_us"];
    printf "%-24s %9.0f %9.0f %9.0f %9.0f %9.3f %9.3f %9.3f %9.3f\n", "throughput (calls/s)",
      v["raw_rps"], v["rpc_rps"], v["nb_rps"], v["grpc_rps"],
      v["rpc_rps"] / v["raw_rps"], v["nb_rps"] / v["raw_rps"],
      v["rpc_rps"] / v["grpc_rps"], v["nb_rps"] / v["grpc_rps"];
  }'
fi
