/*
 * events.h - the sync service's outgoing events, written into its outbox
 * (libs/outbox) inside the transaction of the change they describe:
 * "DeviceOnline" / "DeviceOffline" (payload sync.v1.DeviceStatusChanged)
 * on topic "devices.<tenant_id>", the channel realtime serves to screens.
 */
#ifndef SYNC_EVENTS_H
#define SYNC_EVENTS_H

#include <stdbool.h>

#include "libs/db/db.h"
#include "services/sync/store.h"

#define EVENTS_SOURCE "sync"

/* A store_status_fn (arg unused): appends the device's status event on c.
 * Errors: outbox_append's, ERR_NOMEM. */
int events_device_status(db_conn *c, void *arg, const char *tid,
                         const store_device *d, bool online) WARN_UNUSED;

#endif
