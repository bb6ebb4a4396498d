/*
 * tenantcur.h - the tenant's currency, asked from the tenants service
 * and remembered per tenant for a while.
 *
 * An order is priced in its tenant's ISO 4217 currency at creation
 * (HTTP-API.md). The currency belongs to the tenants service, so it is
 * asked for over RPC (tenants.v1.Tenants/GetTenant with the caller's own
 * access token: a member may read their tenant) and kept in a small
 * in-process table for ttl_ms, so creating orders does not cost a second
 * RPC each. A tenant's currency change reaches new orders within ttl_ms,
 * or at once where the service hears tenants.changed (tenantcur_forget).
 *
 * Thread-safe.
 */
#ifndef ORDERS_TENANTCUR_H
#define ORDERS_TENANTCUR_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"

#define TENANTCUR_SLOTS 1024 /* tenants remembered (hashed, one per slot) */
#define TENANTCUR_METHOD "tenants.v1.Tenants/GetTenant"

typedef struct tenantcur tenantcur;

/* client (borrowed; NULL: every lookup misses and fails) is the tenants
 * service. ttl_ms > 0; deadline_ms bounds each RPC. Errors: ERR_INVAL,
 * ERR_NOMEM. */
int tenantcur_new(rpc_client *client, int64_t ttl_ms, uint32_t deadline_ms,
                  tenantcur **out) WARN_UNUSED;
void tenantcur_free(tenantcur *t); /* NULL-safe */

/* The currency of tenant tid into out ("EUR"): remembered, or asked for
 * with token (the caller's; never logged) within time_left_ms (capped at
 * the deadline given to tenantcur_new). Errors: ERR_UNAVAILABLE (the
 * tenants service could not answer), ERR_NOTFOUND (it answered that the
 * tenant is not there or not the caller's), ERR_PROTO (an answer that
 * makes no sense), ERR_INVAL. */
int tenantcur_get(tenantcur *t, const char *tid, const char *token,
                  int64_t time_left_ms, char out[4]) WARN_UNUSED;

/* Remembers cur for tid now (tests, and answers seen elsewhere). */
void tenantcur_put(tenantcur *t, const char *tid, const char *cur);

/* Forgets tid (its currency may have changed). */
void tenantcur_forget(tenantcur *t, const char *tid);

#endif
