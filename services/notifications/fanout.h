/*
 * fanout.h - the orders service's events into deliveries.
 *
 * A libs/bus subscriber on orders' publishers (ORDERS_EVENTS) for every
 * topic family orders publishes ("orders.", "kitchen.", "tables.": its
 * sequence then has no gaps of our own making), with backfill through
 * orders.v1.Events/Replay when the bus lost events, and a position kept
 * in PostgreSQL (store_fanout records it in the transaction that makes
 * the deliveries): after a restart the tracker catches up from there, so
 * nothing published while the service was down is missed. On the very
 * first start (no position) it starts from the live stream rather than
 * sending the whole history to endpoints created today.
 *
 * Events arrive in runs (bus_subscriber_new_batch: a Replay page at
 * once, a live event alone), and a run is stored in one transaction
 * (store_fanout_batch).
 * Each event becomes one pending delivery per active endpoint of its
 * tenant subscribed to its type (idempotent: an event seen twice makes no
 * second delivery), and the new deliveries are queued (queue.h); and the
 * in-app notifications it makes (inbox.h), in the same transaction, each
 * with its outbox event for realtime (the relay is kicked after), and
 * one e-mail delivery per notification whose recipient has an address
 * and one SMS per recipient with a phone (queued with the webhooks) - each
 * channel as the tenant's settings and the configuration allow
 * (inbox_channels). When
 * PostgreSQL refuses, the event is refused and the tracker delivers it
 * again after a backoff, holding the later ones.
 */
#ifndef NOTIFICATIONS_FANOUT_H
#define NOTIFICATIONS_FANOUT_H

#include <stdbool.h>

#include "libs/base/err.h"
#include "libs/outbox/outbox.h"
#include "libs/rpc/rpc.h"
#include "services/notifications/queue.h"
#include "services/notifications/settings_cache.h"
#include "services/notifications/store.h"

#define FANOUT_SOURCE "orders"

typedef struct fanout_config {
  const char *address; /* ORDERS_EVENTS: publisher endpoints */
  rpc_client *replay;  /* orders' RPC (Replay), borrowed */
  store *store;        /* borrowed */
  queue *queue;        /* borrowed */
  rpc_client *auth;    /* borrowed: recipients (ListRecipients) */
  outbox *events;      /* borrowed: kicked after notifications were added */
  settings_cache *settings; /* borrowed; NULL: settings read per event */
  bool email;               /* e-mail can be sent (SMTP_URL set) */
  bool sms;                 /* SMS can be sent (SMS_URL set) */
} fanout_config;

typedef struct fanout fanout;

/* Reads the position, subscribes and starts receiving. Errors: libs/bus's,
 * the store's, ERR_NOMEM. *out: fanout_free before what it borrows. */
int fanout_start(const fanout_config *c, fanout **out) WARN_UNUSED;
void fanout_free(fanout *f); /* NULL-safe; waits for an event in progress */

#endif
