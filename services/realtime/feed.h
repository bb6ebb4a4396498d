/*
 * feed.h - the orders service's events into publications.
 *
 * A libs/bus subscriber on the orders service's publishers (ORDERS_EVENTS)
 * for the topic families "orders.", "kitchen." and "tables." (every family
 * orders publishes, so its sequence has no gaps of our own making), with
 * backfill through orders.v1.Events/Replay when the bus lost events: a
 * publication is never silently skipped. Each event whose topic is a
 * channel (channel.h) gets its offset and epoch (offsets.h) and becomes a
 * pub frame (pub.h) handed to the WebSocket server. When Redis cannot give
 * the offset, the event is refused and the bus tracker delivers it again
 * after a backoff, holding the later ones: order is kept.
 *
 * A second feed reads the notifications service's bus (NOTIFICATIONS_
 * EVENTS, Replay through notifications.v1.Events/Replay): its
 * "Notification" events are published on "private.user.<user_id>", their
 * topic, the same way; a third reads sync's bus (SYNC_EVENTS, family
 * "devices.", Replay through sync.v1.Events/Replay) for DeviceOnline and
 * DeviceOffline on "devices.<tenant_id>".
 */
#ifndef REALTIME_FEED_H
#define REALTIME_FEED_H

#include "libs/base/err.h"
#include "libs/bus/bus.h"
#include "libs/rpc/rpc.h"
#include "services/realtime/offsets.h"
#include "services/realtime/ws.h"

typedef struct feed_config {
  const char *address; /* ORDERS_EVENTS: publisher endpoints */
  rpc_client *replay;  /* orders' RPC (Replay), borrowed */
  /* The topic families to subscribe to (NULL-terminated, borrowed):
   * every family the source publishes. NULL: orders' ("orders.",
   * "kitchen.", "tables."); notifications' is {"private.user.", NULL},
   * sync's {"devices.", NULL}. */
  const char *const *families;
  offsets *offsets; /* borrowed */
  ws_server *ws;    /* borrowed */
  /* The bus receive thread's name (at most 15 bytes; NULL: "rt-feed"),
   * which also runs this feed's Redis offset scripts: per-thread CPU in
   * top or /proc/<pid>/task/<tid>/comm (tools/bench/realtime). */
  const char *thread_name;
} feed_config;

typedef struct feed feed;

/* Subscribes and starts receiving. Errors: libs/bus's, ERR_NOMEM. *out is
 * the caller's: feed_free before the things it borrows. */
int feed_start(const feed_config *c, feed **out) WARN_UNUSED;
void feed_free(feed *f); /* NULL-safe; waits for a delivery in progress */

#endif
