/*
 * system.h - a whole system for an integration suite: PostgreSQL, Redis
 * and the services the suite names, as processes, wired to each other,
 * ready, and stopped again.
 *
 * What the fixture owns. It starts a fresh PostgreSQL and Redis
 * (harness.h), then the named services in dependency order - auth,
 * tenants, orders, notifications, sync, realtime, the gateway(s) - each
 * with harness_service_start (service.h: ports, DATABASE_URL, REDIS_URL,
 * the identity key and trust files). It wires every service to the peers
 * it reads that run in this system, and only to those: the RPC address
 * (AUTH_ADDR, TENANTS_ADDR, ORDERS_ADDR, NOTIFICATIONS_ADDR, SYNC_ADDR)
 * and the bus endpoint (AUTH_EVENTS, TENANTS_EVENTS, ORDERS_EVENTS,
 * NOTIFICATIONS_EVENTS, SYNC_EVENTS), the way production is wired (the
 * table in system.c). Realtime has no database and listens for
 * WebSockets on 127.0.0.1 (WS_ADDR, WS_PORT). It waits for each
 * service's /readyz, for realtime's WebSocket port and for each
 * gateway's /healthz. When a start fails it prints which part failed,
 * dumps the captured logs and stops what it started, in reverse; so does
 * harness_system_end after a failed run.
 *
 * What a suite still decides, and says in its options: which services
 * run; each service's own settings as "K=V" entries - short sweeps and
 * retry bases, small quotas, tight limits, the operator secret, base
 * domains, a test-hooks binary - which come after the wiring and so may
 * replace or (as "K" alone) remove any of it; RPC workers and log level;
 * how many gateways run, each with its own name, Redis database and
 * settings over the ones they share; realtime's port when another
 * setting must name it. Everything particular to one suite stays in that
 * suite, visible; nothing is defaulted here but the wiring.
 *
 * Tests reach the parts through the struct (s->orders.rpc_url,
 * s->gateway[1].http_port, s->pg for harness_pg_count); they may stop,
 * restart (harness_system_restart keeps ports and wiring) or add a
 * gateway of their own (harness_system_start_gateway).
 */
#ifndef TESTS_HARNESS_SYSTEM_H
#define TESTS_HARNESS_SYSTEM_H

#include <stdbool.h>

#include "tests/harness/harness.h"
#include "tests/harness/service.h"

/* The parts, in start order. */
typedef enum harness_part {
  HARNESS_AUTH,
  HARNESS_TENANTS,
  HARNESS_ORDERS,
  HARNESS_NOTIFICATIONS,
  HARNESS_SYNC,
  HARNESS_REALTIME,
  HARNESS_GATEWAY,
  HARNESS_PARTS
} harness_part;

/* A set of parts: HARNESS_WITH(HARNESS_ORDERS) | ... */
#define HARNESS_WITH(part) (1u << (part))

#define HARNESS_MAX_GATEWAYS 4

/* One gateway of the system, over the settings all gateways share. */
typedef struct harness_gateway_opts {
  const char *name; /* its log name (after the tag); NULL: "gateway" */
  int redis_db;     /* > 0: REDIS_URL=<redis>/<db>, buckets of its own */
  char *const *env; /* its own "K=V" after the shared ones; may be NULL */
} harness_gateway_opts;

/* What a suite runs. The arrays pointed to must live as long as the
 * system (a restart reads them again): static in the suite. */
typedef struct harness_system_opts {
  const char *tag;       /* log names "<tag>-auth"...; NULL: "auth"... */
  unsigned parts;        /* HARNESS_WITH(...); auth always runs */
  int rpc_workers;       /* RPC_WORKERS of all but realtime; 0: default */
  const char *log_level; /* NULL: "info" */
  /* Per part: the binary (NULL: services/<name>/<name>; auth's is always
   * services/auth/auth, with a fresh signing key), and the suite's
   * own settings (NULL-terminated "K=V", or "K" to remove a key). For
   * the gateway, env is what every gateway shares. */
  const char *bin[HARNESS_PARTS];
  char *const *env[HARNESS_PARTS];
  /* The gateways: the leading entries with a name, at least one. */
  harness_gateway_opts gateways[HARNESS_MAX_GATEWAYS];
  int ws_port; /* realtime's WebSocket port; 0: a free one */
} harness_system_opts;

typedef struct harness_system {
  harness_system_opts opts;
  harness_pg pg;
  harness_redis redis;
  harness_service auth, tenants, orders, notifications, sync, realtime;
  harness_service gateway[HARNESS_MAX_GATEWAYS];
  int n_gateways;
  int ws_port;     /* realtime's, once it runs */
  char ws_url[64]; /* "ws://127.0.0.1:<ws_port>" */
  char base[64];   /* "http://127.0.0.1:<gateway[0]'s HTTP port>" */
  harness_service_opts svc, rt; /* with and without the database */
} harness_system;

/* Starts everything o names (copied into s; s is zeroed first). On
 * failure prints which part failed, dumps the logs, stops what started
 * and returns false. */
bool harness_system_start(harness_system *s, const harness_system_opts *o);

/* What harness_system_start does first: s zeroed, o copied, the shared
 * service options set and realtime's port chosen; nothing started. */
void harness_system_init(harness_system *s, const harness_system_opts *o);

/* The environment harness_system_start gives part (the first gateway's
 * for HARNESS_GATEWAY), with its peers' addresses as they are in s now:
 * harness_service_env's list (auth's signing key and cheap hashing
 * aside). Free it with harness_service_env_free; NULL when it does not
 * fit. */
char **harness_system_env(harness_system *s, harness_part part);

/* The process of part (the first gateway for HARNESS_GATEWAY). */
harness_service *harness_system_part(harness_system *s, harness_part part);

/* Restarts part on its ports, wired as before, with env as its own
 * settings (NULL: the ones it started with), logging as name (NULL: its
 * start name). Auth cannot be restarted (its signing key would change):
 * returns false. For HARNESS_GATEWAY, the first gateway. */
bool harness_system_restart(harness_system *s, harness_part part,
                            const char *name, char *const env[]);

/* Starts one more gateway into g (zeroed first), wired like the others,
 * with the shared gateway settings and then g_opts's; waits for /healthz.
 * The caller stops it (harness_service_stop). */
bool harness_system_start_gateway(harness_system *s, harness_service *g,
                                  const harness_gateway_opts *g_opts);

/* Stops everything still running, in reverse start order. Safe after a
 * part was stopped by a test, and twice. */
void harness_system_stop(harness_system *s);

/* The end of a suite: dumps the logs when failed != 0, stops everything,
 * and returns the exit status (EXIT_SUCCESS when failed == 0). */
int harness_system_end(harness_system *s, int failed);

#endif
