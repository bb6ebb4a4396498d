/*
 * pub.h - a bus event as the contract's publication frame:
 *
 *   {"op":"pub","channel":"orders.<tid>","offset":7,"epoch":"…",
 *    "event":{"id","type","tenant_id","time","data"}}
 *
 * `data` is the event's resource as the HTTP API shows it: for
 * OrderCreated and OrderStatusChanged the order exactly as GET
 * /v1/orders/{id} answers it (libs/pbjson with the gateway's options:
 * enum values as short lower-case names, 15 significant digits; that
 * route omits no field), the product of ProductChanged, the table of
 * TableChanged, and the whole message for KitchenTicket and StockLow,
 * which are not resources of their own. Pure functions: no I/O.
 */
#ifndef REALTIME_PUB_H
#define REALTIME_PUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "proto/rpc/v1/rpc.pb-c.h"

/* True when events of this type become publications. */
bool pub_known(const char *type);

/* The private channel of the customer an event concerns: for
 * OrderCreated and OrderStatusChanged whose order has a customer_id (the
 * user who placed it, or for whom staff placed it), out =
 * "private.user.<customer_id>" and true; false for every other event
 * (and an order without a customer, or one that does not decode). */
bool pub_customer_channel(const Rpc__V1__Event *ev, char *out, size_t cap);

/* The JSON of ev's data. On ERR_OK *out is a new reference (json_decref).
 * Errors: ERR_NOTFOUND (a type this service does not know: no
 * publication), ERR_PROTO (the payload does not decode), ERR_INVAL (it
 * cannot be JSON), ERR_NOMEM. */
int pub_data(const Rpc__V1__Event *ev, json_t **out) WARN_UNUSED;

/* The frame's "event" object ({"id","type","tenant_id","time","data"})
 * as compact JSON text; memory and errors as pub_frame. */
int pub_event(const Rpc__V1__Event *ev, char **out, size_t *len) WARN_UNUSED;

/* The whole frame for channel at offset in epoch around event[0..evlen)
 * (pub_event's text, as stored in the history): the same bytes pub_frame
 * makes. Errors: ERR_NOMEM. */
int pub_frame_text(const char *channel, int64_t offset, const char *epoch,
                   const char *event, size_t evlen, char **out,
                   size_t *len) WARN_UNUSED;

/* The whole frame for channel at offset in epoch, as compact JSON text.
 * On ERR_OK *out is malloc'd and NUL-terminated, *len its length (the
 * caller frees). Errors as pub_data. */
int pub_frame(const char *channel, int64_t offset, const char *epoch,
              const Rpc__V1__Event *ev, char **out, size_t *len) WARN_UNUSED;

#endif
