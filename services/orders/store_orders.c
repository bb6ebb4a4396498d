/*
 * store_orders.c - the orders service's SQL, part two: orders (see
 * store.h for the transaction design: CreateOrder with idempotency, lock
 * order and stock; status changes with restocking).
 */
#include "services/orders/store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "services/orders/store_internal.h"
#include "services/orders/wire.h"

#define ORDER_COLS                                                             \
  "id::text, status, total_cents, currency, coalesce(table_id::text, ''), "    \
  "notes, coalesce(customer_id::text, ''), version, " MS(                      \
      "created_at") ", " MS("updated_at")

#define ITEM_COLS                                                              \
  "order_id::text, product_id::text, name, unit_price_cents, quantity, "       \
  "line_total_cents"

/* ------------------------------------------------------- order reading --- */

/* Reads the orders of r (ORDER_COLS, sorted by id DESC or a single row)
 * and their lines into out, which takes r. */
static int load_orders(db_conn *c, const char *tid, db_result *r,
                       store_orders *out) {
  int n = db_nrows(r);
  out->orders_res_ = r;
  out->v = calloc(n > 0 ? (size_t)n : 1, sizeof *out->v);
  if (out->v == NULL) return ERR_NOMEM;
  const char **ids = calloc(n > 0 ? (size_t)n : 1, sizeof *ids);
  if (ids == NULL) return ERR_NOMEM;
  int rc = ERR_OK;
  for (int i = 0; i < n && rc == ERR_OK; i++) {
    model_order *o = &out->v[i];
    o->id = store_cell(r, i, 0);
    ids[i] = o->id;
    o->status = orderstate_parse(store_cell(r, i, 1));
    rc = db_get_int64(r, i, 2, &o->total_cents);
    o->currency = store_cell(r, i, 3);
    o->table_id = store_cell(r, i, 4);
    o->notes = store_cell(r, i, 5);
    o->customer_id = store_cell(r, i, 6);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 7, &o->version);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 8, &o->created_ms);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 9, &o->updated_ms);
  }
  if (rc != ERR_OK || n == 0) {
    free(ids);
    return rc;
  }
  out->n = (size_t)n;
  size_t cap = ID_ARRAY_CAP((size_t)n);
  char *arr = malloc(cap);
  if (arr == NULL) {
    free(ids);
    return ERR_NOMEM;
  }
  rc = store_id_array(ids, (size_t)n, arr, cap);
  free(ids);
  db_result *ir = NULL;
  if (rc == ERR_OK) {
    db_param ps[] = {db_text(tid), db_text(arr)};
    rc = db_exec(c,
                 "SELECT " ITEM_COLS " FROM orders.order_items WHERE "
                 "tenant_id = $1::uuid AND order_id = ANY($2::uuid[]) "
                 "ORDER BY order_id DESC, line_no",
                 ps, 2, &ir);
  }
  free(arr);
  if (rc != ERR_OK) return rc;
  out->items_res_ = ir;
  int m = db_nrows(ir);
  out->items_ = calloc(m > 0 ? (size_t)m : 1, sizeof *out->items_);
  if (out->items_ == NULL) return ERR_NOMEM;
  for (int j = 0; j < m && rc == ERR_OK; j++) {
    model_item *it = &out->items_[j];
    it->product_id = store_cell(ir, j, 1);
    it->name = store_cell(ir, j, 2);
    int64_t q = 0;
    rc = db_get_int64(ir, j, 3, &it->unit_price_cents);
    if (rc == ERR_OK) rc = db_get_int64(ir, j, 4, &q);
    if (rc == ERR_OK) rc = db_get_int64(ir, j, 5, &it->line_total_cents);
    it->quantity = (int32_t)q;
  }
  if (rc != ERR_OK) return rc;
  /* Both lists are in id DESC order: one pass assigns the lines. */
  int j = 0;
  for (size_t i = 0; i < out->n; i++) {
    model_order *o = &out->v[i];
    int start = j;
    while (j < m && strcmp(store_cell(ir, j, 0), o->id) == 0) j++;
    o->items = &out->items_[start];
    o->nitems = (size_t)(j - start);
  }
  return ERR_OK;
}

typedef struct order_read_args {
  const char *tid, *id, *customer;
  const store_order_query *q;
  store_orders *out;
  bool *more;
} order_read_args;

static int get_order_fn(db_conn *c, void *ud) {
  order_read_args *a = ud;
  store_orders_free(a->out);
  db_param ps[] = {db_text(a->tid), db_text(a->id), db_text(a->customer)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " ORDER_COLS " FROM orders.orders WHERE "
                   "tenant_id = $1::uuid AND id = $2::uuid AND "
                   "($3::uuid IS NULL OR customer_id = $3::uuid)",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  rc = load_orders(c, a->tid, r, a->out);
  if (rc == ERR_OK && a->out->n != 1) rc = ERR_NOTFOUND;
  return rc;
}

int store_get_order(store *st, const char *tid, const char *id,
                    const char *only_customer, store_orders *out) {
  memset(out, 0, sizeof *out);
  order_read_args a = {
      .tid = tid, .id = id, .customer = only_customer, .out = out};
  int rc = store_run_tx(st, tid, true, get_order_fn, &a);
  if (rc != ERR_OK) store_orders_free(out);
  return rc;
}

static int list_orders_fn(db_conn *c, void *ud) {
  order_read_args *a = ud;
  const store_order_query *q = a->q;
  store_orders_free(a->out);
  *a->more = false;
  const char *status = orderstate_name(q->status);
  db_param ps[] = {db_text(a->tid), db_text(q->before_id), db_text(status),
                   db_text(q->customer_id), db_int64((int64_t)q->limit + 1)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " ORDER_COLS " FROM orders.orders WHERE "
                   "tenant_id = $1::uuid "
                   "AND ($2::uuid IS NULL OR id < $2::uuid) "
                   "AND ($3::text IS NULL OR status = $3) "
                   "AND ($4::uuid IS NULL OR customer_id = $4::uuid) "
                   "ORDER BY id DESC LIMIT $5",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  rc = load_orders(c, a->tid, r, a->out);
  if (rc == ERR_OK && a->out->n > q->limit) {
    a->out->n = q->limit; /* the extra row only says "more" */
    *a->more = true;
  }
  return rc;
}

int store_list_orders(store *st, const char *tid, const store_order_query *q,
                      store_orders *out, bool *more) {
  memset(out, 0, sizeof *out);
  *more = false;
  if (q->limit == 0 || q->limit > 1000) return ERR_INVAL;
  order_read_args a = {.tid = tid, .q = q, .out = out, .more = more};
  int rc = store_run_tx(st, tid, true, list_orders_fn, &a);
  if (rc != ERR_OK) store_orders_free(out);
  return rc;
}

/* -------------------------------------------------------- order events --- */

/* OrderCreated or OrderStatusChanged on orders.<tid>, and the kitchen's
 * ticket on kitchen.<tid>. */
static int emit_order(db_conn *c, const char *tid, const model_order *o,
                      bool created, order_status from) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = created ? wire_order_created(o, &buf, &len)
                   : wire_order_status_changed(o, from, &buf, &len);
  if (rc == ERR_OK)
    rc = store_emit(c, "orders", tid,
                    created ? "OrderCreated" : "OrderStatusChanged", buf, len);
  if (rc == ERR_OK) rc = wire_kitchen_ticket(o, &buf, &len);
  if (rc == ERR_OK)
    rc = store_emit(c, "kitchen", tid, "KitchenTicket", buf, len);
  return rc;
}

/* --------------------------------------------------------- CreateOrder --- */

/*
 * CreateOrder in two round trips to PostgreSQL (libs/db pipelines), in
 * named steps over one create_args (store.h has the design):
 *
 *   round 1, read_and_lock (with the deferred BEGIN and settings):
 *     the Idempotency-Key's lock and row      judged by idem_check
 *     the table, if given                     check_table
 *     SELECT ... ORDER BY id FOR UPDATE       find_rows, check_products,
 *                                             price_lines
 *   in memory, nothing waiting on the database: the new order
 *     (new_order), its events (build_events) and the answer saved with
 *     the key (build_answer);
 *   round 2, write_and_commit (with COMMIT): an expired key's row
 *     deleted, stock -= quantity, the order and its lines, the events,
 *     the key's answer.
 *
 * Round 2 holds the tenant's change-log row (migrations/0002: a tenant's
 * writes take turns from their first change to their commit), so no
 * client round trip happens inside that turn. A step either fails (an
 * error: rolled back), records an answer (store_answer_with: the steps
 * after it are skipped and the transaction rolls back), or leaves what
 * the next step needs in the args. Result columns are read by name: each
 * statement's column numbers are looked up once (db_col).
 */

/* Column numbers of the locked product rows (LOCK_PRODUCTS_SQL). */
typedef struct locked_cols {
  int id, name, price, stock, threshold, active, live;
} locked_cols;

#define LOCK_PRODUCTS_SQL                                                      \
  "SELECT id::text AS id, name, price_cents, stock, low_stock_threshold, "     \
  "active, deleted_at IS NULL AS live FROM orders.products "                   \
  "WHERE tenant_id = $1::uuid AND id = ANY($2::uuid[]) "                       \
  "ORDER BY id FOR UPDATE"

#define TABLE_SQL                                                              \
  "SELECT 1 FROM orders.tables WHERE tenant_id = $1::uuid AND id = $2::uuid"

#define TAKE_STOCK_SQL                                                         \
  "UPDATE orders.products p SET stock = p.stock - l.qty, "                     \
  "version = p.version + 1, updated_at = now() "                               \
  "FROM unnest($2::uuid[], $3::int[]) AS l(id, qty) "                          \
  "WHERE p.tenant_id = $1::uuid AND p.id = l.id AND p.stock IS NOT NULL"

/* The order and its lines in one statement; names and prices come from
 * the rows locked in round 1 (the values price_lines read). */
#define INSERT_ORDER_SQL                                                       \
  "WITH o AS (INSERT INTO orders.orders (tenant_id, id, total_cents, "         \
  "currency, table_id, notes, customer_id, created_at, updated_at) "           \
  "VALUES ($1::uuid, $2::uuid, $3, $4, $5::uuid, $6, $7::uuid, "               \
  "$10::timestamptz, $10::timestamptz) RETURNING id) "                         \
  "INSERT INTO orders.order_items (tenant_id, order_id, line_no, "             \
  "product_id, name, unit_price_cents, quantity, line_total_cents) "           \
  "SELECT $1::uuid, o.id, (l.n - 1)::int, p.id, p.name, p.price_cents, "       \
  "l.qty, p.price_cents * l.qty FROM o, unnest($8::uuid[], $9::int[]) "        \
  "WITH ORDINALITY AS l(id, qty, n) JOIN orders.products p "                   \
  "ON p.tenant_id = $1::uuid AND p.id = l.id"

/* Bytes of '{q,q,...}' for n quantities of at most 2 digits. */
#define QTY_ARRAY_CAP(n) ((n)*4 + 3)

/* Events of one order at most: OrderCreated, KitchenTicket, a StockLow
 * per line. */
#define ORDER_EVENTS_MAX (2 + ORDER_LINES_MAX)

typedef struct create_args {
  /* The call: set once. */
  const char *tid;
  const store_order_new *in;
  store_result *res;
  uint8_t **answer;
  size_t *answer_len;
  int *answer_code;
  bool idem, has_table;
  store_idem key;
  idem_ref ref;
  char ids[ID_ARRAY_CAP(ORDER_LINES_MAX)];   /* the lines' product ids */
  char qtys[QTY_ARRAY_CAP(ORDER_LINES_MAX)]; /* and quantities */
  char at[RFC3339_MS_LEN + 1];               /* created_at: the id's ms */
  int64_t created_ms;
  /* One attempt: reset by create_order_fn, filled by the steps. */
  db_result *key_row, *table_row;
  db_result *locked; /* the product rows; items' names point here */
  locked_cols col;
  int row[ORDER_LINES_MAX]; /* line i's row in locked, or -1 */
  model_item items[ORDER_LINES_MAX];
  int64_t total;
  size_t nlimited; /* lines whose product has a limited stock */
  const char *limited_id[ORDER_LINES_MAX];
  int32_t limited_qty[ORDER_LINES_MAX];
  bool key_expired; /* the key's row is dead: delete it in round 2 */
  /* Round 2's statements and what they borrow. */
  idem_stmt key_stmt, forget_stmt;
  char lids[ID_ARRAY_CAP(ORDER_LINES_MAX)], lqs[QTY_ARRAY_CAP(ORDER_LINES_MAX)];
  db_param stock_ps[3], order_ps[10];
  size_t nev;
  uint8_t *payload[ORDER_EVENTS_MAX]; /* owned */
  char topic[ORDER_EVENTS_MAX][WIRE_TOPIC_MAX];
  outbox_stmt ev[ORDER_EVENTS_MAX];
} create_args;

static void drop_answer(create_args *a) {
  free(*a->answer);
  *a->answer = NULL;
  *a->answer_len = 0;
  *a->answer_code = 0;
}

/* Forgets what one attempt read and built (the answer stays). */
static void drop_attempt(create_args *a) {
  db_result_free(a->key_row);
  db_result_free(a->table_row);
  db_result_free(a->locked); /* the items' names pointed into it */
  a->key_row = a->table_row = a->locked = NULL;
  for (size_t i = 0; i < a->nev; i++) free(a->payload[i]);
  a->nev = 0;
  a->total = 0;
  a->nlimited = 0;
  a->key_expired = false;
}

/* Round 1: the key's lock and row, the table, and the products locked in
 * id order (no deadlocks: store.h), in one round trip. A key held by a
 * twin still running also waits here for the twin's product locks, and
 * is then answered STORE_KEY_BUSY or STORE_REPLAY. */
static int read_and_lock(db_conn *c, create_args *a) {
  db_stmt v[3];
  db_result *out[3] = {NULL, NULL, NULL};
  size_t n = 0, key = 3, table = 3;
  if (a->idem) {
    int rc = idem_begin_stmt(&a->ref, &a->key_stmt);
    if (rc != ERR_OK) return rc;
    key = n;
    v[n++] = a->key_stmt.stmt;
  }
  db_param tps[] = {db_text(a->tid), db_text(a->in->table_id)};
  if (a->has_table) {
    table = n;
    v[n++] = (db_stmt){.sql = TABLE_SQL, .params = tps, .nparams = 2};
  }
  db_param lps[] = {db_text(a->tid), db_text(a->ids)};
  size_t lock = n;
  v[n++] = (db_stmt){.sql = LOCK_PRODUCTS_SQL, .params = lps, .nparams = 2};
  int rc = db_exec_pipeline(c, v, n, out);
  a->key_row = key < n ? out[key] : NULL;
  a->table_row = table < n ? out[table] : NULL;
  a->locked = out[lock];
  return rc;
}

/* The key's row: go on (an expired row is deleted in round 2), or the
 * answer replay (its saved bytes), reused or busy. */
static int idem_check(create_args *a) {
  if (!a->idem) return ERR_OK;
  idem_found f;
  int rc = idem_begin_result(&a->ref, a->key_row, &f, &a->key_expired);
  if (rc != ERR_OK) return rc;
  store_answer ans = {0};
  store_idem_answer(&f, a->res, &ans);
  if (a->res->outcome == STORE_REPLAY) {
    *a->answer = ans.bytes; /* handed over */
    *a->answer_len = ans.len;
    *a->answer_code = ans.code;
  } else {
    store_answer_clear(&ans);
  }
  return ERR_OK;
}

/* The table, if given, must be this tenant's: a violation otherwise,
 * answered together with the products' (check_products). */
static void check_table(create_args *a) {
  if (a->has_table && db_nrows(a->table_row) != 1)
    vlist_add(&a->res->violations, "is not a table of this tenant", "table_id");
}

/* Row of the locked products whose id is id, or -1. */
static int find_row(const create_args *a, const char *id) {
  for (int i = 0; i < db_nrows(a->locked); i++)
    if (strcmp(store_cell(a->locked, i, a->col.id), id) == 0) return i;
  return -1;
}

/* The locked rows' columns, and each line's row. */
static int find_rows(create_args *a) {
  const db_result *r = a->locked;
  locked_cols *k = &a->col;
  k->id = db_col(r, "id");
  k->name = db_col(r, "name");
  k->price = db_col(r, "price_cents");
  k->stock = db_col(r, "stock");
  k->threshold = db_col(r, "low_stock_threshold");
  k->active = db_col(r, "active");
  k->live = db_col(r, "live");
  if (k->id < 0 || k->name < 0 || k->price < 0 || k->stock < 0 ||
      k->threshold < 0 || k->active < 0 || k->live < 0)
    return ERR_INTERNAL; /* the SQL above and these names disagree */
  for (size_t i = 0; i < a->in->nlines; i++)
    a->row[i] = find_row(a, a->in->product_ids[i]);
  return ERR_OK;
}

/* Each line's product exists in this tenant, is not deleted and is
 * active; with the table's violation, any of these is STORE_INVALID. */
static int check_products(create_args *a) {
  vlist *v = &a->res->violations;
  for (size_t i = 0; i < a->in->nlines; i++) {
    bool active = false, live = false;
    if (a->row[i] >= 0) {
      int rc = db_get_bool(a->locked, a->row[i], a->col.active, &active);
      if (rc == ERR_OK)
        rc = db_get_bool(a->locked, a->row[i], a->col.live, &live);
      if (rc != ERR_OK) return rc;
    }
    if (a->row[i] < 0 || !live)
      vlist_add(v, "no such product on this menu", "items[%zu].product_id", i);
    else if (!active)
      vlist_add(v, "is not available", "items[%zu].product_id", i);
  }
  if (v->n > 0) store_answer_with(a->res, STORE_INVALID);
  return ERR_OK;
}

/* The lines from the locked rows (names, prices, totals) and the stock
 * check: a short line is STORE_PRECONDITION naming its quantity. */
static int price_lines(create_args *a) {
  const db_result *r = a->locked;
  vlist *v = &a->res->violations;
  for (size_t i = 0; i < a->in->nlines; i++) {
    int row = a->row[i];
    model_item *it = &a->items[i];
    it->product_id = a->in->product_ids[i];
    it->name = store_cell(r, row, a->col.name);
    it->quantity = a->in->quantities[i];
    int rc = db_get_int64(r, row, a->col.price, &it->unit_price_cents);
    if (rc != ERR_OK) return rc;
    it->line_total_cents = it->unit_price_cents * it->quantity;
    a->total += it->line_total_cents;
    if (db_is_null(r, row, a->col.stock)) continue; /* unlimited */
    int64_t stock = 0;
    rc = db_get_int64(r, row, a->col.stock, &stock);
    if (rc != ERR_OK) return rc;
    if (stock < it->quantity)
      vlist_add(v, "is more than the stock left", "items[%zu].quantity", i);
    a->limited_id[a->nlimited] = it->product_id;
    a->limited_qty[a->nlimited++] = it->quantity;
  }
  if (v->n > 0) {
    store_answer_with(a->res, STORE_PRECONDITION);
    str_copy(a->res->message, "not enough stock", sizeof a->res->message);
  }
  return ERR_OK;
}

/* stock -= quantity for the limited products (the locked values
 * guarantee >= 0; the CHECK is the wall), version + 1: round 2's
 * statement, or none. */
static int take_stock_stmt(create_args *a, db_stmt *v, size_t *n) {
  if (a->nlimited == 0) return ERR_OK;
  int rc = store_id_array(a->limited_id, a->nlimited, a->lids, sizeof a->lids);
  if (rc == ERR_OK)
    rc = store_int_array(a->limited_qty, a->nlimited, a->lqs, sizeof a->lqs);
  if (rc != ERR_OK) return rc;
  a->stock_ps[0] = db_text(a->tid);
  a->stock_ps[1] = db_text(a->lids);
  a->stock_ps[2] = db_text(a->lqs);
  v[(*n)++] = (db_stmt){.sql = TAKE_STOCK_SQL,
                        .params = a->stock_ps,
                        .nparams = DB_NPARAMS(a->stock_ps)};
  return ERR_OK;
}

/* The order and its lines (INSERT_ORDER_SQL). created_at (and
 * updated_at, version 1) is the id's own millisecond, not the
 * transaction's start: lists sort by id, and a time taken anywhere else
 * could disagree with that order under concurrency (README, "Lists"). */
static db_stmt insert_order_stmt(create_args *a) {
  const store_order_new *in = a->in;
  db_param *ps = a->order_ps;
  ps[0] = db_text(a->tid);
  ps[1] = db_text(in->id);
  ps[2] = db_int64(a->total);
  ps[3] = db_text(in->currency);
  ps[4] = db_text(a->has_table ? in->table_id : NULL);
  ps[5] = db_text(in->notes ? in->notes : "");
  ps[6] =
      db_text(in->customer_id && in->customer_id[0] ? in->customer_id : NULL);
  ps[7] = db_text(a->ids);
  ps[8] = db_text(a->qtys);
  ps[9] = db_text(a->at);
  return (db_stmt){.sql = INSERT_ORDER_SQL,
                   .params = ps,
                   .nparams = DB_NPARAMS(a->order_ps)};
}

/* The new order as the events and the answer show it. */
static model_order new_order(const create_args *a) {
  const store_order_new *in = a->in;
  model_order o = {
      .id = in->id,
      .status = OS_PENDING,
      .currency = in->currency,
      .table_id = a->has_table ? in->table_id : "",
      .notes = in->notes ? in->notes : "",
      .customer_id = in->customer_id ? in->customer_id : "",
      .total_cents = a->total,
      .version = 1,
      .created_ms = a->created_ms,
      .updated_ms = a->created_ms,
      .items = a->items,
      .nitems = in->nlines,
  };
  return o;
}

/* One event for round 2; takes payload (the outcome of its wire_ call). */
static int add_event(create_args *a, int rc, const char *family,
                     const char *type, uint8_t *payload, size_t len) {
  if (rc != ERR_OK) return rc;
  size_t i = a->nev++;
  a->payload[i] = payload;
  return store_event_stmt(family, a->tid, type, payload, len, a->topic[i],
                          &a->ev[i]);
}

/* OrderCreated and KitchenTicket; StockLow for each product this order
 * takes under its threshold (it was not under it before). */
static int build_events(create_args *a, const model_order *o) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = wire_order_created(o, &buf, &len);
  rc = add_event(a, rc, "orders", "OrderCreated", buf, len);
  if (rc == ERR_OK) rc = wire_kitchen_ticket(o, &buf, &len);
  rc = add_event(a, rc, "kitchen", "KitchenTicket", buf, len);
  const db_result *r = a->locked;
  for (size_t i = 0; i < a->in->nlines && rc == ERR_OK; i++) {
    int row = a->row[i];
    if (db_is_null(r, row, a->col.stock)) continue;
    int64_t stock = 0, thr = 0;
    rc = db_get_int64(r, row, a->col.stock, &stock);
    if (rc == ERR_OK) rc = db_get_int64(r, row, a->col.threshold, &thr);
    int64_t after = stock - a->in->quantities[i];
    if (rc != ERR_OK || store_stock_low(true, stock, thr) ||
        !store_stock_low(true, after, thr))
      continue;
    const char *name = store_cell(r, row, a->col.name);
    buf = NULL;
    rc = wire_stock_low(a->in->product_ids[i], name, after, thr, &buf, &len);
    rc = add_event(a, rc, "orders", "StockLow", buf, len);
  }
  return rc;
}

/* The CreateOrderResponse into *a->answer and, with a key, the statement
 * that saves it (a twin that saved first makes round 2 fail on the key's
 * primary key: STORE_KEY_BUSY, store_create_order). */
static int build_answer(create_args *a, const model_order *o) {
  int rc = wire_create_order_response(o, a->answer, a->answer_len);
  if (rc != ERR_OK || !a->idem) return rc;
  *a->answer_code = 0; /* RPC_OK */
  return idem_insert_stmt(&a->ref, *a->answer_code, *a->answer, *a->answer_len,
                          &a->key_stmt);
}

/* Round 2: every write and COMMIT in one round trip. */
static int write_and_commit(db_conn *c, create_args *a) {
  db_stmt v[4 + ORDER_EVENTS_MAX];
  size_t n = 0;
  int rc = ERR_OK;
  if (a->key_expired) {
    rc = idem_forget_stmt(&a->ref, &a->forget_stmt);
    v[n++] = a->forget_stmt.stmt;
  }
  if (rc == ERR_OK) rc = take_stock_stmt(a, v, &n);
  if (rc != ERR_OK) return rc;
  v[n++] = insert_order_stmt(a);
  for (size_t i = 0; i < a->nev; i++) v[n++] = a->ev[i].stmt;
  if (a->idem) v[n++] = a->key_stmt.stmt;
  return db_exec_commit(c, v, n, NULL);
}

/* A step may run: nothing failed and nothing was answered yet. */
static bool go_on(int rc, const create_args *a) {
  return rc == ERR_OK && !store_answered(a->res);
}

static int create_order_fn(db_conn *c, void *ud) {
  create_args *a = ud;
  drop_answer(a);
  drop_attempt(a);
  int rc = read_and_lock(c, a);
  if (go_on(rc, a)) rc = idem_check(a);
  if (go_on(rc, a)) check_table(a);
  if (go_on(rc, a)) rc = find_rows(a);
  if (go_on(rc, a)) rc = check_products(a);
  if (go_on(rc, a)) rc = price_lines(a);
  model_order o = new_order(a);
  if (go_on(rc, a)) rc = build_events(a, &o);
  if (go_on(rc, a)) rc = build_answer(a, &o);
  if (go_on(rc, a)) rc = write_and_commit(c, a);
  if (go_on(rc, a)) a->res->menu_changed = a->nlimited > 0;
  drop_attempt(a);
  return rc;
}

/* What every attempt shares: the key, the id arrays, the creation time
 * (the id's UUIDv7 milliseconds). */
static int create_args_init(create_args *a) {
  const store_order_new *in = a->in;
  a->idem = in->idem_key != NULL && in->idem_key[0] != '\0';
  a->has_table = in->table_id != NULL && in->table_id[0] != '\0';
  a->key = (store_idem){.key = in->idem_key,
                        .principal = in->principal,
                        .method = in->method,
                        .request_hash = in->request_hash,
                        .ttl_ms = in->idem_ttl_ms};
  a->ref = store_idem_ref(a->tid, &a->key);
  uuid id;
  int rc = uuid_parse(in->id, strlen(in->id), &id);
  if (rc == ERR_OK) a->created_ms = uuid_v7_time_ms(&id);
  if (rc == ERR_OK) rc = time_format_rfc3339(a->created_ms, a->at);
  if (rc == ERR_OK)
    rc = store_id_array(in->product_ids, in->nlines, a->ids, sizeof a->ids);
  if (rc == ERR_OK)
    rc = store_int_array(in->quantities, in->nlines, a->qtys, sizeof a->qtys);
  return rc;
}

int store_create_order(store *st, const char *tid, const store_order_new *in,
                       store_result *res, uint8_t **answer, size_t *answer_len,
                       int *answer_code) {
  *answer = NULL;
  *answer_len = 0;
  *answer_code = 0;
  store_result_reset(res); /* fn may never run (no connection) */
  if (in->nlines == 0 || in->nlines > ORDER_LINES_MAX) return ERR_INVAL;
  create_args *a = calloc(1, sizeof *a);
  if (a == NULL) return ERR_NOMEM;
  a->tid = tid;
  a->in = in;
  a->res = res;
  a->answer = answer;
  a->answer_len = answer_len;
  a->answer_code = answer_code;
  int rc = create_args_init(a);
  if (rc == ERR_OK) rc = store_run_write(st, tid, create_order_fn, a, res);
  if (rc == ERR_EXISTS && a->idem &&
      strcmp(db_last_error()->constraint, "idempotency_pkey") == 0) {
    /* Only possible if the advisory lock hashed two keys alike and both
     * ran at once: answer as for a concurrent duplicate. */
    store_result_reset(res);
    store_answer_with(res, STORE_KEY_BUSY);
    rc = ERR_OK;
  }
  rc = store_finish(rc, res);
  bool keep = rc == ERR_OK &&
              (res->outcome == STORE_OK || res->outcome == STORE_REPLAY);
  if (!keep) drop_answer(a);
  free(a);
  return rc;
}

/* ------------------------------------------------------- status changes --- */

typedef struct status_args {
  const char *tid;
  const store_status_change *ch;
  store_result *res;
  store_orders *out;
  store_answer *ans;
} status_args;

/* With a key: the answer ({order}, the same bytes for UpdateOrderStatus
 * and CancelOrder) saved in the change's transaction. */
static int save_status_answer(db_conn *c, status_args *a) {
  if (!store_idem_on(a->ch->idem)) return ERR_OK;
  wire_order *w = malloc(sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  wire_order_init(w, &a->out->v[0]);
  Orders__V1__UpdateOrderStatusResponse resp =
      ORDERS__V1__UPDATE_ORDER_STATUS_RESPONSE__INIT;
  resp.order = &w->msg;
  store_answer_clear(a->ans);
  int rc = wire_pack(&resp.base, &a->ans->bytes, &a->ans->len);
  free(w);
  return rc == ERR_OK ? store_idem_save(c, a->tid, a->ch->idem, a->res, a->ans)
                      : rc;
}

static int change_status_fn(db_conn *c, void *ud) {
  status_args *a = ud;
  const store_status_change *ch = a->ch;
  store_orders_free(a->out);
  store_answer_clear(a->ans);
  int rc = ERR_OK;
  if (store_idem_on(ch->idem)) {
    rc = store_idem_begin(c, a->tid, ch->idem, a->res, a->ans);
    if (rc != ERR_OK || store_answered(a->res)) return rc;
  }
  db_param key[] = {db_text(a->tid), db_text(ch->id)};
  db_result *r = NULL;
  rc = db_exec(c,
               "SELECT status, version, coalesce(customer_id::text, '') "
               "FROM orders.orders WHERE tenant_id = $1::uuid AND "
               "id = $2::uuid FOR UPDATE",
               key, 2, &r);
  if (rc != ERR_OK) return rc;
  if (db_nrows(r) != 1 || (ch->customer != NULL &&
                           strcmp(store_cell(r, 0, 2), ch->customer) != 0)) {
    db_result_free(r);
    store_answer_with(a->res, STORE_NOT_FOUND);
    return ERR_OK;
  }
  order_status from = orderstate_parse(store_cell(r, 0, 0));
  int64_t version = 0;
  rc = db_get_int64(r, 0, 1, &version);
  db_result_free(r);
  if (rc != ERR_OK) return rc;
  if (ch->check_version && ch->version != version) {
    store_answer_with(a->res, STORE_STALE);
    return ERR_OK;
  }
  bool ok = ch->customer != NULL
                ? ch->to == OS_CANCELLED && orderstate_can_cancel(from, false)
                : orderstate_can_move(from, ch->to);
  if (!ok) {
    const char *f = orderstate_name(from), *t = orderstate_name(ch->to);
    if (ch->to == OS_CANCELLED)
      snprintf(a->res->message, sizeof a->res->message,
               "a %s order cannot be cancelled%s", f ? f : "?",
               ch->customer != NULL && from != OS_CANCELLED
                   ? " by its customer (only while pending)"
                   : "");
    else
      snprintf(a->res->message, sizeof a->res->message,
               "a %s order cannot move to %s", f ? f : "?", t ? t : "?");
    store_answer_with(a->res, STORE_PRECONDITION);
    return ERR_OK;
  }

  if (ch->to == OS_CANCELLED) {
    /* Restock: the lines' products, locked in id order like CreateOrder. */
    rc = db_exec(c,
                 "SELECT p.id FROM orders.products p JOIN orders.order_items i "
                 "ON i.tenant_id = p.tenant_id AND i.product_id = p.id "
                 "WHERE i.tenant_id = $1::uuid AND i.order_id = $2::uuid "
                 "ORDER BY p.id FOR UPDATE OF p",
                 key, 2, NULL);
    if (rc == ERR_OK)
      rc = db_exec(c,
                   "UPDATE orders.products p SET stock = p.stock + i.quantity, "
                   "version = p.version + 1, updated_at = now() FROM "
                   "orders.order_items i WHERE i.tenant_id = $1::uuid AND "
                   "i.order_id = $2::uuid AND p.tenant_id = $1::uuid AND "
                   "p.id = i.product_id AND p.stock IS NOT NULL",
                   key, 2, &r);
    if (rc != ERR_OK) return rc;
    a->res->menu_changed = db_affected(r) > 0;
    db_result_free(r);
    r = NULL;
  }
  db_param up[] = {db_text(a->tid), db_text(ch->id),
                   db_text(orderstate_name(ch->to))};
  rc = db_exec(c,
               "UPDATE orders.orders SET status = $3, version = version + 1, "
               "updated_at = now() WHERE tenant_id = $1::uuid AND "
               "id = $2::uuid RETURNING " ORDER_COLS,
               up, DB_NPARAMS(up), &r);
  if (rc != ERR_OK) return rc;
  rc = load_orders(c, a->tid, r, a->out);
  if (rc == ERR_OK && a->out->n != 1) rc = ERR_INTERNAL;
  if (rc == ERR_OK) rc = emit_order(c, a->tid, &a->out->v[0], false, from);
  if (rc == ERR_OK) rc = save_status_answer(c, a);
  return rc;
}

int store_change_status(store *st, const char *tid,
                        const store_status_change *c, store_result *res,
                        store_orders *out, store_answer *ans) {
  store_answer scratch = {0};
  if (ans == NULL) ans = &scratch;
  memset(out, 0, sizeof *out);
  memset(ans, 0, sizeof *ans);
  store_result_reset(res); /* fn may never run (no connection) */
  status_args *a = calloc(1, sizeof *a);
  if (a == NULL) return ERR_NOMEM;
  a->tid = tid;
  a->ch = c;
  a->res = res;
  a->out = out;
  a->ans = ans;
  int rc = store_run_write(st, tid, change_status_fn, a, res);
  if (rc == ERR_EXISTS && store_idem_on(c->idem) &&
      strcmp(db_last_error()->constraint, "idempotency_pkey") == 0) {
    /* A twin saved first (the advisory lock hashed two keys alike). */
    store_result_reset(res);
    store_answer_with(res, STORE_KEY_BUSY);
    rc = ERR_OK;
  }
  rc = store_finish(rc, res);
  if (rc != ERR_OK || res->outcome != STORE_OK) store_orders_free(out);
  if (rc != ERR_OK ||
      (res->outcome != STORE_OK && res->outcome != STORE_REPLAY))
    store_answer_clear(ans);
  store_answer_clear(&scratch);
  free(a);
  return rc;
}

/* ------------------------------------------------------ the change log --- */

typedef struct changes_args {
  const char *tid;
  int64_t after;
  size_t limit;
  store_changes *out;
} changes_args;

/* The ids of out's changes of entity, as array text (malloc'd). */
static char *ids_of(const store_changes *out, const char *entity) {
  size_t k = 0;
  const char **ids = calloc(out->n ? out->n : 1, sizeof *ids);
  if (ids == NULL) return NULL;
  for (size_t i = 0; i < out->n; i++)
    if (strcmp(out->v[i].entity, entity) == 0) ids[k++] = out->v[i].id;
  size_t cap = ID_ARRAY_CAP(k ? k : 1);
  char *arr = malloc(cap);
  if (arr != NULL && store_id_array(ids, k, arr, cap) != ERR_OK) {
    free(arr);
    arr = NULL;
  }
  free(ids);
  return arr;
}

/* The orders named by out's changes into out->orders_ (id DESC, as
 * load_orders wants). */
static int load_changed_orders(db_conn *c, const char *tid,
                               store_changes *out) {
  char *arr = ids_of(out, "order");
  if (arr == NULL) return ERR_NOMEM;
  db_param ps[] = {db_text(tid), db_text(arr)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " ORDER_COLS " FROM orders.orders WHERE "
                   "tenant_id = $1::uuid AND id = ANY($2::uuid[]) "
                   "ORDER BY id DESC",
                   ps, DB_NPARAMS(ps), &r);
  free(arr);
  return rc == ERR_OK ? load_orders(c, tid, r, &out->orders_) : rc;
}

/* An entity's id and its index in its list: link_changes looks each
 * change's entity up in a sorted array of these (a page of 1000 changes
 * used to compare every change with every loaded entity: a million
 * strcmp per page, the biggest CPU cost of ListChanges in the profile,
 * docs/PERFORMANCE.md "Sync"). */
typedef struct id_ref {
  const char *id;
  size_t i;
} id_ref;

static int id_ref_cmp(const void *a, const void *b) {
  return strcmp(((const id_ref *)a)->id, ((const id_ref *)b)->id);
}

/* The ids of n elements of size stride at base, each a const char * at
 * offset off, sorted (malloc'd; NULL when out of memory). */
static id_ref *id_index(const void *base, size_t n, size_t stride, size_t off) {
  id_ref *ix = calloc(n ? n : 1, sizeof *ix);
  if (ix == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    ix[i].id = *(const char *const *)((const char *)base + i * stride + off);
    ix[i].i = i;
  }
  qsort(ix, n, sizeof *ix, id_ref_cmp);
  return ix;
}

/* The index of id in ix (n sorted refs), or -1. */
static long id_find(const id_ref *ix, size_t n, const char *id) {
  const id_ref key = {.id = id};
  const id_ref *r = n ? bsearch(&key, ix, n, sizeof *ix, id_ref_cmp) : NULL;
  return r != NULL ? (long)r->i : -1;
}

/* Links each of out's changes to its loaded entity (none when it is
 * gone: a delete). */
static int link_changes(store_changes *out) {
  id_ref *io = id_index(out->orders_.v, out->orders_.n, sizeof(model_order),
                        offsetof(model_order, id));
  id_ref *ip = id_index(out->products_.v, out->products_.n,
                        sizeof(model_product), offsetof(model_product, id));
  id_ref *it = id_index(out->tables_.v, out->tables_.n, sizeof(model_table),
                        offsetof(model_table, id));
  int rc = io != NULL && ip != NULL && it != NULL ? ERR_OK : ERR_NOMEM;
  for (size_t i = 0; rc == ERR_OK && i < out->n; i++) {
    store_change *ch = &out->v[i];
    long j;
    if (strcmp(ch->entity, "order") == 0 &&
        (j = id_find(io, out->orders_.n, ch->id)) >= 0)
      ch->order = &out->orders_.v[j];
    else if (strcmp(ch->entity, "product") == 0 &&
             (j = id_find(ip, out->products_.n, ch->id)) >= 0)
      ch->product = &out->products_.v[j];
    else if (strcmp(ch->entity, "table") == 0 &&
             (j = id_find(it, out->tables_.n, ch->id)) >= 0)
      ch->table = &out->tables_.v[j];
  }
  free(io);
  free(ip);
  free(it);
  return rc;
}

/* The products, then the tables, named by out's changes. */
static int load_changed_products(db_conn *c, const char *tid,
                                 store_changes *out) {
  char *arr = ids_of(out, "product");
  if (arr == NULL) return ERR_NOMEM;
  int rc = store_read_products_by_ids(c, tid, arr, &out->products_);
  free(arr);
  return rc;
}

static int load_changed_tables(db_conn *c, const char *tid,
                               store_changes *out) {
  char *arr = ids_of(out, "table");
  if (arr == NULL) return ERR_NOMEM;
  int rc = store_read_tables_by_ids(c, tid, arr, &out->tables_);
  free(arr);
  return rc;
}

/* Whether out has a change of entity. */
static bool has_entity(const store_changes *out, const char *entity) {
  for (size_t i = 0; i < out->n; i++)
    if (strcmp(out->v[i].entity, entity) == 0) return true;
  return false;
}

/* Every entity named by out's changes, linked to its change. A kind the
 * page does not name is not queried: each query is a round trip, and on
 * a loaded machine a page's time is mostly its round trips
 * (docs/PERFORMANCE.md "Sync"). */
static int load_changed(db_conn *c, const char *tid, store_changes *out) {
  int rc = ERR_OK;
  if (has_entity(out, "order")) rc = load_changed_orders(c, tid, out);
  if (rc == ERR_OK && has_entity(out, "product"))
    rc = load_changed_products(c, tid, out);
  if (rc == ERR_OK && has_entity(out, "table"))
    rc = load_changed_tables(c, tid, out);
  return rc == ERR_OK ? link_changes(out) : rc;
}

static int changes_fn(db_conn *c, void *ud) {
  changes_args *a = ud;
  store_changes *out = a->out;
  store_changes_free(out);
  db_param t[] = {db_text(a->tid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT last, pruned_through FROM orders.change_seq "
                   "WHERE tenant_id = $1::uuid",
                   t, 1, &r);
  if (rc == ERR_OK && db_nrows(r) == 1) {
    rc = db_get_int64(r, 0, 0, &out->last);
    if (rc == ERR_OK) rc = db_get_int64(r, 0, 1, &out->pruned_through);
  }
  db_result_free(r);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_text(a->tid), db_int64(a->after),
                   db_int64((int64_t)a->limit + 1)};
  rc = db_exec(c,
               "SELECT seq, entity, entity_id::text AS id, op, version FROM "
               "orders.changes WHERE tenant_id = $1::uuid AND seq > $2 "
               "ORDER BY seq LIMIT $3",
               ps, DB_NPARAMS(ps), &out->res_);
  if (rc != ERR_OK) return rc;
  size_t n = (size_t)db_nrows(out->res_);
  out->more = n > a->limit;
  if (out->more) n = a->limit;
  out->v = calloc(n ? n : 1, sizeof *out->v);
  if (out->v == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < n && rc == ERR_OK; i++) {
    store_change *ch = &out->v[i];
    rc = db_get_int64(out->res_, (int)i, 0, &ch->seq);
    ch->entity = store_cell(out->res_, (int)i, 1);
    ch->id = store_cell(out->res_, (int)i, 2);
    ch->op = store_cell(out->res_, (int)i, 3);
    if (rc == ERR_OK) rc = db_get_int64(out->res_, (int)i, 4, &ch->version);
  }
  out->n = n;
  return rc == ERR_OK ? load_changed(c, a->tid, out) : rc;
}

void store_changes_free(store_changes *c) {
  if (c == NULL) return;
  store_orders_free(&c->orders_);
  store_products_free(&c->products_);
  store_tables_free(&c->tables_);
  db_result_free(c->res_);
  free(c->v);
  memset(c, 0, sizeof *c);
}

int store_list_changes(store *st, const char *tid, int64_t after, size_t limit,
                       store_changes *out) {
  memset(out, 0, sizeof *out);
  changes_args a = {.tid = tid, .after = after, .limit = limit, .out = out};
  /* The orders are read after the log in the same transaction: one may
   * be newer than its row of the log (its newer change then also comes
   * in a later page), never older. */
  int rc = store_run_tx(st, tid, true, changes_fn, &a);
  if (rc != ERR_OK) store_changes_free(out);
  return rc;
}
