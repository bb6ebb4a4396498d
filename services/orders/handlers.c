/*
 * handlers.c - "orders.v1.Orders/..." (see handlers.h and README.md).
 *
 * Every handler has the same shape, with libs/svc's handler.h steps:
 * unpack the request (exactly one free_unpacked on every path, through
 * the single `out:` label), authenticate (libs/authn's authn_check_call),
 * validate, call the store, answer. Input errors become
 * INVALID_ARGUMENT with one field violation per bad field. Database
 * failures become rpc_code_from_err's status with a generic message: the
 * detail goes to the log (db_last_error never carries values), never to
 * the caller.
 *
 * Side effects outside the database happen only after the commit and
 * before the answer: outbox_kick (the relay publishes soon; if the kick
 * were lost, its poll does it) and, when the menu or its stock changed,
 * menucache_invalidate - so a client that got the answer to a write
 * never reads the menu from before it.
 */
#include "services/orders/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/handler.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "libs/base/cursor.h"
#include "services/orders/idem.h"
#include "services/orders/menupage.h"
#include "services/orders/orderstate.h"
#include "services/orders/validate.h"
#include "services/orders/wire.h"

#define LIST_DEFAULT 20
#define LIST_MAX 100
#define TABLES_MAX 1000

struct orders {
  orders_config c;
  metrics_child *created, *replayed;
};

/* ------------------------------------------------------------ helpers --- */

typedef struct caller {
  paseto_claims cl;
  bool staff; /* staff, admin or owner */
} caller;

/* authn_check_call with the role the method's declaration asks for
 * (orders_rpc.proto), plus whether the caller is staff or above (what
 * customers may not see). On failure the reply is set and false
 * returned. */
static bool authenticate(orders *o, const rpc_call *call, rpc_reply *reply,
                         caller *who) {
  who->staff = false;
  if (authn_check_call(o->c.verifier, call, handler_min_rank(call), &who->cl,
                       reply) != ERR_OK)
    return false;
  who->staff = authn_role_rank(who->cl.role) >= AUTHN_ROLE_STAFF;
  return true;
}

/* Answers a store outcome other than STORE_OK / STORE_REPLAY. */
static void outcome_reply(rpc_reply *reply, const store_result *res,
                          const char *what) {
  switch (res->outcome) {
  case STORE_NOT_FOUND:
    rpc_reply_status(reply, RPC_NOT_FOUND, "%s not found", what);
    break;
  case STORE_STALE:
    rpc_reply_status(reply, RPC_ABORTED,
                     "the %s was changed meanwhile: version is not current",
                     what);
    (void)rpc_reply_add_violation(reply, "version", "is not the current one");
    break;
  case STORE_INVALID:
    handler_reply_invalid(reply, "invalid request", &res->violations);
    break;
  case STORE_PRECONDITION:
    rpc_reply_status(reply, RPC_FAILED_PRECONDITION, "%s",
                     res->message[0] ? res->message : "precondition failed");
    handler_add_violations(reply, &res->violations);
    break;
  case STORE_EXISTS:
    rpc_reply_status(reply, RPC_ALREADY_EXISTS, "%s already exists", what);
    handler_add_violations(reply, &res->violations);
    break;
  case STORE_KEY_REUSED:
    handler_reply_field(reply, RPC_INVALID_ARGUMENT,
                        "the Idempotency-Key was used for another request",
                        "idempotency_key", "was used for another request");
    break;
  case STORE_KEY_BUSY:
    rpc_reply_status(reply, RPC_ABORTED,
                     "a request with this Idempotency-Key is still running");
    break;
  default:
    rpc_reply_status(reply, RPC_INTERNAL, "unexpected outcome");
    break;
  }
}

/* After a commit: wake the relay; drop the menu when it changed. */
static void after_commit(orders *o, const char *tid, bool menu_changed) {
  outbox_kick(o->c.events);
  if (menu_changed) (void)menucache_invalidate(o->c.menu, tid);
}

/* The end of a store write: a failure (what failed) or an answer other
 * than STORE_OK (about noun) is replied and false returned; a commit gets
 * after_commit and true. */
static bool write_done(orders *o, rpc_reply *reply, const char *tid, int rc,
                       const store_result *res, const char *what,
                       const char *noun) {
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, what);
    return false;
  }
  if (res->outcome != STORE_OK) {
    outcome_reply(reply, res, noun);
    return false;
  }
  after_commit(o, tid, res->menu_changed);
  return true;
}

/* The Idempotency-Key of a create, if the call has one: validated (a
 * violation "idempotency_key" into v), hashed, scoped to the caller.
 * hash must outlive *k. */
static void create_key(orders *o, const rpc_call *call, const caller *who,
                       vlist *v, uint8_t hash[IDEM_HASH_LEN], store_idem *k) {
  memset(k, 0, sizeof *k);
  const char *key = call->idempotency_key;
  if (key[0] == '\0') return;
  if (!validate_idempotency_key(key)) {
    vlist_add(v, "must be 1 to 255 printable characters", "idempotency_key");
    return;
  }
  if (idem_request_hash(call->method, call->payload, call->payload_len, hash) !=
      ERR_OK) {
    vlist_add(v, "cannot be checked now", "idempotency_key");
    return;
  }
  *k = (store_idem){.key = key,
                    .principal = who->cl.sub,
                    .method = call->method,
                    .request_hash = hash,
                    .ttl_ms = o->c.idem_ttl_ms};
}

/* A keyed create's answer: the saved bytes, new (after the commit's side
 * effects) or replayed (with the saved status). */
static void reply_answer(orders *o, rpc_reply *reply, const char *tid,
                         const store_result *res, const store_answer *ans) {
  if (res->outcome == STORE_OK)
    after_commit(o, tid, res->menu_changed);
  else
    rpc_reply_status(reply, ans->code, NULL);
  if (rpc_reply_set_payload(reply, ans->bytes, ans->len) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
}

/* ----------------------------------------------------------- products --- */

static void reply_product(rpc_reply *reply, const model_product *p, int which) {
  wire_product w;
  wire_product_init(&w, p);
  if (which == 0) {
    Orders__V1__CreateProductResponse r =
        ORDERS__V1__CREATE_PRODUCT_RESPONSE__INIT;
    r.product = &w.msg;
    handler_reply_message(reply, &r.base);
  } else if (which == 1) {
    Orders__V1__UpdateProductResponse r =
        ORDERS__V1__UPDATE_PRODUCT_RESPONSE__INIT;
    r.product = &w.msg;
    handler_reply_message(reply, &r.base);
  } else {
    Orders__V1__GetProductResponse r = ORDERS__V1__GET_PRODUCT_RESPONSE__INIT;
    r.product = &w.msg;
    handler_reply_message(reply, &r.base);
  }
}

static void create_product(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_products out = {0};
  store_answer ans = {0};
  HANDLER_UNPACK(Orders__V1__CreateProductRequest,
                 orders__v1__create_product_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  validate_product_name(&v, "name", req->name);
  validate_product_description(&v, "description", req->description);
  validate_product_category(&v, "category", req->category);
  validate_price(&v, "price_cents", req->price_cents);
  bool has_stock = req->stock_present_case ==
                   ORDERS__V1__CREATE_PRODUCT_REQUEST__STOCK_PRESENT_STOCK;
  if (has_stock) validate_stock(&v, "stock", req->stock);
  int64_t threshold = PRODUCT_THRESHOLD_DEFAULT;
  if (req->low_stock_threshold_present_case ==
      ORDERS__V1__CREATE_PRODUCT_REQUEST__LOW_STOCK_THRESHOLD_PRESENT_LOW_STOCK_THRESHOLD) {
    threshold = req->low_stock_threshold;
    validate_threshold(&v, "low_stock_threshold", threshold);
  }
  uint8_t hash[IDEM_HASH_LEN];
  store_idem k;
  create_key(o, call, &who, &v, hash, &k);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  char id[UUID_STR_LEN + 1];
  uuid_v7_str(id);
  store_product_new in = {
      .id = id,
      .name = req->name,
      .description = req->description,
      .category = req->category,
      .price_cents = req->price_cents,
      .has_stock = has_stock,
      .stock = has_stock ? req->stock : 0,
      .threshold = threshold,
      .active =
          req->active_present_case ==
                  ORDERS__V1__CREATE_PRODUCT_REQUEST__ACTIVE_PRESENT_ACTIVE
              ? req->active
              : true,
      .max_products = o->c.max_products,
  };
  store_result res;
  int rc = store_create_product(o->c.st, who.cl.tid, &in, &k, &res, &out, &ans);
  if (store_idem_on(&k) && rc == ERR_OK &&
      (res.outcome == STORE_OK || res.outcome == STORE_REPLAY)) {
    reply_answer(o, reply, who.cl.tid, &res, &ans);
    goto out;
  }
  if (!write_done(o, reply, who.cl.tid, rc, &res, "create the product",
                  "product"))
    goto out;
  reply_product(reply, &out.v[0], 0);
out:
  store_answer_clear(&ans);
  store_products_free(&out);
  orders__v1__create_product_request__free_unpacked(req, NULL);
}

static void update_product(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_products out = {0};
  HANDLER_UNPACK(Orders__V1__UpdateProductRequest,
                 orders__v1__update_product_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  store_product_patch p;
  memset(&p, 0, sizeof p);
  validate_id(&v, "id", req->id);
  if (req->name_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__NAME_PRESENT_NAME) {
    validate_product_name(&v, "name", req->name);
    p.name = req->name;
  }
  if (req->description_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__DESCRIPTION_PRESENT_DESCRIPTION) {
    validate_product_description(&v, "description", req->description);
    p.description = req->description;
  }
  if (req->category_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__CATEGORY_PRESENT_CATEGORY) {
    validate_product_category(&v, "category", req->category);
    p.category = req->category;
  }
  if (req->price_cents_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__PRICE_CENTS_PRESENT_PRICE_CENTS) {
    validate_price(&v, "price_cents", req->price_cents);
    p.set_price = true;
    p.price_cents = req->price_cents;
  }
  if (req->stock_change_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__STOCK_CHANGE_STOCK) {
    validate_stock(&v, "stock", req->stock);
    p.stock_change = STORE_STOCK_SET;
    p.stock = req->stock;
  } else if (req->stock_change_case ==
             ORDERS__V1__UPDATE_PRODUCT_REQUEST__STOCK_CHANGE_UNLIMITED_STOCK) {
    if (!req->unlimited_stock)
      vlist_add(&v, "must be true when given", "unlimited_stock");
    p.stock_change = STORE_STOCK_UNLIMITED;
  }
  if (req->active_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__ACTIVE_PRESENT_ACTIVE) {
    p.set_active = true;
    p.active = req->active;
  }
  if (req->low_stock_threshold_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__LOW_STOCK_THRESHOLD_PRESENT_LOW_STOCK_THRESHOLD) {
    validate_threshold(&v, "low_stock_threshold", req->low_stock_threshold);
    p.set_threshold = true;
    p.threshold = req->low_stock_threshold;
  }
  if (req->version_present_case ==
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__VERSION_PRESENT_VERSION) {
    if (req->version < 1) vlist_add(&v, "must be at least 1", "version");
    p.check_version = true;
    p.version = req->version;
  }
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  char id[UUID_STR_LEN + 1];
  uuid_canonical(req->id, id);
  store_result res;
  int rc = store_update_product(o->c.st, who.cl.tid, id, &p, &res, &out);
  if (!write_done(o, reply, who.cl.tid, rc, &res, "update the product",
                  "product"))
    goto out;
  reply_product(reply, &out.v[0], 1);
out:
  store_products_free(&out);
  orders__v1__update_product_request__free_unpacked(req, NULL);
}

static void delete_product(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  HANDLER_UNPACK(Orders__V1__DeleteProductRequest,
                 orders__v1__delete_product_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  char id[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "id", req->id, id) != ERR_OK) goto out;
  store_result res;
  int rc = store_delete_product(o->c.st, who.cl.tid, id, &res);
  if (!write_done(o, reply, who.cl.tid, rc, &res, "delete the product",
                  "product"))
    goto out;
  Orders__V1__DeleteProductResponse resp =
      ORDERS__V1__DELETE_PRODUCT_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  orders__v1__delete_product_request__free_unpacked(req, NULL);
}

static void get_product(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_products out = {0};
  HANDLER_UNPACK(Orders__V1__GetProductRequest, orders__v1__get_product_request,
                 req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  char id[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "id", req->id, id) != ERR_OK) goto out;
  int rc = store_get_product(o->c.st, who.cl.tid, id, who.staff, &out);
  if (rc == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "product not found");
    goto out;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the product");
    goto out;
  }
  reply_product(reply, &out.v[0], 2);
out:
  store_products_free(&out);
  orders__v1__get_product_request__free_unpacked(req, NULL);
}

/* Packs products into a ListProductsResponse (malloc'd *buf). */
static int pack_products(const store_products *ps, const char *next,
                         uint8_t **buf, size_t *len) {
  wire_product *ws = calloc(ps->n ? ps->n : 1, sizeof *ws);
  Orders__V1__Product **ptrs = calloc(ps->n ? ps->n : 1, sizeof *ptrs);
  int rc = ERR_NOMEM;
  if (ws != NULL && ptrs != NULL) {
    for (size_t i = 0; i < ps->n; i++) {
      wire_product_init(&ws[i], &ps->v[i]);
      ptrs[i] = &ws[i].msg;
    }
    Orders__V1__ListProductsResponse resp =
        ORDERS__V1__LIST_PRODUCTS_RESPONSE__INIT;
    resp.n_products = ps->n;
    resp.products = ptrs;
    resp.next_cursor = (char *)next;
    rc = wire_pack(&resp.base, buf, len);
  }
  free(ws);
  free(ptrs);
  return rc;
}

/* The whole menu of an audience, unpacked: this replica's copy or
 * Redis's when current, else the database (filling both). */
static int menu_page(orders *o, const char *tid, bool staff, menupage **out) {
  int64_t gen = 0;
  enum menucache_hit hit = menucache_get(o->c.menu, tid, staff, out, &gen);
  if (hit == MENUCACHE_HIT) return ERR_OK;
  store_products ps = {0};
  int rc = store_list_products(o->c.st, tid, staff, o->c.max_products, &ps);
  uint8_t *buf = NULL;
  size_t len = 0;
  if (rc == ERR_OK) rc = pack_products(&ps, "", &buf, &len);
  store_products_free(&ps);
  if (rc == ERR_OK) rc = menupage_new(buf, len, gen, out);
  if (rc == ERR_OK && hit == MENUCACHE_MISS)
    menucache_put(o->c.menu, tid, staff, *out);
  return rc;
}

/* A page whose cursor's product has left the cached list: its place is
 * looked up in the database (ERR_NOTFOUND: not a cursor of this list). */
static int page_after_from_db(orders *o, const caller *who,
                              const char *category, const char *after,
                              size_t limit, rpc_reply *reply) {
  store_products ps = {0};
  int rc = store_list_products_after(o->c.st, who->cl.tid, who->staff, category,
                                     after, limit + 1, &ps);
  if (rc != ERR_OK) return rc;
  /* The extra row only says that more remain. */
  store_products page = ps;
  bool more = ps.n > limit;
  if (more) page.n = limit;
  char next[CURSOR_LEN + 1] = "";
  if (more && cursor_encode(page.v[page.n - 1].id, next) != ERR_OK)
    next[0] = '\0';
  uint8_t *buf = NULL;
  size_t len = 0;
  rc = pack_products(&page, next, &buf, &len);
  store_products_free(&ps);
  if (rc == ERR_OK && rpc_reply_set_payload(reply, buf, len) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
  free(buf);
  return rc;
}

/* A page cut from the menu in memory. ERR_NOTFOUND when the cursor's
 * product is not in this list. */
static int page_from_menu(const menupage *p, const char *category,
                          const char *after, size_t limit, rpc_reply *reply) {
  if (menupage_whole(p, category, after, limit)) {
    size_t len = 0;
    const uint8_t *bytes = menupage_bytes(p, &len);
    if (rpc_reply_set_payload(reply, bytes, len) != ERR_OK)
      rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
    return ERR_OK;
  }
  menupage_cut cut;
  int rc = menupage_select(p, category, after, limit, &cut);
  if (rc == ERR_OK && !cut.cursor_found) rc = ERR_NOTFOUND;
  if (rc == ERR_OK) {
    char next[CURSOR_LEN + 1] = "";
    if (cut.more && cursor_encode(cut.v[cut.n - 1]->id, next) != ERR_OK)
      next[0] = '\0';
    Orders__V1__ListProductsResponse resp =
        ORDERS__V1__LIST_PRODUCTS_RESPONSE__INIT;
    resp.n_products = cut.n;
    resp.products = cut.v;
    resp.next_cursor = next;
    handler_reply_message(reply, &resp.base);
  }
  menupage_cut_free(&cut);
  return rc;
}

static void list_products(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  menupage *menu = NULL;
  HANDLER_UNPACK(Orders__V1__ListProductsRequest,
                 orders__v1__list_products_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  (void)validate_product_category(&v, "category", req->category);
  size_t limit = req->limit == 0 ? LIST_DEFAULT : req->limit;
  if (limit > LIST_MAX) vlist_add(&v, "must be between 1 and 100", "limit");
  char after[UUID_STR_LEN + 1] = "";
  if (req->cursor[0] != '\0' && cursor_decode(req->cursor, after) != ERR_OK)
    vlist_add(&v, "is not a cursor of this list", "cursor");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  int rc = menu_page(o, who.cl.tid, who.staff, &menu);
  if (rc == ERR_OK)
    rc = page_from_menu(menu, req->category, after, limit, reply);
  if (rc == ERR_NOTFOUND) /* the cursor's product left the list */
    rc = page_after_from_db(o, &who, req->category, after, limit, reply);
  if (rc == ERR_NOTFOUND) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT,
                        "the cursor is not one of this list's", "cursor",
                        "is not a cursor of this list");
  } else if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the menu");
  }
out:
  menupage_unref(menu);
  orders__v1__list_products_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- tables --- */

static void create_table(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_tables out = {0};
  store_answer ans = {0};
  HANDLER_UNPACK(Orders__V1__CreateTableRequest,
                 orders__v1__create_table_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  validate_table_label(&v, "label", req->label);
  uint8_t hash[IDEM_HASH_LEN];
  store_idem k;
  create_key(o, call, &who, &v, hash, &k);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  char id[UUID_STR_LEN + 1];
  uuid_v7_str(id);
  store_result res;
  int rc = store_create_table(o->c.st, who.cl.tid, id, req->label, &k, &res,
                              &out, &ans);
  if (store_idem_on(&k) && rc == ERR_OK &&
      (res.outcome == STORE_OK || res.outcome == STORE_REPLAY)) {
    reply_answer(o, reply, who.cl.tid, &res, &ans);
    goto out;
  }
  if (!write_done(o, reply, who.cl.tid, rc, &res, "create the table", "table"))
    goto out;
  wire_table w;
  wire_table_init(&w, &out.v[0]);
  Orders__V1__CreateTableResponse resp =
      ORDERS__V1__CREATE_TABLE_RESPONSE__INIT;
  resp.table = &w.msg;
  handler_reply_message(reply, &resp.base);
out:
  store_answer_clear(&ans);
  store_tables_free(&out);
  orders__v1__create_table_request__free_unpacked(req, NULL);
}

static void list_tables(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_tables out = {0};
  wire_table *ws = NULL;
  Orders__V1__Table **ptrs = NULL;
  HANDLER_UNPACK(Orders__V1__ListTablesRequest, orders__v1__list_tables_request,
                 req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  int rc = store_list_tables(o->c.st, who.cl.tid, TABLES_MAX, &out);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the tables");
    goto out;
  }
  ws = calloc(out.n ? out.n : 1, sizeof *ws);
  ptrs = calloc(out.n ? out.n : 1, sizeof *ptrs);
  if (ws == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < out.n; i++) {
    wire_table_init(&ws[i], &out.v[i]);
    ptrs[i] = &ws[i].msg;
  }
  Orders__V1__ListTablesResponse resp = ORDERS__V1__LIST_TABLES_RESPONSE__INIT;
  resp.n_tables = out.n;
  resp.tables = ptrs;
  handler_reply_message(reply, &resp.base);
out:
  free(ws);
  free(ptrs);
  store_tables_free(&out);
  orders__v1__list_tables_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- orders --- */

#define CLIENT_ID_AHEAD_MS 60000 /* a caller's id ahead of our clock */

/* The new order's id: a fresh UUIDv7, or the caller's (staff+ only: an
 * offline device chose it) when it is a UUIDv7 at most a minute ahead of
 * this server's clock - its time is the order's created_at. On refusal
 * the reply is set and false returned. */
static bool order_id(rpc_reply *reply, const caller *who, const char *in,
                     char out[UUID_STR_LEN + 1]) {
  if (in[0] == '\0') {
    uuid_v7_str(out);
    return true;
  }
  if (!who->staff) {
    handler_reply_field(reply, RPC_PERMISSION_DENIED,
                        "only staff choose an order's id", "id",
                        "may not be set");
    return false;
  }
  uuid u;
  if (uuid_parse(in, strlen(in), &u) != ERR_OK || (u.b[6] >> 4) != 7 ||
      uuid_v7_time_ms(&u) > time_now_ms() + CLIENT_ID_AHEAD_MS) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid request", "id",
                        "must be a UUIDv7 of now or earlier");
    return false;
  }
  uuid_format(&u, out);
  return true;
}

static void create_order(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  uint8_t *answer = NULL;
  size_t answer_len = 0;
  HANDLER_UNPACK(Orders__V1__CreateOrderRequest,
                 orders__v1__create_order_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  /* Layer 1: the request on its own. */
  vlist v;
  vlist_init(&v);
  size_t n = req->n_items;
  const char *pids_in[ORDER_LINES_MAX];
  int32_t qty[ORDER_LINES_MAX];
  for (size_t i = 0; i < n && i < ORDER_LINES_MAX; i++) {
    pids_in[i] = req->items[i] ? req->items[i]->product_id : "";
    qty[i] = req->items[i] ? req->items[i]->quantity : 0;
  }
  validate_order_request(&v, n, pids_in, qty, req->table_id, req->notes,
                         req->customer_id);
  const char *key = call->idempotency_key;
  bool idem = key[0] != '\0';
  if (idem && !validate_idempotency_key(key))
    vlist_add(&v, "must be 1 to 255 printable characters", "idempotency_key");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  /* Who the order is for: a customer orders for themselves only. */
  char customer[UUID_STR_LEN + 1] = "";
  uuid_canonical(req->customer_id, customer);
  if (!who.staff) {
    char self[UUID_STR_LEN + 1];
    uuid_canonical(who.cl.sub, self);
    if (customer[0] != '\0' && strcmp(customer, self) != 0) {
      handler_reply_field(reply, RPC_PERMISSION_DENIED,
                          "a customer orders for themselves only",
                          "customer_id", "must be your own user id or empty");
      goto out;
    }
    memcpy(customer, self, sizeof customer);
  }
  char pids[ORDER_LINES_MAX][UUID_STR_LEN + 1];
  const char *pid_ptrs[ORDER_LINES_MAX];
  for (size_t i = 0; i < n; i++) {
    uuid_canonical(pids_in[i], pids[i]);
    pid_ptrs[i] = pids[i];
  }
  char table[UUID_STR_LEN + 1];
  uuid_canonical(req->table_id, table);
  uint8_t hash[IDEM_HASH_LEN];
  if (idem && idem_request_hash(call->method, call->payload, call->payload_len,
                                hash) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, "cannot hash the request");
    goto out;
  }
  char currency[4];
  int rc = tenantcur_get(o->c.currency, who.cl.tid, call->token,
                         rpc_call_time_left_ms(call), currency);
  if (rc != ERR_OK) {
    log_warn("cannot read the tenant's currency", "tenant_id", who.cl.tid,
             "error", err_str(rc));
    rpc_reply_status(
        reply, rc == ERR_NOTFOUND ? RPC_FAILED_PRECONDITION : RPC_UNAVAILABLE,
        "cannot read the tenant's currency now");
    goto out;
  }
  char id[UUID_STR_LEN + 1];
  if (!order_id(reply, &who, req->id, id)) goto out;
  store_order_new in = {
      .id = id,
      .customer_id = customer,
      .table_id = table,
      .notes = req->notes,
      .currency = currency,
      .nlines = n,
      .product_ids = pid_ptrs,
      .quantities = qty,
      .idem_key = idem ? key : NULL,
      .principal = who.cl.sub,
      .method = call->method,
      .request_hash = hash,
      .idem_ttl_ms = o->c.idem_ttl_ms,
  };
  store_result res;
  int code = RPC_OK;
  rc = store_create_order(o->c.st, who.cl.tid, &in, &res, &answer, &answer_len,
                          &code);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "create the order");
    goto out;
  }
  if (res.outcome != STORE_OK && res.outcome != STORE_REPLAY) {
    outcome_reply(reply, &res, "order");
    goto out;
  }
  if (res.outcome == STORE_OK) {
    metrics_inc(o->created);
    after_commit(o, who.cl.tid, res.menu_changed);
  } else {
    metrics_inc(o->replayed);
    rpc_reply_status(reply, code, NULL);
  }
  if (rpc_reply_set_payload(reply, answer, answer_len) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
out:
  free(answer);
  orders__v1__create_order_request__free_unpacked(req, NULL);
}

static void get_order(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_orders out = {0};
  wire_order *w = NULL;
  HANDLER_UNPACK(Orders__V1__GetOrderRequest, orders__v1__get_order_request,
                 req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  char id[UUID_STR_LEN + 1], self[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "id", req->id, id) != ERR_OK) goto out;
  uuid_canonical(who.cl.sub, self);
  /* A customer sees only their own orders: anybody else's is "not found",
   * exactly like another tenant's. */
  int rc =
      store_get_order(o->c.st, who.cl.tid, id, who.staff ? NULL : self, &out);
  if (rc == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "order not found");
    goto out;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the order");
    goto out;
  }
  w = malloc(sizeof *w);
  if (w == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  wire_order_init(w, &out.v[0]);
  Orders__V1__GetOrderResponse resp = ORDERS__V1__GET_ORDER_RESPONSE__INIT;
  resp.order = &w->msg;
  handler_reply_message(reply, &resp.base);
out:
  free(w);
  store_orders_free(&out);
  orders__v1__get_order_request__free_unpacked(req, NULL);
}

static void list_orders(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_orders out = {0};
  wire_order *ws = NULL;
  Orders__V1__Order **ptrs = NULL;
  HANDLER_UNPACK(Orders__V1__ListOrdersRequest, orders__v1__list_orders_request,
                 req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  size_t limit = req->limit == 0 ? LIST_DEFAULT : req->limit;
  if (limit > LIST_MAX) vlist_add(&v, "must be between 1 and 100", "limit");
  if (req->status != OS_UNSPECIFIED && !orderstate_valid(req->status))
    vlist_add(&v, "is not an order status", "status");
  char before[UUID_STR_LEN + 1] = "";
  if (req->cursor[0] != '\0' && cursor_decode(req->cursor, before) != ERR_OK)
    vlist_add(&v, "is not a cursor of this list", "cursor");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  char self[UUID_STR_LEN + 1];
  uuid_canonical(who.cl.sub, self);
  store_order_query q = {
      .status = req->status,
      .before_id = before[0] ? before : NULL,
      .customer_id = who.staff ? NULL : self,
      .limit = limit,
  };
  bool more = false;
  int rc = store_list_orders(o->c.st, who.cl.tid, &q, &out, &more);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the orders");
    goto out;
  }
  ws = calloc(out.n ? out.n : 1, sizeof *ws);
  ptrs = calloc(out.n ? out.n : 1, sizeof *ptrs);
  if (ws == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < out.n; i++) {
    wire_order_init(&ws[i], &out.v[i]);
    ptrs[i] = &ws[i].msg;
  }
  char next[CURSOR_LEN + 1] = "";
  if (more && out.n > 0 && cursor_encode(out.v[out.n - 1].id, next) != ERR_OK)
    next[0] = '\0';
  Orders__V1__ListOrdersResponse resp = ORDERS__V1__LIST_ORDERS_RESPONSE__INIT;
  resp.n_orders = out.n;
  resp.orders = ptrs;
  resp.next_cursor = next;
  handler_reply_message(reply, &resp.base);
out:
  free(ws);
  free(ptrs);
  store_orders_free(&out);
  orders__v1__list_orders_request__free_unpacked(req, NULL);
}

/* UpdateOrderStatus and CancelOrder: one store call, one answer shape.
 * With an Idempotency-Key (the sync service's per-mutation key) the
 * answer is the one saved with the change: new, or replayed. */
static void change_status(orders *o, const rpc_call *call, const caller *who,
                          rpc_reply *reply, store_status_change *ch,
                          bool cancel) {
  store_orders out = {0};
  store_answer ans = {0};
  vlist v;
  vlist_init(&v);
  uint8_t hash[IDEM_HASH_LEN];
  store_idem k;
  create_key(o, call, who, &v, hash, &k);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  ch->idem = &k;
  store_result res;
  int rc = store_change_status(o->c.st, who->cl.tid, ch, &res, &out, &ans);
  if (store_idem_on(&k) && rc == ERR_OK &&
      (res.outcome == STORE_OK || res.outcome == STORE_REPLAY)) {
    reply_answer(o, reply, who->cl.tid, &res, &ans);
    goto out;
  }
  if (!write_done(o, reply, who->cl.tid, rc, &res, "change the order", "order"))
    goto out;
  wire_order *w = malloc(sizeof *w);
  if (w == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  wire_order_init(w, &out.v[0]);
  if (cancel) {
    Orders__V1__CancelOrderResponse resp =
        ORDERS__V1__CANCEL_ORDER_RESPONSE__INIT;
    resp.order = &w->msg;
    handler_reply_message(reply, &resp.base);
  } else {
    Orders__V1__UpdateOrderStatusResponse resp =
        ORDERS__V1__UPDATE_ORDER_STATUS_RESPONSE__INIT;
    resp.order = &w->msg;
    handler_reply_message(reply, &resp.base);
  }
  free(w);
out:
  store_answer_clear(&ans);
  store_orders_free(&out);
}

static void update_order_status(void *arg, const rpc_call *call,
                                rpc_reply *reply) {
  orders *o = arg;
  HANDLER_UNPACK(Orders__V1__UpdateOrderStatusRequest,
                 orders__v1__update_order_status_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  validate_id(&v, "id", req->id);
  if (!orderstate_valid(req->status))
    vlist_add(&v, "must be an order status", "status");
  bool has_version =
      req->version_present_case ==
      ORDERS__V1__UPDATE_ORDER_STATUS_REQUEST__VERSION_PRESENT_VERSION;
  if (has_version && req->version < 1)
    vlist_add(&v, "must be at least 1", "version");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  char id[UUID_STR_LEN + 1];
  uuid_canonical(req->id, id);
  store_status_change ch = {
      .id = id,
      .to = req->status,
      .check_version = has_version,
      .version = has_version ? req->version : 0,
      .customer = NULL,
  };
  change_status(o, call, &who, reply, &ch, false);
out:
  orders__v1__update_order_status_request__free_unpacked(req, NULL);
}

static void cancel_order(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  HANDLER_UNPACK(Orders__V1__CancelOrderRequest,
                 orders__v1__cancel_order_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  char id[UUID_STR_LEN + 1], self[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "id", req->id, id) != ERR_OK) goto out;
  uuid_canonical(who.cl.sub, self);
  bool has_version = req->version_present_case ==
                     ORDERS__V1__CANCEL_ORDER_REQUEST__VERSION_PRESENT_VERSION;
  if (has_version && req->version < 1) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid request",
                        "version", "must be at least 1");
    goto out;
  }
  store_status_change ch = {
      .id = id,
      .to = OS_CANCELLED,
      .check_version = has_version,
      .version = has_version ? req->version : 0,
      .customer = who.staff ? NULL : self,
  };
  change_status(o, call, &who, reply, &ch, true);
out:
  orders__v1__cancel_order_request__free_unpacked(req, NULL);
}

/* ---------------------------------------------------------- change log --- */

#define CHANGES_DEFAULT 100
#define CHANGES_MAX 1000

/* The sync service's pull: the change log after after_seq (store.h). */
static void list_changes(void *arg, const rpc_call *call, rpc_reply *reply) {
  orders *o = arg;
  store_changes out = {0};
  wire_order *ws = NULL;
  wire_product *wp = NULL;
  wire_table *wt = NULL;
  Orders__V1__Change *cs = NULL, **ptrs = NULL;
  HANDLER_UNPACK(Orders__V1__ListChangesRequest,
                 orders__v1__list_changes_request, req, 0);
  caller who;
  if (!authenticate(o, call, reply, &who)) goto out;
  vlist v;
  vlist_init(&v);
  size_t limit = req->limit == 0 ? CHANGES_DEFAULT : req->limit;
  if (limit > CHANGES_MAX) vlist_add(&v, "must be between 1 and 1000", "limit");
  if (req->after_seq < 0) vlist_add(&v, "must be at least 0", "after_seq");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  int rc = store_list_changes(o->c.st, who.cl.tid, req->after_seq, limit, &out);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the change log");
    goto out;
  }
  size_t n = out.n ? out.n : 1;
  ws = calloc(n, sizeof *ws);
  wp = calloc(n, sizeof *wp);
  wt = calloc(n, sizeof *wt);
  cs = calloc(n, sizeof *cs);
  ptrs = calloc(n, sizeof *ptrs);
  if (ws == NULL || wp == NULL || wt == NULL || cs == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < out.n; i++) {
    const store_change *ch = &out.v[i];
    orders__v1__change__init(&cs[i]);
    cs[i].seq = ch->seq;
    cs[i].entity = (char *)ch->entity;
    cs[i].op = (char *)ch->op;
    cs[i].id = (char *)ch->id;
    cs[i].version = ch->version;
    if (ch->order != NULL) {
      wire_order_init(&ws[i], ch->order);
      cs[i].order = &ws[i].msg;
      cs[i].version = ch->order->version;
    }
    if (ch->product != NULL) {
      wire_product_init(&wp[i], ch->product);
      cs[i].product = &wp[i].msg;
      cs[i].version = ch->product->version;
    }
    if (ch->table != NULL) {
      wire_table_init(&wt[i], ch->table);
      cs[i].table = &wt[i].msg;
    }
    ptrs[i] = &cs[i];
  }
  Orders__V1__ListChangesResponse resp =
      ORDERS__V1__LIST_CHANGES_RESPONSE__INIT;
  resp.n_changes = out.n;
  resp.changes = ptrs;
  resp.has_more = out.more;
  resp.last_seq = out.last;
  resp.pruned_through = out.pruned_through;
  handler_reply_message(reply, &resp.base);
out:
  free(ws);
  free(wp);
  free(wt);
  free(cs);
  free(ptrs);
  store_changes_free(&out);
  orders__v1__list_changes_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- set-up --- */

int orders_new(const orders_config *cfg, orders **out) {
  *out = NULL;
  if (cfg == NULL || cfg->st == NULL || cfg->verifier == NULL ||
      cfg->menu == NULL || cfg->currency == NULL)
    return ERR_INVAL;
  orders *o = calloc(1, sizeof *o);
  if (o == NULL) return ERR_NOMEM;
  o->c = *cfg;
  if (o->c.idem_ttl_ms <= 0) o->c.idem_ttl_ms = 24LL * 3600 * 1000;
  if (o->c.max_products == 0) o->c.max_products = 1000;
  static const char *const labels[] = {"result"};
  metrics_family *f = metrics_counter(
      "orders_created_total",
      "CreateOrder answers: new orders, and idempotent replays", 1, labels);
  const char *c1[] = {"created"}, *c2[] = {"replayed"};
  o->created = metrics_child_get(f, c1);
  o->replayed = metrics_child_get(f, c2);
  *out = o;
  return ERR_OK;
}

void orders_free(orders *o) { free(o); }

int orders_register(orders *o, rpc_server *srv) {
  static const handler_method table[] = {
      {ORDERS_METHOD("CreateProduct"), create_product},
      {ORDERS_METHOD("UpdateProduct"), update_product},
      {ORDERS_METHOD("DeleteProduct"), delete_product},
      {ORDERS_METHOD("GetProduct"), get_product},
      {ORDERS_METHOD("ListProducts"), list_products},
      {ORDERS_METHOD("CreateTable"), create_table},
      {ORDERS_METHOD("ListTables"), list_tables},
      {ORDERS_METHOD("CreateOrder"), create_order},
      {ORDERS_METHOD("GetOrder"), get_order},
      {ORDERS_METHOD("ListOrders"), list_orders},
      {ORDERS_METHOD("UpdateOrderStatus"), update_order_status},
      {ORDERS_METHOD("CancelOrder"), cancel_order},
      {ORDERS_METHOD("ListChanges"), list_changes},
  };
  return handler_register(srv, table, sizeof table / sizeof table[0], o);
}
