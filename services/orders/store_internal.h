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
#include "libs/idem/idem.h"
#include "libs/outbox/outbox.h"
#include "services/orders/store.h"
#include "services/orders/wire.h"

/* A timestamptz column as Unix milliseconds. */
#define MS(col) "floor(extract(epoch FROM " col ") * 1000)::bigint"

/* Bytes of '{id,id,...}' for n ids. */
#define ID_ARRAY_CAP(n) ((n) * (UUID_STR_LEN + 1) + 3)

/* Runs fn in a read transaction as the store's role, scoped to tenant
 * tid (NULL: the janitor's scope), retried on serialisation failures:
 * ERR_OK commits, an error rolls back and is returned. */
int store_run_tx(store *st, const char *tid, bool read_only,
                 int (*fn)(db_conn *c, void *ud), void *ud) WARN_UNUSED;

/*
 * Writes, and how an answer differs from an error.
 *
 * A write's transaction function returns an err_code and nothing else:
 *   - ERR_OK with res->outcome still STORE_OK: commit;
 *   - ERR_OK after store_answer_with(res, ...) recorded an answer (not
 *     found, stale, no stock, a replay, ...): roll back, and the public
 *     function returns ERR_OK with that outcome;
 *   - any error: roll back and return the error - also when an answer
 *     was recorded before the step that failed. An error always wins over
 *     an outcome, and the caller then sees the outcome reset to STORE_OK:
 *     an answer never rides along with a failure.
 * store_run_write resets res before every attempt (fn need not).
 */
int store_run_write(store *st, const char *tid, int (*fn)(db_conn *c, void *ud),
                    void *ud, store_result *res) WARN_UNUSED;

/* Records outcome o (not STORE_OK) as the write's answer. The transaction
 * function then returns ERR_OK without writing more. */
void store_answer_with(store_result *res, enum store_outcome o);

/* True once an answer has been recorded: the transaction function stops
 * (returns ERR_OK) at its next step. */
bool store_answered(const store_result *res);

/* Zeroes a result: STORE_OK, no violations, no message, menu unchanged. */
void store_result_reset(store_result *res);

/* The last step of a public write, after store_run_write (and after any
 * mapping of rc to an answer, such as a unique violation to
 * STORE_EXISTS): rc != ERR_OK is returned with res reset (no outcome);
 * ERR_OK with an outcome means rolled back, so menu_changed is cleared. */
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

/* One event as an outbox statement for a pipeline (libs/db), topic
 * "<family>.<tid>" written into topic; payload borrowed until it ran. */
int store_event_stmt(const char *family, const char *tid, const char *type,
                     const uint8_t *payload, size_t len,
                     char topic[WIRE_TOPIC_MAX], outbox_stmt *out) WARN_UNUSED;

/* idem's key as libs/idem takes it (the orders table and lock name). */
idem_ref store_idem_ref(const char *tid, const store_idem *idem);

/* What libs/idem found as the write's answer (none for IDEM_NEW):
 * STORE_REPLAY (f's saved bytes move to ans), STORE_KEY_REUSED or
 * STORE_KEY_BUSY. Clears f. */
void store_idem_answer(idem_found *f, store_result *res, store_answer *ans);

/* Step 1 of an idempotent create, in its transaction (idem NULL or
 * without key: nothing): the key's lock and row (libs/idem). ERR_OK and
 * no answer to go on; ERR_OK with an answer (store_answered):
 * STORE_REPLAY (ans holds the saved answer), STORE_KEY_REUSED or
 * STORE_KEY_BUSY; or an error. */
int store_idem_begin(db_conn *c, const char *tid, const store_idem *idem,
                     store_result *res, store_answer *ans) WARN_UNUSED;

/* The last step: saves ans with the key (nothing without a key). A twin
 * that saved first (possible only if the lock hashed two keys alike):
 * ERR_OK with the answer STORE_KEY_BUSY. */
int store_idem_save(db_conn *c, const char *tid, const store_idem *idem,
                    store_result *res, const store_answer *ans) WARN_UNUSED;

/* The products / tables of tenant tid whose ids are in the array text
 * ids ('{a,b}'), in c's transaction, into out (which takes the result). */
int store_read_products_by_ids(db_conn *c, const char *tid, const char *ids,
                               store_products *out) WARN_UNUSED;
int store_read_tables_by_ids(db_conn *c, const char *tid, const char *ids,
                             store_tables *out) WARN_UNUSED;

/* Stock is "low" when limited and under the threshold. */
bool store_stock_low(bool has_stock, int64_t stock, int64_t threshold);

/* StockLow {id, name, stock, threshold} on orders.<tid>. */
int store_emit_stock_low(db_conn *c, const char *tid, const char *id,
                         const char *name, int64_t stock,
                         int64_t threshold) WARN_UNUSED;

#endif
