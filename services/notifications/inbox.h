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
 * Which channels carry them is the tenant's choice (store_settings.h),
 * limited by what this service is configured to send.
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
#include "services/notifications/settings_cache.h"
#include "services/notifications/store_settings.h"

#define INBOX_RECIPIENTS_MAX 1000 /* per event */

/* The notifications of one event, with the memory their strings use. */
typedef struct inbox_batch {
  store_inbox_new *v;
  size_t n;
  bool in_app;         /* v[] go to the inbox; false: they only carry the
                          texts of the e-mails and SMS */
  const char **emails; /* emails[i]: v[i]'s recipient's address, or NULL */
  const char **phones; /* phones[i]: v[i]'s recipient's phone, or NULL */
  char **owned;        /* every buffer the items point into */
  size_t nowned;
} inbox_batch;

void inbox_batch_free(inbox_batch *b); /* NULL-safe; empties b */

/* The channels ev's notifications use: for OrderStatusChanged the
 * tenant's order settings, for StockLow its staff settings
 * (store_settings.h, through settings, the per-replica cache; NULL: one
 * read), e-mail only when email_on (SMTP_URL set), SMS only when sms_on
 * (SMS_URL set); every channel off for other types (nothing read).
 * Errors: the store's. */
int inbox_channels(store *st, settings_cache *settings,
                   const Rpc__V1__Event *ev, bool email_on, bool sms_on,
                   store_channels *out) WARN_UNUSED;

/* The notifications ev makes on channels ch (none for other types, an
 * order without a customer, or every channel off): one item per
 * recipient, with the address when ch->email and the phone when ch->sms
 * (from auth: the customer, or the owners and admins for StockLow).
 * Errors: ERR_UNAVAILABLE (auth unreachable: retry the event later),
 * ERR_PROTO (the payload does not decode: nothing to notify),
 * ERR_NOMEM. */
int inbox_for_event(const Rpc__V1__Event *ev, rpc_client *auth,
                    const store_channels *ch, inbox_batch *out) WARN_UNUSED;

/* One e-mail per item of b with an address and one SMS per item with a
 * phone; *out is malloc'd (NULL when none; the caller frees), its strings
 * point into b. */
int inbox_messages(const inbox_batch *b, store_message **out,
                   size_t *n) WARN_UNUSED;

/* One notification of user uid (e-mail address email and phone, each
 * NULL or "" for none) into b: id minted, payload packed. data is a JSON
 * object's text. */
int inbox_batch_add(inbox_batch *b, const char *uid, const char *email,
                    const char *phone, const char *type, const char *title,
                    const char *body, const char *data) WARN_UNUSED;

#endif
