/*
 * store_internal.h - what store.c (set-up, products, tables, janitor) and
 * store_orders.c (orders) share: the transaction runner, result helpers,
 * id arrays and outbox writes. Not for use outside the store.
 */
#ifndef ORDERS_STORE_INTERNAL_H
#define ORDERS_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/db/db.h"
#include "services/orders/store.h"

/* What a transaction function returns after recording an answer in the
 * store_result: rolls back, and is never returned by libs/db. */
#define ANSWERED ERR_CLOSED

/* A timestamptz column as Unix milliseconds. */
#define MS(col) "floor(extract(epoch FROM " col ") * 1000)::bigint"

/* Bytes of '{id,id,...}' for n ids. */
#define ID_ARRAY_CAP(n) ((n) * (UUID_STR_LEN + 1) + 3)

/* Runs fn in a transaction as the store's role, scoped to tenant tid
 * (NULL: the janitor's scope), retried on serialisation failures. */
int store_run_tx(store *st, const char *tid, bool read_only,
                 int (*fn)(db_conn *c, void *ud), void *ud) WARN_UNUSED;

/* A transaction function's first step on every attempt. */
void store_result_reset(store_result *res);

/* After store_run_tx: an answer (res->outcome set) is ERR_OK and leaves
 * menu_changed false (rolled back); otherwise rc. */
int store_finish(int rc, store_result *res) WARN_UNUSED;

/* The text of a cell; "" for NULL (model strings are never NULL). */
const char *store_cell(const db_result *r, int row, int col);

/* '{a,b,c}' of canonical ids / of integers into buf. ERR_TOOBIG. */
int store_id_array(const char *const *ids, size_t n, char *buf,
                   size_t cap) WARN_UNUSED;
int store_int_array(const int32_t *v, size_t n, char *buf,
                    size_t cap) WARN_UNUSED;

/* Writes one event to the outbox on c, topic "<family>.<tid>"; takes
 * ownership of payload (freed). */
int store_emit(db_conn *c, const char *family, const char *tid,
               const char *type, uint8_t *payload, size_t len) WARN_UNUSED;

/* Step 1 of an idempotent create, in its transaction (idem NULL or
 * without key: nothing): the key's lock and row (libs/idem). ERR_OK to
 * go on; ANSWERED with res->outcome STORE_REPLAY (ans holds the saved
 * answer), STORE_KEY_REUSED or STORE_KEY_BUSY. */
int store_idem_begin(db_conn *c, const char *tid, const store_idem *idem,
                     store_result *res, store_answer *ans) WARN_UNUSED;

/* The last step: saves ans with the key (nothing without a key). A twin
 * that saved first (possible only if the lock hashed two keys alike):
 * ANSWERED with STORE_KEY_BUSY. */
int store_idem_save(db_conn *c, const char *tid, const store_idem *idem,
                    store_result *res, const store_answer *ans) WARN_UNUSED;

/* Stock is "low" when limited and under the threshold. */
bool store_stock_low(bool has_stock, int64_t stock, int64_t threshold);

/* StockLow {id, name, stock, threshold} on orders.<tid>. */
int store_emit_stock_low(db_conn *c, const char *tid, const char *id,
                         const char *name, int64_t stock,
                         int64_t threshold) WARN_UNUSED;

#endif
