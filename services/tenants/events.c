/*
 * events.c - the TenantChanged payload (see events.h). Packed once per
 * change, before the transaction, so a retried transaction reuses it.
 */
#include "services/tenants/events.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tenants/v1/tenants.pb-c.h"

int events_changed(const char *change, const char *tenant_id, const char *slug,
                   const char *status, const char *const *hosts, size_t nhosts,
                   store_event *out) {
  memset(out, 0, sizeof *out);
  Tenants__V1__TenantChanged tc = TENANTS__V1__TENANT_CHANGED__INIT;
  tc.tenant_id = (char *)tenant_id;
  tc.slug = (char *)(slug ? slug : "");
  tc.status = (char *)(status ? status : "");
  tc.change = (char *)change;
  tc.n_hosts = nhosts;
  tc.hosts = (char **)hosts;
  size_t len = tenants__v1__tenant_changed__get_packed_size(&tc);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) return ERR_NOMEM;
  tenants__v1__tenant_changed__pack(&tc, buf);
  out->type = EVENTS_TYPE_CHANGED;
  out->payload = buf;
  out->len = len;
  return ERR_OK;
}

void events_clear(store_event *ev) {
  if (ev == NULL) return;
  free((void *)ev->payload);
  ev->payload = NULL;
  ev->len = 0;
}
