/*
 * realtime_test.c - the realtime service's pure parts, no servers: channel
 * authorisation (every rule of the contract, and the hostile names) and
 * publication frames (an OrderCreated becomes the order as the HTTP API
 * shows it; the frame made around a stored event is the same bytes), the
 * history entries' format and the delivery filter (offsets.h), the
 * customer's private channel of an order event, channel kinds, and the
 * string map behind the indexes (strmap.h). Everything that
 * needs Redis, a socket or another service is in
 * tests/realtime/realtime_itest.c.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/orders/v1/orders.pb-c.h"
#include "services/realtime/channel.h"
#include "services/realtime/offsets.h"
#include "services/realtime/pub.h"
#include "services/realtime/strmap.h"

#define TA "0190f0a0-0000-7000-8000-00000000000a"
#define TB "0190f0a0-0000-7000-8000-00000000000b"
#define U1 "0190f0a0-0000-7000-8000-000000000001"
#define U2 "0190f0a0-0000-7000-8000-000000000002"

static const channel_who kStaffA = {U1, TA, "staff"};
static const channel_who kOwnerA = {U1, TA, "owner"};
static const channel_who kDeviceA = {U1, TA, "device"};
static const channel_who kCustomerA = {U2, TA, "customer"};

START_TEST(staff_and_above_read_their_tenant_channels) {
  const char *ok[] = {"orders." TA, "kitchen." TA, "tables." TA, "devices." TA};
  for (size_t i = 0; i < 4; i++) {
    ck_assert_int_eq(channel_authorize(ok[i], &kStaffA), CHANNEL_OK);
    ck_assert_int_eq(channel_authorize(ok[i], &kOwnerA), CHANNEL_OK);
    ck_assert_int_eq(channel_authorize(ok[i], &kDeviceA), CHANNEL_OK);
  }
}
END_TEST

START_TEST(customers_and_other_tenants_are_denied) {
  ck_assert_int_eq(channel_authorize("orders." TA, &kCustomerA),
                   CHANNEL_DENIED);
  ck_assert_int_eq(channel_authorize("kitchen." TA, &kCustomerA),
                   CHANNEL_DENIED);
  ck_assert_int_eq(channel_authorize("orders." TB, &kOwnerA), CHANNEL_DENIED);
  channel_who none = {U1, TA, ""};
  ck_assert_int_eq(channel_authorize("orders." TA, &none), CHANNEL_DENIED);
}
END_TEST

START_TEST(private_user_channels_are_their_user_only) {
  ck_assert_int_eq(channel_authorize("private.user." U2, &kCustomerA),
                   CHANNEL_OK);
  ck_assert_int_eq(channel_authorize("private.user." U2, &kOwnerA),
                   CHANNEL_DENIED);
}
END_TEST

START_TEST(bad_and_unknown_names) {
  ck_assert_int_eq(channel_authorize(NULL, &kOwnerA), CHANNEL_INVALID);
  ck_assert_int_eq(channel_authorize("", &kOwnerA), CHANNEL_INVALID);
  ck_assert_int_eq(channel_authorize("orders.", &kOwnerA), CHANNEL_INVALID);
  ck_assert_int_eq(channel_authorize("orders.*", &kOwnerA), CHANNEL_INVALID);
  /* Upper case is another spelling: refused, never compared loosely. */
  ck_assert_int_eq(channel_authorize(
                       "orders.0190F0A0-0000-7000-8000-00000000000A", &kOwnerA),
                   CHANNEL_INVALID);
  ck_assert_int_eq(channel_authorize("orders." TA " ", &kOwnerA),
                   CHANNEL_INVALID);
  ck_assert_int_eq(channel_authorize("payments." TA, &kOwnerA),
                   CHANNEL_NOT_FOUND);
  ck_assert_int_eq(channel_authorize("private.user." U1 "x", &kOwnerA),
                   CHANNEL_INVALID);
  ck_assert_str_eq(channel_verdict_code(CHANNEL_DENIED), "PERMISSION_DENIED");
  ck_assert_str_eq(channel_verdict_code(CHANNEL_NOT_FOUND), "NOT_FOUND");
  ck_assert_str_eq(channel_verdict_code(CHANNEL_INVALID), "INVALID_ARGUMENT");
}
END_TEST

START_TEST(topics_that_are_channels) {
  ck_assert(channel_from_topic("orders." TA));
  ck_assert(channel_from_topic("kitchen." TA));
  ck_assert(channel_from_topic("tables." TA));
  ck_assert(!channel_from_topic("auth.revoked"));
  ck_assert(!channel_from_topic("orders.x"));
}
END_TEST

/* An OrderCreated event with one line. */
static void order_for(Rpc__V1__Event *ev, uint8_t **buf, const char *customer) {
  static Orders__V1__OrderItem item = ORDERS__V1__ORDER_ITEM__INIT;
  static Orders__V1__OrderItem *items[] = {&item};
  item.product_id = U2;
  item.name = "Soup";
  item.unit_price_cents = 450;
  item.quantity = 2;
  item.line_total_cents = 900;
  Orders__V1__Order o = ORDERS__V1__ORDER__INIT;
  o.id = U1;
  o.status = ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PENDING;
  o.n_items = 1;
  o.items = items;
  o.total_cents = 900;
  o.total = "9.00";
  o.currency = "EUR";
  o.version = 1;
  if (customer != NULL) o.customer_id = (char *)customer;
  Orders__V1__OrderCreated oc = ORDERS__V1__ORDER_CREATED__INIT;
  oc.order = &o;
  size_t len = orders__v1__order_created__get_packed_size(&oc);
  *buf = malloc(len);
  orders__v1__order_created__pack(&oc, *buf);
  rpc__v1__event__init(ev);
  ev->id = U2;
  ev->type = "OrderCreated";
  ev->tenant_id = TA;
  ev->topic = "orders." TA;
  ev->time_unix_ms = 1700000000123;
  ev->payload.data = *buf;
  ev->payload.len = len;
}

static void order_created(Rpc__V1__Event *ev, uint8_t **buf) {
  order_for(ev, buf, NULL);
}

START_TEST(order_created_becomes_the_order_json) {
  Rpc__V1__Event ev;
  uint8_t *buf = NULL;
  order_created(&ev, &buf);
  char *text = NULL;
  size_t len = 0;
  ck_assert_int_eq(pub_frame("orders." TA, 7, "abc", &ev, &text, &len), ERR_OK);
  json_t *f = json_loads(text, 0, NULL);
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(json_string_value(json_object_get(f, "op")), "pub");
  ck_assert_int_eq(json_integer_value(json_object_get(f, "offset")), 7);
  ck_assert_str_eq(json_string_value(json_object_get(f, "epoch")), "abc");
  json_t *e = json_object_get(f, "event");
  ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
                   "OrderCreated");
  ck_assert_str_eq(json_string_value(json_object_get(e, "time")),
                   "2023-11-14T22:13:20.123Z");
  json_t *d = json_object_get(e, "data");
  ck_assert_str_eq(json_string_value(json_object_get(d, "id")), U1);
  ck_assert_str_eq(json_string_value(json_object_get(d, "status")), "pending");
  ck_assert_str_eq(json_string_value(json_object_get(d, "total")), "9.00");
  ck_assert_int_eq(json_array_size(json_object_get(d, "items")), 1);
  json_decref(f);
  free(text);
  free(buf);
}
END_TEST

START_TEST(unknown_types_and_bad_payloads) {
  Rpc__V1__Event ev;
  uint8_t *buf = NULL;
  order_created(&ev, &buf);
  json_t *d = NULL;
  ev.type = "SomethingNew";
  ck_assert(!pub_known(ev.type));
  ck_assert_int_eq(pub_data(&ev, &d), ERR_NOTFOUND);
  ev.type = "OrderCreated";
  buf[0] = 0xff; /* no longer a valid message */
  ev.payload.len = 1;
  ck_assert_int_eq(pub_data(&ev, &d), ERR_PROTO);
  ck_assert_ptr_null(d);
  free(buf);
}
END_TEST

START_TEST(the_frame_around_a_stored_event_is_the_same_frame) {
  Rpc__V1__Event ev;
  uint8_t *buf = NULL;
  order_created(&ev, &buf);
  char *whole = NULL, *event = NULL, *again = NULL;
  size_t wlen = 0, elen = 0, alen = 0;
  ck_assert_int_eq(pub_frame("orders." TA, 42, "0123abcd", &ev, &whole, &wlen),
                   ERR_OK);
  ck_assert_int_eq(pub_event(&ev, &event, &elen), ERR_OK);
  ck_assert_int_eq(event[0], '{');
  ck_assert_int_eq(
      pub_frame_text("orders." TA, 42, "0123abcd", event, elen, &again, &alen),
      ERR_OK);
  ck_assert_uint_eq(alen, wlen);
  ck_assert_str_eq(again, whole);
  /* and it is the frame jansson would make of the same object */
  json_t *f = json_loads(again, 0, NULL);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(json_integer_value(json_object_get(f, "offset")), 42);
  char *redump = json_dumps(f, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                   JSON_REAL_PRECISION(15));
  ck_assert_str_eq(redump, whole);
  free(redump);
  json_decref(f);
  free(whole);
  free(event);
  free(again);
  free(buf);
}
END_TEST

START_TEST(history_entries_split_or_are_refused) {
  int64_t off = 0, when = 0;
  const char *ev = NULL;
  size_t evlen = 0;
  const char ok[] = "17 1700000000123 {\"id\":\"x\"}";
  ck_assert_int_eq(
      offsets_entry_parse(ok, strlen(ok), &off, &when, &ev, &evlen), ERR_OK);
  ck_assert_int_eq(off, 17);
  ck_assert_int_eq(when, 1700000000123);
  ck_assert_uint_eq(evlen, strlen("{\"id\":\"x\"}"));
  ck_assert(memcmp(ev, "{\"id\":\"x\"}", evlen) == 0);
  const char *bad[] = {"",           "17",
                       "17 ",        "17 123",
                       "17 123 ",    "x 123 {}",
                       "17 x {}",    " 17 123 {}",
                       "17  123 {}", "1234567890123456789 1 {}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(offsets_entry_parse(bad[i], strlen(bad[i]), &off, &when, &ev,
                                      &evlen) == ERR_PROTO,
                  "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(a_subscriber_gets_only_what_it_has_not_seen) {
  ck_assert(offsets_is_new(5, "aa", 6, "aa"));
  ck_assert(!offsets_is_new(5, "aa", 5, "aa"));
  ck_assert(!offsets_is_new(5, "aa", 3, "aa"));
  ck_assert(offsets_is_new(5, "aa", 1, "bb")); /* a new epoch: sent */
  ck_assert(offsets_is_new(0, "aa", 1, "aa"));
}
END_TEST

START_TEST(a_customers_order_goes_to_their_private_channel) {
  Rpc__V1__Event ev;
  uint8_t *buf = NULL;
  char ch[CHANNEL_MAX + 1];
  order_for(&ev, &buf, U2);
  ck_assert(pub_customer_channel(&ev, ch, sizeof ch));
  ck_assert_str_eq(ch, "private.user." U2);
  ck_assert(!pub_customer_channel(&ev, ch, 10)); /* no room: refused */
  ev.type = "KitchenTicket"; /* not an order event: no private copy */
  ck_assert(!pub_customer_channel(&ev, ch, sizeof ch));
  free(buf);
  order_for(&ev, &buf, NULL); /* no customer (staff ordered for nobody) */
  ck_assert(!pub_customer_channel(&ev, ch, sizeof ch));
  free(buf);
  order_for(&ev, &buf, "../orders." TA); /* never a channel */
  ck_assert(!pub_customer_channel(&ev, ch, sizeof ch));
  free(buf);
  order_for(&ev, &buf, U2);
  buf[0] = 0xff;
  ev.payload.len = 1; /* does not decode */
  ck_assert(!pub_customer_channel(&ev, ch, sizeof ch));
  free(buf);
}
END_TEST

START_TEST(channel_kinds_name_the_metrics_labels) {
  ck_assert_str_eq(channel_kind_name(channel_kind_of("orders." TA)), "orders");
  ck_assert_str_eq(channel_kind_name(channel_kind_of("kitchen." TA)),
                   "kitchen");
  ck_assert_str_eq(channel_kind_name(channel_kind_of("tables." TA)), "tables");
  ck_assert_str_eq(channel_kind_name(channel_kind_of("devices." TA)),
                   "devices");
  ck_assert_str_eq(channel_kind_name(channel_kind_of("private.user." U1)),
                   "private");
  char ch[CHANNEL_MAX + 1];
  ck_assert(channel_private_user(U1, ch));
  ck_assert_str_eq(ch, "private.user." U1);
  ck_assert(!channel_private_user("0190F0A0-0000-7000-8000-000000000001", ch));
  ck_assert(!channel_private_user("", ch));
  ck_assert(!channel_private_user(NULL, ch));
}
END_TEST

static void count_entry(void *arg, const char *key, void *value) {
  (void)key;
  (void)value;
  (*(size_t *)arg)++;
}

START_TEST(strmap_finds_grows_and_forgets) {
  strmap *m = NULL;
  ck_assert_int_eq(strmap_new(&m), ERR_OK);
  char key[32];
  for (intptr_t i = 0; i < 1000; i++) { /* past several doublings */
    snprintf(key, sizeof key, "k%ld", (long)i);
    void **v = strmap_slot(m, key, true);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(*v);
    *v = (void *)(i + 1);
  }
  ck_assert_uint_eq(strmap_len(m), 1000);
  for (intptr_t i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "k%ld", (long)i);
    void **v = strmap_slot(m, key, false);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq((intptr_t)*v, i + 1);
  }
  ck_assert_ptr_null(strmap_slot(m, "absent", false));
  for (int i = 0; i < 1000; i += 2) {
    snprintf(key, sizeof key, "k%d", i);
    strmap_del(m, key);
  }
  strmap_del(m, "absent");
  ck_assert_uint_eq(strmap_len(m), 500);
  ck_assert_ptr_null(strmap_slot(m, "k0", false));
  ck_assert_ptr_nonnull(strmap_slot(m, "k1", false));
  size_t n = 0;
  strmap_each(m, count_entry, &n);
  ck_assert_uint_eq(n, 500);
  strmap_free(m);
  strmap_free(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("realtime");
  TCase *tc = tcase_create("realtime");
  tcase_add_test(tc, staff_and_above_read_their_tenant_channels);
  tcase_add_test(tc, customers_and_other_tenants_are_denied);
  tcase_add_test(tc, private_user_channels_are_their_user_only);
  tcase_add_test(tc, bad_and_unknown_names);
  tcase_add_test(tc, topics_that_are_channels);
  tcase_add_test(tc, order_created_becomes_the_order_json);
  tcase_add_test(tc, unknown_types_and_bad_payloads);
  tcase_add_test(tc, the_frame_around_a_stored_event_is_the_same_frame);
  tcase_add_test(tc, history_entries_split_or_are_refused);
  tcase_add_test(tc, a_subscriber_gets_only_what_it_has_not_seen);
  tcase_add_test(tc, a_customers_order_goes_to_their_private_channel);
  tcase_add_test(tc, channel_kinds_name_the_metrics_labels);
  tcase_add_test(tc, strmap_finds_grows_and_forgets);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
