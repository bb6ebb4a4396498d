/*
 * model.h - the orders service's rows as plain C data, shared by the
 * store (which fills them), wire.c (which turns them into protobuf) and
 * the handlers.
 *
 * Strings are borrowed: they point into a database result (or a
 * caller's buffer) owned by whatever container handed the row out
 * (store.h), never NULL ("" for absent text). Times are Unix
 * milliseconds (formatted as RFC 3339 on the wire).
 */
#ifndef ORDERS_MODEL_H
#define ORDERS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/orders/orderstate.h"

typedef struct model_product {
  const char *id, *name, *description, *category;
  int64_t price_cents;
  bool has_stock; /* false: unlimited */
  int64_t stock;
  int64_t low_stock_threshold;
  bool active;
  int64_t version;
  int64_t created_ms, updated_ms;
} model_product;

typedef struct model_table {
  const char *id, *label;
  int64_t created_ms;
} model_table;

typedef struct model_item {
  const char *product_id, *name;
  int64_t unit_price_cents;
  int32_t quantity;
  int64_t line_total_cents;
} model_item;

typedef struct model_order {
  const char *id;
  order_status status;
  const char *currency; /* ISO 4217, upper case */
  const char *table_id; /* "" = none */
  const char *notes;
  const char *customer_id; /* "" = none */
  int64_t total_cents;
  int64_t version;
  int64_t created_ms, updated_ms;
  const model_item *items; /* in line order */
  size_t nitems;
} model_order;

#endif
