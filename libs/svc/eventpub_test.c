/*
 * eventpub_test.c - the outbox relay + publisher wiring without a
 * database: bad options, no bus (nothing to connect at open), a bus whose
 * sequence cannot be read (unreachable database: refused, nothing
 * leaked), and start/free ordering with the relay thread running. The
 * publishing path itself needs PostgreSQL: tests/outbox, tests/tenants and
 * tests/orders_rpc (kill -9 between commit and publish) cover it.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/svc/eventpub.h"

/* A loopback port nothing listens on: connections are refused at once. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static db_pool *unreachable_pool(void) {
  char conninfo[128];
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=2",
           closed_port());
  db_config cfg = {.conninfo = conninfo, .max_conns = 2};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  return p;
}

START_TEST(bad_options_are_refused) {
  db_pool *db = unreachable_pool();
  eventpub *e = (eventpub *)db;
  eventpub_options o = {.schema = "orders", .source = "orders"};
  ck_assert_int_eq(eventpub_open(NULL, &o, &e), ERR_INVAL);
  ck_assert_ptr_null(e);
  ck_assert_int_eq(eventpub_open(db, NULL, &e), ERR_INVAL);
  eventpub_options bad_schema = {.schema = "Orders; DROP", .source = "orders"};
  ck_assert_int_eq(eventpub_open(db, &bad_schema, &e), ERR_INVAL);
  ck_assert_ptr_null(e);
  eventpub_options bad_source = {.schema = "orders", .source = "a source"};
  ck_assert_int_eq(eventpub_open(db, &bad_source, &e), ERR_INVAL);
  eventpub_free(NULL);
  db_pool_free(db);
}
END_TEST

START_TEST(without_a_bus_nothing_is_connected_at_open) {
  db_pool *db = unreachable_pool();
  eventpub_options o = {.schema = "orders", .source = "orders", .bus_url = ""};
  eventpub *e = NULL;
  ck_assert_int_eq(eventpub_open(db, &o, &e), ERR_OK);
  ck_assert_ptr_nonnull(eventpub_outbox(e));
  eventpub_free(e);
  o.bus_url = NULL;
  ck_assert_int_eq(eventpub_open(db, &o, &e), ERR_OK);
  eventpub_free(e);
  db_pool_free(db);
}
END_TEST

START_TEST(a_bus_needs_the_outbox_sequence) {
  /* The publisher continues the outbox's seq: without the database there
   * is no seq to continue, so no publisher either. */
  db_pool *db = unreachable_pool();
  eventpub_options o = {
      .schema = "orders", .source = "orders", .bus_url = "tcp://127.0.0.1:0"};
  eventpub *e = (eventpub *)db;
  ck_assert_int_eq(eventpub_open(db, &o, &e), ERR_UNAVAILABLE);
  ck_assert_ptr_null(e);
  db_pool_free(db);
}
END_TEST

START_TEST(start_registers_replay_and_free_stops_the_relay) {
  db_pool *db = unreachable_pool();
  eventpub_options o = {.schema = "orders", .source = "orders", .poll_ms = 10};
  eventpub *e = NULL;
  ck_assert_int_eq(eventpub_open(db, &o, &e), ERR_OK);
  rpc_server *srv = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &srv), ERR_OK);
  ck_assert_int_eq(eventpub_start(e, srv), ERR_OK);
  time_sleep_ms(50); /* a few failing relay passes */
  /* The Replay method is taken: a second source of that name cannot
   * register it. */
  eventpub *twin = NULL;
  ck_assert_int_eq(eventpub_open(db, &o, &twin), ERR_OK);
  ck_assert_int_ne(eventpub_start(twin, srv), ERR_OK);
  eventpub_free(twin);
  rpc_server_close(srv); /* Replay's outbox must outlive the server */
  eventpub_free(e);
  db_pool_free(db);
}
END_TEST

int main(void) {
  Suite *s = suite_create("eventpub");
  TCase *tc = tcase_create("eventpub");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, bad_options_are_refused);
  tcase_add_test(tc, without_a_bus_nothing_is_connected_at_open);
  tcase_add_test(tc, a_bus_needs_the_outbox_sequence);
  tcase_add_test(tc, start_registers_replay_and_free_stops_the_relay);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
