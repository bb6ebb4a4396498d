# tools/bench/common.sh - what every benchmark script starts with; sourced
# (`. tools/bench/common.sh`) from the repository's root, never run.
#
# One copy of: building the binaries a run needs (quietly, or with the
# errors when the build fails), finding wrk and pgbench, the run's
# temporary directory and its clean-up, the banner line every result
# starts with (cores, load, time: on a shared machine a number means
# nothing without the load beside it), and starting a fixture process that
# prints READY and the variables of the system it started, and stops
# everything when its stdin closes.
#
# Environment: BAZEL_OUTPUT_BASE selects a Bazel output base.

bench_bazel=(bazel)
[[ -n "${BAZEL_OUTPUT_BASE:-}" ]] && bench_bazel+=(--output_base="$BAZEL_OUTPUT_BASE")

# Builds the targets and sets $bin to bazel-bin; on failure shows the
# build's errors and exits.
bench_build() { # target...
  if ! "${bench_bazel[@]}" build --symlink_prefix=/ "$@" >/dev/null 2>&1; then
    "${bench_bazel[@]}" build --symlink_prefix=/ "$@"
    exit 1
  fi
  bin="$("${bench_bazel[@]}" info bazel-bin 2>/dev/null)"
}

# wrk, installed with apt-get when missing and running as root.
bench_need_wrk() {
  command -v wrk >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || { echo "wrk missing: apt-get install wrk" >&2; exit 1; }
  apt-get install -y wrk >/dev/null
}

# The newest PostgreSQL's pgbench.
bench_pgbench() {
  echo "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pgbench"
}

# $tmp (removed at exit) and $pids (killed and waited for at exit; a
# fixture holding fd 9 sees its stdin close first). A script with a
# clean-up of its own sets its own trap after this.
bench_tmp() {
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  exec 9>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}

# The first line of every result.
bench_banner() {
  echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
}

# Starts a fixture (a binary that starts a system, prints READY and
# NAME=value lines on stdout, and stops everything when its stdin closes):
# stdin from a fifo held open on fd 9, stdout $tmp/sys.out, stderr
# $tmp/sys.err; waits up to three minutes for READY (less when the fixture
# exits first; else shows the end of stderr and exits), then evals the
# lines whose names match the regular expression vars. The fixture's pid is appended to $pids and left in
# $fixture_pid; `exec 9>&-` stops it.
bench_fixture_start() { # vars binary [NAME=value...]
  local vars="$1" binary="$2"
  shift 2
  rm -f "$tmp/hold"
  mkfifo "$tmp/hold"
  env "$@" "$binary" <"$tmp/hold" >"$tmp/sys.out" 2>"$tmp/sys.err" &
  fixture_pid=$!
  pids+=("$fixture_pid")
  exec 9>"$tmp/hold"
  for _ in $(seq 1800); do
    grep -q READY "$tmp/sys.out" 2>/dev/null && break
    kill -0 "$fixture_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q READY "$tmp/sys.out" || { tail -50 "$tmp/sys.err" >&2; exit 1; }
  eval "$(grep -E "^($vars)=" "$tmp/sys.out")"
}

# Stops the fixture bench_fixture_start started and waits for it.
bench_fixture_stop() {
  exec 9>&- 2>/dev/null || true
  [[ -n "${fixture_pid:-}" ]] && wait "$fixture_pid" 2>/dev/null || true
  fixture_pid=""
}

# A TCP port free on 127.0.0.1 right now.
bench_free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# Waits up to 10 s for url to answer 2xx; false otherwise.
bench_wait_ok() { # url
  for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  return 1
}
