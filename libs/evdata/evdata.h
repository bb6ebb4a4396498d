/*
 * evdata.h - the data of a bus event as the HTTP API shows it.
 *
 * For OrderCreated and OrderStatusChanged the order exactly as GET
 * /v1/orders/{id} answers it (libs/pbjson with the gateway's options:
 * enum values as short lower-case names, 15 significant digits; that
 * route omits no field), the product of ProductChanged, the table of
 * TableChanged, the device of sync's DeviceOnline and DeviceOffline (as
 * GET /v1/sync/devices/{id}), and the whole message for KitchenTicket and
 * StockLow, which are not resources of their own; for notifications'
 * Notification the in-app notification (with its user_id). Shared by the
 * services that show events to clients: realtime (publication frames) and
 * notifications
 * (webhook bodies), so both show the same bytes. Pure: no I/O.
 */
#ifndef EVDATA_EVDATA_H
#define EVDATA_EVDATA_H

#include <jansson.h>
#include <stdbool.h>

#include "libs/base/err.h"
#include "proto/rpc/v1/rpc.pb-c.h"

/* True when events of this type have data this library renders. */
bool evdata_known(const char *type);

/* The JSON of ev's data. On ERR_OK *out is a new reference (json_decref).
 * Errors: ERR_NOTFOUND (a type not known here), ERR_PROTO (the payload
 * does not decode), ERR_INVAL (it cannot be JSON), ERR_NOMEM. */
int evdata_json(const Rpc__V1__Event *ev, json_t **out) WARN_UNUSED;

#endif
