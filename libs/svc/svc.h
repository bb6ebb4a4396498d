/*
 * svc.h - the runtime every service's main() hands control to.
 *
 * All services have the same shape: read configuration
 * from the environment, log it with secrets redacted, open the database
 * pool and apply the service's migrations, connect Redis, register RPC
 * handlers, serve /healthz /readyz /metrics on the admin port, answer RPCs
 * until SIGTERM/SIGINT, then drain (readiness goes 503 first so load
 * balancers stop sending, in-flight calls finish within the grace period)
 * and exit 0. svc_main does exactly that, so a service's main.c is a
 * table of its own settings plus an init callback that registers its
 * handlers:
 *
 *   static int orders_init(svc *s, void *arg) {
 *     return orders_register(svc_rpc(s), svc_db(s));
 *   }
 *   int main(int argc, char **argv) {
 *     svc_spec spec = {.name = "orders", .uses_db = true,
 *                      .schema = "orders", .init = orders_init,
 *                      .access = &orders_v1_access,  // orders_rpc.proto
 *                      .argc = argc, .argv = argv};
 *     return svc_main(&spec);
 *   }
 *
 * `<service> --print-config` prints the common and the service's own
 * entries (cfgdoc.h) and exits 0 without reading the environment;
 * docs/CONFIG.md is generated from that output by tools/configdoc and
 * checked against it by //tools/configdoc:config_doc_test.
 *
 * Common configuration (environment; every entry, its default and bounds:
 * docs/CONFIG.md):
 *   LOG_LEVEL          debug|info|warn|error (info)
 *   RPC_LISTEN         nng URL the RPC server binds (tcp://0.0.0.0:7000)
 *   RPC_WORKERS        handler threads (16)
 *   ADMIN_ADDR         admin HTTP bind address (0.0.0.0)
 *   ADMIN_PORT         admin HTTP port (9000)
 *   DATABASE_URL       libpq connection string (secret; when uses_db)
 *   DB_POOL_SIZE       connections (16)
 *   DB_STATEMENT_TIMEOUT_MS  (5000)
 *   MIGRATIONS_DIR     (services/<name>/migrations)
 *   STARTUP_TIMEOUT_MS how long to keep retrying the database at start (30000)
 *   SHUTDOWN_GRACE_MS  drain time after SIGTERM (10000)
 *   SERVICE_KEY_FILE   this service's own Ed25519 key (required)
 *   SERVICE_TRUST_FILE the services' public keys (required)
 *   AUTHN_REVOCATION_FAIL  open|closed when Redis is down (open)
 *   RPC_ATTEMPT_TIMEOUT_MS per-attempt timeout of reads from other
 *                      services (1000; 0: off)
 * plus the spec's own entries.
 *
 * Every call the service answers passes the service-identity guard
 * (identity.h) against spec->access, the table generated from the
 * service's <name>_rpc.proto; a registered method missing from it stops
 * start-up. Clients made with svc_rpc_client_new carry the service's own
 * identity.
 */
#ifndef SVC_SVC_H
#define SVC_SVC_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/cache/cache.h"
#include "libs/db/db.h"
#include "libs/obs/admin.h"
#include "libs/obs/config.h"
#include "libs/rpc/rpc.h"
#include "libs/svc/identity.h"
#include "libs/svcid/access.h"

typedef struct svc svc;

typedef struct svc_spec {
  const char *name;        /* "orders": logs, metrics, defaults */
  const cfg_entry *config; /* the service's own entries (may be NULL) */
  size_t nconfig;
  bool uses_db;       /* open DATABASE_URL, migrate, check ready */
  const char *schema; /* migrations' schema (default: name) */
  /* Who may call which method (proto/<name>/v1:<name>_access). Required:
   * svc_main refuses to start without it. */
  const svcid_access_table *access;
  /* Called once everything above is up and before the RPC server starts:
   * register handlers (svc_rpc), create clients, start background threads.
   * Return ERR_OK, or an error to abort start-up (exit 1). */
  int (*init)(svc *s, void *arg);
  /* Called after the RPC server has drained, before the database closes:
   * stop what init started. May be NULL. */
  void (*fini)(svc *s, void *arg);
  void *arg;
  /* main's arguments (may be 0/NULL): "--print-config" prints the
   * configuration tables (cfgdoc.h) and exits 0; any other argument is a
   * usage error (exit 2). */
  int argc;
  char **argv;
  /* Largest request the RPC server accepts; 0: RPC_DEFAULT_MAX_RECV_BYTES
   * (4 MiB). sync's file uploads need more. */
  size_t max_recv_bytes;
} svc_spec;

/* Runs the service until SIGTERM/SIGINT (or svc_stop). Returns the process
 * exit status: 0 after a clean drain, 1 when start-up failed (the reason
 * is logged), 0 after --print-config, 2 for other arguments. Call from
 * main() before creating any thread. */
int svc_main(const svc_spec *spec);

/* Accessors for init/fini and handlers. All owned by the runtime. */
const cfg *svc_cfg(const svc *s);
db_pool *svc_db(const svc *s); /* NULL unless uses_db */
rpc_server *svc_rpc(const svc *s);
const char *svc_name(const svc *s);

/* Asks the running service to stop as if it got SIGTERM (tests, fatal
 * background errors). Thread-safe. */
void svc_stop(void);

/* ---------------------------------------------- shared pieces for init --- *
 * What several services open the same way. Each is opened from init and
 * owned by the runtime from then on: freed when svc_main returns, after
 * fini and after the admin server whose readiness checks use them. */

/* Redis from the service's REDIS_URL entry (its own description, so it
 * stays in the service's table) with cc's limits and timeouts (cc->url is
 * ignored; cc may be NULL for libs/cache's defaults), plus a "redis"
 * readiness check. Redis is optional: with REDIS_URL unset, unset_warning
 * is logged and *out is NULL. Errors: ERR_INVAL for a malformed URL
 * (logged), admin_add_check's. */
int svc_redis_open(svc *s, const cache_config *cc, const char *unset_warning,
                   cache **out) WARN_UNUSED;

/* The access-token verifier of a service other than auth: *auth a client
 * of AUTH_ADDR (auth's Keys method; the service may call auth through it
 * too) and *verifier a libs/authn verifier requiring iss AUTH_ISSUER, with
 * the revocation and tenant-status lookups in redis (may be NULL); a
 * failed lookup accepts or refuses the token as AUTHN_REVOCATION_FAIL
 * (open|closed, default open; a common entry) says. Both AUTH_ADDR and
 * AUTH_ISSUER must be in the service's table; a service that declares
 * AUTHN_CACHE_ENTRIES (an integer) sizes the verified-token cache with it
 * (otherwise libs/authn's default, 8192 tokens). fini must free whatever
 * feeds or uses the verifier (a bus subscriber) first. Errors: ERR_INVAL
 * for a bad AUTH_ADDR or AUTHN_REVOCATION_FAIL (logged), authn_new's,
 * ERR_INTERNAL (libsodium). */
int svc_verifier_open(svc *s, cache *redis, rpc_client **auth,
                      authn **verifier) WARN_UNUSED;

/* rpc_client_new for address with opts (may be NULL: defaults), every
 * call carrying this service's identity; an attempt_timeout_ms of 0 in
 * opts becomes RPC_ATTEMPT_TIMEOUT_MS. The caller frees the client, in
 * fini at the latest. Errors: rpc_client_new's. */
int svc_rpc_client_new(svc *s, const char *address,
                       const rpc_client_options *opts,
                       rpc_client **out) WARN_UNUSED;

#endif
