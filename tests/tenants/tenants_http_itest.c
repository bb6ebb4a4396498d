/*
 * tenants_http_itest.c - the tenants service's issue-9 hardening through
 * the public HTTP API: PostgreSQL, Redis, auth, tenants and the gateway as
 * processes (tests/harness), a stand-in web site for domain verification
 * (tests/harness/tokensrv: TENANTS_DOMAIN_VERIFY_CONNECT_TO points every
 * verification fetch at it, since tests have no real DNS).
 *
 * Covered: a custom domain routes anonymous calls (a login with that
 * Host) only after its tenant proved control; a wrong answer is a 400
 * FAILED_PRECONDITION and changes nothing; a domain verified by one tenant
 * cannot be claimed by another. Idempotency-Key on POST /v1/tenants
 * (anonymous, scoped by the slug) and POST /v1/tenant/domains: replay
 * with the same body, 400 for another body, concurrent twins (one row,
 * counted in PostgreSQL).
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "tests/harness/api.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/idemcheck.h"
#include "tests/harness/service.h"
#include "tests/harness/tokensrv.h"

#define PASSWORD "correct horse battery"

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_gw;
static harness_tokensrv *g_tok;

static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 8, .log_level = "info"};

typedef harness_http_resp resp;

static resp *post(const char *path, const char *body, const char *token,
                  const char *h1) {
  const char *h[] = {h1, NULL};
  return harness_http_call("POST", g_gw.http_port, path, body, token, h);
}

/* POST /v1/auth/login as a's owner with this Host header. */
static resp *login_on(const harness_api_tenant *a, const char *host) {
  char body[256], h[200];
  snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}",
           a->owner_email, PASSWORD);
  snprintf(h, sizeof h, "Host: %s", host);
  return post("/v1/auth/login", body, NULL, h);
}

/* Logs in on host until it answers 200 (the gateway may hold a "no such
 * tenant" for its negative TTL), at most timeout_ms. */
static resp *login_routed(const harness_api_tenant *a, const char *host,
                          int timeout_ms) {
  int64_t end = time_mono_ms() + timeout_ms;
  for (;;) {
    resp *r = login_on(a, host);
    if (r->status == 200 || time_mono_ms() > end) return r;
    harness_http_free(r);
    time_sleep_ms(200);
  }
}

static resp *add_domain(const char *token, const char *host, const char *h1) {
  char body[200];
  snprintf(body, sizeof body, "{\"host\":\"%s\"}", host);
  return post("/v1/tenant/domains", body, token, h1);
}

static resp *verify(const char *token, const char *host) {
  char path[300];
  snprintf(path, sizeof path, "/v1/tenant/domains/%s/verify", host);
  return post(path, "{}", token, NULL);
}

START_TEST(custom_domain_routes_only_after_verification) {
  harness_api_tenant a, b;
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "doma", PASSWORD, &a), 201);
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "domb", PASSWORD, &b), 201);
  char host[128];
  snprintf(host, sizeof host, "order.%s.example.org", a.slug);

  resp *r = add_domain(a.owner_token, host, NULL);
  CK_HTTP_STATUS(r, 201);
  ck_assert(json_is_false(harness_json_get(r->json, "verified")));
  ck_assert(json_is_null(harness_json_get(r->json, "verified_at")));
  ck_assert_str_eq(harness_json_str(r->json, "verification.method"), "http");
  char token[64];
  str_copy(token, harness_json_str(r->json, "verification.token"),
           sizeof token);
  ck_assert_uint_eq(strlen(token), 43);
  ck_assert(strstr(harness_json_str(r->json, "verification.url"), host));
  harness_http_free(r);

  /* Unverified: an anonymous call with that Host names no tenant. */
  r = login_on(&a, host);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);

  /* The site answers something else: 400, still unverified, no route. */
  harness_tokensrv_set(g_tok, token, "something-else");
  r = verify(a.owner_token, host);
  CK_HTTP_ERROR(r, 400, "FAILED_PRECONDITION");
  ck_assert(harness_http_has_detail(r, "host"));
  harness_http_free(r);
  r = harness_http_call("GET", g_gw.http_port, "/v1/tenant/domains", NULL,
                        a.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_false(json_object_get(
      json_array_get(json_object_get(r->json, "domains"), 0), "verified")));
  harness_http_free(r);
  r = login_on(&a, host);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);

  /* The token served: verified, and the host routes to a. */
  harness_tokensrv_set(g_tok, token, token);
  r = verify(a.owner_token, host);
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_true(harness_json_get(r->json, "verified")));
  ck_assert(json_is_string(harness_json_get(r->json, "verified_at")));
  ck_assert(json_is_null(harness_json_get(r->json, "verification")));
  harness_http_free(r);
  r = login_routed(&a, host, 5000);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "user.id"), a.owner_id);
  harness_http_free(r);

  /* b can claim it no more. */
  r = add_domain(b.owner_token, host, NULL);
  CK_HTTP_ERROR(r, 409, "ALREADY_EXISTS");
  harness_http_free(r);
  r = login_on(&a, host);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
}
END_TEST

START_TEST(idempotency_key_on_create_tenant) {
  char slug[40], other[64], rs[3][64];
  char body[512], obody[512], rbody[3][512];
  harness_unique(slug, sizeof slug, "idemt");
  /* Same slug (the key's scope), another owner name: another request. */
  snprintf(body, sizeof body,
           "{\"name\":\"Cafe A\",\"slug\":\"%s\",\"owner\":{\"email\":"
           "\"o@%s.example.test\",\"password\":\"%s\",\"name\":\"Olga\"}}",
           slug, slug, PASSWORD);
  snprintf(obody, sizeof obody,
           "{\"name\":\"Cafe B\",\"slug\":\"%s\",\"owner\":{\"email\":"
           "\"o@%s.example.test\",\"password\":\"%s\",\"name\":\"Olga\"}}",
           slug, slug, PASSWORD);
  snprintf(other, sizeof other, "%s|Cafe B", slug);
  char count_arg[48];
  snprintf(count_arg, sizeof count_arg, "%s|Cafe A", slug);
  for (int i = 0; i < 3; i++) {
    char s[32];
    harness_unique(s, sizeof s, "idemr");
    snprintf(rbody[i], sizeof rbody[i],
             "{\"name\":\"Cafe A\",\"slug\":\"%s\",\"owner\":{\"email\":"
             "\"o@%s.example.test\",\"password\":\"%s\",\"name\":\"Olga\"}}",
             s, s, PASSWORD);
    snprintf(rs[i], sizeof rs[i], "%s|Cafe A", s);
  }
  harness_idem_case c = {.port = g_gw.http_port,
                         .path = "/v1/tenants",
                         .token = NULL,
                         .key_prefix = "itest-tenant",
                         .status = 201,
                         .pg = &g_pg,
                         .count_sql =
                             "SELECT count(*) FROM tenants.tenants WHERE "
                             "slug || '|' || name = $1",
                         .body = body,
                         .count_arg = count_arg,
                         .other_body = obody,
                         .count_other_arg = other,
                         .race_body = {rbody[0], rbody[1], rbody[2]},
                         .race_arg = {rs[0], rs[1], rs[2]}};
  harness_idem_check(&c);
  /* One owner in auth for the tenant, too. */
  ck_assert_int_eq(
      harness_pg_count(&g_pg,
                       "SELECT count(*) FROM auth.users u JOIN "
                       "tenants.tenants t ON t.id = u.tenant_id WHERE "
                       "t.slug = $1",
                       slug),
      1);
  /* The saved answer holds tokens: never readable in the database (the
   * row is there, sealed). */
  ck_assert_int_eq(
      harness_pg_count(&g_pg,
                       "SELECT count(*) FROM tenants.idempotency WHERE "
                       "principal = 'slug:' || $1 AND response_code = 0",
                       slug),
      1);
  ck_assert_int_eq(
      harness_pg_count(&g_pg,
                       "SELECT count(*) FROM tenants.idempotency WHERE "
                       "principal = 'slug:' || $1 AND position(convert_to("
                       "'v4.public.', 'UTF8') in response) > 0",
                       slug),
      0);
}
END_TEST

START_TEST(idempotency_key_on_add_domain) {
  harness_api_tenant a;
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "idemd", PASSWORD, &a), 201);
  char h[5][160], b[5][200];
  for (int i = 0; i < 5; i++) {
    char u[40];
    harness_unique(u, sizeof u, "d");
    snprintf(h[i], sizeof h[i], "%s.%s.example.org", u, a.slug);
    snprintf(b[i], sizeof b[i], "{\"host\":\"%.150s\"}", h[i]);
  }
  harness_idem_case c = {
      .port = g_gw.http_port,
      .path = "/v1/tenant/domains",
      .token = a.owner_token,
      .key_prefix = "itest-domain",
      .status = 201,
      .pg = &g_pg,
      .count_sql = "SELECT count(*) FROM tenants.domains WHERE host = $1",
      .body = b[0],
      .count_arg = h[0],
      .other_body = b[1],
      .count_other_arg = h[1],
      .race_body = {b[2], b[3], b[4]},
      .race_arg = {h[2], h[3], h[4]}};
  harness_idem_check(&c);
}
END_TEST

static bool start_all(void) {
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0)
    return false;
  if (!harness_service_start_auth(&g_auth, "auth", &kSvc, NULL)) return false;
  char a[96], t[96], ae[96], te[96], ct[96];
  snprintf(a, sizeof a, "AUTH_ADDR=%s", g_auth.rpc_url);
  harness_tokensrv_env(g_tok, ct, sizeof ct);
  char *ten[] = {a, "TENANTS_BASE_DOMAINS=localhost", ct, NULL};
  if (!harness_service_start(&g_tenants, "tenants", "services/tenants/tenants",
                             &kSvc, ten))
    return false;
  snprintf(t, sizeof t, "TENANTS_ADDR=%s", g_tenants.rpc_url);
  snprintf(ae, sizeof ae, "AUTH_EVENTS=%s", g_auth.bus_url);
  snprintf(te, sizeof te, "TENANTS_EVENTS=%s", g_tenants.bus_url);
  char *gw[] = {a,
                t,
                ae,
                te,
                "ORDERS_ADDR=tcp://127.0.0.1:1",
                "GATEWAY_RATE_BURST=1000000",
                "GATEWAY_RATE_PER_MIN=1000000",
                "GATEWAY_LOGIN_BURST=1000",
                "GATEWAY_LOGIN_PER_MIN=1000",
                "GATEWAY_DEADLINE_MS=10000",
                NULL};
  if (!harness_service_start(&g_gw, "gateway", "services/gateway/gateway",
                             &kSvc, gw))
    return false;
  char url[128];
  return harness_wait_http_ok(
      harness_service_http_url(&g_gw, "/healthz", url, sizeof url), 10000);
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  g_tok = harness_tokensrv_start();
  if (g_tok == NULL || !start_all()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the system\n");
    return 1;
  }
  Suite *s = suite_create("tenants_http_itest");
  TCase *tc = tcase_create("tenants_http");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, custom_domain_routes_only_after_verification);
  tcase_add_test(tc, idempotency_key_on_create_tenant);
  tcase_add_test(tc, idempotency_key_on_add_domain);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_gw, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_tokensrv_stop(g_tok);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  curl_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
