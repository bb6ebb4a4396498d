/*
 * service.h - start one of our services (services/<name>/<name>) as a
 * child process with the standard environment, and wait until it is ready.
 *
 * Every service reads the same settings (README.md, "Adding a service"):
 * where PostgreSQL and Redis are, where to listen for RPC, bus, admin and
 * HTTP, where its migrations are and how much to log. A test names only
 * what is particular to one process (its peers' addresses, limits, test
 * hooks) as "K=V" extras; the rest comes from here:
 *
 *   DATABASE_URL    opts->pg->url (unset when opts->pg is NULL)
 *   REDIS_URL       opts->redis->url (unset when opts->redis is NULL)
 *   RPC_LISTEN      tcp://127.0.0.1:<rpc_port>
 *   BUS_LISTEN      tcp://127.0.0.1:<bus_port>
 *   ADMIN_ADDR/PORT 127.0.0.1, <admin_port>
 *   HTTP_ADDR/PORT  127.0.0.1, <http_port> (read by the gateway only)
 *   RPC_WORKERS     opts->rpc_workers (unset when 0: the service default)
 *   DB_POOL_SIZE    opts->db_pool_size (unset when 0: the service default)
 *   MIGRATIONS_DIR  <cwd>/<directory of bin>/migrations
 *   LOG_LEVEL       opts->log_level ("info" when NULL)
 *   SERVICE_KEY_FILE, SERVICE_TRUST_FILE  the key of the binary's directory and
 *                   the bundle of every service (identity.h)
 *
 * An extra "K=V" whose K is one of these replaces it (a gateway with its
 * own Redis database, a different LOG_LEVEL); an extra "K" without '='
 * removes it (an auth instance that publishes no bus). Each key reaches
 * the process once. The environment may hold secrets (signing keys): the
 * copies made here are wiped before they are freed.
 *
 * Ports are picked free on 127.0.0.1 when a service starts and kept by a
 * restart, so peers and subscribers that dial it find it again. Starting
 * waits for GET /readyz on the admin port to answer 200.
 *
 * Binaries are found with harness_bin_path (under $BAZEL_BIN); tests run
 * from the repository root, which is where MIGRATIONS_DIR is resolved.
 *
 * A suite that runs several services together starts them with
 * system.h, which wires their addresses over this; this file is for one
 * process at a time (a stand-in, a service under a test of its own).
 */
#ifndef TESTS_HARNESS_SERVICE_H
#define TESTS_HARNESS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/harness/harness.h"

/* One service process and its addresses. Zero-initialise before the first
 * start; the ports and URLs stay valid after it stops. */
typedef struct harness_service {
  harness_proc *proc; /* NULL when not started or stopped */
  char bin[256];      /* workspace-relative binary of the last start */
  int rpc_port, admin_port, bus_port, http_port;
  char rpc_url[64]; /* "tcp://127.0.0.1:<rpc_port>" */
  char bus_url[64]; /* "tcp://127.0.0.1:<bus_port>" */
} harness_service;

/* What a test's services share; usually one static const per test. The
 * pointed-to PostgreSQL and Redis are read at each start (so a restarted
 * Redis on the same port is found again). */
typedef struct harness_service_opts {
  const harness_pg *pg;       /* DATABASE_URL; NULL: not set */
  const harness_redis *redis; /* REDIS_URL; NULL: not set */
  const char *log_level;      /* LOG_LEVEL; NULL: "info" */
  int rpc_workers;            /* RPC_WORKERS; 0: not set */
  int db_pool_size;           /* DB_POOL_SIZE; 0: not set */
  int ready_timeout_ms;       /* /readyz wait; 0: 30000 */
} harness_service_opts;

/* Picks fresh ports for s, starts bin ("services/orders/orders") as
 * `name` (its log is <tmpdir>/<name>.log) with the standard environment
 * and extra (NULL-terminated "K=V" or "K" entries, may be NULL), and waits
 * for /readyz. Returns false if the process could not be started or never
 * got ready (s->proc is then still set when it was started: the caller may
 * inspect or stop it; harness_cleanup stops it anyway). */
bool harness_service_start(harness_service *s, const char *name,
                           const char *bin, const harness_service_opts *o,
                           char *const extra[]);

/* Starts s->bin again as `name` on the ports s already has, with this
 * environment (which may differ from the last one: a test hook on or off).
 * Stops the old process first if it still runs (SIGTERM, 15 s, then
 * SIGKILL). Waits for /readyz like harness_service_start. */
bool harness_service_restart(harness_service *s, const char *name,
                             const harness_service_opts *o,
                             char *const extra[]);

/* harness_stop(s->proc, timeout_ms), then s->proc = NULL. NULL-safe and
 * safe on a stopped service. */
void harness_service_stop(harness_service *s, int timeout_ms);

/* Polls GET /readyz on the admin port until 200 (true) or timeout_ms. */
bool harness_service_ready(const harness_service *s, int timeout_ms);

/* "http://127.0.0.1:<admin_port><path>" / "...:<http_port><path>" into
 * out[cap]; returns out. */
const char *harness_service_admin_url(const harness_service *s,
                                      const char *path, char *out, size_t cap);
const char *harness_service_http_url(const harness_service *s, const char *path,
                                     char *out, size_t cap);

/* The auth service (services/auth/auth) with a fresh Ed25519 signing key
 * (AUTH_SIGNING_KEYS) and the cheapest password hashing Argon2id allows
 * (so tests do not wait on hashing), plus extra. Same contract as
 * harness_service_start. */
bool harness_service_start_auth(harness_service *s, const char *name,
                                const harness_service_opts *o,
                                char *const extra[]);

/* The environment harness_service_start gives s (its ports as they are
 * now): a NULL-terminated array of malloc'd "K=V" strings, each key once,
 * standard keys first in the order above, then the extras in theirs.
 * Returns NULL if out of memory. Free with harness_service_env_free. */
char **harness_service_env(const harness_service *s, const char *bin,
                           const harness_service_opts *o, char *const extra[]);

/* Wipes and frees an array from harness_service_env. NULL-safe. */
void harness_service_env_free(char **env);

#endif
