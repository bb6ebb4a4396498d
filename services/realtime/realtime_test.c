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
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/paseto/paseto.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "services/realtime/channel.h"
#include "services/realtime/offsets.h"
#include "services/realtime/pub.h"
#include "services/realtime/recheck.h"
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

/* ------------------------------------------------------------- recheck --- */

static paseto_secret_key g_sk;

static char *signed_token(const paseto_claims *c) {
  char *json = NULL, f[PASETO_KID_FOOTER_MAX];
  size_t jlen = 0, flen = 0;
  paseto_public_key pk;
  char pid[PASETO_PID_LEN + 1];
  paseto_public_key_of(&g_sk, &pk);
  paseto_pid(&pk, pid);
  ck_assert_int_eq(paseto_claims_to_json(c, &json, &jlen), ERR_OK);
  ck_assert_int_eq(paseto_footer_kid_json(pid, f, sizeof f, &flen), ERR_OK);
  char *tok = malloc(PASETO_TOKEN_MAX + 1);
  ck_assert_ptr_nonnull(tok);
  ck_assert_int_eq(paseto_sign(&g_sk, json, jlen, f, flen, NULL, 0, tok,
                               PASETO_TOKEN_MAX + 1, NULL),
                   ERR_OK);
  free(json);
  return tok;
}

static paseto_claims staff_claims(void) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, "auth", sizeof c.iss);
  uuid_v7_str(c.sub);
  uuid_v7_str(c.tid);
  str_copy(c.role, "staff", sizeof c.role);
  uuid_v7_str(c.jti);
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = time_now_ms();
  c.exp_ms = c.iat_ms + 15 * 60 * 1000;
  return c;
}

typedef struct reports {
  pthread_mutex_t mu;
  recheck *r;
  recheck_token *seen[16];
  size_t n;
} reports;

static void on_revoked(void *arg, recheck_token *t) {
  reports *rp = arg;
  pthread_mutex_lock(&rp->mu);
  if (rp->n < 16)
    rp->seen[rp->n++] = t;
  else
    recheck_release(rp->r, t);
  pthread_mutex_unlock(&rp->mu);
}

static size_t reported(reports *rp, const recheck_token *t) {
  size_t k = 0;
  pthread_mutex_lock(&rp->mu);
  for (size_t i = 0; i < rp->n; i++) k += rp->seen[i] == t;
  pthread_mutex_unlock(&rp->mu);
  return k;
}

/* Connections with the same token share one held copy; a revoked token
 * is reported as that handle, never the other token's. */
START_TEST(recheck_shares_tokens_and_reports_the_revoked_one) {
  paseto_public_key pk;
  paseto_keygen(&g_sk, &pk);
  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = "auth";
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&ac, &a), ERR_OK);
  authn_key keys[1] = {{.pk = pk, .active = true}};
  ck_assert_int_eq(authn_set_keys(a, keys, 1), ERR_OK);
  paseto_claims c1 = staff_claims(), c2 = staff_claims();
  char *t1 = signed_token(&c1), *t2 = signed_token(&c2);
  reports rp = {.n = 0};
  pthread_mutex_init(&rp.mu, NULL);
  recheck_config rc = {
      .verifier = a, .interval_ms = 20, .report = on_revoked, .arg = &rp};
  ck_assert_int_eq(recheck_start(&rc, &rp.r), ERR_OK);
  recheck_token *h1 = NULL, *h1b = NULL, *h2 = NULL, *bad = NULL;
  ck_assert_int_eq(recheck_hold(rp.r, t1, &h1), ERR_OK);
  ck_assert_int_eq(recheck_hold(rp.r, t1, &h1b), ERR_OK);
  ck_assert_int_eq(recheck_hold(rp.r, t2, &h2), ERR_OK);
  ck_assert_ptr_eq(h1, h1b);
  ck_assert_ptr_ne(h1, h2);
  ck_assert_int_eq(recheck_hold(rp.r, "", &bad), ERR_INVAL);
  ck_assert_ptr_null(bad);
  recheck_release(rp.r, h1b); /* h1 still holds it */
  time_sleep_ms(100);         /* passes over valid tokens: no report */
  ck_assert_uint_eq(reported(&rp, h1) + reported(&rp, h2), 0);
  authn_revoke_jti(a, c1.jti);
  recheck_wake(rp.r);
  int64_t end = time_mono_ms() + 10000;
  while (reported(&rp, h1) == 0 && time_mono_ms() < end) time_sleep_ms(5);
  ck_assert_uint_ge(reported(&rp, h1), 1);
  ck_assert_uint_eq(reported(&rp, h2), 0);
  recheck_release(rp.r, h1);
  recheck_release(rp.r, h2);
  recheck_release(rp.r, NULL);
  recheck_free(rp.r); /* also frees the reported ones' references */
  pthread_mutex_destroy(&rp.mu);
  authn_free(a);
  free(t1);
  free(t2);
}
END_TEST

/* The shutdown order of ws.c rests on this: once recheck_stop returns,
 * no report runs or starts (the WebSocket server's report wakes its
 * libwebsockets context, destroyed right after), while the held tokens
 * can still be released. A revoked token held at a 10 ms interval is
 * reported at every pass, so a report after the stop would be seen in
 * the 200 ms the test then waits. */
typedef struct late {
  pthread_mutex_t mu;
  recheck *r;
  size_t calls, after_stop;
  bool stopped;
} late;

static void count_report(void *arg, recheck_token *t) {
  late *l = arg;
  pthread_mutex_lock(&l->mu);
  l->calls++;
  if (l->stopped) l->after_stop++;
  pthread_mutex_unlock(&l->mu);
  recheck_release(l->r, t);
}

static size_t late_get(late *l, const size_t *field) {
  pthread_mutex_lock(&l->mu);
  size_t v = *field;
  pthread_mutex_unlock(&l->mu);
  return v;
}

START_TEST(recheck_stop_ends_reports_and_keeps_the_tokens) {
  paseto_public_key pk;
  paseto_keygen(&g_sk, &pk);
  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = "auth";
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&ac, &a), ERR_OK);
  authn_key keys[1] = {{.pk = pk, .active = true}};
  ck_assert_int_eq(authn_set_keys(a, keys, 1), ERR_OK);
  paseto_claims c1 = staff_claims();
  char *t1 = signed_token(&c1);
  paseto_claims got;
  enum authn_result why;
  ck_assert_int_eq(authn_verify(a, t1, strlen(t1), &got, &why), ERR_OK);
  authn_revoke_jti(a, c1.jti); /* marks the cached entry */
  late l = {.calls = 0};
  pthread_mutex_init(&l.mu, NULL);
  recheck_config rc = {
      .verifier = a, .interval_ms = 10, .report = count_report, .arg = &l};
  ck_assert_int_eq(recheck_start(&rc, &l.r), ERR_OK);
  recheck_token *h = NULL;
  ck_assert_int_eq(recheck_hold(l.r, t1, &h), ERR_OK);
  int64_t end = time_mono_ms() + 10000;
  while (late_get(&l, &l.calls) < 3 && time_mono_ms() < end) time_sleep_ms(5);
  ck_assert_uint_ge(late_get(&l, &l.calls), 3); /* reports in flight */
  recheck_stop(l.r);
  pthread_mutex_lock(&l.mu);
  l.stopped = true;
  pthread_mutex_unlock(&l.mu);
  recheck_stop(l.r); /* idempotent */
  recheck_wake(l.r); /* a revocation event after the stop: no pass */
  time_sleep_ms(200);
  ck_assert_uint_eq(late_get(&l, &l.after_stop), 0);
  recheck_token *h2 = NULL; /* the registry still answers */
  ck_assert_int_eq(recheck_hold(l.r, t1, &h2), ERR_OK);
  ck_assert_ptr_eq(h, h2);
  recheck_release(l.r, h2);
  recheck_release(l.r, h);
  recheck_free(l.r);
  pthread_mutex_destroy(&l.mu);
  authn_free(a);
  free(t1);
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
  tcase_add_test(tc, recheck_shares_tokens_and_reports_the_revoked_one);
  tcase_add_test(tc, recheck_stop_ends_reports_and_keeps_the_tokens);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
