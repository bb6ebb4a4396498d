/*
 * wire.h - model rows as orders.v1 protobuf messages, and the payloads of
 * the events the service writes to its outbox.
 *
 * The wire_* holders keep a message together with the buffers its
 * fields point at (formatted times, the decimal total, item arrays), so
 * a message can be built on the stack without allocations; every string
 * is borrowed from the model row, which must outlive the holder.
 *
 * Events (source "orders"; topics carry the tenant id):
 *   OrderCreated        orders.<tid>    {order}
 *   OrderStatusChanged  orders.<tid>    {order, from}
 *   KitchenTicket       kitchen.<tid>   lines, table, notes, status
 *                                       (with OrderCreated and every
 *                                       OrderStatusChanged)
 *   ProductChanged      orders.<tid>    {product, change}
 *   StockLow            orders.<tid>    {product_id, name, stock, threshold}
 *   TableChanged        tables.<tid>    {table, change}
 */
#ifndef ORDERS_WIRE_H
#define ORDERS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "services/orders/model.h"
#include "services/orders/money.h"
#include "services/orders/validate.h"

#define WIRE_TOPIC_MAX 64 /* "kitchen." + a UUID, and a NUL */

typedef struct wire_product {
  Orders__V1__Product msg;
  char created[RFC3339_MS_LEN + 1], updated[RFC3339_MS_LEN + 1];
} wire_product;

typedef struct wire_table {
  Orders__V1__Table msg;
} wire_table;

typedef struct wire_order {
  Orders__V1__Order msg;
  Orders__V1__OrderItem items[ORDER_LINES_MAX];
  Orders__V1__OrderItem *ptrs[ORDER_LINES_MAX];
  char total[MONEY_STR_MAX];
  char created[RFC3339_MS_LEN + 1], updated[RFC3339_MS_LEN + 1];
} wire_order;

typedef struct wire_ticket {
  Orders__V1__KitchenTicket msg;
  Orders__V1__KitchenTicket__Line lines[ORDER_LINES_MAX];
  Orders__V1__KitchenTicket__Line *ptrs[ORDER_LINES_MAX];
  char created[RFC3339_MS_LEN + 1];
} wire_ticket;

/* Fill a holder from a row (strings borrowed). Times outside years
 * 0000-9999 become "" (they cannot occur: the database makes them). */
void wire_product_init(wire_product *w, const model_product *p);
void wire_table_init(wire_table *w, const model_table *t);
/* At most ORDER_LINES_MAX items are taken. */
void wire_order_init(wire_order *w, const model_order *o);
void wire_ticket_init(wire_ticket *w, const model_order *o);

/* Serialises m into a malloc'd buffer (*out, *len; at least one byte is
 * allocated so *out is never NULL on success). ERR_NOMEM. */
int wire_pack(const ProtobufCMessage *m, uint8_t **out,
              size_t *len) WARN_UNUSED;

/* "<family>.<tenant_id>" into out (WIRE_TOPIC_MAX bytes). */
void wire_topic(const char *family, const char *tenant_id,
                char out[WIRE_TOPIC_MAX]);

/* Event payloads, serialised into malloc'd buffers. ERR_NOMEM. */
int wire_order_created(const model_order *o, uint8_t **out,
                       size_t *len) WARN_UNUSED;
int wire_order_status_changed(const model_order *o, order_status from,
                              uint8_t **out, size_t *len) WARN_UNUSED;
int wire_kitchen_ticket(const model_order *o, uint8_t **out,
                        size_t *len) WARN_UNUSED;
int wire_product_changed(const model_product *p, const char *change,
                         uint8_t **out, size_t *len) WARN_UNUSED;
int wire_stock_low(const char *product_id, const char *name, int64_t stock,
                   int64_t threshold, uint8_t **out, size_t *len) WARN_UNUSED;
int wire_table_changed(const model_table *t, const char *change, uint8_t **out,
                       size_t *len) WARN_UNUSED;

/* The CreateOrder answer for o, serialised (what the idempotency table
 * stores and a replay returns). ERR_NOMEM. */
int wire_create_order_response(const model_order *o, uint8_t **out,
                               size_t *len) WARN_UNUSED;

#endif
