/*
 * events.c - DeviceOnline / DeviceOffline into the outbox (see events.h).
 */
#include "services/sync/events.h"

#include <stdio.h>
#include <stdlib.h>

#include "libs/outbox/outbox.h"
#include "proto/sync/v1/sync.pb-c.h"

int events_device_status(db_conn *c, void *arg, const char *tid,
                         const store_device *d, bool online) {
  (void)arg;
  Sync__V1__Device dev = SYNC__V1__DEVICE__INIT;
  dev.id = (char *)d->id;
  dev.name = (char *)d->name;
  dev.platform = (char *)d->platform;
  dev.status = online ? "online" : "offline";
  dev.last_seen_at = (char *)d->last_seen_at;
  dev.app_version = (char *)d->app_version;
  dev.created_at = (char *)d->created_at;
  Sync__V1__DeviceStatusChanged ev = SYNC__V1__DEVICE_STATUS_CHANGED__INIT;
  ev.device = &dev;
  size_t len = sync__v1__device_status_changed__get_packed_size(&ev);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) return ERR_NOMEM;
  sync__v1__device_status_changed__pack(&ev, buf);
  char topic[OUTBOX_TOPIC_MAX + 1];
  snprintf(topic, sizeof topic, "devices.%s", tid);
  outbox_event oe = {.topic = topic,
                     .type = online ? "DeviceOnline" : "DeviceOffline",
                     .tenant_id = tid,
                     .payload = buf,
                     .len = len};
  int rc = outbox_append(c, STORE_SCHEMA, &oe);
  free(buf);
  return rc;
}
