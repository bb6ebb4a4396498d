/*
 * bots_itest.c - tools/bots against a whole system (system.h): a short
 * run of two tenants completes with no failed request, and its report
 * agrees with the server's data - the orders it says it placed, by the
 * status it last saw, are exactly the tenants' orders in the database,
 * and the tenants have the products and members set-up says it made;
 * its realtime listeners (one WebSocket per tenant on orders.<tenant>)
 * got every change it made exactly once. Its devices (two per tenant, a
 * heartbeat a second) pushed, pulled and beat without a failure: the
 * orders the report says they placed are the tenants' device orders in
 * the database, and each device's last_mutation_id on the server is the
 * number of mutations the report says it sent.
 * Then the unhappy paths: an unreachable server stops the bots in
 * set-up (exit 3) and bad arguments exit 2 before any request.
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/clients/system.h"
#include "tests/clients/tool.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"

static harness_system g_sys;
static char g_out[1 << 18];

/* Count of a tenant's orders in one status; one fixed query each. */
static const struct {
  const char *status, *sql;
} kByStatus[] = {
#define Q(s)                                                                   \
  {                                                                            \
    s, "SELECT count(*) FROM orders.orders WHERE tenant_id = $1::uuid "        \
       "AND status = '" s "'"                                                  \
  }
    Q("pending"), Q("confirmed"), Q("preparing"),
    Q("ready"),   Q("delivered"), Q("cancelled"),
#undef Q
};

static long long db_count(const char *sql, const char *tid) {
  return harness_pg_count(&g_sys.pg, sql, tid);
}

/* The devices' orders and mutations against the database. */
static void check_devices_match(json_t *j) {
  json_t *devs = json_object_get(json_object_get(j, "devices"), "list"), *d;
  ck_assert_int_eq(json_array_size(devs), 2 * 2);
  ck_assert_int_eq(harness_json_int(j, "devices.count"), 4);
  long long orders = 0, mutations = 0;
  size_t i;
  json_array_foreach(devs, i, d) {
    ck_assert(!json_is_true(json_object_get(d, "uncertain")));
    long long sent = harness_json_int(d, "mutations");
    ck_assert_int_eq(db_count("SELECT last_mutation_id FROM sync.devices "
                              "WHERE id = $1::uuid",
                              harness_json_str(d, "id")),
                     sent);
    mutations += sent;
    orders += harness_json_int(d, "orders");
  }
  json_t *tenants = json_object_get(j, "tenants"), *t;
  long long in_db = 0;
  json_array_foreach(tenants, i, t) {
    in_db += db_count("SELECT count(*) FROM orders.orders WHERE tenant_id = "
                      "$1::uuid AND notes = 'bots device'",
                      harness_json_str(t, "id"));
  }
  ck_assert_int_gt(orders, 0);
  ck_assert_int_eq(harness_json_int(j, "devices.orders"), orders);
  ck_assert_int_eq(in_db, orders);
  ck_assert_int_eq(harness_json_int(j, "devices.mutations"), mutations);
  /* Every push carried one mutation, and every one was applied. */
  ck_assert_int_eq(harness_json_int(j, "operations.push.ok"), mutations);
}

/* The report's counts against the database, over every tenant it made. */
static void check_counts_match(json_t *j) {
  json_t *tenants = json_object_get(j, "tenants"), *t;
  ck_assert_int_eq(json_array_size(tenants), 2);
  long long placed = 0, by[6] = {0};
  size_t i;
  json_array_foreach(tenants, i, t) {
    const char *tid = harness_json_str(t, "id");
    placed += db_count(
        "SELECT count(*) FROM orders.orders WHERE tenant_id = $1::uuid", tid);
    for (int s = 0; s < 6; s++) by[s] += db_count(kByStatus[s].sql, tid);
    ck_assert_int_eq(db_count("SELECT count(*) FROM orders.products "
                              "WHERE tenant_id = $1::uuid",
                              tid),
                     5);
    ck_assert_int_eq(db_count("SELECT count(*) FROM auth.users "
                              "WHERE tenant_id = $1::uuid",
                              tid),
                     1 + 1 + 3); /* owner, staff, customers */
  }
  ck_assert_int_eq(harness_json_int(j, "orders.placed"), placed);
  ck_assert_int_eq(harness_json_int(j, "operations.create_order.ok") +
                       harness_json_int(j, "devices.orders"),
                   placed);
  for (int s = 0; s < 6; s++) {
    char path[64];
    snprintf(path, sizeof path, "orders.by_status.%s", kByStatus[s].status);
    ck_assert_msg(harness_json_int(j, path) == by[s],
                  "%s: report %lld, db %lld", kByStatus[s].status,
                  harness_json_int(j, path), by[s]);
  }
}

START_TEST(a_short_run_has_no_failures_and_matches_the_data) {
  int rc = clients_run(g_out, sizeof g_out,
                       "%s --server %s --tenants 2 --duration 4s --rate 25 "
                       "--devices 2 --heartbeat 1 --realtime %s --json",
                       harness_bin_path("tools/bots/bots"), g_sys.base,
                       g_sys.ws_url);
  ck_assert_int_eq(rc, 0);
  json_t *j = json_loads(g_out, 0, NULL);
  ck_assert_msg(j != NULL, "bots --json printed JSON");
  ck_assert_int_eq(harness_json_int(j, "load.failed"), 0);
  ck_assert_int_eq(harness_json_int(j, "load.unanswered"), 0);
  ck_assert_int_gt(harness_json_int(j, "load.operations"), 20);
  ck_assert_int_gt(harness_json_int(j, "orders.placed"), 0);
  ck_assert_int_gt(harness_json_int(j, "operations.advance_order.ok"), 0);
  /* tenant, staff + login, customers + logins, products, devices +
   * sessions */
  ck_assert_int_eq(harness_json_int(j, "setup.requests"),
                   2 * (1 + 2 + 3 * 2 + 5 + 2 * 2));
  /* 2 s or more of 1 s beats for 4 devices; pushes and pulls in the mix. */
  ck_assert_int_ge(harness_json_int(j, "operations.heartbeat.ok"), 4 * 2);
  ck_assert_int_gt(harness_json_int(j, "operations.push.ok"), 0);
  ck_assert_int_gt(harness_json_int(j, "operations.pull.ok"), 0);
  ck_assert_int_eq(harness_json_int(j, "operations.heartbeat.failed"), 0);
  check_counts_match(j);
  check_devices_match(j);
  /* Every change the bots made reached its tenant's listener once. */
  long long changes = harness_json_int(j, "operations.create_order.ok") +
                      harness_json_int(j, "operations.advance_order.ok") +
                      harness_json_int(j, "operations.cancel_order.ok") +
                      harness_json_int(j, "operations.push.ok");
  ck_assert_int_eq(harness_json_int(j, "realtime.listeners"), 2);
  ck_assert_int_eq(harness_json_int(j, "realtime.expected"), changes);
  ck_assert_int_eq(harness_json_int(j, "realtime.delivered"), changes);
  ck_assert_int_eq(harness_json_int(j, "realtime.dropped"), 0);
  ck_assert_ptr_null(strstr(g_out, "access_token"));
  json_decref(j);
}
END_TEST

START_TEST(the_table_report_names_every_operation) {
  int rc = clients_run(g_out, sizeof g_out,
                       "%s --server %s --tenants 1 --duration 2s --rate 20 "
                       "--heartbeat 1",
                       harness_bin_path("tools/bots/bots"), g_sys.base);
  ck_assert_int_eq(rc, 0);
  const char *ops[] = {"create_order", "advance_order",  "cancel_order",
                       "get_order",    "list_orders",    "list_products",
                       "push",         "pull",           "heartbeat",
                       "P99_MS",       "orders placed:", "placed by devices"};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    ck_assert_msg(strstr(g_out, ops[i]) != NULL, "report has %s", ops[i]);
  /* --devices 0: no device is made and none pushes, pulls or beats. */
  rc = clients_run(g_out, sizeof g_out,
                   "%s --server %s --tenants 1 --duration 2s --rate 20 "
                   "--devices 0 --heartbeat 1 --json",
                   harness_bin_path("tools/bots/bots"), g_sys.base);
  ck_assert_int_eq(rc, 0);
  json_t *j = json_loads(g_out, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_int_eq(harness_json_int(j, "devices.count"), 0);
  ck_assert_int_eq(harness_json_int(j, "setup.requests"), 1 + 2 + 3 * 2 + 5);
  ck_assert_int_eq(harness_json_int(j, "operations.push.count"), 0);
  ck_assert_int_eq(harness_json_int(j, "operations.pull.count"), 0);
  ck_assert_int_eq(harness_json_int(j, "operations.heartbeat.count"), 0);
  json_decref(j);
}
END_TEST

START_TEST(unreachable_server_and_bad_arguments) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", harness_free_port());
  const char *bin = harness_bin_path("tools/bots/bots");
  ck_assert_int_eq(clients_run(g_out, sizeof g_out,
                               "%s --server %s --tenants 1 --duration 1s "
                               "--timeout 2000",
                               bin, url),
                   3);
  ck_assert_int_eq(clients_run(g_out, sizeof g_out, "%s --tenants 0", bin), 2);
  ck_assert_int_eq(clients_run(g_out, sizeof g_out, "%s --duration 11m", bin),
                   2);
  ck_assert_int_eq(clients_run(g_out, sizeof g_out, "%s --rate x", bin), 2);
  ck_assert_int_eq(clients_run(g_out, sizeof g_out, "%s --devices 21", bin), 2);
  ck_assert_int_eq(clients_run(g_out, sizeof g_out, "%s --heartbeat 0", bin),
                   2);
  ck_assert_int_eq(
      clients_run(g_out, sizeof g_out, "%s --server file:///etc/passwd", bin),
      2);
}
END_TEST

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!clients_system_start(&g_sys, "sys", true)) return 1;
  Suite *s = suite_create("bots_itest");
  HARNESS_ADD_CASE(s, a_short_run_has_no_failures_and_matches_the_data, 180,
                   NULL);
  HARNESS_ADD_CASE(s, the_table_report_names_every_operation, 120, NULL);
  HARNESS_ADD_CASE(s, unreachable_server_and_bad_arguments, 60, NULL);
  int failed = harness_run_shared(s);
  int rc = harness_system_end(&g_sys, failed);
  curl_global_cleanup();
  return rc;
}
