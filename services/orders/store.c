/*
 * store.c - the orders service's SQL, part one: set-up, the shared
 * transaction helpers, products, tables and the janitor's deletes (the
 * orders are in store_orders.c; store.h has the transaction design).
 *
 * Each public function is a struct of arguments plus a static function
 * run inside db_with_tx, so every statement is parameterised, a change
 * and its outbox events commit together, and a deadlock or serialisation
 * failure retries the whole unit (the functions reset their outputs at
 * the start of every attempt). An outcome that is an answer rather than
 * a failure (not found, stale version, no stock, ...) is recorded in the
 * store_result (store_answer_with) and the function returns ERR_OK;
 * store_run_write sees the answer and rolls the transaction back, and the
 * public wrapper returns ERR_OK with it. Errors travel only as return
 * codes and always win over a recorded answer (store_internal.h).
 *
 * Lists of ids travel as one array parameter ('{id,id}'::uuid[]): the
 * elements are canonical UUIDs or integers the store formatted itself,
 * never caller text. Times leave the database as Unix milliseconds and
 * are formatted in wire.c.
 */
#include "services/orders/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/idem/idem.h"
#include "libs/outbox/outbox.h"
#include "services/orders/store_internal.h"
#include "services/orders/wire.h"

/* Columns of a product row, in the order read_products reads them. */
#define PRODUCT_COLS                                                           \
  "id::text, name, description, category, price_cents, stock, "                \
  "low_stock_threshold, active, version, " MS("created_at") ", " MS(           \
      "updated_at")

#define TABLE_COLS "id::text, label, " MS("created_at")

/* ------------------------------------------------------------ set-up --- */

int store_new(db_pool *db, const char *role, store **out) {
  return db_store_new(db, role, out);
}

void store_free(store *st) { db_store_free(st); }

/* ---------------------------------------------------------- containers --- */

void store_products_free(store_products *p) {
  if (p == NULL) return;
  free(p->v);
  db_result_free(p->res_);
  memset(p, 0, sizeof *p);
}

void store_tables_free(store_tables *t) {
  if (t == NULL) return;
  free(t->v);
  db_result_free(t->res_);
  memset(t, 0, sizeof *t);
}

void store_orders_free(store_orders *o) {
  if (o == NULL) return;
  free(o->v);
  free(o->items_);
  db_result_free(o->orders_res_);
  db_result_free(o->items_res_);
  memset(o, 0, sizeof *o);
}

void store_result_reset(store_result *res) {
  res->outcome = STORE_OK;
  vlist_init(&res->violations);
  res->message[0] = '\0';
  res->menu_changed = false;
}

/* ------------------------------------------------------------ helpers --- */

/* The janitor's policy switch: the scope of work across tenants. */
#define ORDERS_JANITOR "app.orders_janitor"

/* Runs fn in a transaction as the store's role, scoped to tenant tid
 * (NULL: the janitor, app.orders_janitor = 'on'). */
int store_run_tx(store *st, const char *tid, bool read_only,
                 int (*fn)(db_conn *c, void *ud), void *ud) {
  static const db_setting janitor[] = {{ORDERS_JANITOR, "on"}};
  /* BEGIN and the settings ride with the first statement (libs/db). */
  db_tx_opts o = {
      .tenant_id = tid, .read_only = read_only, .defer_begin = true};
  if (tid == NULL) {
    o.settings = janitor;
    o.nsettings = 1;
  }
  return db_store_tx(st, &o, fn, ud);
}

/* What the write runner hands to db_with_tx around a transaction
 * function. */
typedef struct write_tx {
  int (*fn)(db_conn *c, void *ud);
  void *ud;
  store_result *res;
  bool answered; /* this attempt ended with an answer, not an error */
} write_tx;

/* Returned to db_with_tx (which rolls back on anything but ERR_OK and
 * hands it back unchanged) when fn answered. Not an err_code, and never
 * leaves store_run_write: the answered flag, not this value, says that
 * the attempt answered. */
#define TX_ROLLBACK (-1)

static int write_tx_fn(db_conn *c, void *ud) {
  write_tx *w = ud;
  w->answered = false;
  store_result_reset(w->res);
  int rc = w->fn(c, w->ud);
  if (rc != ERR_OK)
    return rc; /* an error wins over any answer recorded before it */
  if (!store_answered(w->res)) return ERR_OK; /* commit */
  w->answered = true;
  return TX_ROLLBACK;
}

int store_run_write(store *st, const char *tid, int (*fn)(db_conn *c, void *ud),
                    void *ud, store_result *res) {
  write_tx w = {.fn = fn, .ud = ud, .res = res, .answered = false};
  store_result_reset(res); /* fn may never run (no connection) */
  int rc = store_run_tx(st, tid, false, write_tx_fn, &w);
  if (w.answered && rc == TX_ROLLBACK) return ERR_OK;
  if (rc == TX_ROLLBACK) /* cannot happen: only an answer returns it */
    rc = ERR_INTERNAL;
  return rc;
}

void store_answer_with(store_result *res, enum store_outcome o) {
  res->outcome = o;
}

bool store_answered(const store_result *res) {
  return res->outcome != STORE_OK;
}

/* The text of a cell; "" for NULL (model strings are never NULL). */
const char *store_cell(const db_result *r, int row, int col) {
  return db_cell(r, row, col);
}

static int read_products(db_result *r, store_products *out) {
  int n = db_nrows(r);
  out->res_ = r;
  out->v = calloc(n > 0 ? (size_t)n : 1, sizeof *out->v);
  if (out->v == NULL) return ERR_NOMEM;
  out->n = 0;
  for (int i = 0; i < n; i++) {
    model_product *p = &out->v[i];
    p->id = store_cell(r, i, 0);
    p->name = store_cell(r, i, 1);
    p->description = store_cell(r, i, 2);
    p->category = store_cell(r, i, 3);
    int rc = db_get_int64(r, i, 4, &p->price_cents);
    p->has_stock = !db_is_null(r, i, 5);
    if (rc == ERR_OK && p->has_stock) rc = db_get_int64(r, i, 5, &p->stock);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 6, &p->low_stock_threshold);
    if (rc == ERR_OK) rc = db_get_bool(r, i, 7, &p->active);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 8, &p->version);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 9, &p->created_ms);
    if (rc == ERR_OK) rc = db_get_int64(r, i, 10, &p->updated_ms);
    if (rc != ERR_OK) return rc;
    out->n++;
  }
  return ERR_OK;
}

/* Runs a product query into out (which then owns the result). */
static int query_products(db_conn *c, const char *sql, const db_param *ps,
                          int n, store_products *out) {
  store_products_free(out);
  db_result *r = NULL;
  int rc = db_exec(c, sql, ps, n, &r);
  if (rc != ERR_OK) return rc;
  rc = read_products(r, out);
  if (rc != ERR_OK) store_products_free(out);
  return rc;
}

static int read_tables(db_result *r, store_tables *out) {
  int n = db_nrows(r);
  out->res_ = r;
  out->v = calloc(n > 0 ? (size_t)n : 1, sizeof *out->v);
  if (out->v == NULL) return ERR_NOMEM;
  out->n = 0;
  for (int i = 0; i < n; i++) {
    model_table *t = &out->v[i];
    t->id = store_cell(r, i, 0);
    t->label = store_cell(r, i, 1);
    int rc = db_get_int64(r, i, 2, &t->created_ms);
    if (rc != ERR_OK) return rc;
    out->n++;
  }
  return ERR_OK;
}

/* Appends "{a,b,c}" of canonical ids to buf. ERR_TOOBIG when it does not
 * fit. */
int store_id_array(const char *const *ids, size_t n, char *buf, size_t cap) {
  size_t at = 0;
  if (cap < 3) return ERR_TOOBIG;
  buf[at++] = '{';
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(ids[i]);
    if (at + len + 2 >= cap) return ERR_TOOBIG;
    if (i > 0) buf[at++] = ',';
    memcpy(buf + at, ids[i], len);
    at += len;
  }
  buf[at++] = '}';
  buf[at] = '\0';
  return ERR_OK;
}

int store_int_array(const int32_t *v, size_t n, char *buf, size_t cap) {
  size_t at = 0;
  int w = snprintf(buf, cap, "{");
  at = (size_t)w;
  for (size_t i = 0; i < n; i++) {
    w = snprintf(buf + at, cap - at, "%s%" PRId32, i > 0 ? "," : "", v[i]);
    if (w < 0 || (size_t)w >= cap - at) return ERR_TOOBIG;
    at += (size_t)w;
  }
  if (at + 2 > cap) return ERR_TOOBIG;
  buf[at++] = '}';
  buf[at] = '\0';
  return ERR_OK;
}

int store_event_stmt(const char *family, const char *tid, const char *type,
                     const uint8_t *payload, size_t len,
                     char topic[WIRE_TOPIC_MAX], outbox_stmt *out) {
  wire_topic(family, tid, topic);
  outbox_event ev = {.topic = topic,
                     .type = type,
                     .tenant_id = tid,
                     .payload = payload,
                     .len = len,
                     .event_id_out = NULL};
  return outbox_append_stmt(STORE_SCHEMA, &ev, out);
}

/* Writes one event into the outbox on c; takes ownership of payload. */
int store_emit(db_conn *c, const char *family, const char *tid,
               const char *type, uint8_t *payload, size_t len) {
  char topic[WIRE_TOPIC_MAX];
  outbox_stmt st;
  int rc = store_event_stmt(family, tid, type, payload, len, topic, &st);
  if (rc == ERR_OK) rc = db_exec(c, st.sql, st.ps, st.stmt.nparams, NULL);
  free(payload);
  return rc;
}

/* Stock "is low" when limited and under the threshold. */
bool store_stock_low(bool has_stock, int64_t stock, int64_t threshold) {
  return has_stock && stock < threshold;
}

int store_emit_stock_low(db_conn *c, const char *tid, const char *id,
                         const char *name, int64_t stock, int64_t threshold) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = wire_stock_low(id, name, stock, threshold, &buf, &len);
  if (rc == ERR_OK) rc = store_emit(c, "orders", tid, "StockLow", buf, len);
  return rc;
}

static int emit_product(db_conn *c, const char *tid, const model_product *p,
                        const char *change) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = wire_product_changed(p, change, &buf, &len);
  if (rc == ERR_OK)
    rc = store_emit(c, "orders", tid, "ProductChanged", buf, len);
  return rc;
}

/* The public wrappers: an error is returned alone (no outcome beside
 * it); an answer is ERR_OK with res->outcome set. */
int store_finish(int rc, store_result *res) {
  if (rc != ERR_OK) {
    store_result_reset(res);
    return rc;
  }
  if (store_answered(res)) res->menu_changed = false; /* rolled back */
  return ERR_OK;
}

/* -------------------------------------------------------- idempotency --- */

void store_answer_clear(store_answer *a) {
  if (a == NULL) return;
  free(a->bytes);
  memset(a, 0, sizeof *a);
}

bool store_idem_on(const store_idem *idem) {
  return idem != NULL && idem->key != NULL && idem->key[0] != '\0';
}

idem_ref store_idem_ref(const char *tid, const store_idem *idem) {
  idem_ref r = {.table = ORDERS_IDEM_TABLE,
                .tenant_id = tid,
                .principal = idem->principal,
                .key = idem->key,
                .method = idem->method ? idem->method : "",
                .hash = idem->request_hash,
                .ttl_ms = idem->ttl_ms,
                .lock_ns = ORDERS_IDEM_LOCK};
  return r;
}

void store_idem_answer(idem_found *f, store_result *res, store_answer *ans) {
  switch (f->outcome) {
  case IDEM_NEW:
    break;
  case IDEM_REPLAY:
    store_answer_clear(ans);
    ans->bytes = f->answer; /* handed over */
    ans->len = f->len;
    ans->code = f->code;
    f->answer = NULL;
    store_answer_with(res, STORE_REPLAY);
    break;
  case IDEM_REUSED:
    store_answer_with(res, STORE_KEY_REUSED);
    break;
  default:
    store_answer_with(res, STORE_KEY_BUSY);
    break;
  }
  idem_found_clear(f);
}

int store_idem_begin(db_conn *c, const char *tid, const store_idem *idem,
                     store_result *res, store_answer *ans) {
  if (!store_idem_on(idem)) return ERR_OK;
  idem_ref r = store_idem_ref(tid, idem);
  idem_found f;
  int rc = idem_begin(c, &r, &f);
  if (rc == ERR_OK) store_idem_answer(&f, res, ans);
  return rc;
}

int store_idem_save(db_conn *c, const char *tid, const store_idem *idem,
                    store_result *res, const store_answer *ans) {
  if (!store_idem_on(idem)) return ERR_OK;
  idem_ref r = store_idem_ref(tid, idem);
  int rc = idem_save(c, &r, ans->code, ans->bytes, ans->len);
  if (rc == ERR_EXISTS) {
    store_answer_with(res, STORE_KEY_BUSY);
    return ERR_OK;
  }
  return rc;
}

/* Packs m into ans (code OK) for saving with the key. */
static int answer_pack(const ProtobufCMessage *m, store_answer *ans) {
  store_answer_clear(ans);
  return wire_pack(m, &ans->bytes, &ans->len);
}

/* ------------------------------------------------------------ products --- */

typedef struct product_args {
  const char *tid, *id;
  const store_product_new *in;
  const store_product_patch *patch;
  const store_idem *idem;
  bool include_inactive;
  size_t cap;
  store_result *res;
  store_products *out;
  store_answer *ans;
} product_args;

/* The CreateProductResponse of p, saved with the key. */
static int save_product_answer(db_conn *c, product_args *a,
                               const model_product *p) {
  if (!store_idem_on(a->idem)) return ERR_OK;
  wire_product w;
  wire_product_init(&w, p);
  Orders__V1__CreateProductResponse r =
      ORDERS__V1__CREATE_PRODUCT_RESPONSE__INIT;
  r.product = &w.msg;
  int rc = answer_pack(&r.base, a->ans);
  return rc == ERR_OK ? store_idem_save(c, a->tid, a->idem, a->res, a->ans)
                      : rc;
}

static int create_product_fn(db_conn *c, void *ud) {
  product_args *a = ud;
  const store_product_new *in = a->in;
  store_products_free(a->out);
  store_answer_clear(a->ans);
  int rc = store_idem_begin(c, a->tid, a->idem, a->res, a->ans);
  if (rc != ERR_OK || store_answered(a->res)) return rc;
  /* Creates of one tenant take turns, so the count stays true. */
  db_param lk[] = {db_text(a->tid)};
  rc = db_exec(c,
               "SELECT pg_advisory_xact_lock(hashtextextended("
               "'orders.products|' || $1, 0))",
               lk, 1, NULL);
  db_result *r = NULL;
  if (rc == ERR_OK)
    rc = db_exec(c,
                 "SELECT count(*) FROM orders.products WHERE tenant_id = "
                 "$1::uuid AND deleted_at IS NULL",
                 lk, 1, &r);
  int64_t count = 0;
  if (rc == ERR_OK) rc = db_get_int64(r, 0, 0, &count);
  db_result_free(r);
  if (rc != ERR_OK) return rc;
  if (count >= (int64_t)in->max_products) {
    store_answer_with(a->res, STORE_PRECONDITION);
    str_copy(a->res->message, "the menu has the maximum number of products",
             sizeof a->res->message);
    return ERR_OK;
  }
  db_param ps[] = {db_text(a->tid),
                   db_text(in->id),
                   db_text(in->name),
                   db_text(in->description ? in->description : ""),
                   db_text(in->category ? in->category : ""),
                   db_int64(in->price_cents),
                   in->has_stock ? db_int64(in->stock) : db_null(),
                   db_int64(in->threshold),
                   db_bool(in->active)};
  rc = query_products(c,
                      "INSERT INTO orders.products (tenant_id, id, name, "
                      "description, category, price_cents, stock, "
                      "low_stock_threshold, active) VALUES ($1::uuid, "
                      "$2::uuid, $3, $4, $5, $6, $7::bigint, $8, $9) "
                      "RETURNING " PRODUCT_COLS,
                      ps, DB_NPARAMS(ps), a->out);
  if (rc != ERR_OK) return rc;
  if (a->out->n != 1) return ERR_INTERNAL;
  rc = emit_product(c, a->tid, &a->out->v[0], "created");
  if (rc == ERR_OK) rc = save_product_answer(c, a, &a->out->v[0]);
  if (rc == ERR_OK && !store_answered(a->res)) a->res->menu_changed = true;
  return rc;
}

/* A create's ending: an ERR_EXISTS of the key's row (a twin saved first)
 * is a busy key; the answer is kept only with STORE_OK / STORE_REPLAY. */
static int finish_create(int rc, const store_idem *idem, store_result *res,
                         store_answer *ans) {
  if (rc == ERR_EXISTS && store_idem_on(idem) &&
      strcmp(db_last_error()->constraint, "idempotency_pkey") == 0) {
    store_result_reset(res);
    store_answer_with(res, STORE_KEY_BUSY);
    rc = ERR_OK;
  }
  rc = store_finish(rc, res);
  if (rc != ERR_OK ||
      (res->outcome != STORE_OK && res->outcome != STORE_REPLAY))
    store_answer_clear(ans);
  return rc;
}

int store_create_product(store *st, const char *tid,
                         const store_product_new *in, const store_idem *idem,
                         store_result *res, store_products *out,
                         store_answer *ans) {
  store_answer scratch = {0};
  if (ans == NULL) ans = &scratch;
  memset(out, 0, sizeof *out);
  memset(ans, 0, sizeof *ans);
  store_result_reset(res); /* fn may never run (no connection) */
  product_args a = {
      .tid = tid, .in = in, .idem = idem, .res = res, .out = out, .ans = ans};
  int rc = finish_create(store_run_write(st, tid, create_product_fn, &a, res),
                         idem, res, ans);
  if (rc != ERR_OK || res->outcome != STORE_OK) store_products_free(out);
  store_answer_clear(&scratch);
  return rc;
}

static bool patch_empty(const store_product_patch *p) {
  return p->name == NULL && p->description == NULL && p->category == NULL &&
         !p->set_price && p->stock_change == STORE_STOCK_KEEP &&
         !p->set_active && !p->set_threshold;
}

static int update_product_fn(db_conn *c, void *ud) {
  product_args *a = ud;
  const store_product_patch *p = a->patch;
  store_products_free(a->out);
  db_param key[] = {db_text(a->tid), db_text(a->id)};
  store_products old = {0};
  int rc = query_products(c,
                          "SELECT " PRODUCT_COLS " FROM orders.products "
                          "WHERE tenant_id = $1::uuid AND id = $2::uuid AND "
                          "deleted_at IS NULL FOR UPDATE",
                          key, 2, &old);
  if (rc != ERR_OK) return rc;
  if (old.n != 1) {
    store_products_free(&old);
    store_answer_with(a->res, STORE_NOT_FOUND);
    return ERR_OK;
  }
  if (p->check_version && p->version != old.v[0].version) {
    store_products_free(&old);
    store_answer_with(a->res, STORE_STALE);
    return ERR_OK;
  }
  if (patch_empty(p)) {
    *a->out = old; /* unchanged: no version, no event */
    return ERR_OK;
  }
  bool was_low = store_stock_low(old.v[0].has_stock, old.v[0].stock,
                                 old.v[0].low_stock_threshold);
  store_products_free(&old);
  db_param ps[] = {
      db_text(a->tid),
      db_text(a->id),
      db_text(p->name),
      db_text(p->description),
      db_text(p->category),
      p->set_price ? db_int64(p->price_cents) : db_null(),
      db_int64((int64_t)p->stock_change),
      db_int64(p->stock_change == STORE_STOCK_SET ? p->stock : 0),
      p->set_active ? db_bool(p->active) : db_null(),
      p->set_threshold ? db_int64(p->threshold) : db_null(),
  };
  rc = query_products(
      c,
      "UPDATE orders.products SET name = coalesce($3, name), "
      "description = coalesce($4, description), "
      "category = coalesce($5, category), "
      "price_cents = coalesce($6::bigint, price_cents), "
      "stock = CASE $7::int WHEN 1 THEN $8::bigint WHEN 2 THEN NULL "
      "ELSE stock END, active = coalesce($9::boolean, active), "
      "low_stock_threshold = coalesce($10::bigint, low_stock_threshold), "
      "version = version + 1, updated_at = now() "
      "WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING " PRODUCT_COLS,
      ps, DB_NPARAMS(ps), a->out);
  if (rc != ERR_OK) return rc;
  if (a->out->n != 1) return ERR_INTERNAL;
  const model_product *np = &a->out->v[0];
  a->res->menu_changed = true;
  rc = emit_product(c, a->tid, np, "updated");
  if (rc == ERR_OK && !was_low &&
      store_stock_low(np->has_stock, np->stock, np->low_stock_threshold))
    rc = store_emit_stock_low(c, a->tid, np->id, np->name, np->stock,
                              np->low_stock_threshold);
  return rc;
}

int store_update_product(store *st, const char *tid, const char *id,
                         const store_product_patch *patch, store_result *res,
                         store_products *out) {
  memset(out, 0, sizeof *out);
  store_result_reset(res); /* fn may never run (no connection) */
  product_args a = {
      .tid = tid, .id = id, .patch = patch, .res = res, .out = out};
  int rc =
      store_finish(store_run_write(st, tid, update_product_fn, &a, res), res);
  if (rc != ERR_OK || res->outcome != STORE_OK) store_products_free(out);
  return rc;
}

static int delete_product_fn(db_conn *c, void *ud) {
  product_args *a = ud;
  store_products_free(a->out);
  db_param ps[] = {db_text(a->tid), db_text(a->id)};
  int rc = query_products(c,
                          "UPDATE orders.products SET deleted_at = now(), "
                          "version = version + 1, updated_at = now() "
                          "WHERE tenant_id = $1::uuid AND id = $2::uuid AND "
                          "deleted_at IS NULL RETURNING " PRODUCT_COLS,
                          ps, 2, a->out);
  if (rc != ERR_OK) return rc;
  if (a->out->n != 1) {
    store_answer_with(a->res, STORE_NOT_FOUND);
    return ERR_OK;
  }
  a->res->menu_changed = true;
  return emit_product(c, a->tid, &a->out->v[0], "deleted");
}

int store_delete_product(store *st, const char *tid, const char *id,
                         store_result *res) {
  store_result_reset(res); /* fn may never run (no connection) */
  store_products out = {0};
  product_args a = {.tid = tid, .id = id, .res = res, .out = &out};
  int rc =
      store_finish(store_run_write(st, tid, delete_product_fn, &a, res), res);
  store_products_free(&out);
  return rc;
}

static int get_product_fn(db_conn *c, void *ud) {
  product_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->id),
                   db_bool(a->include_inactive)};
  int rc = query_products(c,
                          "SELECT " PRODUCT_COLS " FROM orders.products "
                          "WHERE tenant_id = $1::uuid AND id = $2::uuid AND "
                          "deleted_at IS NULL AND ($3 OR active)",
                          ps, DB_NPARAMS(ps), a->out);
  if (rc == ERR_OK && a->out->n != 1) rc = ERR_NOTFOUND;
  return rc;
}

int store_get_product(store *st, const char *tid, const char *id,
                      bool include_inactive, store_products *out) {
  memset(out, 0, sizeof *out);
  product_args a = {
      .tid = tid, .id = id, .include_inactive = include_inactive, .out = out};
  int rc = store_run_tx(st, tid, true, get_product_fn, &a);
  if (rc != ERR_OK) store_products_free(out);
  return rc;
}

static int list_products_fn(db_conn *c, void *ud) {
  product_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_bool(a->include_inactive),
                   db_int64((int64_t)a->cap)};
  return query_products(c,
                        "SELECT " PRODUCT_COLS " FROM orders.products "
                        "WHERE tenant_id = $1::uuid AND deleted_at IS NULL "
                        "AND ($2 OR active) ORDER BY category, name, id "
                        "LIMIT $3",
                        ps, DB_NPARAMS(ps), a->out);
}

int store_list_products(store *st, const char *tid, bool include_inactive,
                        size_t cap, store_products *out) {
  memset(out, 0, sizeof *out);
  product_args a = {
      .tid = tid, .include_inactive = include_inactive, .cap = cap, .out = out};
  int rc = store_run_tx(st, tid, true, list_products_fn, &a);
  if (rc != ERR_OK) store_products_free(out);
  return rc;
}

typedef struct after_args {
  const char *tid, *category, *after_id;
  bool include_inactive;
  size_t limit;
  store_products *out;
} after_args;

static int list_products_after_fn(db_conn *c, void *ud) {
  after_args *a = ud;
  store_products_free(a->out);
  /* The cursor's product must be this tenant's (the filter, and RLS
   * behind it) and, for one category's list, of that category now. */
  db_param pos[] = {db_text(a->tid), db_text(a->after_id),
                    db_text(a->category)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT 1 FROM orders.products WHERE tenant_id = $1::uuid "
                   "AND id = $2::uuid AND ($3 = '' OR category = $3)",
                   pos, DB_NPARAMS(pos), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_text(a->tid), db_bool(a->include_inactive),
                   db_text(a->category), db_text(a->after_id),
                   db_int64((int64_t)a->limit)};
  return query_products(
      c,
      "SELECT " PRODUCT_COLS " FROM orders.products "
      "WHERE tenant_id = $1::uuid AND deleted_at IS NULL AND ($2 OR active) "
      "AND ($3 = '' OR category = $3) AND (category, name, id) > "
      "(SELECT category, name, id FROM orders.products "
      "WHERE tenant_id = $1::uuid AND id = $4::uuid) "
      "ORDER BY category, name, id LIMIT $5",
      ps, DB_NPARAMS(ps), a->out);
}

int store_list_products_after(store *st, const char *tid, bool include_inactive,
                              const char *category, const char *after_id,
                              size_t limit, store_products *out) {
  memset(out, 0, sizeof *out);
  after_args a = {.tid = tid,
                  .category = category ? category : "",
                  .after_id = after_id,
                  .include_inactive = include_inactive,
                  .limit = limit,
                  .out = out};
  int rc = store_run_tx(st, tid, true, list_products_after_fn, &a);
  if (rc != ERR_OK) store_products_free(out);
  return rc;
}

/* -------------------------------------------------------------- tables --- */

typedef struct table_args {
  const char *tid, *id, *label;
  const store_idem *idem;
  size_t cap;
  store_result *res;
  store_tables *out;
  store_answer *ans;
} table_args;

/* The CreateTableResponse of t, saved with the key. */
static int save_table_answer(db_conn *c, table_args *a, const model_table *t) {
  if (!store_idem_on(a->idem)) return ERR_OK;
  wire_table w;
  wire_table_init(&w, t);
  Orders__V1__CreateTableResponse r = ORDERS__V1__CREATE_TABLE_RESPONSE__INIT;
  r.table = &w.msg;
  int rc = answer_pack(&r.base, a->ans);
  return rc == ERR_OK ? store_idem_save(c, a->tid, a->idem, a->res, a->ans)
                      : rc;
}

static int create_table_fn(db_conn *c, void *ud) {
  table_args *a = ud;
  store_tables_free(a->out);
  store_answer_clear(a->ans);
  int rc = store_idem_begin(c, a->tid, a->idem, a->res, a->ans);
  if (rc != ERR_OK || store_answered(a->res)) return rc;
  db_param ps[] = {db_text(a->tid), db_text(a->id), db_text(a->label)};
  db_result *r = NULL;
  rc = db_exec(c,
               "INSERT INTO orders.tables (tenant_id, id, label) VALUES "
               "($1::uuid, $2::uuid, $3) RETURNING " TABLE_COLS,
               ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  rc = read_tables(r, a->out);
  if (rc != ERR_OK) return rc;
  if (a->out->n != 1) return ERR_INTERNAL;
  uint8_t *buf = NULL;
  size_t len = 0;
  rc = wire_table_changed(&a->out->v[0], "created", &buf, &len);
  if (rc == ERR_OK)
    rc = store_emit(c, "tables", a->tid, "TableChanged", buf, len);
  if (rc == ERR_OK) rc = save_table_answer(c, a, &a->out->v[0]);
  return rc;
}

int store_create_table(store *st, const char *tid, const char *id,
                       const char *label, const store_idem *idem,
                       store_result *res, store_tables *out,
                       store_answer *ans) {
  store_answer scratch = {0};
  if (ans == NULL) ans = &scratch;
  memset(out, 0, sizeof *out);
  memset(ans, 0, sizeof *ans);
  store_result_reset(res); /* fn may never run (no connection) */
  table_args a = {.tid = tid,
                  .id = id,
                  .label = label,
                  .idem = idem,
                  .res = res,
                  .out = out,
                  .ans = ans};
  int rc = store_run_write(st, tid, create_table_fn, &a, res);
  if (rc == ERR_EXISTS &&
      strcmp(db_last_error()->constraint, "idempotency_pkey") != 0) {
    store_result_reset(res);
    store_answer_with(res, STORE_EXISTS);
    vlist_add(&res->violations, "is already used by another table", "label");
    rc = ERR_OK;
  }
  rc = finish_create(rc, idem, res, ans);
  if (rc != ERR_OK || res->outcome != STORE_OK) store_tables_free(out);
  store_answer_clear(&scratch);
  return rc;
}

static int list_tables_fn(db_conn *c, void *ud) {
  table_args *a = ud;
  store_tables_free(a->out);
  db_param ps[] = {db_text(a->tid), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " TABLE_COLS " FROM orders.tables WHERE "
                   "tenant_id = $1::uuid ORDER BY label, id LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  if (rc != ERR_OK) return rc;
  return read_tables(r, a->out);
}

int store_list_tables(store *st, const char *tid, size_t cap,
                      store_tables *out) {
  memset(out, 0, sizeof *out);
  table_args a = {.tid = tid, .cap = cap, .out = out};
  int rc = store_run_tx(st, tid, true, list_tables_fn, &a);
  if (rc != ERR_OK) store_tables_free(out);
  return rc;
}

/* ------------------------------------------------ the change log's data --- */

int store_read_products_by_ids(db_conn *c, const char *tid, const char *ids,
                               store_products *out) {
  db_param ps[] = {db_text(tid), db_text(ids)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " PRODUCT_COLS " FROM orders.products "
                   "WHERE tenant_id = $1::uuid AND id = ANY($2::uuid[])",
                   ps, DB_NPARAMS(ps), &r);
  return rc == ERR_OK ? read_products(r, out) : rc;
}

int store_read_tables_by_ids(db_conn *c, const char *tid, const char *ids,
                             store_tables *out) {
  db_param ps[] = {db_text(tid), db_text(ids)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " TABLE_COLS " FROM orders.tables "
                   "WHERE tenant_id = $1::uuid AND id = ANY($2::uuid[])",
                   ps, DB_NPARAMS(ps), &r);
  return rc == ERR_OK ? read_tables(r, out) : rc;
}

/* ------------------------------------------------------------- janitor --- */

int store_expire_idempotency(store *st, size_t batch, int64_t *deleted) {
  return idem_expire_all(st, ORDERS_JANITOR, ORDERS_IDEM_TABLE, batch, deleted);
}
