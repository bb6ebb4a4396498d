/*
 * store.h - the orders service's SQL, in schema "orders": products
 * (menu and stock), tables, orders and their lines, idempotency keys,
 * and the events each change writes to the outbox (libs/outbox).
 *
 * Every function is one transaction (db_with_tx: retried as a whole on
 * serialisation failures and deadlocks), run as the store's role
 * (store_new) with app.tenant_id set, so row-level security binds; every
 * statement also filters on tenant_id explicitly. A change and its
 * events commit together or not at all: the caller kicks the relay
 * (outbox_kick) after a successful return.
 *
 * CreateOrder (store_create_order) in one transaction of two round trips
 * (libs/db pipelines: steps 1-3 with the deferred BEGIN, then 4-6 with
 * COMMIT, built in memory in between):
 *   1. with an idempotency key: pg_try_advisory_xact_lock on a hash of
 *      (tenant, caller, key) - held by a first call still running:
 *      STORE_KEY_BUSY (ABORTED); then the stored row, if alive: same
 *      request hash -> STORE_REPLAY with the stored answer, another hash
 *      -> STORE_KEY_REUSED; an expired row is deleted;
 *   2. the table, if given, must be this tenant's (table_id);
 *   3. the products are locked with SELECT ... ORDER BY id FOR UPDATE -
 *      every transaction that locks several products does so in id
 *      order, so two orders can wait for each other but never deadlock;
 *      each must exist in this tenant, be active and not deleted
 *      (items[i].product_id), and have stock >= quantity
 *      (items[i].quantity, STORE_PRECONDITION);
 *   4. stock -= quantity (the CHECK stock >= 0 is the last wall),
 *      version + 1; the order and its lines with the server's names,
 *      prices and totals (one statement); created_at = updated_at = the
 *      id's UUIDv7 milliseconds, so id order is created_at order;
 *   5. outbox: OrderCreated (orders.<tid>), KitchenTicket (kitchen.<tid>),
 *      StockLow (orders.<tid>) for each product that fell below its
 *      threshold in this order (stock was >= threshold before, or
 *      unlimited, and is < threshold now);
 *   6. the idempotency row with the serialised answer.
 * Cancelling (store_change_status to cancelled) locks the order row, then
 * its products in id order, and gives the stock back, in one transaction.
 *
 * Outcomes that are answers, not failures, come back in store_result
 * (the transaction was rolled back when it had written anything); the
 * int return is ERR_OK or an infrastructure error of libs/db
 * (ERR_UNAVAILABLE, ERR_TIMEOUT, ERR_CONFLICT after retries, ERR_DB,
 * ERR_NOMEM, ERR_INVAL for malformed ids). The two never mix: with an
 * error, res->outcome is STORE_OK (an answer found before a step that
 * then failed is dropped), so read res only after ERR_OK.
 */
#ifndef ORDERS_STORE_H
#define ORDERS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "services/orders/idem.h"
#include "services/orders/model.h"
#include "services/orders/validate.h"

#define STORE_SCHEMA "orders"

enum store_outcome {
  STORE_OK = 0,
  STORE_NOT_FOUND,    /* NOT_FOUND */
  STORE_STALE,        /* the version given is not the current one: ABORTED */
  STORE_INVALID,      /* violations: INVALID_ARGUMENT */
  STORE_PRECONDITION, /* violations and/or message: FAILED_PRECONDITION */
  STORE_EXISTS,       /* violations: ALREADY_EXISTS */
  STORE_REPLAY,       /* idempotent retry: the stored answer */
  STORE_KEY_REUSED,   /* same key, another request: INVALID_ARGUMENT */
  STORE_KEY_BUSY,     /* same key, first call still running: ABORTED */
};

typedef struct store_result {
  enum store_outcome outcome;
  vlist violations;
  char message[128]; /* for STORE_PRECONDITION; may be "" */
  bool menu_changed; /* a product or its stock changed (committed):
                        the caller invalidates the menu cache */
} store_result;

/* An Idempotency-Key of a create (libs/idem, table orders.idempotency):
 * the key in the scope (tenant, principal). Every pointer is borrowed. */
typedef struct store_idem {
  const char *key;       /* validated; NULL or "": no key */
  const char *principal; /* the caller (token sub) */
  const char *method;
  const uint8_t *request_hash; /* IDEM_HASH_LEN bytes */
  int64_t ttl_ms;
} store_idem;

/* The answer of an idempotent create: the serialised response message
 * that was saved with the key (STORE_OK) or found under it
 * (STORE_REPLAY), and its status. bytes is malloc'd; store_answer_clear
 * frees it. */
typedef struct store_answer {
  uint8_t *bytes;
  size_t len;
  int code;
} store_answer;
void store_answer_clear(store_answer *a); /* NULL-safe; zeroes it */

/* True when idem carries a key. */
bool store_idem_on(const store_idem *idem);

/* ---------------------------------------------------------- containers --- */

/* Rows handed out by the store; strings point into res_. */
typedef struct store_products {
  model_product *v;
  size_t n;
  db_result *res_;
} store_products;
void store_products_free(store_products *p); /* NULL-safe; zeroes it */

typedef struct store_tables {
  model_table *v;
  size_t n;
  db_result *res_;
} store_tables;
void store_tables_free(store_tables *t);

typedef struct store_orders {
  model_order *v;
  size_t n;
  model_item *items_;
  db_result *orders_res_, *items_res_;
} store_orders;
void store_orders_free(store_orders *o);

/* -------------------------------------------------------------- set-up --- */

typedef db_store store; /* libs/db: the pool and the role */

/* A store over db (borrowed). role (copied; "" or NULL: none) is the
 * database role every transaction switches to, so row-level security
 * binds even when DATABASE_URL is a superuser ("orders_app", made by the
 * migration). Errors: ERR_INVAL (role not [a-z_][a-z0-9_]{0,62}),
 * ERR_NOMEM. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *st); /* NULL-safe */

/* ------------------------------------------------------------ products --- */

typedef struct store_product_new {
  const char *id; /* a new UUIDv7 */
  const char *name, *description, *category;
  int64_t price_cents;
  bool has_stock;
  int64_t stock;
  int64_t threshold;
  bool active;
  size_t max_products; /* non-deleted products a tenant may have */
} store_product_new;

/* Inserts a product with ProductChanged "created". STORE_PRECONDITION
 * when the tenant has max_products already. On STORE_OK out holds it.
 * With a key (idem not NULL, key set): first the key, as CreateOrder's
 * step 1 (STORE_REPLAY with the saved answer in *ans, STORE_KEY_REUSED,
 * STORE_KEY_BUSY); on STORE_OK the CreateProductResponse is saved with
 * the product and is in *ans too. ans may be NULL without a key. */
int store_create_product(store *st, const char *tid,
                         const store_product_new *in, const store_idem *idem,
                         store_result *res, store_products *out,
                         store_answer *ans) WARN_UNUSED;

enum store_stock_change {
  STORE_STOCK_KEEP = 0,
  STORE_STOCK_SET,
  STORE_STOCK_UNLIMITED,
};

/* A partial update: NULL strings and false set_* leave fields alone. */
typedef struct store_product_patch {
  const char *name, *description, *category;
  bool set_price;
  int64_t price_cents;
  enum store_stock_change stock_change;
  int64_t stock;
  bool set_active;
  bool active;
  bool set_threshold;
  int64_t threshold;
  bool check_version;
  int64_t version;
} store_product_patch;

/* Updates a non-deleted product: STORE_NOT_FOUND, STORE_STALE (version
 * given and not current), else the product, version + 1, ProductChanged
 * "updated" (and StockLow when it fell below its threshold). A patch
 * that changes nothing returns the product as it is, without a new
 * version or event. */
int store_update_product(store *st, const char *tid, const char *id,
                         const store_product_patch *patch, store_result *res,
                         store_products *out) WARN_UNUSED;

/* Soft-deletes a product (ProductChanged "deleted"); STORE_NOT_FOUND when
 * unknown or deleted already. */
int store_delete_product(store *st, const char *tid, const char *id,
                         store_result *res) WARN_UNUSED;

/* One non-deleted product (inactive ones only with include_inactive).
 * ERR_NOTFOUND. */
int store_get_product(store *st, const char *tid, const char *id,
                      bool include_inactive, store_products *out) WARN_UNUSED;

/* The menu: non-deleted products (inactive ones with include_inactive)
 * by category, then name, at most cap. */
int store_list_products(store *st, const char *tid, bool include_inactive,
                        size_t cap, store_products *out) WARN_UNUSED;

/* The page of the menu (category "" = all) after the product after_id,
 * in the same order, at most limit, read from the database: for a cursor
 * whose product is no longer in the cached list (deleted, hidden or
 * renamed since the page before). The product may be in any state, but
 * must be this tenant's and, when category is given, of that category:
 * else ERR_NOTFOUND. */
int store_list_products_after(store *st, const char *tid, bool include_inactive,
                              const char *category, const char *after_id,
                              size_t limit, store_products *out) WARN_UNUSED;

/* -------------------------------------------------------------- tables --- */

/* Inserts a table with TableChanged "created" on tables.<tid>;
 * STORE_EXISTS (violation "label") when the label is taken. A key (idem)
 * works as for store_create_product, with a CreateTableResponse. */
int store_create_table(store *st, const char *tid, const char *id,
                       const char *label, const store_idem *idem,
                       store_result *res, store_tables *out,
                       store_answer *ans) WARN_UNUSED;

/* The tenant's tables by label, at most cap. */
int store_list_tables(store *st, const char *tid, size_t cap,
                      store_tables *out) WARN_UNUSED;

/* -------------------------------------------------------------- orders --- */

typedef struct store_order_new {
  const char *id;          /* a new UUIDv7; its time is the created_at */
  const char *customer_id; /* NULL or "": none */
  const char *table_id;    /* NULL or "": none */
  const char *notes;
  const char *currency;           /* the tenant's, upper case */
  size_t nlines;                  /* 1..ORDER_LINES_MAX, validated */
  const char *const *product_ids; /* canonical lower-case UUIDs, distinct */
  const int32_t *quantities;
  /* Idempotency (idem_key NULL or "": none). */
  const char *idem_key;
  const char *principal; /* the caller (token sub) */
  const char *method;
  const uint8_t *request_hash; /* IDEM_HASH_LEN bytes */
  int64_t idem_ttl_ms;
} store_order_new;

/* CreateOrder as described at the top. On STORE_OK and STORE_REPLAY
 * *answer (malloc'd, the caller frees) is the serialised
 * CreateOrderResponse and *answer_code its status (RPC_OK). */
int store_create_order(store *st, const char *tid, const store_order_new *in,
                       store_result *res, uint8_t **answer, size_t *answer_len,
                       int *answer_code) WARN_UNUSED;

/* One order with its lines; only_customer (non-NULL): only if it is that
 * customer's. ERR_NOTFOUND. */
int store_get_order(store *st, const char *tid, const char *id,
                    const char *only_customer, store_orders *out) WARN_UNUSED;

typedef struct store_order_query {
  order_status status;     /* OS_UNSPECIFIED: any */
  const char *before_id;   /* NULL: from the newest; else ids < it */
  const char *customer_id; /* NULL: every customer */
  size_t limit;            /* 1..100 */
} store_order_query;

/* Orders newest first (id DESC) with their lines, at most q->limit;
 * *more says whether further orders remain. */
int store_list_orders(store *st, const char *tid, const store_order_query *q,
                      store_orders *out, bool *more) WARN_UNUSED;

typedef struct store_status_change {
  const char *id;
  order_status to;
  bool check_version;
  int64_t version;
  /* A customer's cancel: the order must be theirs (else NOT_FOUND) and
   * pending. NULL for staff. */
  const char *customer;
  /* The caller's Idempotency-Key (NULL: none): taken first (a twin still
   * running: STORE_KEY_BUSY; the same request answered before:
   * STORE_REPLAY with the saved answer; another request:
   * STORE_KEY_REUSED), and the answer - {order} - saved with the change. */
  const store_idem *idem;
} store_status_change;

/* Moves an order (orderstate.h rules; STORE_PRECONDITION otherwise),
 * STORE_NOT_FOUND, STORE_STALE; to cancelled restocks. Version + 1,
 * OrderStatusChanged and KitchenTicket. On STORE_OK out holds the order;
 * with a key, *ans (may be NULL without one) holds the serialised answer
 * on STORE_OK and STORE_REPLAY (out is then empty). */
int store_change_status(store *st, const char *tid,
                        const store_status_change *c, store_result *res,
                        store_orders *out, store_answer *ans) WARN_UNUSED;

/* ------------------------------------------------------ the change log --- */

/* One entity's latest change (migrations/0002_changes.sql). Strings point
 * into the container. */
typedef struct store_change {
  int64_t seq;
  const char *entity; /* "order" | "product" | "table" */
  const char *id;
  const char *op; /* "upsert" | "delete" */
  int64_t version;
  const model_order *order;     /* entity "order": the order now */
  const model_product *product; /* entity "product": the product now */
  const model_table *table;     /* entity "table": the table */
} store_change;

typedef struct store_changes {
  store_change *v;
  size_t n;
  bool more;              /* further changes after v[n - 1] */
  int64_t last;           /* the tenant's newest seq (0: none yet) */
  int64_t pruned_through; /* changes up to this seq were dropped */
  store_orders orders_;
  store_products products_;
  store_tables tables_;
  db_result *res_;
} store_changes;
void store_changes_free(store_changes *c); /* NULL-safe; zeroes it */

/* The latest change of each entity with seq > after, in seq (= commit)
 * order, at most limit, with the orders, products and tables they name,
 * in one read-only transaction. */
int store_list_changes(store *st, const char *tid, int64_t after, size_t limit,
                       store_changes *out) WARN_UNUSED;

/* ------------------------------------------------------------- janitor --- */

/* Deletes up to `batch` expired idempotency rows of every tenant.
 * *deleted (optional) gets the count. */
int store_expire_idempotency(store *st, size_t batch,
                             int64_t *deleted) WARN_UNUSED;

/* Prunes the change log (store_changes.c): the rows of finished entities
 * (orders delivered or cancelled, deleted products) whose last change is
 * older than older_ms, in batches of `batch` per transaction, raising
 * each tenant's pruned_through; up to 100 tenants per call, each skipped
 * while another replica prunes it. *pruned gets the rows dropped. */
int store_prune_changes(store *st, int64_t older_ms, size_t batch,
                        int64_t *pruned) WARN_UNUSED;

#endif
