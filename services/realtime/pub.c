/*
 * pub.c - publication frames (see pub.h).
 *
 * The event's data comes from libs/evdata (shared with notifications'
 * webhook bodies); the frame around it is built with jansson, keys in the
 * contract's order.
 */
#include "services/realtime/pub.h"

#include <inttypes.h>

#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/evdata/evdata.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "services/realtime/channel.h"

bool pub_known(const char *type) { return evdata_known(type); }

/* The customer_id of an order event's order ("" when none). */
static bool order_customer(const Rpc__V1__Event *ev, char *out, size_t cap) {
  const Orders__V1__Order *o = NULL;
  Orders__V1__OrderCreated *oc = NULL;
  Orders__V1__OrderStatusChanged *sc = NULL;
  if (strcmp(ev->type, "OrderCreated") == 0) {
    oc = orders__v1__order_created__unpack(NULL, ev->payload.len,
                                           ev->payload.data);
    o = oc != NULL ? oc->order : NULL;
  } else if (strcmp(ev->type, "OrderStatusChanged") == 0) {
    sc = orders__v1__order_status_changed__unpack(NULL, ev->payload.len,
                                                  ev->payload.data);
    o = sc != NULL ? sc->order : NULL;
  }
  char ch[CHANNEL_MAX + 1];
  bool ok = o != NULL && o->customer_id != NULL && cap > CHANNEL_MAX &&
            channel_private_user(o->customer_id, ch);
  if (ok) memcpy(out, ch, sizeof ch);
  if (oc != NULL) orders__v1__order_created__free_unpacked(oc, NULL);
  if (sc != NULL) orders__v1__order_status_changed__free_unpacked(sc, NULL);
  return ok;
}

bool pub_customer_channel(const Rpc__V1__Event *ev, char *out, size_t cap) {
  return ev != NULL && ev->type != NULL && order_customer(ev, out, cap);
}

int pub_data(const Rpc__V1__Event *ev, json_t **out) {
  return evdata_json(ev, out);
}

static json_t *event_object(const Rpc__V1__Event *ev, json_t *data) {
  char when[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339((int64_t)ev->time_unix_ms, when) != ERR_OK)
    when[0] = '\0';
  return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", ev->id, "type", ev->type,
                   "tenant_id", ev->tenant_id, "time", when, "data", data);
}

static int dump(json_t *v, char **out, size_t *len) {
  *out = v == NULL
             ? NULL
             : json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                 JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
  json_decref(v);
  if (*out == NULL) return ERR_NOMEM;
  *len = strlen(*out);
  return ERR_OK;
}

int pub_event(const Rpc__V1__Event *ev, char **out, size_t *len) {
  *out = NULL;
  json_t *data = NULL;
  int rc = pub_data(ev, &data);
  if (rc != ERR_OK) return rc;
  return dump(event_object(ev, data), out, len); /* steals data */
}

int pub_frame_text(const char *channel, int64_t offset, const char *epoch,
                   const char *event, size_t evlen, char **out, size_t *len) {
  *out = NULL;
  char *ch = NULL, *ep = NULL;
  size_t chlen = 0, eplen = 0;
  int rc = dump(json_string(channel), &ch, &chlen);
  if (rc == ERR_OK) rc = dump(json_string(epoch), &ep, &eplen);
  size_t cap = chlen + eplen + evlen + 96;
  char *buf = rc == ERR_OK ? malloc(cap) : NULL;
  int n = buf == NULL
              ? -1
              : snprintf(buf, cap,
                         "{\"op\":\"pub\",\"channel\":%s,\"offset\":%" PRId64
                         ",\"epoch\":%s,\"event\":",
                         ch, offset, ep);
  free(ch);
  free(ep);
  if (n < 0 || (size_t)n + evlen + 2 > cap) {
    free(buf);
    return rc != ERR_OK ? rc : ERR_NOMEM;
  }
  memcpy(buf + n, event, evlen);
  buf[(size_t)n + evlen] = '}';
  buf[(size_t)n + evlen + 1] = '\0';
  *out = buf;
  *len = (size_t)n + evlen + 1;
  return ERR_OK;
}

int pub_frame(const char *channel, int64_t offset, const char *epoch,
              const Rpc__V1__Event *ev, char **out, size_t *len) {
  *out = NULL;
  char *event = NULL;
  size_t evlen = 0;
  int rc = pub_event(ev, &event, &evlen);
  if (rc == ERR_OK)
    rc = pub_frame_text(channel, offset, epoch, event, evlen, out, len);
  free(event);
  return rc;
}
