/*
 * validate.h - the orders service's input rules, as pure functions.
 *
 * Validation runs in layers (README.md, "Validation"): the gateway's
 * pbjson checks the JSON shape; these functions re-check every bound the
 * service relies on (a caller need not be the gateway) and the request-
 * level business rules that need no database (line count, quantities,
 * a product at most once, notes length); the store then checks what only
 * the database knows (the product exists in this tenant, is active, has
 * stock; the table is this tenant's), and CHECK constraints in the schema
 * are the last wall.
 *
 * Problems are collected in a vlist (libs/base), one field violation per
 * bad field ("items[3].quantity", "must be between 1 and 99"), so a
 * client can fix them all at once. Text follows libs/base's utf8.h rule:
 * valid UTF-8 without control characters, lengths counted in characters
 * as HTTP-API.md states them.
 */
#ifndef ORDERS_VALIDATE_H
#define ORDERS_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/vlist.h"

#define ORDER_LINES_MAX 50
#define ORDER_QTY_MAX 99
#define ORDER_NOTES_MAX 500          /* characters */
#define PRODUCT_NAME_MAX 200         /* characters */
#define PRODUCT_DESCRIPTION_MAX 2000 /* characters */
#define PRODUCT_CATEGORY_MAX 100     /* characters */
#define PRODUCT_PRICE_MAX 100000000LL
#define PRODUCT_STOCK_MAX 1000000LL
#define PRODUCT_THRESHOLD_MAX 1000000LL
#define PRODUCT_THRESHOLD_DEFAULT 5
#define TABLE_LABEL_MAX 50 /* characters */
#define IDEM_KEY_MAX 255   /* bytes, printable ASCII */

/* ------------------------------------------------------------ products --- */

/* Each adds its violation (field named as given) and returns false. */
bool validate_product_name(vlist *l, const char *field, const char *name);
bool validate_product_description(vlist *l, const char *field, const char *s);
bool validate_product_category(vlist *l, const char *field, const char *s);
bool validate_price(vlist *l, const char *field, int64_t cents);
bool validate_stock(vlist *l, const char *field, int64_t stock);
bool validate_threshold(vlist *l, const char *field, int64_t v);
bool validate_table_label(vlist *l, const char *field, const char *label);

/* An id from a path or body: a canonical UUID. */
bool validate_id(vlist *l, const char *field, const char *id);

/* -------------------------------------------------------------- orders --- */

/* The request-level rules of CreateOrder: 1..50 lines; each product_id a
 * UUID (items[i].product_id) appearing once (later repeats are named);
 * each quantity 1..99 (items[i].quantity); notes at most 500 characters
 * of UTF-8 text (newlines allowed); table_id and customer_id empty or a
 * UUID. Adds every violation to l; true when there was none. */
bool validate_order_request(vlist *l, size_t nlines,
                            const char *const *product_ids,
                            const int32_t *quantities, const char *table_id,
                            const char *notes, const char *customer_id);

/* The Idempotency-Key: 1..255 printable ASCII characters. */
bool validate_idempotency_key(const char *key);

#endif
