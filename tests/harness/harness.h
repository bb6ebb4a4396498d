/*
 * harness.h - the integration-test harness: real processes, real PostgreSQL
 * and Redis, always cleaned up.
 *
 * Every integration test under tests/ uses this instead of hand-rolled
 * fork/exec. A test starts the infrastructure it needs (harness_pg_start,
 * harness_redis_start: fresh servers on free loopback ports in a private
 * temporary directory), starts the processes under test (harness_spawn:
 * stdout/stderr captured to a log file), waits for readiness, and stops
 * everything. Children get PR_SET_PDEATHSIG so they die with the test even
 * if it crashes; harness_cleanup() (registered with atexit by harness_init)
 * kills whatever is still running and removes the temporary directory
 * unless HARNESS_KEEP=1. When a test fails, harness_dump_logs() prints the
 * tail of every captured log so the failure is explained in CI output.
 *
 * Binaries built by Bazel are found with
 * harness_bin_path("tests/rpc/rpc_testd"), which looks under $BAZEL_BIN (set by
 * tools/dev test; default "bazel-bin").
 *
 * PostgreSQL refuses to run as root: when the harness runs as root it runs
 * initdb and postgres as the unprivileged "postgres" user, in a directory
 * that user owns.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct harness_proc harness_proc;

/* Creates the run's temporary directory and registers cleanup. Idempotent.
 * Returns the directory (owned by the harness). Aborts on failure: a test
 * that cannot set up cannot run. */
const char *harness_init(void);

/* The path of a Bazel-built binary given its workspace-relative target path
 * ("tests/rpc/rpc_testd"): $BAZEL_BIN/<rel>. Returns one of 8 static
 * buffers used in turn: a result stays valid for the next 7 calls (from
 * any thread); copy it to keep it longer. */
const char *harness_bin_path(const char *rel);

/* A free TCP port on 127.0.0.1 (bound and released; another process may
 * still take it first), never one this process was given before, so two
 * parts of one system cannot be handed the same number. -1 when none. */
int harness_free_port(void);

/* Starts argv[0] (a path) with argv, the current environment plus env
 * (NULL-terminated "K=V" strings, may be NULL). stdout and stderr go to
 * <tmpdir>/<name>.log. Returns NULL if the process could not be started. */
harness_proc *harness_spawn(const char *name, char *const argv[],
                            char *const env[]);

pid_t harness_pid(const harness_proc *p);
const char *harness_log_path(const harness_proc *p);

/* The process's resident memory (VmRSS), KiB; -1 when unreadable. */
long harness_rss_kb(const harness_proc *p);

/* True while the process has not exited. */
bool harness_alive(harness_proc *p);

/* Sends sig. */
void harness_signal(harness_proc *p, int sig);

/* Waits up to timeout_ms for exit; returns the exit status as from
 * waitpid (use WIFEXITED etc.), or -1 on timeout. */
int harness_wait_exit(harness_proc *p, int timeout_ms);

/* SIGTERM, wait up to timeout_ms, then SIGKILL; frees p. NULL-safe. */
void harness_stop(harness_proc *p, int timeout_ms);

/* Runs argv to completion (harness_spawn, then waits up to timeout_ms;
 * stopped when it takes longer). Returns its exit code, or -1 when it
 * could not start, timed out or died of a signal. */
int harness_run(const char *name, char *const argv[], char *const env[],
                int timeout_ms);

/* `npm ci` in dir (relative to the runfiles root, e.g. tests/realtime/
 * client) unless dir/node_modules/<probe>/package.json exists already:
 * the Node clients of the integration tests install their locked
 * packages once (node_modules is ignored by git). True when installed. */
bool harness_npm_ci(const char *dir, const char *probe);

/* "<prefix>-<8 hex digits>" into out[cap]: random bits of a UUIDv7, so
 * unique within a run (slugs, labels, keys that must not collide). */
void harness_unique(char *out, size_t cap, const char *prefix);

/* Polls until a TCP connect to 127.0.0.1:port succeeds (true) or
 * timeout_ms passes (false). */
bool harness_wait_port(int port, int timeout_ms);

/* Polls GET url until it answers 200 (true) or timeout_ms passes (false). */
bool harness_wait_http_ok(const char *url, int timeout_ms);

/* Prints the last lines of every captured log to stderr. */
void harness_dump_logs(void);

/* A throwaway PostgreSQL. url is a libpq connection string (keyword form)
 * for database "test" as a superuser. */
typedef struct harness_pg {
  int port;
  char dir[512];
  char url[512];
  harness_proc *proc;
} harness_pg;

/* Starts one (initdb + postgres, fsync off, listening on 127.0.0.1 and a
 * Unix socket in dir). Returns 0 on success. */
int harness_pg_start(harness_pg *pg);
void harness_pg_stop(harness_pg *pg);

/* Stops pg if it runs and starts it again on the same port and data
 * directory (data kept): for reconnect tests. Returns 0 on success. */
int harness_pg_restart(harness_pg *pg);

/* Runs sql on pg as the superuser (so row-level security does not hide
 * rows), with arg as its one parameter $1 (text; may be NULL when sql has
 * none), on a connection of its own, and returns the first column of the
 * first row as an integer: what a test reads straight from the database
 * ("SELECT count(*) ... WHERE id = $1::uuid"). Returns -1 on any error,
 * printed to stderr. */
long long harness_pg_count(const harness_pg *pg, const char *sql,
                           const char *arg);

/* A throwaway Redis without persistence. url is "redis://127.0.0.1:PORT". */
typedef struct harness_redis {
  int port;
  char url[128];
  harness_proc *proc;
} harness_redis;

int harness_redis_start(harness_redis *r);
void harness_redis_stop(harness_redis *r);

/* Stops r if it runs and starts a fresh, empty Redis on the same port. */
int harness_redis_restart(harness_redis *r);

/* Kills everything started and removes the temporary directory (unless
 * HARNESS_KEEP=1). Registered with atexit by harness_init. */
void harness_cleanup(void);

#endif
