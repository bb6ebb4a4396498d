/*
 * evdata.c - event data as JSON (see evdata.h).
 *
 * One table maps an event type to its payload message and the field that
 * holds the resource (NULL: the whole message). The payload is decoded
 * with protobuf-c, turned into JSON by libs/pbjson with the gateway's
 * options, and the resource is taken out of it.
 */
#include "libs/evdata/evdata.h"

#include <string.h>

#include "libs/pbjson/pbjson.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "proto/sync/v1/sync.pb-c.h"

typedef struct evdata_kind {
  const char *type;
  const ProtobufCMessageDescriptor *desc;
  const char *field; /* the resource inside the message; NULL: all */
} evdata_kind;

static const evdata_kind kKinds[] = {
    {"OrderCreated", &orders__v1__order_created__descriptor, "order"},
    {"OrderStatusChanged", &orders__v1__order_status_changed__descriptor,
     "order"},
    {"KitchenTicket", &orders__v1__kitchen_ticket__descriptor, NULL},
    {"ProductChanged", &orders__v1__product_changed__descriptor, "product"},
    {"StockLow", &orders__v1__stock_low__descriptor, NULL},
    {"TableChanged", &orders__v1__table_changed__descriptor, "table"},
    /* notifications' own event, on private.user.<user_id>: the
     * notification as GET /v1/notifications shows it (plus user_id). */
    {"Notification", &notifications__v1__notification__descriptor, NULL},
    {"DeviceOnline", &sync__v1__device_status_changed__descriptor, "device"},
    {"DeviceOffline", &sync__v1__device_status_changed__descriptor, "device"},
};

/* The gateway's (services/gateway/transcode.c) so data is byte for byte
 * what the HTTP API shows. */
static const pbjson_opts kOpts = {
    .enum_style = PBJSON_ENUM_SHORT_LOWER,
    .real_precision = 15,
};

static const evdata_kind *find_kind(const char *type) {
  for (size_t i = 0; i < sizeof kKinds / sizeof kKinds[0]; i++)
    if (type != NULL && strcmp(kKinds[i].type, type) == 0) return &kKinds[i];
  return NULL;
}

bool evdata_known(const char *type) { return find_kind(type) != NULL; }

/* The resource field of whole (a new reference), or whole itself. */
static int take_field(json_t *whole, const char *field, json_t **out) {
  if (field == NULL) {
    *out = whole;
    return ERR_OK;
  }
  json_t *v = json_object_get(whole, field);
  if (v != NULL) json_incref(v);
  json_decref(whole);
  *out = v != NULL ? v : json_null();
  return *out != NULL ? ERR_OK : ERR_NOMEM;
}

int evdata_json(const Rpc__V1__Event *ev, json_t **out) {
  *out = NULL;
  const evdata_kind *k = find_kind(ev->type);
  if (k == NULL) return ERR_NOTFOUND;
  ProtobufCMessage *m = protobuf_c_message_unpack(
      k->desc, NULL, ev->payload.len, ev->payload.data);
  if (m == NULL) return ERR_PROTO;
  json_t *whole = NULL;
  int rc = pbjson_encode(m, &kOpts, &whole, NULL);
  protobuf_c_message_free_unpacked(m, NULL);
  if (rc != ERR_OK) return rc;
  return take_field(whole, k->field, out);
}
