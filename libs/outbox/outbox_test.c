/*
 * outbox_test.c - libs/outbox without PostgreSQL: which schema and source
 * names are accepted (the schema goes into SQL text), event checks that
 * run before the INSERT, SQL templates, argument errors, the Replay
 * method's name, and a relay whose database is unreachable failing
 * cleanly and stopping at once. tests/outbox runs everything else against
 * a real server.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/db/db.h"
#include "libs/outbox/outbox.h"
#include "libs/outbox/outbox_internal.h"
#include "libs/rpc/rpc.h"

static void fill(char *buf, size_t n, char ch) {
  memset(buf, ch, n);
  buf[n] = '\0';
}

START_TEST(schema_names_are_plain_lower_case_identifiers) {
  ck_assert(outbox_schema_ok("orders"));
  ck_assert(outbox_schema_ok("_private"));
  ck_assert(outbox_schema_ok("a1_b2"));
  ck_assert(!outbox_schema_ok(NULL));
  ck_assert(!outbox_schema_ok(""));
  ck_assert(!outbox_schema_ok("1orders"));
  ck_assert(!outbox_schema_ok("Orders"));
  ck_assert(!outbox_schema_ok("order-items"));
  ck_assert(!outbox_schema_ok("orders.outbox"));
  ck_assert(!outbox_schema_ok("x\"; DROP SCHEMA public; --"));
  ck_assert(!outbox_schema_ok("caf\xc3\xa9"));
  char s[80];
  fill(s, OUTBOX_SCHEMA_MAX, 'a');
  ck_assert(outbox_schema_ok(s));
  fill(s, OUTBOX_SCHEMA_MAX + 1, 'a');
  ck_assert(!outbox_schema_ok(s));
}
END_TEST

START_TEST(source_names_fit_the_bus_and_method_names) {
  ck_assert(outbox_source_ok("tenants"));
  ck_assert(outbox_source_ok("kitchen.v2-x_1"));
  ck_assert(!outbox_source_ok(NULL));
  ck_assert(!outbox_source_ok(""));
  ck_assert(!outbox_source_ok("Tenants"));
  ck_assert(!outbox_source_ok("a b"));
  ck_assert(!outbox_source_ok("a/b"));
  char s[80];
  fill(s, OUTBOX_SOURCE_MAX, 'a');
  ck_assert(outbox_source_ok(s));
  fill(s, OUTBOX_SOURCE_MAX + 1, 'a');
  ck_assert(!outbox_source_ok(s));
}
END_TEST

START_TEST(events_are_checked_before_the_insert) {
  outbox_event ev = {.topic = "orders.t",
                     .type = "OrderCreated",
                     .tenant_id = "0190f0a2-1c4b-7cde-8f00-00000000000a",
                     .payload = "x",
                     .len = 1};
  ck_assert_int_eq(outbox_event_check(&ev), ERR_OK);
  ck_assert_int_eq(outbox_event_check(NULL), ERR_INVAL);

  outbox_event e = ev;
  e.tenant_id = NULL;
  ck_assert_int_eq(outbox_event_check(&e), ERR_OK);
  e.tenant_id = "";
  ck_assert_int_eq(outbox_event_check(&e), ERR_OK);
  e.tenant_id = "not-a-uuid";
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);

  char big[OUTBOX_TOPIC_MAX + 2];
  e = ev;
  e.topic = NULL;
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);
  e.topic = "";
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);
  e.topic = "bad\ntopic";
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);
  fill(big, OUTBOX_TOPIC_MAX, 't');
  e.topic = big;
  ck_assert_int_eq(outbox_event_check(&e), ERR_OK);
  fill(big, OUTBOX_TOPIC_MAX + 1, 't');
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);

  e = ev;
  e.type = "";
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);
  fill(big, OUTBOX_TYPE_MAX, 'T');
  e.type = big;
  ck_assert_int_eq(outbox_event_check(&e), ERR_OK);
  fill(big, OUTBOX_TYPE_MAX + 1, 'T');
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);

  e = ev;
  e.payload = NULL;
  e.len = 3;
  ck_assert_int_eq(outbox_event_check(&e), ERR_INVAL);
  e.len = 0;
  ck_assert_int_eq(outbox_event_check(&e), ERR_OK);
  e.payload = "x";
  e.len = OUTBOX_PAYLOAD_MAX;
  ck_assert_int_eq(outbox_event_check(&e), ERR_OK);
  e.len = OUTBOX_PAYLOAD_MAX + 1;
  ck_assert_int_eq(outbox_event_check(&e), ERR_TOOBIG);
}
END_TEST

START_TEST(sql_templates_name_the_quoted_table) {
  char out[128];
  ck_assert_int_eq(outbox_sql("SELECT max(seq) FROM {o} WHERE x IN "
                              "(SELECT y FROM {o})",
                              "orders", out, sizeof out),
                   ERR_OK);
  ck_assert_str_eq(out, "SELECT max(seq) FROM \"orders\".outbox WHERE x IN "
                        "(SELECT y FROM \"orders\".outbox)");
  ck_assert_int_eq(outbox_sql("{o", "orders", out, sizeof out), ERR_OK);
  ck_assert_str_eq(out, "{o");
  ck_assert_int_eq(outbox_sql("x {o}", "user", out, 10), ERR_TOOBIG);
  ck_assert_int_eq(outbox_sql("x {o}", "Bad", out, sizeof out), ERR_INVAL);
  ck_assert_int_eq(outbox_sql("x {o}", "a\"b", out, sizeof out), ERR_INVAL);
}
END_TEST

static db_pool *unreachable_pool(void) {
  /* Port 1 on loopback refuses at once: no connection is ever made. */
  db_config cfg = {.conninfo = "host=127.0.0.1 port=1 dbname=none",
                   .max_conns = 2,
                   .acquire_timeout_ms = 1000,
                   .connect_timeout_ms = 2000};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  return p;
}

START_TEST(bad_arguments_are_refused) {
  db_pool *p = unreachable_pool();
  outbox *ob = (outbox *)&ob;
  outbox_options o = {.schema = "orders", .source = "orders"};
  ck_assert_int_eq(outbox_new(NULL, &o, &ob), ERR_INVAL);
  ck_assert_ptr_null(ob);
  ck_assert_int_eq(outbox_new(p, NULL, &ob), ERR_INVAL);
  outbox_options bad = o;
  bad.schema = "orders; DROP TABLE x";
  ck_assert_int_eq(outbox_new(p, &bad, &ob), ERR_INVAL);
  bad = o;
  bad.schema = NULL;
  ck_assert_int_eq(outbox_new(p, &bad, &ob), ERR_INVAL);
  bad = o;
  bad.source = "Orders Service";
  ck_assert_int_eq(outbox_new(p, &bad, &ob), ERR_INVAL);
  bad = o;
  bad.poll_ms = -1;
  ck_assert_int_eq(outbox_new(p, &bad, &ob), ERR_INVAL);
  bad = o;
  bad.keep_ms = -1;
  ck_assert_int_eq(outbox_new(p, &bad, &ob), ERR_INVAL);

  outbox_event ev = {.topic = "orders.t", .type = "T"};
  ck_assert_int_eq(outbox_append(NULL, "orders", &ev), ERR_INVAL);

  ck_assert_int_eq(outbox_new(p, &o, &ob), ERR_OK);
  ck_assert_int_eq(outbox_prune(ob, -1, NULL), ERR_INVAL);
  ck_assert_int_eq(outbox_last_seq(ob, NULL), ERR_INVAL);
  ck_assert_int_eq(outbox_relay_once(NULL, NULL), ERR_INVAL);
  ck_assert_int_eq(outbox_register_replay(ob, NULL), ERR_INVAL);
  ck_assert_int_eq(outbox_start(NULL), ERR_INVAL);
  outbox_kick(NULL);
  outbox_kick(ob); /* not started: only remembered */
  outbox_free(NULL);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

static void noop(void *arg, const rpc_call *call, rpc_reply *reply) {}

START_TEST(replay_is_registered_under_the_sources_method) {
  db_pool *p = unreachable_pool();
  outbox_options o = {.schema = "orders_db", .source = "orders"};
  outbox *ob = NULL;
  ck_assert_int_eq(outbox_new(p, &o, &ob), ERR_OK);
  rpc_server *srv = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &srv), ERR_OK);
  ck_assert_int_eq(outbox_register_replay(ob, srv), ERR_OK);
  ck_assert_int_eq(
      rpc_server_register(srv, "orders.v1.Events/Replay", noop, NULL),
      ERR_EXISTS);
  ck_assert_int_eq(outbox_register_replay(ob, srv), ERR_EXISTS);
  rpc_server_close(srv);
  outbox_free(ob);
  db_pool_free(p);
}
END_TEST

START_TEST(unreachable_database_fails_and_the_thread_stops_promptly) {
  db_pool *p = unreachable_pool();
  outbox_options o = {.schema = "orders", .source = "orders", .poll_ms = 60000};
  outbox *ob = NULL;
  ck_assert_int_eq(outbox_new(p, &o, &ob), ERR_OK);
  size_t n = 99;
  ck_assert_int_eq(outbox_relay_once(ob, &n), ERR_UNAVAILABLE);
  ck_assert_uint_eq(n, 0);
  uint64_t last = 99;
  ck_assert_int_eq(outbox_last_seq(ob, &last), ERR_UNAVAILABLE);
  ck_assert_uint_eq(last, 0);
  size_t deleted = 99;
  ck_assert_int_eq(outbox_prune(ob, 0, &deleted), ERR_UNAVAILABLE);
  ck_assert_uint_eq(deleted, 0);

  ck_assert_int_eq(outbox_start(ob), ERR_OK);
  ck_assert_int_eq(outbox_start(ob), ERR_INVAL);
  for (int i = 0; i < 100; i++) outbox_kick(ob);
  int64_t t0 = time_mono_ms();
  outbox_free(ob); /* must not sit out the 60 s poll */
  ck_assert_int_lt(time_mono_ms() - t0, 10000);
  db_pool_free(p);
}
END_TEST

int main(void) {
  Suite *s = suite_create("outbox");
  TCase *tc = tcase_create("pure");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, schema_names_are_plain_lower_case_identifiers);
  tcase_add_test(tc, source_names_fit_the_bus_and_method_names);
  tcase_add_test(tc, events_are_checked_before_the_insert);
  tcase_add_test(tc, sql_templates_name_the_quoted_table);
  tcase_add_test(tc, bad_arguments_are_refused);
  tcase_add_test(tc, replay_is_registered_under_the_sources_method);
  tcase_add_test(tc, unreachable_database_fails_and_the_thread_stops_promptly);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
