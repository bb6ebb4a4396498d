/*
 * admin.h - the admin HTTP server every service runs beside its RPC port.
 *
 *   GET /healthz  200 "ok" while the process runs (liveness).
 *   GET /readyz   runs the registered readiness checks: 200
 *                 {"status":"ok"} when all pass, else 503
 *                 {"status":"unavailable","failing":["postgres"]}
 *                 (plus "timed_out":[...] for checks that did not return in
 *                 time); 503 {"status":"draining","failing":[]} once
 *                 admin_set_draining was called.
 *   GET /metrics  metrics_render() as text/plain; version=0.0.4.
 * Anything else gets nng's 404 (or 405 for other methods on these paths);
 * HEAD works wherever GET does.
 *
 * Readiness checks are the service's functions (ping PostgreSQL, Redis, a
 * peer). They run on a helper thread, one check at a time, never on nng's
 * I/O threads, and concurrent probes share one run. A check MUST bound its
 * own time (connect/statement timeouts shorter than check_timeout_ms): if
 * a run exceeds check_timeout_ms the probes waiting for it get 503 naming
 * the checks that had not returned, and until the stuck check returns
 * later probes get the same answer at once (no second copy is started).
 *
 * Typical use:
 *   admin *a;
 *   admin_options o = {.bind_addr = "0.0.0.0", .port = cfg_int(c, "..")};
 *   if (admin_new(&o, &a) != ERR_OK) ...
 *   if (admin_add_check(a, "postgres", pg_ping, db) != ERR_OK) ...
 *   if (admin_start(a) != ERR_OK) ...
 *   ... on SIGTERM: admin_set_draining(a); drain; admin_free(a);
 */
#ifndef OBS_ADMIN_H
#define OBS_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"

#define ADMIN_MAX_CHECKS 16
#define ADMIN_MAX_CHECK_NAME 64
#define ADMIN_MAX_PENDING 64 /* /readyz probes waiting at once; more: 503 */
#define ADMIN_DEFAULT_CHECK_TIMEOUT_MS 2000

typedef struct admin admin;

/* A readiness check: returns 0 when the dependency is ready, anything else
 * when not. Called on an admin helper thread with the arg given to
 * admin_add_check; must return within the check timeout. */
typedef int (*admin_check_fn)(void *arg);

typedef struct admin_options {
  const char *bind_addr;    /* IPv4/IPv6 literal or host name; NULL:
                               "127.0.0.1" (services pass "0.0.0.0") */
  int port;                 /* 0: an ephemeral port (see admin_port) */
  int64_t check_timeout_ms; /* one readiness run; <= 0: the default */
} admin_options;

/* Creates an admin server (not yet listening). opt may be NULL (all
 * defaults); it is copied. Errors: ERR_INVAL (port outside 0..65535),
 * ERR_NOMEM. *out is NULL on failure. */
int admin_new(const admin_options *opt, admin **out) WARN_UNUSED;

/* Registers a readiness check. name is copied (at most
 * ADMIN_MAX_CHECK_NAME - 1 bytes of [A-Za-z0-9_.-]); fn and arg stay the
 * caller's and must remain valid until admin_free returns. May be called
 * before or after admin_start. Errors: ERR_INVAL (NULL or bad name or
 * fn), ERR_EXISTS (same name twice), ERR_TOOBIG (more than
 * ADMIN_MAX_CHECKS). */
int admin_add_check(admin *a, const char *name, admin_check_fn fn,
                    void *arg) WARN_UNUSED;

/* Starts listening and serving. Errors: ERR_INVAL (bad bind address or
 * already started), ERR_EXISTS (address in use), ERR_NOMEM, ERR_IO. */
int admin_start(admin *a) WARN_UNUSED;

/* The port the server listens on (the ephemeral one when started with
 * port 0), or -1 before a successful admin_start. */
int admin_port(const admin *a);

/* From now on /readyz answers 503 "draining" without running the checks,
 * so load balancers stop sending traffic before the service stops
 * accepting. Idempotent; thread-safe. */
void admin_set_draining(admin *a);

/* Stops the server (open connections are closed), waits for a running
 * readiness check to return, and frees a. NULL is ignored. */
void admin_free(admin *a);

#endif
