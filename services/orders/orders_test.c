/*
 * orders_test.c - the orders service's pure parts: input rules, the
 * status machine, money formatting, cursors, request hashes,
 * protobuf mapping and event payloads, the menu cache with no (or an
 * unreachable) Redis, and the currency table without a tenants service.
 * Everything that needs PostgreSQL, Redis or other services is in
 * tests/orders_rpc (and the HTTP-level tests in tests/orders).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "libs/base/cursor.h"
#include "services/orders/idem.h"
#include "services/orders/menucache.h"
#include "services/orders/menupage.h"
#include "services/orders/money.h"
#include "services/orders/orderstate.h"
#include "services/orders/store.h"
#include "services/orders/store_internal.h"
#include "services/orders/tenantcur.h"
#include "services/orders/validate.h"
#include "services/orders/wire.h"

#define PID1 "01890a5d-ac96-774b-bcce-b302099a8057"
#define PID2 "01890a5d-ac96-774b-bcce-b302099a8058"
#define TID "01890a5d-ac96-774b-bcce-b302099a8000"

/* ------------------------------------------------------------ validate --- */

START_TEST(product_fields_have_bounds) {
  vlist v;
  vlist_init(&v);
  ck_assert(validate_product_name(&v, "name", "Margherita"));
  ck_assert(!validate_product_name(&v, "name", ""));
  ck_assert(validate_price(&v, "price_cents", 0));
  ck_assert(validate_price(&v, "price_cents", 100000000));
  ck_assert(!validate_price(&v, "price_cents", 100000001));
  ck_assert(!validate_price(&v, "price_cents", -1));
  ck_assert(validate_stock(&v, "stock", 1000000));
  ck_assert(!validate_stock(&v, "stock", -1));
  ck_assert(!validate_threshold(&v, "low_stock_threshold", 1000001));
  ck_assert(validate_table_label(&v, "label", "T1"));
  ck_assert(!validate_table_label(&v, "label", "a\tb"));
  ck_assert(!validate_id(&v, "id", "nope"));
  ck_assert(validate_id(&v, "id", PID1));
  ck_assert_uint_eq(v.n, 7);
  ck_assert(vlist_has(&v, "price_cents"));
  ck_assert(vlist_has(&v, "label"));
  char name[300];
  memset(name, 'x', 201);
  name[201] = '\0';
  vlist_init(&v);
  ck_assert(!validate_product_name(&v, "name", name));
  ck_assert_str_eq(v.v[0].why, "must be at most 200 characters");
}
END_TEST

START_TEST(order_request_rules_name_each_line) {
  const char *ids[] = {PID1, "not-a-uuid", PID2,
                       "01890A5D-AC96-774B-BCCE-B302099A8057", ""};
  int32_t q[] = {1, 2, 0, 3, 100};
  vlist v;
  vlist_init(&v);
  ck_assert(!validate_order_request(&v, 5, ids, q, "bad", "fine", "bad"));
  ck_assert(vlist_has(&v, "items[1].product_id"));
  ck_assert(vlist_has(&v, "items[2].quantity"));
  /* the same product in upper case is a repeat */
  ck_assert(vlist_has(&v, "items[3].product_id"));
  ck_assert(vlist_has(&v, "items[4].product_id"));
  ck_assert(vlist_has(&v, "items[4].quantity"));
  ck_assert(vlist_has(&v, "table_id"));
  ck_assert(vlist_has(&v, "customer_id"));
  ck_assert(!vlist_has(&v, "items[0].product_id"));
  ck_assert(!vlist_has(&v, "items[0].quantity"));
  ck_assert(!vlist_has(&v, "notes"));

  vlist_init(&v);
  ck_assert(
      validate_order_request(&v, 2, ids + 2, (int32_t[]){99, 1}, "", "", ""));
  ck_assert(!validate_order_request(&v, 0, NULL, NULL, "", "", ""));
  ck_assert(vlist_has(&v, "items"));
  vlist_init(&v);
  ck_assert(!validate_order_request(&v, 51, ids, q, "", "", ""));
  ck_assert_str_eq(v.v[0].why, "must have at most 50 lines");

  char notes[600];
  memset(notes, 'n', 501);
  notes[501] = '\0';
  vlist_init(&v);
  ck_assert(!validate_order_request(&v, 1, ids, q, "", notes, ""));
  ck_assert(vlist_has(&v, "notes"));
  notes[500] = '\0';
  vlist_init(&v);
  ck_assert(validate_order_request(&v, 1, ids, q, PID2, notes, PID1));
}
END_TEST

START_TEST(idempotency_keys) {
  ck_assert(validate_idempotency_key("a"));
  ck_assert(!validate_idempotency_key(""));
  ck_assert(!validate_idempotency_key(NULL));
  ck_assert(!validate_idempotency_key("tab\there"));
  char k[300];
  memset(k, 'k', 255);
  k[255] = '\0';
  ck_assert(validate_idempotency_key(k));
  k[255] = 'k';
  k[256] = '\0';
  ck_assert(!validate_idempotency_key(k));
}
END_TEST

/* ---------------------------------------------------------- orderstate --- */

START_TEST(status_moves_one_step_forward_or_cancel) {
  order_status all[] = {OS_UNSPECIFIED, OS_PENDING, OS_CONFIRMED,
                        OS_PREPARING,   OS_READY,   OS_DELIVERED,
                        OS_CANCELLED};
  int legal = 0;
  for (size_t i = 0; i < 7; i++)
    for (size_t j = 0; j < 7; j++) legal += orderstate_can_move(all[i], all[j]);
  /* 4 forward steps + 3 cancellations */
  ck_assert_int_eq(legal, 7);
  ck_assert(orderstate_can_move(OS_PENDING, OS_CONFIRMED));
  ck_assert(orderstate_can_move(OS_CONFIRMED, OS_PREPARING));
  ck_assert(orderstate_can_move(OS_PREPARING, OS_READY));
  ck_assert(orderstate_can_move(OS_READY, OS_DELIVERED));
  ck_assert(orderstate_can_move(OS_PENDING, OS_CANCELLED));
  ck_assert(orderstate_can_move(OS_CONFIRMED, OS_CANCELLED));
  ck_assert(orderstate_can_move(OS_PREPARING, OS_CANCELLED));
  ck_assert(!orderstate_can_move(OS_READY, OS_CANCELLED));
  ck_assert(!orderstate_can_move(OS_DELIVERED, OS_CANCELLED));
  ck_assert(!orderstate_can_move(OS_CANCELLED, OS_CANCELLED));
  ck_assert(!orderstate_can_move(OS_PENDING, OS_READY)); /* no skipping */
  ck_assert(!orderstate_can_move(OS_CONFIRMED, OS_PENDING));
  ck_assert(!orderstate_can_move(OS_PENDING, OS_PENDING));
  ck_assert(orderstate_can_cancel(OS_PENDING, false));
  ck_assert(!orderstate_can_cancel(OS_CONFIRMED, false));
  ck_assert(orderstate_can_cancel(OS_PREPARING, true));
  ck_assert(!orderstate_can_cancel(OS_READY, true));
}
END_TEST

START_TEST(status_names_round_trip) {
  for (int s = OS_PENDING; s <= OS_CANCELLED; s++) {
    const char *n = orderstate_name((order_status)s);
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(orderstate_parse(n), s);
  }
  ck_assert_ptr_null(orderstate_name(OS_UNSPECIFIED));
  ck_assert_ptr_null(orderstate_name((order_status)42));
  ck_assert_int_eq(orderstate_parse("Pending"), OS_UNSPECIFIED);
  ck_assert_int_eq(orderstate_parse(NULL), OS_UNSPECIFIED);
  ck_assert(!orderstate_valid(OS_UNSPECIFIED));
}
END_TEST

/* --------------------------------------------------------------- money --- */

static const char *fmt(int64_t v, const char *cur) {
  static char buf[MONEY_STR_MAX];
  ck_assert_int_eq(money_format(v, cur, buf, sizeof buf), ERR_OK);
  return buf;
}

START_TEST(money_uses_the_currency_exponent) {
  ck_assert_str_eq(fmt(1250, "EUR"), "12.50");
  ck_assert_str_eq(fmt(5, "USD"), "0.05");
  ck_assert_str_eq(fmt(0, "EUR"), "0.00");
  ck_assert_str_eq(fmt(1250, "JPY"), "1250");
  ck_assert_str_eq(fmt(0, "KRW"), "0");
  ck_assert_str_eq(fmt(1250, "KWD"), "1.250");
  ck_assert_str_eq(fmt(7, "BHD"), "0.007");
  ck_assert_str_eq(fmt(-1250, "EUR"), "-12.50");
  ck_assert_str_eq(fmt(INT64_MIN, "EUR"), "-92233720368547758.08");
  ck_assert_str_eq(fmt(INT64_MAX, "JPY"), "9223372036854775807");
  ck_assert_str_eq(fmt(495000000000LL, "EUR"), "4950000000.00");
  ck_assert_int_eq(money_exponent("XOF"), 0);
  ck_assert_int_eq(money_exponent("TND"), 3);
  ck_assert_int_eq(money_exponent("GBP"), 2);
  ck_assert_int_eq(money_exponent(NULL), 2);
  char small[4];
  ck_assert_int_eq(money_format(1250, "EUR", small, sizeof small), ERR_TOOBIG);
  ck_assert_str_eq(small, "");
}
END_TEST

/* -------------------------------------------------------------- cursor --- */

START_TEST(cursors_round_trip_and_refuse_forgeries) {
  char c[CURSOR_LEN + 1], id[UUID_STR_LEN + 1];
  ck_assert_int_eq(cursor_encode(PID1, c), ERR_OK);
  ck_assert_uint_eq(strlen(c), CURSOR_LEN);
  ck_assert_int_eq(cursor_decode(c, id), ERR_OK);
  ck_assert_str_eq(id, PID1);
  /* upper-case ids encode to the same cursor */
  char c2[CURSOR_LEN + 1];
  ck_assert_int_eq(cursor_encode("01890A5D-AC96-774B-BCCE-B302099A8057", c2),
                   ERR_OK);
  ck_assert_str_eq(c, c2);
  for (int i = 0; i < 100; i++) {
    char u[UUID_STR_LEN + 1];
    uuid_v7_str(u);
    ck_assert_int_eq(cursor_encode(u, c), ERR_OK);
    ck_assert_int_eq(cursor_decode(c, id), ERR_OK);
    ck_assert_str_eq(id, u);
    for (const char *p = c; *p; p++)
      ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789-_",
                       *p) != NULL);
  }
  ck_assert_int_eq(cursor_encode("nope", c), ERR_INVAL);
  ck_assert_int_eq(cursor_decode("", id), ERR_INVAL);
  ck_assert_int_eq(cursor_decode(NULL, id), ERR_INVAL);
  ck_assert_int_eq(cursor_decode("AAAAAAAAAAAAAAAAAAAAA", id), ERR_INVAL);
  ck_assert_int_eq(cursor_decode("AAAAAAAAAAAAAAAAAAAAAAA", id), ERR_INVAL);
  ck_assert_int_eq(cursor_decode("AAAAAAAAAAAAAAAAAAAA==", id), ERR_INVAL);
  ck_assert_int_eq(cursor_decode("AAAAAAAAAAAAAAAAAAAA+/", id), ERR_INVAL);
  ck_assert_str_eq(id, "");
  /* the last character carries 2 spare bits: only 0 is canonical */
  ck_assert_int_eq(cursor_encode(PID1, c), ERR_OK);
  char forged[CURSOR_LEN + 1];
  memcpy(forged, c, sizeof forged);
  const char *alpha =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int idx = (int)(strchr(alpha, c[CURSOR_LEN - 1]) - alpha);
  forged[CURSOR_LEN - 1] = alpha[idx | 1];
  if (forged[CURSOR_LEN - 1] != c[CURSOR_LEN - 1])
    ck_assert_int_eq(cursor_decode(forged, id), ERR_INVAL);
}
END_TEST

/* ---------------------------------------------------------------- idem --- */

START_TEST(request_hashes_tell_requests_apart) {
  uint8_t a[IDEM_HASH_LEN], b[IDEM_HASH_LEN], c[IDEM_HASH_LEN],
      d[IDEM_HASH_LEN];
  ck_assert_int_eq(idem_request_hash("m", "abc", 3, a), ERR_OK);
  ck_assert_int_eq(idem_request_hash("m", "abc", 3, b), ERR_OK);
  ck_assert_mem_eq(a, b, IDEM_HASH_LEN);
  ck_assert_int_eq(idem_request_hash("m", "abd", 3, c), ERR_OK);
  ck_assert(memcmp(a, c, IDEM_HASH_LEN) != 0);
  /* the method is part of it, and cannot slide into the payload */
  ck_assert_int_eq(idem_request_hash("ma", "bc", 2, d), ERR_OK);
  ck_assert(memcmp(a, d, IDEM_HASH_LEN) != 0);
  ck_assert_int_eq(idem_request_hash("m", NULL, 0, c), ERR_OK);
  ck_assert_int_eq(idem_request_hash(NULL, NULL, 0, d), ERR_OK);
  ck_assert(memcmp(c, d, IDEM_HASH_LEN) != 0);
}
END_TEST

/* ---------------------------------------------------------------- wire --- */

static model_order sample_order(model_item *items) {
  items[0] = (model_item){PID1, "Pizza", 1250, 2, 2500};
  items[1] = (model_item){PID2, "Cola", 300, 1, 300};
  return (model_order){
      .id = PID1,
      .status = OS_PENDING,
      .currency = "EUR",
      .table_id = PID2,
      .notes = "no onions",
      .customer_id = "",
      .total_cents = 2800,
      .version = 1,
      .created_ms = 1795341600123LL, /* 2026-11-22T10:00:00.123Z */
      .updated_ms = 1795341600123LL,
      .items = items,
      .nitems = 2,
  };
}

START_TEST(orders_map_to_protobuf) {
  model_item items[2];
  model_order o = sample_order(items);
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(wire_create_order_response(&o, &buf, &len), ERR_OK);
  Orders__V1__CreateOrderResponse *r =
      orders__v1__create_order_response__unpack(NULL, len, buf);
  ck_assert_ptr_nonnull(r);
  Orders__V1__Order *m = r->order;
  ck_assert_str_eq(m->id, PID1);
  ck_assert_int_eq(m->status, OS_PENDING);
  ck_assert_str_eq(m->total, "28.00");
  ck_assert_int_eq(m->total_cents, 2800);
  ck_assert_str_eq(m->currency, "EUR");
  ck_assert_str_eq(m->created_at, "2026-11-22T10:00:00.123Z");
  ck_assert_uint_eq(m->n_items, 2);
  ck_assert_str_eq(m->items[1]->name, "Cola");
  ck_assert_int_eq(m->items[0]->line_total_cents, 2500);
  ck_assert_str_eq(m->customer_id, "");
  orders__v1__create_order_response__free_unpacked(r, NULL);
  free(buf);

  ck_assert_int_eq(wire_kitchen_ticket(&o, &buf, &len), ERR_OK);
  Orders__V1__KitchenTicket *k =
      orders__v1__kitchen_ticket__unpack(NULL, len, buf);
  ck_assert_ptr_nonnull(k);
  ck_assert_str_eq(k->order_id, PID1);
  ck_assert_str_eq(k->table_id, PID2);
  ck_assert_str_eq(k->notes, "no onions");
  ck_assert_uint_eq(k->n_lines, 2);
  ck_assert_int_eq(k->lines[0]->quantity, 2);
  orders__v1__kitchen_ticket__free_unpacked(k, NULL);
  free(buf);

  ck_assert_int_eq(wire_order_status_changed(&o, OS_UNSPECIFIED, &buf, &len),
                   ERR_OK);
  Orders__V1__OrderStatusChanged *sc =
      orders__v1__order_status_changed__unpack(NULL, len, buf);
  ck_assert_ptr_nonnull(sc);
  ck_assert_str_eq(sc->order->total, "28.00");
  orders__v1__order_status_changed__free_unpacked(sc, NULL);
  free(buf);

  char topic[WIRE_TOPIC_MAX];
  wire_topic("kitchen", TID, topic);
  ck_assert_str_eq(topic, "kitchen." TID);
}
END_TEST

START_TEST(products_keep_stock_presence) {
  model_product p = {.id = PID1,
                     .name = "Soup",
                     .description = "",
                     .category = "starters",
                     .price_cents = 450,
                     .has_stock = false,
                     .low_stock_threshold = 5,
                     .active = true,
                     .version = 3,
                     .created_ms = 0,
                     .updated_ms = 0};
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(wire_product_changed(&p, "updated", &buf, &len), ERR_OK);
  Orders__V1__ProductChanged *c =
      orders__v1__product_changed__unpack(NULL, len, buf);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(c->product->stock_present_case,
                   ORDERS__V1__PRODUCT__STOCK_PRESENT__NOT_SET);
  ck_assert_str_eq(c->change, "updated");
  ck_assert_str_eq(c->product->created_at, "1970-01-01T00:00:00.000Z");
  orders__v1__product_changed__free_unpacked(c, NULL);
  free(buf);
  p.has_stock = true;
  p.stock = 0; /* zero is present, not absent */
  ck_assert_int_eq(wire_product_changed(&p, "updated", &buf, &len), ERR_OK);
  c = orders__v1__product_changed__unpack(NULL, len, buf);
  ck_assert_int_eq(c->product->stock_present_case,
                   ORDERS__V1__PRODUCT__STOCK_PRESENT_STOCK);
  ck_assert_int_eq(c->product->stock, 0);
  orders__v1__product_changed__free_unpacked(c, NULL);
  free(buf);

  ck_assert_int_eq(wire_stock_low(PID1, "Soup", 2, 5, &buf, &len), ERR_OK);
  Orders__V1__StockLow *sl = orders__v1__stock_low__unpack(NULL, len, buf);
  ck_assert_int_eq(sl->stock, 2);
  ck_assert_int_eq(sl->threshold, 5);
  orders__v1__stock_low__free_unpacked(sl, NULL);
  free(buf);
}
END_TEST

/* ----------------------------------------------------------- menucache --- */

START_TEST(menu_entries_parse) {
  int64_t gen = 0;
  size_t off = 0;
  ck_assert_int_eq(menucache_parse("12 \x01\x00z", 6, &gen, &off), ERR_OK);
  ck_assert_int_eq(gen, 12);
  ck_assert_uint_eq(off, 3);
  ck_assert_int_eq(menucache_parse("0 ", 2, &gen, &off), ERR_OK);
  ck_assert_uint_eq(off, 2);
  ck_assert_int_eq(menucache_parse("12", 2, &gen, &off), ERR_INVAL);
  ck_assert_int_eq(menucache_parse(" 12", 3, &gen, &off), ERR_INVAL);
  ck_assert_int_eq(menucache_parse("x 1", 3, &gen, &off), ERR_INVAL);
  char k[96];
  menucache_gen_key(TID, k, sizeof k);
  ck_assert_str_eq(k, "orders:menu:gen:{" TID "}");
  menucache_val_key(TID, false, k, sizeof k);
  ck_assert_str_eq(k, "orders:menu:public:{" TID "}");
}
END_TEST

/* A menu of n products, ids ...8100 + i, categories "a" (even i) and
 * "b" (odd i), in that list order; gen as given. */
static menupage *test_menu(size_t n, int64_t gen) {
  Orders__V1__Product ps[16], *ptrs[16];
  char ids[16][UUID_STR_LEN + 1];
  ck_assert_uint_le(n, 16);
  for (size_t i = 0; i < n; i++) {
    orders__v1__product__init(&ps[i]);
    snprintf(ids[i], sizeof ids[i], "01890a5d-ac96-774b-bcce-b30209a%05zu",
             8100 + i);
    ps[i].id = ids[i];
    ps[i].name = "n";
    ps[i].category = (i % 2 == 0) ? "a" : "b";
    ptrs[i] = &ps[i];
  }
  Orders__V1__ListProductsResponse resp =
      ORDERS__V1__LIST_PRODUCTS_RESPONSE__INIT;
  resp.n_products = n;
  resp.products = ptrs;
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(wire_pack(&resp.base, &buf, &len), ERR_OK);
  menupage *p = NULL;
  ck_assert_int_eq(menupage_new(buf, len, gen, &p), ERR_OK);
  return p;
}

static const char *menu_id(size_t i) {
  static char id[UUID_STR_LEN + 1];
  snprintf(id, sizeof id, "01890a5d-ac96-774b-bcce-b30209a%05zu", 8100 + i);
  return id;
}

START_TEST(menu_pages_follow_the_list_and_its_cursor) {
  menupage *p = test_menu(7, 42);
  ck_assert_int_eq(menupage_gen(p), 42);
  ck_assert_uint_eq(menupage_count(p), 7);
  ck_assert(menupage_whole(p, "", NULL, 7));
  ck_assert(!menupage_whole(p, "", NULL, 6));
  ck_assert(!menupage_whole(p, "a", NULL, 100));
  ck_assert(!menupage_whole(p, "", menu_id(0), 100));
  menupage_cut c;
  ck_assert_int_eq(menupage_select(p, "", NULL, 3, &c), ERR_OK);
  ck_assert(c.cursor_found && c.more);
  ck_assert_uint_eq(c.n, 3);
  ck_assert_str_eq(c.v[2]->id, menu_id(2));
  menupage_cut_free(&c);
  /* The next page starts after the cursor's product; the last has no
   * more. */
  ck_assert_int_eq(menupage_select(p, "", menu_id(2), 3, &c), ERR_OK);
  ck_assert(c.cursor_found && c.more);
  ck_assert_str_eq(c.v[0]->id, menu_id(3));
  menupage_cut_free(&c);
  ck_assert_int_eq(menupage_select(p, "", menu_id(5), 3, &c), ERR_OK);
  ck_assert(c.cursor_found && !c.more);
  ck_assert_uint_eq(c.n, 1);
  menupage_cut_free(&c);
  /* Exactly full: no "more". */
  ck_assert_int_eq(menupage_select(p, "", menu_id(3), 3, &c), ERR_OK);
  ck_assert(!c.more);
  ck_assert_uint_eq(c.n, 3);
  menupage_cut_free(&c);
  /* One category: 0, 2, 4, 6; its cursor counts only inside it. */
  ck_assert_int_eq(menupage_select(p, "a", menu_id(2), 10, &c), ERR_OK);
  ck_assert(c.cursor_found);
  ck_assert_uint_eq(c.n, 2);
  ck_assert_str_eq(c.v[0]->id, menu_id(4));
  menupage_cut_free(&c);
  ck_assert_int_eq(menupage_select(p, "a", menu_id(1), 10, &c), ERR_OK);
  ck_assert(!c.cursor_found);
  ck_assert_uint_eq(c.n, 0);
  menupage_cut_free(&c);
  /* A product not in the list at all (another tenant's). */
  ck_assert_int_eq(menupage_select(p, "", PID1, 10, &c), ERR_OK);
  ck_assert(!c.cursor_found);
  ck_assert_uint_eq(c.n, 0);
  menupage_cut_free(&c);
  /* References: the page lives until the last one goes. */
  menupage *q = menupage_ref(p);
  menupage_unref(p);
  size_t len = 0;
  ck_assert_ptr_nonnull(menupage_bytes(q, &len));
  ck_assert_uint_gt(len, 0);
  menupage_unref(q);
  menupage_unref(NULL);
}
END_TEST

START_TEST(menu_pages_refuse_garbage_bytes) {
  uint8_t *junk = malloc(4);
  memcpy(junk, "\x0a\xff\xff\x01", 4);
  menupage *p = NULL;
  ck_assert_int_eq(menupage_new(junk, 4, 1, &p), ERR_INVAL);
  ck_assert_ptr_null(p);
}
END_TEST

START_TEST(menu_cache_without_redis_reads_the_database) {
  menucache *m = NULL;
  ck_assert_int_eq(menucache_new(NULL, 1000, &m), ERR_OK);
  menupage *v = NULL;
  int64_t gen = -1;
  ck_assert_int_eq(menucache_get(m, TID, true, &v, &gen), MENUCACHE_SKIP);
  ck_assert_ptr_null(v);
  menupage *page = test_menu(3, 0);
  menucache_put(m, TID, true, page);
  menupage_unref(page);
  ck_assert_int_eq(menucache_invalidate(m, TID), ERR_OK);
  ck_assert_uint_eq(menucache_retry(m), 0);
  menucache_free(m);
  ck_assert_int_eq(menucache_new(NULL, 0, &m), ERR_INVAL);
}
END_TEST

START_TEST(menu_cache_with_redis_down_owes_invalidations) {
  cache_config cc = {.url = "redis://127.0.0.1:1",
                     .connect_timeout_ms = 100,
                     .command_timeout_ms = 100};
  cache *redis = NULL;
  ck_assert_int_eq(cache_new(&cc, &redis), ERR_OK);
  menucache *m = NULL;
  ck_assert_int_eq(menucache_new(redis, 1000, &m), ERR_OK);
  menupage *v = NULL;
  int64_t gen = 0;
  ck_assert_int_eq(menucache_get(m, TID, false, &v, &gen), MENUCACHE_SKIP);
  ck_assert_int_eq(menucache_invalidate(m, TID), ERR_UNAVAILABLE);
  ck_assert_int_eq(menucache_invalidate(m, TID), ERR_UNAVAILABLE);
  ck_assert_uint_eq(menucache_retry(m), 1); /* owed once, still owed */
  ck_assert_int_eq(menucache_get(m, TID, true, &v, &gen), MENUCACHE_SKIP);
  menupage *page = test_menu(1, 0);
  menucache_put(m, TID, true, page); /* no crash */
  menupage_unref(page);
  menucache_free(m);
  cache_free(redis);
}
END_TEST

/* ----------------------------------------------------------- tenantcur --- */

START_TEST(currencies_are_remembered_for_a_while) {
  tenantcur *t = NULL;
  ck_assert_int_eq(tenantcur_new(NULL, 1000, 0, &t), ERR_OK);
  char cur[4];
  ck_assert_int_eq(tenantcur_get(t, TID, "tok", 1000, cur), ERR_UNAVAILABLE);
  tenantcur_put(t, TID, "JPY");
  ck_assert_int_eq(tenantcur_get(t, TID, "tok", 1000, cur), ERR_OK);
  ck_assert_str_eq(cur, "JPY");
  tenantcur_forget(t, TID);
  ck_assert_int_eq(tenantcur_get(t, TID, "tok", 1000, cur), ERR_UNAVAILABLE);
  tenantcur_put(t, TID, "usd"); /* not a currency code: ignored */
  ck_assert_int_eq(tenantcur_get(t, TID, "tok", 1000, cur), ERR_UNAVAILABLE);
  ck_assert_int_eq(tenantcur_get(t, "nope", "tok", 1000, cur), ERR_INVAL);
  tenantcur_free(t);

  ck_assert_int_eq(tenantcur_new(NULL, 1, 0, &t), ERR_OK);
  tenantcur_put(t, TID, "EUR");
  time_sleep_ms(5);
  ck_assert_int_eq(tenantcur_get(t, TID, "tok", 1000, cur), ERR_UNAVAILABLE);
  tenantcur_free(t);
}
END_TEST

/* ------------------------------------------------------------- store --- */

/* No connection at all: the transaction function never runs, and the
 * caller's store_result must not be read as an answer (the handlers pass
 * it uninitialised). */
START_TEST(store_writes_without_a_database_fail) {
  db_config dc = {.conninfo = "host=127.0.0.1 port=1 dbname=none user=none",
                  .max_conns = 1,
                  .acquire_timeout_ms = 200,
                  .connect_timeout_ms = 100};
  db_pool *p = NULL;
  store *st = NULL;
  ck_assert_int_eq(db_pool_new(&dc, &p), ERR_OK);
  ck_assert_int_eq(store_new(p, "", &st), ERR_OK);
  store_result res;
  res.outcome = STORE_INVALID; /* as if left over on the stack */
  ck_assert_int_ne(store_delete_product(st, TID, PID1, &res), ERR_OK);
  res.outcome = STORE_NOT_FOUND;
  store_status_change ch = {.id = PID1, .to = OS_CANCELLED};
  store_orders so;
  ck_assert_int_ne(store_change_status(st, TID, &ch, &res, &so, NULL), ERR_OK);
  store_free(st);
  db_pool_free(p);
}
END_TEST

/* The bug class of issue 15: a transaction function records an answer
 * (not found, a replay, no stock, ...) and a later step - a read, a
 * write, the commit - fails. That is a failure: the error must come back,
 * with no outcome beside it that a handler could answer from. (It used to
 * come back as ERR_OK with the stale outcome: store_finish let any
 * recorded outcome override rc.) */
START_TEST(store_errors_win_over_answers_recorded_before_them) {
  static const enum store_outcome answers[] = {
      STORE_NOT_FOUND, STORE_STALE,  STORE_INVALID,    STORE_PRECONDITION,
      STORE_EXISTS,    STORE_REPLAY, STORE_KEY_REUSED, STORE_KEY_BUSY};
  static const int errors[] = {ERR_UNAVAILABLE, ERR_TIMEOUT, ERR_DB,
                               ERR_CONFLICT,    ERR_NOMEM,   ERR_INVAL};
  for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
    for (size_t j = 0; j < sizeof errors / sizeof errors[0]; j++) {
      store_result res;
      store_result_reset(&res);
      res.outcome = answers[i];
      res.menu_changed = true;
      vlist_add(&res.violations, "is not a table of this tenant", "table_id");
      ck_assert_int_eq(store_finish(errors[j], &res), errors[j]);
      ck_assert_int_eq(res.outcome, STORE_OK);
      ck_assert_uint_eq(res.violations.n, 0);
      ck_assert(!res.menu_changed);
    }
  }
  /* An answer without an error is an answer, and was rolled back. */
  store_result res;
  store_result_reset(&res);
  res.outcome = STORE_STALE;
  res.menu_changed = true;
  ck_assert_int_eq(store_finish(ERR_OK, &res), ERR_OK);
  ck_assert_int_eq(res.outcome, STORE_STALE);
  ck_assert(!res.menu_changed);
  /* A commit is STORE_OK and keeps menu_changed. */
  store_result_reset(&res);
  res.menu_changed = true;
  ck_assert_int_eq(store_finish(ERR_OK, &res), ERR_OK);
  ck_assert_int_eq(res.outcome, STORE_OK);
  ck_assert(res.menu_changed);
}
END_TEST

int main(void) {
  Suite *s = suite_create("orders");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, product_fields_have_bounds);
  tcase_add_test(tc, order_request_rules_name_each_line);
  tcase_add_test(tc, idempotency_keys);
  tcase_add_test(tc, status_moves_one_step_forward_or_cancel);
  tcase_add_test(tc, status_names_round_trip);
  tcase_add_test(tc, money_uses_the_currency_exponent);
  tcase_add_test(tc, cursors_round_trip_and_refuse_forgeries);
  tcase_add_test(tc, request_hashes_tell_requests_apart);
  tcase_add_test(tc, orders_map_to_protobuf);
  tcase_add_test(tc, products_keep_stock_presence);
  tcase_add_test(tc, menu_entries_parse);
  tcase_add_test(tc, menu_pages_follow_the_list_and_its_cursor);
  tcase_add_test(tc, menu_pages_refuse_garbage_bytes);
  tcase_add_test(tc, menu_cache_without_redis_reads_the_database);
  tcase_add_test(tc, menu_cache_with_redis_down_owes_invalidations);
  tcase_add_test(tc, currencies_are_remembered_for_a_while);
  tcase_add_test(tc, store_writes_without_a_database_fail);
  tcase_add_test(tc, store_errors_win_over_answers_recorded_before_them);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
