/*
 * multi_itest.c - tools/multi against two running deployments.
 *
 * Two whole systems (system.h: each its own PostgreSQL, Redis, auth,
 * tenants, orders and gateway), as two regions would be: they share
 * nothing, so what one server did is read from that server's database
 * alone. One gateway over one system would not do: both "servers" would
 * share one idempotency store and one product table, and a write doubled
 * or lost on one of them could not be told apart. The same tenant (slug,
 * owner, password) is made on each through the API; the writes create
 * products, whose body is the same on every deployment.
 *
 * What must hold: `all` writes to both; with one gateway down it fails
 * (exit 1) and names that server, `quorum` of two fails too, and
 * `fastest` answers from the live one; a write whose answer is lost on
 * the way (dropproxy.h) is retried under the same Idempotency-Key and
 * the server holds the product once, also when the whole command is run
 * again with that key; a request whose access token is revoked on its
 * way (the proxy logs it out first: what an expired token also gets, a
 * real 401) is renewed - the refresh is refused too, so by a new login -
 * and the write done once; wrong credentials exit 3;
 * usage errors exit 2 without sending anything.
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/uuid.h"
#include "tests/clients/dropproxy.h"
#include "tests/clients/system.h"
#include "tests/clients/tool.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"

#define PASSWORD "multi region password"

static harness_system g_a, g_b;
static char g_slug[48], g_email[96];
static char g_tid[2][UUID_STR_LEN + 1];
static char g_out[1 << 16];

/* ---------------------------------------------------------- helpers --- */

static harness_system *sys(int i) { return i == 0 ? &g_a : &g_b; }

/* The tenant's products in system i's database. */
static long long products_of(int i) {
  return harness_pg_count(&sys(i)->pg,
                          "SELECT count(*) FROM orders.products "
                          "WHERE tenant_id = $1::uuid",
                          g_tid[i]);
}

/* Products named name (unique to one test) in system i's database. */
static long long named(int i, const char *name) {
  return harness_pg_count(
      &sys(i)->pg, "SELECT count(*) FROM orders.products WHERE name = $1",
      name);
}

/* A write whose body is the same on every server (a product: ids of
 * things differ between deployments, so an order could not be). */
static const char *product_body(char *name, size_t cap) {
  static char body[160];
  harness_unique(name, cap, "special");
  snprintf(body, sizeof body,
           "{\"name\":\"%s\",\"price_cents\":900,\"stock\":10}", name);
  return body;
}

/* Runs multi with the tenant's credentials; extra is the rest. */
static int multi(const char *servers, const char *extra) {
  return clients_run(g_out, sizeof g_out,
                     "MULTI_PASSWORD='" PASSWORD "' %s %s --tenant %s "
                     "--email %s %s",
                     harness_bin_path("tools/multi/multi"), servers, g_slug,
                     g_email, extra);
}

static void both_up(void) {
  if (g_b.gateway[0].proc == NULL)
    ck_assert_msg(harness_system_restart(&g_b, HARNESS_GATEWAY, NULL, NULL),
                  "gateway b restarts");
}

static json_t *out_json(void) {
  json_t *j = json_loads(g_out, 0, NULL);
  ck_assert_msg(j != NULL, "multi --json printed JSON: %s", g_out);
  return j;
}

static json_t *server_entry(json_t *j, const char *url) {
  json_t *s;
  size_t i;
  json_array_foreach(json_object_get(j, "servers"), i, s) {
    if (strcmp(harness_json_str(s, "url"), url) == 0) return s;
  }
  ck_abort_msg("no entry for %s", url);
  return NULL;
}

/* ------------------------------------------------------------ tests --- */

START_TEST(write_all_reaches_every_server) {
  both_up();
  long long a0 = products_of(0), b0 = products_of(1);
  char servers[256];
  snprintf(servers, sizeof servers, "--server %s --server %s", g_a.base,
           g_b.base);
  char extra[512], name[48];
  const char *body = product_body(name, sizeof name);
  snprintf(extra, sizeof extra, "--json write /v1/products '%s'", body);
  ck_assert_int_eq(multi(servers, extra), 0);
  json_t *j = out_json();
  ck_assert(json_is_true(json_object_get(j, "ok")));
  ck_assert_int_eq(harness_json_int(j, "accepted"), 2);
  ck_assert_str_eq(harness_json_str(server_entry(j, g_b.base), "outcome"),
                   "ok");
  ck_assert(
      json_is_true(json_object_get(server_entry(j, g_a.base), "logged_out")));
  json_decref(j);
  ck_assert_int_eq(products_of(0), a0 + 1);
  ck_assert_int_eq(products_of(1), b0 + 1);
}
END_TEST

START_TEST(one_server_down_fails_all_and_quorum_but_not_fastest) {
  both_up();
  harness_service_stop(&g_b.gateway[0], 15000);
  long long a0 = products_of(0);
  char servers[256], extra[512];
  snprintf(servers, sizeof servers, "--server %s --server %s --retries 1",
           g_a.base, g_b.base);

  /* all, for people: exit 1, the result line names the down server. */
  char name[48];
  snprintf(extra, sizeof extra, "write /v1/products '%s'",
           product_body(name, sizeof name));
  ck_assert_int_eq(multi(servers, extra), 1);
  ck_assert_ptr_nonnull(strstr(g_out, "result: all FAILED: 1/2 accepted"));
  char named[128];
  snprintf(named, sizeof named, "failed: %s (", g_b.base);
  ck_assert_msg(strstr(g_out, named) != NULL, "names %s", g_b.base);
  ck_assert_ptr_null(strstr(g_out, PASSWORD));
  ck_assert_int_eq(products_of(0), a0 + 1); /* the live one took it */

  /* quorum of two with one down: 1/2 is no majority. */
  snprintf(extra, sizeof extra, "--json --mode quorum write /v1/products '%s'",
           product_body(name, sizeof name));
  ck_assert_int_eq(multi(servers, extra), 1);
  json_t *j = out_json();
  ck_assert(json_is_false(json_object_get(j, "ok")));
  ck_assert_str_eq(
      harness_json_str(json_array_get(json_object_get(j, "failed"), 0), ""),
      g_b.base);
  ck_assert_str_eq(harness_json_str(server_entry(j, g_b.base), "outcome"),
                   "login_failed");
  json_decref(j);

  /* fastest: the live one answers. */
  ck_assert_int_eq(multi(servers, "--json read /v1/products"), 0);
  j = out_json();
  ck_assert_str_eq(harness_json_str(j, "winner"), g_a.base);
  ck_assert(json_is_array(harness_json_get(j, "answer.products")));
  json_decref(j);
  ck_assert(harness_system_restart(&g_b, HARNESS_GATEWAY, NULL, NULL));
}
END_TEST

START_TEST(a_lost_answer_is_retried_and_creates_nothing_twice) {
  both_up();
  /* Two answers lost: libcurl itself repeats a request once when a
   * reused connection dies before answering, so the second loss is the
   * one multi must retry. */
  dropproxy *p =
      dropproxy_start(g_a.gateway[0].http_port, "POST /v1/products ", 2);
  ck_assert_ptr_nonnull(p);
  long long a0 = products_of(0), b0 = products_of(1);
  char key[UUID_STR_LEN + 1], servers[256], extra[512], name[48];
  const char *body = product_body(name, sizeof name);
  uuid_v7_str(key);
  snprintf(servers, sizeof servers, "--server http://127.0.0.1:%d --server %s",
           dropproxy_port(p), g_b.base);
  snprintf(extra, sizeof extra,
           "--json --idempotency-key %s write /v1/products '%s'", key, body);
  ck_assert_int_eq(multi(servers, extra), 0);
  ck_assert_int_eq(dropproxy_dropped(p), 2); /* both answers were lost */
  json_t *j = out_json();
  char proxied[64];
  snprintf(proxied, sizeof proxied, "http://127.0.0.1:%d", dropproxy_port(p));
  long long attempts = harness_json_int(server_entry(j, proxied), "attempts");
  ck_assert_msg(attempts >= 2 && attempts <= 3, "multi retried: %lld",
                attempts);
  ck_assert_str_eq(harness_json_str(server_entry(j, proxied), "outcome"), "ok");
  ck_assert_str_eq(harness_json_str(j, "idempotency_key"), key);
  json_decref(j);
  ck_assert_int_eq(products_of(0), a0 + 1);
  ck_assert_int_eq(named(0, name), 1);
  ck_assert_int_eq(products_of(1), b0 + 1);

  /* The whole command again, same key: answered from the record. */
  ck_assert_int_eq(multi(servers, extra), 0);
  ck_assert_int_eq(products_of(0), a0 + 1);
  ck_assert_int_eq(products_of(1), b0 + 1);
  ck_assert_int_eq(named(0, name), 1);
  ck_assert_int_eq(named(1, name), 1);
}
END_TEST

/* The proxy's hook: logs the request's own access token out (as an
 * admin revoking sessions would) before the request reaches the gateway. */
static void revoke_token(const char *req, size_t len, void *arg) {
  static const char kAuth[] = "Authorization: Bearer ";
  char copy[8192], token[1024];
  snprintf(copy, sizeof copy, "%.*s", (int)len, req);
  const char *t = strstr(copy, kAuth);
  if (t == NULL || sscanf(t + sizeof kAuth - 1, "%1023[^\r\n]", token) != 1)
    return;
  harness_http_resp *r = harness_http_request(
      "POST", *(int *)arg, "/v1/auth/logout", "{}", token, NULL);
  if (r->status != 204) fprintf(stderr, "revoke: %ld\n", r->status);
  harness_http_free(r);
}

START_TEST(a_revoked_token_is_renewed_and_the_write_done_once) {
  both_up();
  static int port;
  port = g_a.gateway[0].http_port;
  dropproxy *p =
      dropproxy_start_hook(port, "POST /v1/products ", 1, revoke_token, &port);
  ck_assert_ptr_nonnull(p);
  long long a0 = products_of(0);
  char servers[256], extra[512], name[48], proxied[64];
  snprintf(proxied, sizeof proxied, "http://127.0.0.1:%d", dropproxy_port(p));
  snprintf(servers, sizeof servers, "--server %s", proxied);
  snprintf(extra, sizeof extra, "--json write /v1/products '%s'",
           product_body(name, sizeof name));
  ck_assert_int_eq(multi(servers, extra), 0);
  json_t *j = out_json();
  json_t *s = server_entry(j, proxied);
  ck_assert_str_eq(harness_json_str(s, "outcome"), "ok");
  ck_assert_int_eq(harness_json_int(s, "renewals"), 1);
  ck_assert_int_eq(harness_json_int(s, "attempts"), 2);
  ck_assert(json_is_true(json_object_get(s, "logged_out")));
  json_decref(j);
  ck_assert_int_eq(products_of(0), a0 + 1);
  ck_assert_int_eq(named(0, name), 1);
}
END_TEST

START_TEST(wrong_credentials_exit_3_and_usage_errors_exit_2) {
  both_up();
  char servers[256];
  snprintf(servers, sizeof servers, "--server %s --server %s", g_a.base,
           g_b.base);
  ck_assert_int_eq(
      clients_run(g_out, sizeof g_out,
                  "MULTI_PASSWORD='not the password' %s %s --tenant %s "
                  "--email %s read /v1/orders",
                  harness_bin_path("tools/multi/multi"), servers, g_slug,
                  g_email),
      3);
  ck_assert_ptr_nonnull(strstr(g_out, "login_failed"));
  ck_assert_ptr_nonnull(strstr(g_out, "login: 401 UNAUTHENTICATED"));
  long long a0 = products_of(0);
  ck_assert_int_eq(multi(servers, "--mode fastest write /v1/products '{}'"), 2);
  ck_assert_int_eq(multi(servers, "write /v1/products '{not json'"), 2);
  ck_assert_int_eq(multi("--server ftp://x", "read /v1/orders"), 2);
  ck_assert_int_eq(multi(servers, "--retries 99 read /v1/orders"), 2);
  ck_assert_int_eq(products_of(0), a0);
}
END_TEST

/* ------------------------------------------------------------ setup --- */

/* The same tenant (slug, owner, password) on system i, through its gateway. */
static bool make_tenant(int i) {
  char body[512];
  snprintf(body, sizeof body,
           "{\"name\":\"Bistro\",\"slug\":\"%s\",\"owner\":{\"email\":\"%s\","
           "\"password\":\"" PASSWORD "\",\"name\":\"Olga\"}}",
           g_slug, g_email);
  int port = sys(i)->gateway[0].http_port;
  harness_http_resp *r =
      harness_http_request("POST", port, "/v1/tenants", body, NULL, NULL);
  bool ok = r->status == 201;
  if (ok) {
    snprintf(g_tid[i], sizeof g_tid[i], "%s",
             harness_json_str(r->json, "tenant.id"));
  }
  if (!ok) fprintf(stderr, "set-up on %d: %ld %s\n", i, r->status, r->body);
  harness_http_free(r);
  return ok;
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  harness_unique(g_slug, sizeof g_slug, "multi");
  snprintf(g_email, sizeof g_email, "owner@%s.example.test", g_slug);
  if (!clients_system_start(&g_a, "a", false) ||
      !clients_system_start(&g_b, "b", false))
    return 1;
  if (!make_tenant(0) || !make_tenant(1)) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the two systems\n");
    return 1;
  }
  Suite *s = suite_create("multi_itest");
  HARNESS_ADD_CASE(s, write_all_reaches_every_server, 120, NULL);
  HARNESS_ADD_CASE(s, one_server_down_fails_all_and_quorum_but_not_fastest, 180,
                   NULL);
  HARNESS_ADD_CASE(s, a_lost_answer_is_retried_and_creates_nothing_twice, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_revoked_token_is_renewed_and_the_write_done_once, 120,
                   NULL);
  HARNESS_ADD_CASE(s, wrong_credentials_exit_3_and_usage_errors_exit_2, 120,
                   NULL);
  int failed = harness_run_shared(s);
  if (failed != 0) harness_dump_logs();
  harness_system_stop(&g_b);
  harness_system_stop(&g_a);
  curl_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
