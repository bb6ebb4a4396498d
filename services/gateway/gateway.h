/*
 * gateway.h - the whole gateway process as one object: configuration in,
 * HTTP server + admin port + backends out. main.c only adds signals.
 *
 * gateway_new builds, from a loaded configuration (gateway_config_entries):
 * the RPC clients of the backends (AUTH_ADDR, TENANTS_ADDR, ORDERS_ADDR),
 * the Redis cache (REDIS_URL; rate limits, token revocation and tenant
 * status), the token verifier (libs/authn, keys fetched from auth), the
 * tenant directory (libs/tenantdir), the rate limiter, the route table
 * (routes.c), CORS, the pipeline and the HTTP server, and the admin
 * server (/healthz, /readyz with every backend as a check, /metrics).
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/obs/config.h"
#include "services/gateway/route.h"

/* The gateway's environment variables (static table; README.md lists
 * them). */
const cfg_entry *gateway_config_entries(size_t *n);

typedef struct gateway gateway;

/* Builds everything from c (borrowed; must outlive the gateway) with the
 * given route rows (NULL: routes_public()). Nothing listens yet. Errors:
 * ERR_INVAL (a bad setting or route row, logged), ERR_NOMEM,
 * ERR_INTERNAL. *out is the caller's (gateway_free). */
int gateway_new(const cfg *c, const route *rows, size_t nrows,
                gateway **out) WARN_UNUSED;

/* Starts the admin and HTTP servers. Errors: ERR_UNAVAILABLE (a port
 * could not be bound), ERR_INVAL. */
int gateway_start(gateway *g) WARN_UNUSED;

/* SIGTERM: readiness goes 503, the HTTP server stops accepting and
 * in-flight requests get up to grace_ms. ERR_OK or ERR_TIMEOUT. */
int gateway_drain(gateway *g, int64_t grace_ms) WARN_UNUSED;

/* Stops everything and frees g. NULL-safe. */
void gateway_free(gateway *g);

#endif
