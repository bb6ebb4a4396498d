/*
 * orders_rpc_itest.c - the orders service with auth and tenants, as
 * separate processes over real PostgreSQL and Redis, driven over libs/rpc
 * (the HTTP-level tests through the gateway are tests/orders).
 *
 * main() starts PostgreSQL, Redis, auth and tenants, then runs two
 * suites. The crash suite first, while no other orders process runs (any
 * replica's relay would publish the events the test wants held back): an
 * orders process with ORDERS_TEST_RELAY_DELAY is killed with SIGKILL
 * after an order committed and before its events went out; a restarted
 * process publishes them, and a subscriber that was down catches up
 * through Replay. Then one orders process shared by the main suite's
 * tests (each makes its own tenants, so they do not interfere): products
 * and versions, 20 concurrent orders for 10 in stock, idempotent
 * retries, other tenants' products and tables, status moves, cancelling
 * restocks, customers' visibility, pages, newest first by id and by
 * created_at alike under concurrent creation, the menu cache, and events in
 * order on the bus and through Replay. The test also reads the database
 * and Redis directly, to check what is really there.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/bus/bus.h"
#include "libs/cache/cache.h"
#include "libs/db/db.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/rpc.h"
#include "tests/harness/service.h"

#define PASSWORD "correct horse battery"
#define O(m) "orders.v1.Orders/" m
#define REPLAY "orders.v1.Events/Replay"

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_orders;

/* Every service of this test: one PostgreSQL, one Redis, room for the
 * concurrency tests. */
static const harness_service_opts kSvc = {.pg = &g_pg,
                                          .redis = &g_redis,
                                          .rpc_workers = 24,
                                          .db_pool_size = 24,
                                          .log_level = "debug"};

/* --------------------------------------------------------- processes --- */

static bool start_tenants(harness_service *s) {
  char auth_addr[96];
  snprintf(auth_addr, sizeof auth_addr, "AUTH_ADDR=%s", g_auth.rpc_url);
  char *extra[] = {auth_addr, NULL};
  return harness_service_start(s, "tenants", "services/tenants/tenants", &kSvc,
                               extra);
}

/* An orders process; extra1/extra2 (may be NULL) are appended. */
static bool start_orders(harness_service *s, const char *name,
                         const char *extra1, const char *extra2) {
  char auth_addr[96], tenants_addr[96], auth_ev[96], tenants_ev[96];
  snprintf(auth_addr, sizeof auth_addr, "AUTH_ADDR=%s", g_auth.rpc_url);
  snprintf(tenants_addr, sizeof tenants_addr, "TENANTS_ADDR=%s",
           g_tenants.rpc_url);
  snprintf(auth_ev, sizeof auth_ev, "AUTH_EVENTS=%s", g_auth.bus_url);
  snprintf(tenants_ev, sizeof tenants_ev, "TENANTS_EVENTS=%s",
           g_tenants.bus_url);
  char *extra[] = {auth_addr,
                   tenants_addr,
                   auth_ev,
                   tenants_ev,
                   "ORDERS_OUTBOX_POLL=200ms",
                   (char *)extra1,
                   (char *)extra2,
                   NULL};
  return harness_service_start(s, name, "services/orders/orders_testhooks",
                               &kSvc, extra);
}

/* ----------------------------------------------------------- calls --- */

typedef struct ctx {
  rpc_client *orders, *tenants, *auth;
} ctx;

static void ctx_open_at(ctx *x, const char *orders_url) {
  x->orders = harness_rpc_client(orders_url);
  x->tenants = harness_rpc_client(g_tenants.rpc_url);
  x->auth = harness_rpc_client(g_auth.rpc_url);
}

static void ctx_open(ctx *x) { ctx_open_at(x, g_orders.rpc_url); }

static void ctx_close(ctx *x) {
  rpc_client_free(x->orders);
  rpc_client_free(x->tenants);
  rpc_client_free(x->auth);
}

static rpc_result *call(rpc_client *c, const char *method,
                        const ProtobufCMessage *m, const char *token) {
  return harness_rpc_call(c, method, m, token, NULL, NULL);
}

typedef struct tenant {
  char id[UUID_STR_LEN + 1];
  char owner[PASETO_TOKEN_MAX + 1];
  char owner_id[UUID_STR_LEN + 1];
} tenant;

/* A fresh tenant (CreateTenant gives the owner's token). */
static void make_tenant(ctx *x, const char *currency, tenant *out) {
  memset(out, 0, sizeof *out);
  char slug[40], email[96];
  harness_unique(slug, sizeof slug, "ord");
  snprintf(email, sizeof email, "owner@%s.example", slug);
  Tenants__V1__Owner owner = TENANTS__V1__OWNER__INIT;
  owner.email = email;
  owner.password = PASSWORD;
  owner.name = "Owner";
  Tenants__V1__CreateTenantRequest req =
      TENANTS__V1__CREATE_TENANT_REQUEST__INIT;
  req.name = "Trattoria";
  req.slug = slug;
  if (currency != NULL) {
    req.currency_present_case =
        TENANTS__V1__CREATE_TENANT_REQUEST__CURRENCY_PRESENT_CURRENCY;
    req.currency = (char *)currency;
  }
  req.owner = &owner;
  rpc_result *r =
      call(x->tenants, "tenants.v1.Tenants/CreateTenant", &req.base, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__CreateTenantResponse *resp =
      tenants__v1__create_tenant_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_ptr_nonnull(resp);
  snprintf(out->id, sizeof out->id, "%s", resp->tenant->id);
  snprintf(out->owner, sizeof out->owner, "%s", resp->access_token);
  snprintf(out->owner_id, sizeof out->owner_id, "%s", resp->user->id);
  tenants__v1__create_tenant_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
}

/* A customer of t: Register + Login; the access token and user id. */
static void make_customer(ctx *x, const tenant *t, char *token, size_t cap,
                          char user_id[UUID_STR_LEN + 1]) {
  char u[UUID_STR_LEN + 1], email[96];
  uuid_v7_str(u);
  snprintf(email, sizeof email, "customer-%.12s@example.test", u + 24);
  Auth__V1__RegisterRequest reg = AUTH__V1__REGISTER_REQUEST__INIT;
  reg.email = email;
  reg.password = PASSWORD;
  reg.name = "A Customer";
  rpc_result *r = harness_rpc_call(x->auth, "auth.v1.Auth/Register", &reg.base,
                                   NULL, t->id, NULL);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  Auth__V1__LoginRequest login = AUTH__V1__LOGIN_REQUEST__INIT;
  login.email = email;
  login.password = PASSWORD;
  r = harness_rpc_call(x->auth, "auth.v1.Auth/Login", &login.base, NULL, t->id,
                       NULL);
  CK_RPC_CODE(r, RPC_OK);
  Auth__V1__LoginResponse *lr =
      auth__v1__login_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(lr);
  snprintf(token, cap, "%s", lr->access_token);
  snprintf(user_id, UUID_STR_LEN + 1, "%s", lr->user->id);
  auth__v1__login_response__free_unpacked(lr, NULL);
  rpc_result_free(r);
}

/* Creates a product; stock < 0 means unlimited. Returns its id. */
static void make_product(ctx *x, const tenant *t, const char *name,
                         int64_t price, int64_t stock, const char *category,
                         char id[UUID_STR_LEN + 1]) {
  Orders__V1__CreateProductRequest req =
      ORDERS__V1__CREATE_PRODUCT_REQUEST__INIT;
  req.name = (char *)name;
  req.category = (char *)(category ? category : "mains");
  req.price_cents = price;
  if (stock >= 0) {
    req.stock_present_case =
        ORDERS__V1__CREATE_PRODUCT_REQUEST__STOCK_PRESENT_STOCK;
    req.stock = stock;
  }
  rpc_result *r = call(x->orders, O("CreateProduct"), &req.base, t->owner);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__CreateProductResponse *resp =
      orders__v1__create_product_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_ptr_nonnull(resp);
  snprintf(id, UUID_STR_LEN + 1, "%s", resp->product->id);
  orders__v1__create_product_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
}

static Orders__V1__Product *get_product(ctx *x, const char *token,
                                        const char *id, int want) {
  Orders__V1__GetProductRequest req = ORDERS__V1__GET_PRODUCT_REQUEST__INIT;
  req.id = (char *)id;
  rpc_result *r = call(x->orders, O("GetProduct"), &req.base, token);
  CK_RPC_CODE(r, want);
  Orders__V1__Product *p = NULL;
  if (r->code == RPC_OK) {
    Orders__V1__GetProductResponse *resp =
        orders__v1__get_product_response__unpack(NULL, r->payload_len,
                                                 r->payload);
    ck_assert_ptr_nonnull(resp);
    p = resp->product;
    resp->product = NULL;
    orders__v1__get_product_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return p;
}

static int64_t stock_of(ctx *x, const tenant *t, const char *id) {
  Orders__V1__Product *p = get_product(x, t->owner, id, RPC_OK);
  ck_assert_int_eq(p->stock_present_case,
                   ORDERS__V1__PRODUCT__STOCK_PRESENT_STOCK);
  int64_t s = p->stock;
  orders__v1__product__free_unpacked(p, NULL);
  return s;
}

/* CreateOrder of one line (qty of pid), optionally with a key/table. */
static rpc_result *order_raw(rpc_client *c, const char *token, const char *pid,
                             int qty, const char *table, const char *key) {
  Orders__V1__OrderLine line = ORDERS__V1__ORDER_LINE__INIT;
  line.product_id = (char *)pid;
  line.quantity = qty;
  Orders__V1__OrderLine *lines[] = {&line};
  Orders__V1__CreateOrderRequest req = ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
  req.n_items = 1;
  req.items = lines;
  req.table_id = (char *)(table ? table : "");
  req.notes = "extra napkins";
  return harness_rpc_call(c, O("CreateOrder"), &req.base, token, NULL, key);
}

static Orders__V1__Order *order_of(const rpc_result *r) {
  Orders__V1__CreateOrderResponse *resp =
      orders__v1__create_order_response__unpack(NULL, r->payload_len,
                                                r->payload);
  ck_assert_ptr_nonnull(resp);
  Orders__V1__Order *o = resp->order;
  resp->order = NULL;
  orders__v1__create_order_response__free_unpacked(resp, NULL);
  return o;
}

/* An order that must succeed; its id. */
static void order_ok(ctx *x, const char *token, const char *pid, int qty,
                     char id[UUID_STR_LEN + 1]) {
  rpc_result *r = order_raw(x->orders, token, pid, qty, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__Order *o = order_of(r);
  snprintf(id, UUID_STR_LEN + 1, "%s", o->id);
  orders__v1__order__free_unpacked(o, NULL);
  rpc_result_free(r);
}

/* UpdateOrderStatus (version < 0: none); returns the result. */
static rpc_result *move(ctx *x, const char *token, const char *id,
                        Orders__V1__OrderStatus to, int64_t version) {
  Orders__V1__UpdateOrderStatusRequest req =
      ORDERS__V1__UPDATE_ORDER_STATUS_REQUEST__INIT;
  req.id = (char *)id;
  req.status = to;
  if (version >= 0) {
    req.version_present_case =
        ORDERS__V1__UPDATE_ORDER_STATUS_REQUEST__VERSION_PRESENT_VERSION;
    req.version = version;
  }
  return call(x->orders, O("UpdateOrderStatus"), &req.base, token);
}

static rpc_result *cancel(ctx *x, const char *token, const char *id) {
  Orders__V1__CancelOrderRequest req = ORDERS__V1__CANCEL_ORDER_REQUEST__INIT;
  req.id = (char *)id;
  return call(x->orders, O("CancelOrder"), &req.base, token);
}

/* ---------------------------------------------------- direct checks --- */

/* A number straight from the database (RLS does not apply). */
static int64_t sql_count(const char *sql, const char *arg) {
  return harness_pg_count(&g_pg, sql, arg);
}

/* The source's newest seq, through Replay. */
static uint64_t last_seq(rpc_client *c) {
  Rpc__V1__ReplayRequest req = RPC__V1__REPLAY_REQUEST__INIT;
  req.limit = 1;
  rpc_result *r = call(c, REPLAY, &req.base, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Rpc__V1__ReplayResponse *resp =
      rpc__v1__replay_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(resp);
  uint64_t last = resp->last_seq;
  rpc__v1__replay_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  return last;
}

/* ------------------------------------------------------------ events --- */

#define MAX_SEEN 512

typedef struct seen {
  pthread_mutex_t mu;
  char tid[UUID_STR_LEN + 1]; /* only this tenant's events are kept */
  int n;
  uint64_t seq[MAX_SEEN];
  char type[MAX_SEEN][32];
  char topic[MAX_SEEN][64];
  char order_id[MAX_SEEN][UUID_STR_LEN + 1];
  uint64_t last_any; /* last seq delivered, any tenant */
} seen;

static int on_event(void *arg, const Rpc__V1__Event *ev) {
  seen *s = arg;
  pthread_mutex_lock(&s->mu);
  s->last_any = ev->seq;
  if (strcmp(ev->tenant_id, s->tid) == 0 && s->n < MAX_SEEN) {
    int i = s->n++;
    s->seq[i] = ev->seq;
    snprintf(s->type[i], sizeof s->type[i], "%s", ev->type);
    snprintf(s->topic[i], sizeof s->topic[i], "%s", ev->topic);
    s->order_id[i][0] = '\0';
    if (strcmp(ev->type, "OrderCreated") == 0) {
      Orders__V1__OrderCreated *oc = orders__v1__order_created__unpack(
          NULL, ev->payload.len, ev->payload.data);
      if (oc != NULL && oc->order != NULL)
        snprintf(s->order_id[i], UUID_STR_LEN + 1, "%s", oc->order->id);
      if (oc != NULL) orders__v1__order_created__free_unpacked(oc, NULL);
    }
  }
  pthread_mutex_unlock(&s->mu);
  return ERR_OK;
}

typedef struct replayer {
  rpc_client *c;
} replayer;

static int backfill(void *arg, const char *source, uint64_t after,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  (void)up_to;
  replayer *r = arg;
  return bus_replay_fetch(r->c, source, after, limit, 5000, out);
}

/* A subscriber to every topic of bus_url, from position `from`, healing
 * gaps through Replay on replay_client. */
static bus_subscriber *subscribe(const char *bus_url, seen *s, replayer *rp,
                                 uint64_t from) {
  bus_subscriber_options so;
  bus_subscriber_options_init(&so);
  so.tracker.backfill = backfill;
  so.tracker.backfill_arg = rp;
  so.tracker.idle_check_ms = 300;
  bus_subscriber *sub = NULL;
  ck_assert_int_eq(bus_subscriber_new(bus_url, on_event, s, &so, &sub), ERR_OK);
  ck_assert_int_eq(bus_subscribe_prefix(sub, ""), ERR_OK);
  ck_assert_int_eq(bus_subscriber_set_position(sub, "orders", from), ERR_OK);
  ck_assert_int_eq(bus_subscriber_start(sub), ERR_OK);
  return sub;
}

static bool wait_events(seen *s, int n) {
  int64_t give_up = time_mono_ms() + 20000;
  while (time_mono_ms() < give_up) {
    pthread_mutex_lock(&s->mu);
    int have = s->n;
    pthread_mutex_unlock(&s->mu);
    if (have >= n) return true;
    time_sleep_ms(50);
  }
  return false;
}

/* ============================================================ crash === */

START_TEST(kill_between_commit_and_publish_loses_nothing) {
  harness_service crashy;
  ck_assert_msg(start_orders(&crashy, "orders-crashy",
                             "ORDERS_TEST_RELAY_DELAY=3s", NULL),
                "orders with the relay delay did not start");
  ctx x;
  ctx_open_at(&x, crashy.rpc_url);
  tenant t;
  make_tenant(&x, "EUR", &t);
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  /* Every event of t gets a seq above this one (t is new). */
  uint64_t before = last_seq(x.orders);
  make_product(&x, &t, "Lasagne", 1100, 5, NULL, pid);
  order_ok(&x, t.owner, pid, 1, oid);
  /* committed: the order and its two events are in the database ... */
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.orders WHERE id = "
                             "$1::uuid",
                             oid),
                   1);
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.outbox WHERE "
                             "tenant_id = $1::uuid AND type IN "
                             "('OrderCreated', 'KitchenTicket')",
                             t.id),
                   2);
  /* ... and the process dies before they were published */
  harness_signal(crashy.proc, SIGKILL);
  int st = harness_wait_exit(crashy.proc, 10000);
  ck_assert(st != -1 && WIFSIGNALED(st));
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.outbox WHERE "
                             "tenant_id = $1::uuid AND type IN "
                             "('OrderCreated', 'KitchenTicket') AND "
                             "published_at IS NULL",
                             t.id),
                   2);
  ctx_close(&x);

  /* a restarted process publishes them; a subscriber that was down
   * catches up from its position through Replay, in order */
  harness_service again;
  ck_assert(start_orders(&again, "orders-restarted", NULL, NULL));
  rpc_client *rc = harness_rpc_client(again.rpc_url);
  int64_t give_up = time_mono_ms() + 20000;
  while (sql_count("SELECT count(*) FROM orders.outbox WHERE tenant_id = "
                   "$1::uuid AND published_at IS NULL",
                   t.id) != 0) {
    ck_assert_msg(time_mono_ms() < give_up, "events were not published");
    time_sleep_ms(100);
  }
  /* static: a failed assertion leaves the subscriber running */
  static seen s;
  memset(&s, 0, sizeof s);
  snprintf(s.tid, sizeof s.tid, "%s", t.id);
  pthread_mutex_init(&s.mu, NULL);
  static replayer rp;
  rp.c = rc;
  bus_subscriber *sub = subscribe(again.bus_url, &s, &rp, before);
  ck_assert_msg(wait_events(&s, 3), "missed events");
  bus_subscriber_free(sub);
  pthread_mutex_lock(&s.mu);
  /* the product's creation, then the order's two events, seqs in order */
  ck_assert_str_eq(s.type[0], "ProductChanged");
  ck_assert_str_eq(s.type[1], "OrderCreated");
  ck_assert_str_eq(s.order_id[1], oid);
  ck_assert_str_eq(s.type[2], "KitchenTicket");
  char want[64];
  snprintf(want, sizeof want, "kitchen.%s", t.id);
  ck_assert_str_eq(s.topic[2], want);
  for (int i = 1; i < s.n; i++) ck_assert_uint_gt(s.seq[i], s.seq[i - 1]);
  pthread_mutex_unlock(&s.mu);
  rpc_client_free(rc);
  harness_service_stop(&again, 10000);
}
END_TEST

/* ========================================================= products === */

START_TEST(products_with_versions_roles_and_soft_delete) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, NULL, &t);
  char ctoken[PASETO_TOKEN_MAX + 1], cid[UUID_STR_LEN + 1];
  make_customer(&x, &t, ctoken, sizeof ctoken, cid);

  /* shape and bounds, each field named */
  Orders__V1__CreateProductRequest bad =
      ORDERS__V1__CREATE_PRODUCT_REQUEST__INIT;
  bad.name = "";
  bad.price_cents = -5;
  bad.stock_present_case =
      ORDERS__V1__CREATE_PRODUCT_REQUEST__STOCK_PRESENT_STOCK;
  bad.stock = -1;
  rpc_result *r = call(x.orders, O("CreateProduct"), &bad.base, t.owner);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "name");
  CK_RPC_VIOLATION(r, "price_cents");
  CK_RPC_VIOLATION(r, "stock");
  rpc_result_free(r);
  /* customers do not edit the menu; no token, no menu */
  bad.name = "Soup";
  bad.price_cents = 100;
  bad.stock = 1;
  r = call(x.orders, O("CreateProduct"), &bad.base, ctoken);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = call(x.orders, O("CreateProduct"), &bad.base, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);

  char pid[UUID_STR_LEN + 1];
  make_product(&x, &t, "Pizza Margherita", 950, 10, "pizza", pid);
  Orders__V1__Product *p = get_product(&x, ctoken, pid, RPC_OK);
  ck_assert_str_eq(p->name, "Pizza Margherita");
  ck_assert_int_eq(p->version, 1);
  ck_assert_int_eq(p->stock, 10);
  ck_assert(p->active);
  orders__v1__product__free_unpacked(p, NULL);

  /* optimistic versions */
  Orders__V1__UpdateProductRequest up =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__INIT;
  up.id = pid;
  up.price_cents_present_case =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__PRICE_CENTS_PRESENT_PRICE_CENTS;
  up.price_cents = 1050;
  up.version_present_case =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__VERSION_PRESENT_VERSION;
  up.version = 1;
  r = call(x.orders, O("UpdateProduct"), &up.base, t.owner);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  r = call(x.orders, O("UpdateProduct"), &up.base, t.owner); /* stale */
  CK_RPC_CODE(r, RPC_ABORTED);
  CK_RPC_VIOLATION(r, "version");
  rpc_result_free(r);
  /* unlimited stock, then inactive: customers no longer see it */
  Orders__V1__UpdateProductRequest up2 =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__INIT;
  up2.id = pid;
  up2.stock_change_case =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__STOCK_CHANGE_UNLIMITED_STOCK;
  up2.unlimited_stock = true;
  up2.active_present_case =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__ACTIVE_PRESENT_ACTIVE;
  up2.active = false;
  r = call(x.orders, O("UpdateProduct"), &up2.base, t.owner);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__UpdateProductResponse *ur =
      orders__v1__update_product_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_int_eq(ur->product->version, 3);
  ck_assert_int_eq(ur->product->price_cents, 1050);
  ck_assert_int_eq(ur->product->stock_present_case,
                   ORDERS__V1__PRODUCT__STOCK_PRESENT__NOT_SET);
  orders__v1__update_product_response__free_unpacked(ur, NULL);
  rpc_result_free(r);
  orders__v1__product__free_unpacked(get_product(&x, t.owner, pid, RPC_OK),
                                     NULL);
  get_product(&x, ctoken, pid, RPC_NOT_FOUND);
  r = order_raw(x.orders, ctoken, pid, 1, NULL, NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "items[0].product_id");
  rpc_result_free(r);

  /* soft delete: gone for everybody, twice is NOT_FOUND, the row stays */
  Orders__V1__DeleteProductRequest del =
      ORDERS__V1__DELETE_PRODUCT_REQUEST__INIT;
  del.id = pid;
  r = call(x.orders, O("DeleteProduct"), &del.base, t.owner);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  r = call(x.orders, O("DeleteProduct"), &del.base, t.owner);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  get_product(&x, t.owner, pid, RPC_NOT_FOUND);
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.products WHERE id = "
                             "$1::uuid AND deleted_at IS NOT NULL",
                             pid),
                   1);
  ctx_close(&x);
}
END_TEST

/* ============================================================ stock === */

typedef struct racer {
  const char *token, *pid;
  int code;
  bool stock_violation;
} racer;

static void *race_order(void *arg) {
  racer *rc = arg;
  rpc_client *c = harness_rpc_client(g_orders.rpc_url);
  rpc_result *r = order_raw(c, rc->token, rc->pid, 1, NULL, NULL);
  rc->code = r->code;
  rc->stock_violation = harness_rpc_has_violation(r, "items[0].quantity");
  rpc_result_free(r);
  rpc_client_free(c);
  return NULL;
}

START_TEST(twenty_concurrent_orders_for_ten_in_stock) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "EUR", &t);
  char pid[UUID_STR_LEN + 1];
  make_product(&x, &t, "Tiramisu", 600, 10, "desserts", pid);
  enum { N = 20 };
  racer rs[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    rs[i] = (racer){.token = t.owner, .pid = pid, .code = -1};
    ck_assert_int_eq(pthread_create(&th[i], NULL, race_order, &rs[i]), 0);
  }
  int ok = 0, refused = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    ok += rs[i].code == RPC_OK;
    if (rs[i].code == RPC_FAILED_PRECONDITION) {
      refused++;
      ck_assert(rs[i].stock_violation);
    }
  }
  ck_assert_int_eq(ok, 10);
  ck_assert_int_eq(refused, 10);
  ck_assert_int_eq(stock_of(&x, &t, pid), 0);
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.orders WHERE "
                             "tenant_id = $1::uuid",
                             t.id),
                   10);
  ck_assert_int_eq(sql_count("SELECT stock FROM orders.products WHERE id = "
                             "$1::uuid",
                             pid),
                   0);
  ctx_close(&x);
}
END_TEST

/* ====================================================== idempotency === */

START_TEST(idempotency_key_answers_once) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "JPY", &t);
  char pid[UUID_STR_LEN + 1], key[64];
  make_product(&x, &t, "Ramen", 1200, 10, "noodles", pid);
  char u[UUID_STR_LEN + 1];
  uuid_v7_str(u);
  snprintf(key, sizeof key, "retry-%s", u);

  rpc_result *r1 = order_raw(x.orders, t.owner, pid, 2, NULL, key);
  CK_RPC_CODE(r1, RPC_OK);
  rpc_result *r2 = order_raw(x.orders, t.owner, pid, 2, NULL, key);
  CK_RPC_CODE(r2, RPC_OK);
  /* the same answer, byte for byte; one order; stock taken once */
  ck_assert_uint_eq(r1->payload_len, r2->payload_len);
  ck_assert_mem_eq(r1->payload, r2->payload, r1->payload_len);
  Orders__V1__Order *o = order_of(r1);
  ck_assert_str_eq(o->currency, "JPY");
  ck_assert_int_eq(o->total_cents, 2400);
  ck_assert_str_eq(o->total, "2400");
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.orders WHERE "
                             "tenant_id = $1::uuid",
                             t.id),
                   1);
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.outbox WHERE "
                             "tenant_id = $1::uuid AND type = 'OrderCreated'",
                             t.id),
                   1);
  ck_assert_int_eq(stock_of(&x, &t, pid), 8);
  orders__v1__order__free_unpacked(o, NULL);
  rpc_result_free(r1);
  rpc_result_free(r2);

  /* the same key with another body */
  rpc_result *r3 = order_raw(x.orders, t.owner, pid, 3, NULL, key);
  CK_RPC_CODE(r3, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r3, "idempotency_key");
  rpc_result_free(r3);

  /* a first call still running holds the key's lock: a duplicate is
   * ABORTED (the test holds that lock itself, as the first call would) */
  char key2[64], lockname[400];
  snprintf(key2, sizeof key2, "busy-%s", u);
  char sub[UUID_STR_LEN + 1];
  snprintf(sub, sizeof sub, "%s", t.owner_id);
  snprintf(lockname, sizeof lockname, "orders.idem|%s|%s|%s", t.id, sub, key2);
  db_config cfg = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_OK);
  db_param lp[] = {db_text(lockname)};
  ck_assert_int_eq(db_exec(c,
                           "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                           lp, 1, NULL),
                   ERR_OK);
  rpc_result *r4 = order_raw(x.orders, t.owner, pid, 1, NULL, key2);
  CK_RPC_CODE(r4, RPC_ABORTED);
  rpc_result_free(r4);
  ck_assert_int_eq(db_exec(c,
                           "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                           lp, 1, NULL),
                   ERR_OK);
  db_release(c);
  db_pool_free(p);
  r4 = order_raw(x.orders, t.owner, pid, 1, NULL, key2);
  CK_RPC_CODE(r4, RPC_OK);
  rpc_result_free(r4);

  /* keys are the caller's: another user's same key is another request */
  char ctoken[PASETO_TOKEN_MAX + 1], cid[UUID_STR_LEN + 1];
  make_customer(&x, &t, ctoken, sizeof ctoken, cid);
  rpc_result *r5 = order_raw(x.orders, ctoken, pid, 2, NULL, key);
  CK_RPC_CODE(r5, RPC_OK);
  Orders__V1__Order *o5 = order_of(r5);
  ck_assert_str_eq(o5->customer_id, cid);
  orders__v1__order__free_unpacked(o5, NULL);
  rpc_result_free(r5);

  /* an expired key is forgotten: the same request makes a new order */
  ck_assert_int_eq(sql_count("WITH u AS (UPDATE orders.idempotency SET "
                             "expires_at = now() - interval '1 second' WHERE "
                             "key = $1 RETURNING 1) SELECT count(*) FROM u",
                             key),
                   2);
  rpc_result *r6 = order_raw(x.orders, t.owner, pid, 2, NULL, key);
  CK_RPC_CODE(r6, RPC_OK);
  rpc_result_free(r6);
  ck_assert_int_eq(sql_count("SELECT count(*) FROM orders.orders WHERE "
                             "tenant_id = $1::uuid",
                             t.id),
                   4);
  ctx_close(&x);
}
END_TEST

/* ======================================================== isolation === */

/* What the sync service relies on (services/sync/push.h): a status change
 * or cancel under an Idempotency-Key is applied once and answered again
 * byte for byte; a cancel may carry the version it was decided on; staff
 * may choose a new order's UUIDv7 id (an offline device's). */
START_TEST(keyed_status_changes_and_client_ids_for_sync) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "EUR", &t);
  char pid[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1], key[96];
  make_product(&x, &t, "Tea", 300, 10, "drinks", pid);
  order_ok(&x, t.owner, pid, 1, id);
  snprintf(key, sizeof key, "device:%s:7", id);
  Orders__V1__UpdateOrderStatusRequest up =
      ORDERS__V1__UPDATE_ORDER_STATUS_REQUEST__INIT;
  up.id = id;
  up.status = ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED;
  up.version_present_case =
      ORDERS__V1__UPDATE_ORDER_STATUS_REQUEST__VERSION_PRESENT_VERSION;
  up.version = 1;
  rpc_result *r1 = harness_rpc_call(x.orders, O("UpdateOrderStatus"), &up.base,
                                    t.owner, NULL, key);
  CK_RPC_CODE(r1, RPC_OK);
  /* The retry (after a lost answer) replays; without the key the same
   * change would be stale now. */
  rpc_result *r2 = harness_rpc_call(x.orders, O("UpdateOrderStatus"), &up.base,
                                    t.owner, NULL, key);
  CK_RPC_CODE(r2, RPC_OK);
  ck_assert_uint_eq(r1->payload_len, r2->payload_len);
  ck_assert_mem_eq(r1->payload, r2->payload, r1->payload_len);
  rpc_result_free(r1);
  rpc_result_free(r2);
  r1 = move(&x, t.owner, id, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED,
            1);
  CK_RPC_CODE(r1, RPC_ABORTED);
  CK_RPC_VIOLATION(r1, "version");
  rpc_result_free(r1);
  ck_assert_int_eq(sql_count("SELECT version FROM orders.orders WHERE "
                             "id = $1::uuid",
                             id),
                   2);
  /* Cancel with a stale version: ABORTED; with the current one, under a
   * key: once. */
  Orders__V1__CancelOrderRequest c = ORDERS__V1__CANCEL_ORDER_REQUEST__INIT;
  c.id = id;
  c.version_present_case =
      ORDERS__V1__CANCEL_ORDER_REQUEST__VERSION_PRESENT_VERSION;
  c.version = 1;
  r1 = call(x.orders, O("CancelOrder"), &c.base, t.owner);
  CK_RPC_CODE(r1, RPC_ABORTED);
  CK_RPC_VIOLATION(r1, "version");
  rpc_result_free(r1);
  c.version = 2;
  snprintf(key, sizeof key, "device:%s:8", id);
  r1 =
      harness_rpc_call(x.orders, O("CancelOrder"), &c.base, t.owner, NULL, key);
  CK_RPC_CODE(r1, RPC_OK);
  r2 =
      harness_rpc_call(x.orders, O("CancelOrder"), &c.base, t.owner, NULL, key);
  CK_RPC_CODE(r2, RPC_OK);
  ck_assert_mem_eq(r1->payload, r2->payload, r1->payload_len);
  rpc_result_free(r1);
  rpc_result_free(r2);
  ck_assert_int_eq(stock_of(&x, &t, pid), 10); /* restocked once */

  /* A client-chosen id: staff yes (the order has it), customers no, and
   * not a UUIDv7 or far in the future: refused. */
  char mine[UUID_STR_LEN + 1];
  uuid_v7_str(mine);
  Orders__V1__OrderLine line = ORDERS__V1__ORDER_LINE__INIT;
  line.product_id = pid;
  line.quantity = 1;
  Orders__V1__OrderLine *lines[] = {&line};
  Orders__V1__CreateOrderRequest cr = ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
  cr.n_items = 1;
  cr.items = lines;
  cr.id = mine;
  r1 = call(x.orders, O("CreateOrder"), &cr.base, t.owner);
  CK_RPC_CODE(r1, RPC_OK);
  Orders__V1__Order *o = order_of(r1);
  ck_assert_str_eq(o->id, mine);
  orders__v1__order__free_unpacked(o, NULL);
  rpc_result_free(r1);
  r1 = call(x.orders, O("CreateOrder"), &cr.base, t.owner); /* taken */
  CK_RPC_CODE(r1, RPC_ALREADY_EXISTS);
  rpc_result_free(r1);
  char ctok[PASETO_TOKEN_MAX + 1], cid[UUID_STR_LEN + 1];
  make_customer(&x, &t, ctok, sizeof ctok, cid);
  uuid_v7_str(mine);
  r1 = call(x.orders, O("CreateOrder"), &cr.base, ctok);
  CK_RPC_CODE(r1, RPC_PERMISSION_DENIED);
  CK_RPC_VIOLATION(r1, "id");
  rpc_result_free(r1);
  cr.id = "00000000-0000-4000-8000-000000000000"; /* a v4 */
  r1 = call(x.orders, O("CreateOrder"), &cr.base, t.owner);
  CK_RPC_CODE(r1, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r1, "id");
  rpc_result_free(r1);
  uuid far;
  uuid_v7_at(time_now_ms() + 3600 * 1000, &far);
  uuid_format(&far, mine);
  cr.id = mine;
  r1 = call(x.orders, O("CreateOrder"), &cr.base, t.owner);
  CK_RPC_CODE(r1, RPC_INVALID_ARGUMENT);
  rpc_result_free(r1);
  ctx_close(&x);
}
END_TEST

START_TEST(other_tenants_products_tables_and_orders_are_refused) {
  ctx x;
  ctx_open(&x);
  tenant a, b;
  make_tenant(&x, "EUR", &a);
  make_tenant(&x, "EUR", &b);
  char pa[UUID_STR_LEN + 1], pb[UUID_STR_LEN + 1];
  make_product(&x, &a, "Gnocchi", 900, 5, NULL, pa);
  make_product(&x, &b, "Risotto", 1300, 5, NULL, pb);
  Orders__V1__CreateTableRequest tr = ORDERS__V1__CREATE_TABLE_REQUEST__INIT;
  tr.label = "Terrace 1";
  rpc_result *r = call(x.orders, O("CreateTable"), &tr.base, b.owner);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__CreateTableResponse *tresp =
      orders__v1__create_table_response__unpack(NULL, r->payload_len,
                                                r->payload);
  char tb[UUID_STR_LEN + 1];
  snprintf(tb, sizeof tb, "%s", tresp->table->id);
  orders__v1__create_table_response__free_unpacked(tresp, NULL);
  rpc_result_free(r);
  r = call(x.orders, O("CreateTable"), &tr.base, b.owner); /* label taken */
  CK_RPC_CODE(r, RPC_ALREADY_EXISTS);
  CK_RPC_VIOLATION(r, "label");
  rpc_result_free(r);

  /* b's product in a's order, b's table in a's order */
  r = order_raw(x.orders, a.owner, pb, 1, NULL, NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "items[0].product_id");
  rpc_result_free(r);
  r = order_raw(x.orders, a.owner, pa, 1, tb, NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "table_id");
  rpc_result_free(r);
  ck_assert_int_eq(stock_of(&x, &b, pb), 5);
  ck_assert_int_eq(stock_of(&x, &a, pa), 5);

  /* a's order is invisible to b, and to a's other customers */
  char ca[PASETO_TOKEN_MAX + 1], ca_id[UUID_STR_LEN + 1];
  char ca2[PASETO_TOKEN_MAX + 1], ca2_id[UUID_STR_LEN + 1];
  make_customer(&x, &a, ca, sizeof ca, ca_id);
  make_customer(&x, &a, ca2, sizeof ca2, ca2_id);
  char oid[UUID_STR_LEN + 1];
  order_ok(&x, ca, pa, 1, oid);
  Orders__V1__GetOrderRequest g = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  g.id = oid;
  r = call(x.orders, O("GetOrder"), &g.base, b.owner);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  r = call(x.orders, O("GetOrder"), &g.base, ca2);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  r = call(x.orders, O("GetOrder"), &g.base, ca);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  r = call(x.orders, O("GetOrder"), &g.base, a.owner);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  r = cancel(&x, b.owner, oid);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  r = cancel(&x, ca2, oid);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  /* a token of tenant a with the envelope naming tenant b */
  r = harness_rpc_call(x.orders, O("GetOrder"), &g.base, a.owner, b.id, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  /* a customer orders only for themselves */
  Orders__V1__OrderLine line = ORDERS__V1__ORDER_LINE__INIT;
  line.product_id = pa;
  line.quantity = 1;
  Orders__V1__OrderLine *lines[] = {&line};
  Orders__V1__CreateOrderRequest req = ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
  req.n_items = 1;
  req.items = lines;
  req.customer_id = ca_id;
  r = call(x.orders, O("CreateOrder"), &req.base, ca2);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);

  /* the database's own wall: as orders_app, a's scope sees no b rows */
  db_config cfg = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_OK);
  ck_assert_int_eq(db_begin(c, a.id), ERR_OK);
  ck_assert_int_eq(db_exec(c, "SET LOCAL ROLE orders_app", NULL, 0, NULL),
                   ERR_OK);
  db_result *res = NULL;
  db_param ps[] = {db_text(b.id)};
  ck_assert_int_eq(db_exec(c,
                           "SELECT (SELECT count(*) FROM orders.products WHERE "
                           "tenant_id = $1::uuid) + (SELECT count(*) FROM "
                           "orders.tables WHERE tenant_id = $1::uuid)",
                           ps, 1, &res),
                   ERR_OK);
  int64_t seen_b = -1;
  ck_assert_int_eq(db_get_int64(res, 0, 0, &seen_b), ERR_OK);
  ck_assert_int_eq(seen_b, 0);
  db_result_free(res);
  (void)db_rollback(c);
  db_release(c);
  db_pool_free(p);
  ctx_close(&x);
}
END_TEST

/* =========================================================== status === */

static Orders__V1__Order *moved(rpc_result *r) {
  Orders__V1__UpdateOrderStatusResponse *resp =
      orders__v1__update_order_status_response__unpack(NULL, r->payload_len,
                                                       r->payload);
  ck_assert_ptr_nonnull(resp);
  Orders__V1__Order *o = resp->order;
  resp->order = NULL;
  orders__v1__update_order_status_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  return o;
}

START_TEST(status_moves_forward_and_cancel_restocks) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "KWD", &t);
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  make_product(&x, &t, "Falafel", 1250, 10, "mezze", pid);
  char ctoken[PASETO_TOKEN_MAX + 1], cid[UUID_STR_LEN + 1];
  make_customer(&x, &t, ctoken, sizeof ctoken, cid);

  rpc_result *r = order_raw(x.orders, ctoken, pid, 3, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__Order *o = order_of(r);
  rpc_result_free(r);
  ck_assert_str_eq(o->total, "3.750");
  ck_assert_str_eq(o->currency, "KWD");
  ck_assert_int_eq(o->version, 1);
  ck_assert_str_eq(o->notes, "extra napkins");
  snprintf(oid, sizeof oid, "%s", o->id);
  orders__v1__order__free_unpacked(o, NULL);
  ck_assert_int_eq(stock_of(&x, &t, pid), 7);

  /* customers do not move orders; skipping and going back are refused */
  r = move(&x, ctoken, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED,
           -1);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = move(&x, t.owner, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_READY, -1);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  r = move(&x, t.owner, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_UNSPECIFIED,
           -1);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "status");
  rpc_result_free(r);
  r = move(&x, t.owner, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED,
           1);
  CK_RPC_CODE(r, RPC_OK);
  o = moved(r);
  ck_assert_int_eq(o->status, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED);
  ck_assert_int_eq(o->version, 2);
  orders__v1__order__free_unpacked(o, NULL);
  r = move(&x, t.owner, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PREPARING,
           1); /* stale */
  CK_RPC_CODE(r, RPC_ABORTED);
  rpc_result_free(r);
  r = move(&x, t.owner, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PENDING, 2);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  /* the customer may no longer cancel a confirmed order */
  r = cancel(&x, ctoken, oid);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  /* staff cancels: the stock comes back */
  r = cancel(&x, t.owner, oid);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(stock_of(&x, &t, pid), 10);
  r = cancel(&x, t.owner, oid);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  r = move(&x, t.owner, oid, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PREPARING,
           -1);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);

  /* the whole way to delivered; then no cancelling */
  char o2[UUID_STR_LEN + 1];
  order_ok(&x, ctoken, pid, 1, o2);
  Orders__V1__OrderStatus path[] = {
      ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED,
      ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PREPARING,
      ORDERS__V1__ORDER_STATUS__ORDER_STATUS_READY,
      ORDERS__V1__ORDER_STATUS__ORDER_STATUS_DELIVERED};
  for (int i = 0; i < 4; i++) {
    r = move(&x, t.owner, o2, path[i], i + 1);
    CK_RPC_CODE(r, RPC_OK);
    rpc_result_free(r);
  }
  r = cancel(&x, t.owner, o2);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  ck_assert_int_eq(stock_of(&x, &t, pid), 9);
  /* a customer cancels their own pending order */
  char o3[UUID_STR_LEN + 1];
  order_ok(&x, ctoken, pid, 4, o3);
  ck_assert_int_eq(stock_of(&x, &t, pid), 5);
  r = cancel(&x, ctoken, o3);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(stock_of(&x, &t, pid), 9);
  ctx_close(&x);
}
END_TEST

/* ============================================================ lists === */

START_TEST(orders_list_newest_first_in_stable_pages) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "EUR", &t);
  char pid[UUID_STR_LEN + 1];
  make_product(&x, &t, "Espresso", 250, -1, "drinks", pid);
  char ctoken[PASETO_TOKEN_MAX + 1], cid[UUID_STR_LEN + 1];
  make_customer(&x, &t, ctoken, sizeof ctoken, cid);
  char ids[7][UUID_STR_LEN + 1];
  for (int i = 0; i < 5; i++) order_ok(&x, t.owner, pid, 1, ids[i]);
  order_ok(&x, ctoken, pid, 2, ids[5]);

  Orders__V1__ListOrdersRequest lr = ORDERS__V1__LIST_ORDERS_REQUEST__INIT;
  lr.limit = 4;
  char cursor[64] = "";
  char got[16][UUID_STR_LEN + 1];
  int n = 0, pages = 0;
  for (;;) {
    lr.cursor = cursor;
    rpc_result *r = call(x.orders, O("ListOrders"), &lr.base, t.owner);
    CK_RPC_CODE(r, RPC_OK);
    Orders__V1__ListOrdersResponse *resp =
        orders__v1__list_orders_response__unpack(NULL, r->payload_len,
                                                 r->payload);
    for (size_t i = 0; i < resp->n_orders && n < 16; i++)
      snprintf(got[n++], UUID_STR_LEN + 1, "%s", resp->orders[i]->id);
    snprintf(cursor, sizeof cursor, "%s", resp->next_cursor);
    orders__v1__list_orders_response__free_unpacked(resp, NULL);
    rpc_result_free(r);
    pages++;
    if (pages == 1) /* an order made while paging does not shift pages */
      order_ok(&x, t.owner, pid, 1, ids[6]);
    if (cursor[0] == '\0') break;
    ck_assert_int_lt(pages, 5);
  }
  ck_assert_int_eq(pages, 2);
  ck_assert_int_eq(n, 6);
  for (int i = 0; i < 6; i++)
    ck_assert_str_eq(got[i], ids[5 - i]); /* newest first, each once */

  /* the customer sees their own only; status filter; bad inputs */
  lr.cursor = "";
  rpc_result *r = call(x.orders, O("ListOrders"), &lr.base, ctoken);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__ListOrdersResponse *resp =
      orders__v1__list_orders_response__unpack(NULL, r->payload_len,
                                               r->payload);
  ck_assert_uint_eq(resp->n_orders, 1);
  ck_assert_str_eq(resp->orders[0]->id, ids[5]);
  ck_assert_str_eq(resp->orders[0]->customer_id, cid);
  ck_assert_str_eq(resp->next_cursor, "");
  orders__v1__list_orders_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  r = move(&x, t.owner, ids[2],
           ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED, -1);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  lr.status = ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED;
  lr.limit = 0;
  r = call(x.orders, O("ListOrders"), &lr.base, t.owner);
  CK_RPC_CODE(r, RPC_OK);
  resp = orders__v1__list_orders_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_uint_eq(resp->n_orders, 1);
  ck_assert_str_eq(resp->orders[0]->id, ids[2]);
  orders__v1__list_orders_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  lr.status = 0;
  lr.limit = 101;
  lr.cursor = "not-a-cursor";
  r = call(x.orders, O("ListOrders"), &lr.base, t.owner);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "limit");
  CK_RPC_VIOLATION(r, "cursor");
  rpc_result_free(r);
  ctx_close(&x);
}
END_TEST

/* "Newest first" must mean the same by id and by created_at, also for
 * orders made at the same time by many callers (issue 15: the list sorted
 * by id, a UUIDv7 minted before the transaction, while created_at was the
 * transaction's start, so a newer-listed order could show an older time). */

typedef struct burst {
  const char *token, *pid;
  int made;
} burst;

enum { BURST_THREADS = 16, BURST_EACH = 8 };

static void *order_burst(void *arg) {
  burst *b = arg;
  rpc_client *c = harness_rpc_client(g_orders.rpc_url);
  for (int i = 0; i < BURST_EACH; i++) {
    rpc_result *r = order_raw(c, b->token, b->pid, 1, NULL, NULL);
    b->made += r->code == RPC_OK;
    rpc_result_free(r);
  }
  rpc_client_free(c);
  return NULL;
}

START_TEST(concurrent_orders_list_newest_first_by_id_and_created_at) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "EUR", &t);
  char pid[UUID_STR_LEN + 1];
  make_product(&x, &t, "Flat white", 350, -1, "drinks", pid);
  burst bs[BURST_THREADS];
  pthread_t th[BURST_THREADS];
  for (int i = 0; i < BURST_THREADS; i++) {
    bs[i] = (burst){.token = t.owner, .pid = pid};
    ck_assert_int_eq(pthread_create(&th[i], NULL, order_burst, &bs[i]), 0);
  }
  int made = 0;
  for (int i = 0; i < BURST_THREADS; i++) {
    pthread_join(th[i], NULL);
    made += bs[i].made;
  }
  ck_assert_int_eq(made, BURST_THREADS * BURST_EACH);

  /* Every page, as a client reads them: ids strictly decreasing and
   * created_at (RFC 3339, fixed width: text order is time order) never
   * increasing, across page boundaries too. */
  enum { N = BURST_THREADS * BURST_EACH };
  static char ids[N][UUID_STR_LEN + 1], at[N][32];
  int n = 0, pages = 0;
  char cursor[64] = "";
  Orders__V1__ListOrdersRequest lr = ORDERS__V1__LIST_ORDERS_REQUEST__INIT;
  lr.limit = 25;
  do {
    lr.cursor = cursor;
    rpc_result *r = call(x.orders, O("ListOrders"), &lr.base, t.owner);
    CK_RPC_CODE(r, RPC_OK);
    Orders__V1__ListOrdersResponse *resp =
        orders__v1__list_orders_response__unpack(NULL, r->payload_len,
                                                 r->payload);
    ck_assert_ptr_nonnull(resp);
    for (size_t i = 0; i < resp->n_orders; i++) {
      ck_assert_int_lt(n, N);
      snprintf(ids[n], sizeof ids[n], "%s", resp->orders[i]->id);
      snprintf(at[n], sizeof at[n], "%s", resp->orders[i]->created_at);
      n++;
    }
    snprintf(cursor, sizeof cursor, "%s", resp->next_cursor);
    orders__v1__list_orders_response__free_unpacked(resp, NULL);
    rpc_result_free(r);
    ck_assert_int_lt(++pages, 10);
  } while (cursor[0] != '\0');
  ck_assert_int_eq(n, N);
  for (int i = 1; i < n; i++) {
    ck_assert_msg(strcmp(ids[i - 1], ids[i]) > 0, "ids out of order at %d", i);
    ck_assert_msg(strcmp(at[i - 1], at[i]) >= 0,
                  "listed newer but older: %s %s before %s %s", ids[i - 1],
                  at[i - 1], ids[i], at[i]);
  }
  /* The same in the database, to the microsecond: created_at is the id's
   * own millisecond, so id order and time order cannot disagree. */
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM (SELECT created_at, lag(created_at) "
                "OVER (ORDER BY id DESC) AS newer FROM orders.orders WHERE "
                "tenant_id = $1::uuid) o WHERE created_at > newer",
                t.id),
      0);
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM orders.orders WHERE tenant_id = "
                "$1::uuid AND (created_at <> updated_at OR created_at <> "
                "timestamptz 'epoch' + ('x' || substr(replace(id::text, "
                "'-', ''), 1, 12))::bit(48)::bigint * interval '1 ms')",
                t.id),
      0);
  ctx_close(&x);
}
END_TEST

/* ============================================================= menu === */

static int list_names(ctx *x, const char *token, const char *category,
                      char names[8][64], int64_t *stock0) {
  Orders__V1__ListProductsRequest req = ORDERS__V1__LIST_PRODUCTS_REQUEST__INIT;
  req.category = (char *)(category ? category : "");
  rpc_result *r = call(x->orders, O("ListProducts"), &req.base, token);
  CK_RPC_CODE(r, RPC_OK);
  Orders__V1__ListProductsResponse *resp =
      orders__v1__list_products_response__unpack(NULL, r->payload_len,
                                                 r->payload);
  ck_assert_ptr_nonnull(resp);
  int n = (int)resp->n_products;
  for (int i = 0; i < n && i < 8; i++)
    snprintf(names[i], 64, "%s", resp->products[i]->name);
  if (stock0 != NULL && n > 0) *stock0 = resp->products[0]->stock;
  orders__v1__list_products_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  return n;
}

START_TEST(menu_comes_from_redis_and_is_fresh_after_writes) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "EUR", &t);
  char ctoken[PASETO_TOKEN_MAX + 1], cid[UUID_STR_LEN + 1];
  make_customer(&x, &t, ctoken, sizeof ctoken, cid);
  char p1[UUID_STR_LEN + 1], p2[UUID_STR_LEN + 1];
  make_product(&x, &t, "Bruschetta", 500, 3, "antipasti", p1);
  make_product(&x, &t, "Panna cotta", 550, -1, "dolci", p2);
  char names[8][64];
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 2);
  ck_assert_str_eq(names[0], "Bruschetta"); /* by category, then name */
  /* the customers' menu is in Redis now */
  cache_config cc = {.url = g_redis.url};
  cache *redis = NULL;
  ck_assert_int_eq(cache_new(&cc, &redis), ERR_OK);
  char key[128];
  snprintf(key, sizeof key, "orders:menu:public:{%s}", t.id);
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(redis, key, &v, &len), ERR_OK);
  free(v);
  /* one category */
  ck_assert_int_eq(list_names(&x, ctoken, "dolci", names, NULL), 1);
  ck_assert_str_eq(names[0], "Panna cotta");

  /* an order takes stock: the next read shows it at once */
  int64_t s0 = -1;
  char oid[UUID_STR_LEN + 1];
  order_ok(&x, ctoken, p1, 2, oid);
  ck_assert_int_eq(list_names(&x, ctoken, "antipasti", names, &s0), 1);
  ck_assert_int_eq(s0, 1);
  /* deactivating hides it from customers at once, not from staff */
  Orders__V1__UpdateProductRequest up =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__INIT;
  up.id = p2;
  up.active_present_case =
      ORDERS__V1__UPDATE_PRODUCT_REQUEST__ACTIVE_PRESENT_ACTIVE;
  up.active = false;
  rpc_result *r = call(x.orders, O("UpdateProduct"), &up.base, t.owner);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 1);
  ck_assert_int_eq(list_names(&x, t.owner, NULL, names, NULL), 2);
  /* cancelling restocks: fresh again */
  r = cancel(&x, ctoken, oid);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(list_names(&x, ctoken, "antipasti", names, &s0), 1);
  ck_assert_int_eq(s0, 3);

  /* a stale fill cannot land: an entry under an old generation is never
   * served (the writer bumped the generation) */
  char gkey[128];
  snprintf(gkey, sizeof gkey, "orders:menu:gen:{%s}", t.id);
  char *g = NULL;
  ck_assert_int_eq(cache_get(redis, gkey, &g, &len), ERR_OK);
  long long gen = strtoll(g, NULL, 10);
  free(g);
  ck_assert_int_ge(gen, 4);
  char stale[64];
  int sl = snprintf(stale, sizeof stale, "%lld garbage", gen - 1);
  ck_assert_int_eq(cache_set(redis, key, stale, (size_t)sl, 60000), ERR_OK);
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 1);

  /* Another replica's write: the row changes and that replica bumps the
   * generation. This replica's unpacked copy (current a moment ago) must
   * not be served: the next read shows the change. */
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 1);
  ck_assert_int_eq(
      sql_count("WITH u AS (UPDATE orders.products SET name = 'Bruschetta "
                "al pomodoro' WHERE id = $1::uuid RETURNING 1) "
                "SELECT count(*) FROM u",
                p1),
      1);
  const char *incr[] = {"INCR", gkey};
  cache_reply *ir = NULL;
  ck_assert_int_eq(cache_command(redis, false, 2, incr, NULL, &ir), ERR_OK);
  cache_reply_free(ir);
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 1);
  ck_assert_str_eq(names[0], "Bruschetta al pomodoro");
  cache_free(redis);

  /* Redis down: the menu comes from PostgreSQL, nothing fails */
  harness_redis_stop(&g_redis);
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 1);
  char p3[UUID_STR_LEN + 1];
  make_product(&x, &t, "Affogato", 450, -1, "dolci", p3);
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 2);
  ck_assert_int_eq(harness_redis_restart(&g_redis), 0);
  ck_assert_int_eq(list_names(&x, ctoken, NULL, names, NULL), 2);
  ctx_close(&x);
}
END_TEST

/* =========================================================== events === */

START_TEST(events_arrive_in_order_and_replay_serves_them) {
  ctx x;
  ctx_open(&x);
  tenant t;
  make_tenant(&x, "EUR", &t);
  static seen s; /* static: see the crash test */
  memset(&s, 0, sizeof s);
  snprintf(s.tid, sizeof s.tid, "%s", t.id);
  pthread_mutex_init(&s.mu, NULL);
  static replayer rp;
  rp.c = x.orders;
  uint64_t start = last_seq(x.orders);
  bus_subscriber *sub = subscribe(g_orders.bus_url, &s, &rp, start);
  ck_assert_int_eq(bus_subscriber_wait_connected(sub, 1, 10000), ERR_OK);
  time_sleep_ms(200);

  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  make_product(&x, &t, "Calzone", 1000, 6, "pizza", pid); /* threshold 5 */
  order_ok(&x, t.owner, pid, 2, oid);                     /* 6 -> 4: low */
  rpc_result *r = move(&x, t.owner, oid,
                       ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED, 1);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  Orders__V1__CreateTableRequest tr = ORDERS__V1__CREATE_TABLE_REQUEST__INIT;
  tr.label = "Window";
  r = call(x.orders, O("CreateTable"), &tr.base, t.owner);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_msg(wait_events(&s, 7), "got %d events", s.n);
  bus_subscriber_free(sub);

  static const char *const want[] = {
      "ProductChanged",     "OrderCreated",  "KitchenTicket", "StockLow",
      "OrderStatusChanged", "KitchenTicket", "TableChanged"};
  static const char *const family[] = {"orders", "orders",  "kitchen", "orders",
                                       "orders", "kitchen", "tables"};
  pthread_mutex_lock(&s.mu);
  ck_assert_int_eq(s.n, 7);
  for (int i = 0; i < 7; i++) {
    ck_assert_str_eq(s.type[i], want[i]);
    char topic[64];
    snprintf(topic, sizeof topic, "%s.%s", family[i], t.id);
    ck_assert_str_eq(s.topic[i], topic);
    if (i > 0) ck_assert_uint_eq(s.seq[i], s.seq[i - 1] + 1);
  }
  uint64_t first = s.seq[0];
  pthread_mutex_unlock(&s.mu);

  /* Replay serves the same events again, same ids and order */
  Rpc__V1__ReplayRequest rq = RPC__V1__REPLAY_REQUEST__INIT;
  rq.after_seq = first - 1;
  rq.limit = 7;
  r = call(x.orders, REPLAY, &rq.base, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Rpc__V1__ReplayResponse *rr =
      rpc__v1__replay_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(rr);
  ck_assert_uint_eq(rr->n_events, 7);
  for (size_t i = 0; i < 7; i++) {
    ck_assert_uint_eq(rr->events[i]->seq, first + i);
    ck_assert_str_eq(rr->events[i]->type, want[i]);
    ck_assert_str_eq(rr->events[i]->source, "orders");
    ck_assert_str_eq(rr->events[i]->tenant_id, t.id);
  }
  Orders__V1__StockLow *low = orders__v1__stock_low__unpack(
      NULL, rr->events[3]->payload.len, rr->events[3]->payload.data);
  ck_assert_ptr_nonnull(low);
  ck_assert_str_eq(low->product_id, pid);
  ck_assert_int_eq(low->stock, 4);
  ck_assert_int_eq(low->threshold, 5);
  orders__v1__stock_low__free_unpacked(low, NULL);
  rpc__v1__replay_response__free_unpacked(rr, NULL);
  rpc_result_free(r);
  ctx_close(&x);
}
END_TEST

/* ============================================================= main === */

/* No fork: the tests stop and restart shared processes (Redis, orders)
 * that only this process can wait for. */
/* Each case its own tcase (CK_RUN_CASE=<case name>); each opens its own
 * tenant and clients. */
#define ADD_CASE(s, t) HARNESS_ADD_CASE((s), t, 120, NULL)

int main(void) {
  harness_init();
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start PostgreSQL/Redis\n");
    return 1;
  }
  if (!harness_service_start_auth(&g_auth, "auth", &kSvc, NULL) ||
      !start_tenants(&g_tenants)) {
    harness_dump_logs();
    fprintf(stderr, "cannot start auth/tenants\n");
    return 1;
  }

  /* No other orders process may relay while this one runs. */
  Suite *crash = suite_create("orders_rpc_crash");
  TCase *tc = tcase_create("crash");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, kill_between_commit_and_publish_loses_nothing);
  suite_add_tcase(crash, tc);
  int failed = harness_run_shared(crash);

  if (!start_orders(&g_orders, "orders", NULL, NULL)) {
    harness_dump_logs();
    fprintf(stderr, "cannot start orders\n");
    return 1;
  }
  Suite *s = suite_create("orders_rpc_itest");
  ADD_CASE(s, products_with_versions_roles_and_soft_delete);
  ADD_CASE(s, twenty_concurrent_orders_for_ten_in_stock);
  ADD_CASE(s, idempotency_key_answers_once);
  ADD_CASE(s, keyed_status_changes_and_client_ids_for_sync);
  ADD_CASE(s, other_tenants_products_tables_and_orders_are_refused);
  ADD_CASE(s, status_moves_forward_and_cancel_restocks);
  ADD_CASE(s, orders_list_newest_first_in_stable_pages);
  ADD_CASE(s, concurrent_orders_list_newest_first_by_id_and_created_at);
  ADD_CASE(s, menu_comes_from_redis_and_is_fresh_after_writes);
  ADD_CASE(s, events_arrive_in_order_and_replay_serves_them);
  failed += harness_run_shared(s);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
