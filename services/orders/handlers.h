/*
 * handlers.h - the orders service's RPC handlers ("orders.v1.Orders/...",
 * proto/orders/v1/orders.proto), in a library so tests link them.
 *
 * Every handler: unpack the request, verify the caller's access token
 * (libs/authn; the tenant is the token's tid, and an envelope tenant_id
 * must match it), check the role, validate the request (validate.h),
 * call the store (one transaction), then - only after the commit - kick
 * the outbox relay and invalidate the menu cache when the menu or its
 * stock changed, and answer. See README.md for each method.
 */
#ifndef ORDERS_HANDLERS_H
#define ORDERS_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/outbox/outbox.h"
#include "libs/rpc/rpc.h"
#include "services/orders/menucache.h"
#include "services/orders/store.h"
#include "services/orders/tenantcur.h"

#define ORDERS_METHOD(m) "orders.v1.Orders/" m

typedef struct orders_config {
  store *st;           /* required */
  authn *verifier;     /* required */
  menucache *menu;     /* required (may wrap no Redis) */
  tenantcur *currency; /* required */
  outbox *events;      /* kicked after commits; NULL: not kicked */
  int64_t idem_ttl_ms; /* Idempotency-Key lifetime; 0 -> 24 h */
  size_t max_products; /* non-deleted products per tenant; 0 -> 1000 */
} orders_config;

typedef struct orders orders;

/* Errors: ERR_INVAL (a required member missing), ERR_NOMEM. */
int orders_new(const orders_config *cfg, orders **out) WARN_UNUSED;
void orders_free(orders *o); /* NULL-safe; after the server stopped */

/* Registers every "orders.v1.Orders/..." method on srv. */
int orders_register(orders *o, rpc_server *srv) WARN_UNUSED;

#endif
