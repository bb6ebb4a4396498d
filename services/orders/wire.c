/*
 * wire.c - model rows to orders.v1 messages and event payloads (see
 * wire.h).
 */
#include "services/orders/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fmt_time(int64_t ms, char out[RFC3339_MS_LEN + 1]) {
  if (time_format_rfc3339(ms, out) != ERR_OK) out[0] = '\0';
}

void wire_product_init(wire_product *w, const model_product *p) {
  orders__v1__product__init(&w->msg);
  fmt_time(p->created_ms, w->created);
  fmt_time(p->updated_ms, w->updated);
  w->msg.id = (char *)p->id;
  w->msg.name = (char *)p->name;
  w->msg.description = (char *)p->description;
  w->msg.category = (char *)p->category;
  w->msg.price_cents = p->price_cents;
  if (p->has_stock) {
    w->msg.stock_present_case = ORDERS__V1__PRODUCT__STOCK_PRESENT_STOCK;
    w->msg.stock = p->stock;
  }
  w->msg.active = p->active;
  w->msg.version = p->version;
  w->msg.created_at = w->created;
  w->msg.updated_at = w->updated;
}

void wire_table_init(wire_table *w, const model_table *t) {
  orders__v1__table__init(&w->msg);
  w->msg.id = (char *)t->id;
  w->msg.label = (char *)t->label;
}

void wire_order_init(wire_order *w, const model_order *o) {
  orders__v1__order__init(&w->msg);
  fmt_time(o->created_ms, w->created);
  fmt_time(o->updated_ms, w->updated);
  if (money_format(o->total_cents, o->currency, w->total, sizeof w->total) !=
      ERR_OK)
    w->total[0] = '\0';
  size_t n = o->nitems < ORDER_LINES_MAX ? o->nitems : ORDER_LINES_MAX;
  for (size_t i = 0; i < n; i++) {
    Orders__V1__OrderItem *it = &w->items[i];
    orders__v1__order_item__init(it);
    it->product_id = (char *)o->items[i].product_id;
    it->name = (char *)o->items[i].name;
    it->unit_price_cents = o->items[i].unit_price_cents;
    it->quantity = o->items[i].quantity;
    it->line_total_cents = o->items[i].line_total_cents;
    w->ptrs[i] = it;
  }
  w->msg.id = (char *)o->id;
  w->msg.status = o->status;
  w->msg.n_items = n;
  w->msg.items = w->ptrs;
  w->msg.total_cents = o->total_cents;
  w->msg.total = w->total;
  w->msg.currency = (char *)o->currency;
  w->msg.table_id = (char *)o->table_id;
  w->msg.notes = (char *)o->notes;
  w->msg.customer_id = (char *)o->customer_id;
  w->msg.version = o->version;
  w->msg.created_at = w->created;
  w->msg.updated_at = w->updated;
}

void wire_ticket_init(wire_ticket *w, const model_order *o) {
  orders__v1__kitchen_ticket__init(&w->msg);
  fmt_time(o->created_ms, w->created);
  size_t n = o->nitems < ORDER_LINES_MAX ? o->nitems : ORDER_LINES_MAX;
  for (size_t i = 0; i < n; i++) {
    Orders__V1__KitchenTicket__Line *l = &w->lines[i];
    orders__v1__kitchen_ticket__line__init(l);
    l->name = (char *)o->items[i].name;
    l->quantity = o->items[i].quantity;
    w->ptrs[i] = l;
  }
  w->msg.order_id = (char *)o->id;
  w->msg.status = o->status;
  w->msg.table_id = (char *)o->table_id;
  w->msg.notes = (char *)o->notes;
  w->msg.n_lines = n;
  w->msg.lines = w->ptrs;
  w->msg.created_at = w->created;
  w->msg.version = o->version;
}

int wire_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    *out = NULL;
    *len = 0;
    return ERR_NOMEM;
  }
  protobuf_c_message_pack(m, buf);
  *out = buf;
  *len = n;
  return ERR_OK;
}

void wire_topic(const char *family, const char *tenant_id,
                char out[WIRE_TOPIC_MAX]) {
  snprintf(out, WIRE_TOPIC_MAX, "%s.%s", family, tenant_id);
}

/* The holders are large (50 items): keep them off small thread stacks. */
int wire_order_created(const model_order *o, uint8_t **out, size_t *len) {
  wire_order *w = malloc(sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  wire_order_init(w, o);
  Orders__V1__OrderCreated ev = ORDERS__V1__ORDER_CREATED__INIT;
  ev.order = &w->msg;
  int rc = wire_pack(&ev.base, out, len);
  free(w);
  return rc;
}

int wire_order_status_changed(const model_order *o, order_status from,
                              uint8_t **out, size_t *len) {
  wire_order *w = malloc(sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  wire_order_init(w, o);
  Orders__V1__OrderStatusChanged ev = ORDERS__V1__ORDER_STATUS_CHANGED__INIT;
  ev.order = &w->msg;
  ev.from = from;
  int rc = wire_pack(&ev.base, out, len);
  free(w);
  return rc;
}

int wire_kitchen_ticket(const model_order *o, uint8_t **out, size_t *len) {
  wire_ticket *w = malloc(sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  wire_ticket_init(w, o);
  int rc = wire_pack(&w->msg.base, out, len);
  free(w);
  return rc;
}

int wire_product_changed(const model_product *p, const char *change,
                         uint8_t **out, size_t *len) {
  wire_product w;
  wire_product_init(&w, p);
  Orders__V1__ProductChanged ev = ORDERS__V1__PRODUCT_CHANGED__INIT;
  ev.product = &w.msg;
  ev.change = (char *)change;
  return wire_pack(&ev.base, out, len);
}

int wire_stock_low(const char *product_id, const char *name, int64_t stock,
                   int64_t threshold, uint8_t **out, size_t *len) {
  Orders__V1__StockLow ev = ORDERS__V1__STOCK_LOW__INIT;
  ev.product_id = (char *)product_id;
  ev.name = (char *)name;
  ev.stock = stock;
  ev.threshold = threshold;
  return wire_pack(&ev.base, out, len);
}

int wire_table_changed(const model_table *t, const char *change, uint8_t **out,
                       size_t *len) {
  wire_table w;
  wire_table_init(&w, t);
  Orders__V1__TableChanged ev = ORDERS__V1__TABLE_CHANGED__INIT;
  ev.table = &w.msg;
  ev.change = (char *)change;
  return wire_pack(&ev.base, out, len);
}

int wire_create_order_response(const model_order *o, uint8_t **out,
                               size_t *len) {
  wire_order *w = malloc(sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  wire_order_init(w, o);
  Orders__V1__CreateOrderResponse resp =
      ORDERS__V1__CREATE_ORDER_RESPONSE__INIT;
  resp.order = &w->msg;
  int rc = wire_pack(&resp.base, out, len);
  free(w);
  return rc;
}
