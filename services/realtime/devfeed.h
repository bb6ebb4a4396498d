/*
 * devfeed.h - the sync service's device events into publications.
 *
 * A libs/bus subscriber on sync's publishers (SYNC_EVENTS) for the topic
 * family "devices." (DeviceOnline, DeviceOffline: every family sync
 * publishes), with backfill through sync.v1.Events/Replay, published on
 * devices.<tenant_id> (staff and above of the tenant, devices included:
 * channel.h) exactly as feed.h publishes orders' events: an offset and
 * epoch per channel from Redis, the frame handed to the WebSocket server,
 * a refused event delivered again in order. The event's data is the
 * device as GET /v1/sync/devices/{id} shows it (libs/evdata).
 *
 * Devices learn of data changes on orders.<tenant_id> and
 * tables.<tenant_id> (which they may subscribe to) and pull on each; no
 * separate hint is sent.
 */
#ifndef REALTIME_DEVFEED_H
#define REALTIME_DEVFEED_H

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "services/realtime/offsets.h"
#include "services/realtime/ws.h"

typedef struct devfeed_config {
  const char *address; /* SYNC_EVENTS: publisher endpoints */
  rpc_client *replay;  /* sync's RPC (Replay), borrowed */
  offsets *offsets;    /* borrowed */
  ws_server *ws;       /* borrowed */
} devfeed_config;

typedef struct devfeed devfeed;

/* Subscribes and starts receiving. Errors: libs/bus's, ERR_NOMEM. *out is
 * the caller's: devfeed_free before the things it borrows. */
int devfeed_start(const devfeed_config *c, devfeed **out) WARN_UNUSED;
void devfeed_free(devfeed *f); /* NULL-safe */

#endif
