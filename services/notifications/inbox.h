/*
 * inbox.h - which in-app notifications a bus event makes, and what they
 * say (HTTP-API.md: "the ordering customer gets one on every status change
 * of their order; owners and admins on StockLow").
 *
 *   OrderStatusChanged  the order's customer_id, when it has one:
 *                       type "order.status_changed",
 *                       data {order_id, status}
 *   StockLow            every owner and admin of the tenant (from auth):
 *                       type "stock.low", data {product_id, stock}
 *
 * Each notification gets its id (UUIDv7) here and its realtime event
 * payload (a packed notifications.v1.Notification) made once, so the row
 * and the event say the same thing.
 */
#ifndef NOTIFICATIONS_INBOX_H
#define NOTIFICATIONS_INBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "proto/rpc/v1/rpc.pb-c.h"
#include "services/notifications/store_inbox.h"

#define INBOX_RECIPIENTS_MAX 1000 /* per event */

/* The notifications of one event, with the memory their strings use. */
typedef struct inbox_batch {
  store_inbox_new *v;
  size_t n;
  const char **emails; /* emails[i]: v[i]'s recipient's address, or NULL */
  char **owned;        /* every buffer the items point into */
  size_t nowned;
} inbox_batch;

void inbox_batch_free(inbox_batch *b); /* NULL-safe; empties b */

/* The notifications ev makes (none for other types, or an order without
 * a customer). auth lists the owners and admins for StockLow (with their
 * e-mail addresses) and, when with_email, gives the customer's. Errors:
 * ERR_UNAVAILABLE (auth unreachable: retry the event later), ERR_PROTO
 * (the payload does not decode: nothing to notify), ERR_NOMEM. */
int inbox_for_event(const Rpc__V1__Event *ev, rpc_client *auth, bool with_email,
                    inbox_batch *out) WARN_UNUSED;

/* One notification of user uid (e-mail address email, or NULL) into b:
 * id minted, payload packed. data is a JSON object's text. */
int inbox_batch_add(inbox_batch *b, const char *uid, const char *email,
                    const char *type, const char *title, const char *body,
                    const char *data) WARN_UNUSED;

#endif
