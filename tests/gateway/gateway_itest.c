/*
 * gateway_itest.c - the public HTTP API end to end: PostgreSQL, Redis,
 * auth, tenants and the gateway as separate processes (tests/harness),
 * driven over real HTTP with libcurl. Every identity endpoint of
 * HTTP-API.md with its statuses, bodies, headers and error shapes; tenant
 * by subdomain and by header; cross-tenant attempts; rate limits and
 * auth's per-account login lock (429 with Retry-After); oversized and malformed
 * bodies; 404/405/411/413/415; Redis down (limits fail open); a killed backend
 * answering 503, not hanging; SIGTERM.
 *
 * The tests share one system and run in order (the last ones kill things).
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/rpc.h"
#include "tests/harness/system.h"

#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PASSWORD "correct horse battery"
#define LOGIN_BURST 3 /* the tight gateway's */
#define STR_(x) #x
#define STR(x) STR_(x)

static harness_system g_sys; /* gateway[0] roomy, gateway[1] tight */
static int g_port;           /* the gateway the next call() goes to */

/* ---------------------------------------------------------- processes -- */

static char *const kTenants[] = {"TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                                 "TENANTS_BASE_DOMAINS=localhost,example.test",
                                 NULL};
/* What every gateway of this test shares; each has its own bursts and
 * Redis database (so gateways with different limits share no buckets). */
static char *const kGateway[] = {
    "GATEWAY_RATE_PER_MIN=60",
    "GATEWAY_LOGIN_PER_MIN=1",
    "GATEWAY_BASE_DOMAIN=localhost,example.test",
    "GATEWAY_CORS_ORIGINS=https://app.example.test",
    "GATEWAY_DEADLINE_MS=3000",
    "SHUTDOWN_GRACE_MS=5000",
    NULL};
static char *const kRoomy[] = {"GATEWAY_RATE_BURST=1000",
                               "GATEWAY_LOGIN_BURST=1000", NULL};
static char *const kTight[] = {"GATEWAY_RATE_BURST=5",
                               "GATEWAY_LOGIN_BURST=" STR(LOGIN_BURST), NULL};
static char *const kReplica[] = {"GATEWAY_RATE_BURST=160",
                                 "GATEWAY_LOGIN_BURST=1000", NULL};

/* Every service of this test: one PostgreSQL, one Redis. The gateway
 * routes /v1/products and /v1/orders to orders (their behaviour is
 * tested in tests/orders; here, its failure). */
static const harness_system_opts kSystem = {
    .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
             HARNESS_WITH(HARNESS_GATEWAY),
    .rpc_workers = 8,
    .log_level = "info",
    .env = {[HARNESS_TENANTS] = kTenants, [HARNESS_GATEWAY] = kGateway},
    .gateways = {{.name = "gateway", .env = kRoomy},
                 {.name = "gateway-tight", .redis_db = 1, .env = kTight}},
};

/* ------------------------------------------------------------- client -- */

typedef harness_http_resp resp;

/* A request to the current gateway. token: "Authorization: Bearer" (NULL:
 * none); h1, h2: extra headers (may be NULL). body NULL: none. */
static resp *call(const char *method, const char *path, const char *body,
                  const char *token, const char *h1, const char *h2) {
  const char *h[3] = {NULL, NULL, NULL};
  int n = 0;
  if (h1 != NULL) h[n++] = h1;
  if (h2 != NULL) h[n++] = h2;
  return harness_http_call(method, g_port, path, body, token, h);
}

/* HTTP-API.md's error shape, with the gateway's headers on every answer. */
#define CK_ERROR(r, status, code)                                              \
  do {                                                                         \
    CK_HTTP_ERROR(r, status, code);                                            \
    ck_assert_str_eq(harness_http_header(r, "X-Content-Type-Options"),         \
                     "nosniff");                                               \
    ck_assert_str_eq(harness_http_header(r, "Cache-Control"), "no-store");     \
  } while (0)

static const char *const kUserKeys[] = {"id",   "email",      "name",
                                        "role", "created_at", NULL};
static const char *const kTenantKeys[] = {
    "id", "slug", "name", "currency", "status", "created_at", NULL};

typedef harness_api_tenant tenant;

static void create_tenant(tenant *t, const char *prefix) {
  ck_assert_int_eq(harness_api_create_tenant(g_port, prefix, PASSWORD, t), 201);
}

static void login(const tenant *t, const char *email, const char *password,
                  char *token, size_t cap, char *refresh, size_t rcap) {
  ck_assert_int_eq(harness_api_login(g_port, t->slug, email, password, token,
                                     cap, refresh, rcap),
                   200);
}

/* Two tenants most tests below use, created by the first case that runs
 * (each_case), whichever it is. */
static tenant g_a, g_b;

/* Before every case (a checked fixture: under CK_NOFORK it still runs
 * before each one): calls go to the main gateway again, and the shared
 * tenants exist. No case relies on another having run, so any one runs
 * alone: CK_RUN_CASE=<case name> (one tcase per case, see main). */
static void each_case(void) {
  g_port = g_sys.gateway[0].http_port;
  if (g_a.id[0] == '\0') create_tenant(&g_a, "alpha");
  if (g_b.id[0] == '\0') create_tenant(&g_b, "beta");
}

/* -------------------------------------------------------------- tests -- */

START_TEST(two_tenants_are_created_through_the_api) {
  tenant a, b;
  create_tenant(&a, "alpha");
  create_tenant(&b, "beta");
  ck_assert_str_ne(a.id, b.id);
}
END_TEST

START_TEST(create_tenant_answers_201_with_owner_and_tokens) {
  char slug[48];
  harness_unique(slug, sizeof slug, "new");
  char body[1024];
  snprintf(
      body, sizeof body,
      "{\"name\":\"New Place\",\"slug\":\"%s\",\"currency\":\"USD\","
      "\"owner\":{\"email\":\"Boss@New.Example.test\",\"password\":\"" PASSWORD
      "\",\"name\":\"Boss\"}}",
      slug);
  resp *r =
      call("POST", "/v1/tenants", body, NULL, "X-Request-Id: create-1", NULL);
  CK_HTTP_STATUS(r, 201);
  static const char *const keys[] = {
      "tenant",     "user", "access_token", "refresh_token", "token_type",
      "expires_in", NULL};
  CK_JSON_KEYS(r->json, keys);
  CK_JSON_KEYS(harness_json_get(r->json, "tenant"), kTenantKeys);
  CK_JSON_KEYS(harness_json_get(r->json, "user"), kUserKeys);
  ck_assert_str_eq(harness_json_str(r->json, "tenant.slug"), slug);
  ck_assert_str_eq(harness_json_str(r->json, "tenant.currency"), "USD");
  ck_assert_str_eq(harness_json_str(r->json, "tenant.status"), "active");
  ck_assert_str_eq(harness_json_str(r->json, "user.role"), "owner");
  ck_assert_str_eq(harness_json_str(r->json, "user.email"),
                   "boss@new.example.test");
  ck_assert_str_eq(harness_json_str(r->json, "token_type"), "Bearer");
  ck_assert_int_gt(json_integer_value(harness_json_get(r->json, "expires_in")),
                   0);
  ck_assert(uuid_is_valid(harness_json_str(r->json, "tenant.id")));
  ck_assert_uint_eq(strlen(harness_json_str(r->json, "tenant.created_at")), 24);
  ck_assert_str_eq(harness_http_header(r, "X-Request-Id"), "create-1");
  ck_assert_str_eq(harness_http_header(r, "Cache-Control"), "no-store");
  harness_http_free(r);

  /* The same slug again: 409. */
  r = call("POST", "/v1/tenants", body, NULL, NULL, NULL);
  CK_ERROR(r, 409, "ALREADY_EXISTS");
  harness_http_free(r);
  /* Bad slug, reserved slug, bad owner password: 400 naming the field. */
  r = call(
      "POST", "/v1/tenants",
      "{\"name\":\"x\",\"slug\":\"-Bad-\",\"owner\":{\"email\":\"a@b.test\","
      "\"password\":\"" PASSWORD "\",\"name\":\"A\"}}",
      NULL, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "slug"));
  harness_http_free(r);
  r = call(
      "POST", "/v1/tenants",
      "{\"name\":\"x\",\"slug\":\"admin\",\"owner\":{\"email\":\"a@b.test\","
      "\"password\":\"" PASSWORD "\",\"name\":\"A\"}}",
      NULL, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "slug"));
  harness_http_free(r);
  harness_unique(slug, sizeof slug, "pw");
  snprintf(body, sizeof body,
           "{\"name\":\"x\",\"slug\":\"%s\",\"owner\":{\"email\":\"a@b.test\","
           "\"password\":\"short\",\"name\":\"A\"}}",
           slug);
  r = call("POST", "/v1/tenants", body, NULL, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "owner.password"));
  harness_http_free(r);
  /* Wrong type and unknown field, before any RPC. */
  r = call("POST", "/v1/tenants", "{\"name\":1,\"sluggo\":\"x\"}", NULL, NULL,
           NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "name"));
  ck_assert(harness_http_has_detail(r, "sluggo"));
  harness_http_free(r);
}
END_TEST

START_TEST(get_and_patch_the_callers_tenant) {
  resp *r = call("GET", "/v1/tenant", NULL, g_a.owner_token, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  CK_JSON_KEYS(r->json, kTenantKeys);
  ck_assert_str_eq(harness_json_str(r->json, "id"), g_a.id);
  ck_assert_str_eq(harness_json_str(r->json, "currency"), "EUR");
  harness_http_free(r);
  r = call("PATCH", "/v1/tenant", "{\"name\":\"Renamed\",\"currency\":\"GBP\"}",
           g_a.owner_token, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  CK_JSON_KEYS(r->json, kTenantKeys);
  ck_assert_str_eq(harness_json_str(r->json, "name"), "Renamed");
  ck_assert_str_eq(harness_json_str(r->json, "currency"), "GBP");
  harness_http_free(r);
  r = call("PATCH", "/v1/tenant", "{\"currency\":\"XX1\"}", g_a.owner_token,
           NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "currency"));
  harness_http_free(r);
  r = call("GET", "/v1/tenant", NULL, NULL, NULL, NULL);
  CK_ERROR(r, 401, "UNAUTHENTICATED");
  ck_assert_str_eq(harness_http_header(r, "WWW-Authenticate"), "Bearer");
  harness_http_free(r);
  r = call("GET", "/v1/tenant?id=x", NULL, g_a.owner_token, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT"); /* id is not the client's */
  harness_http_free(r);
}
END_TEST

START_TEST(register_and_login_by_subdomain_and_header) {
  char host[128], xt[96];
  snprintf(host, sizeof host, "Host: %s.localhost:8080", g_a.slug);
  snprintf(xt, sizeof xt, "X-Tenant: %s", g_a.slug);
  resp *r = call("POST", "/v1/auth/register",
                 "{\"email\":\"Cust@Example.test\",\"password\":\"" PASSWORD
                 "\",\"name\":\"Cara\"}",
                 NULL, host, NULL);
  CK_HTTP_STATUS(r, 201);
  static const char *const keys[] = {"user", NULL};
  CK_JSON_KEYS(r->json, keys);
  CK_JSON_KEYS(harness_json_get(r->json, "user"), kUserKeys);
  ck_assert_str_eq(harness_json_str(r->json, "user.role"), "customer");
  ck_assert_str_eq(harness_json_str(r->json, "user.email"),
                   "cust@example.test");
  harness_http_free(r);
  r = call("POST", "/v1/auth/register",
           "{\"email\":\"cust@example.test\",\"password\":\"" PASSWORD
           "\",\"name\":\"Cara\"}",
           NULL, xt, NULL);
  CK_ERROR(r, 409, "ALREADY_EXISTS");
  harness_http_free(r);
  /* The same e-mail in another tenant is another user. */
  char xtb[96];
  snprintf(xtb, sizeof xtb, "X-Tenant: %s", g_b.slug);
  r = call("POST", "/v1/auth/register",
           "{\"email\":\"cust@example.test\",\"password\":\"" PASSWORD
           "\",\"name\":\"Cara B\"}",
           NULL, xtb, NULL);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  r = call(
      "POST", "/v1/auth/register",
      "{\"email\":\"x@example.test\",\"password\":\"short\",\"name\":\"X\"}",
      NULL, xt, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "password"));
  harness_http_free(r);
  r = call("POST", "/v1/auth/register",
           "{\"email\":\"y@example.test\",\"password\":\"" PASSWORD
           "\",\"name\":\"Y\",\"role\":\"owner\"}",
           NULL, xt, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "role"));
  harness_http_free(r);

  /* Login by header and by subdomain. */
  r = call("POST", "/v1/auth/login",
           "{\"email\":\"CUST@example.test\",\"password\":\"" PASSWORD "\"}",
           NULL, host, NULL);
  CK_HTTP_STATUS(r, 200);
  static const char *const lkeys[] = {"access_token", "refresh_token",
                                      "token_type",   "expires_in",
                                      "user",         NULL};
  CK_JSON_KEYS(r->json, lkeys);
  CK_JSON_KEYS(harness_json_get(r->json, "user"), kUserKeys);
  ck_assert_str_eq(harness_json_str(r->json, "token_type"), "Bearer");
  harness_http_free(r);
  /* Wrong password and unknown e-mail: the same 401. */
  resp *w1 =
      call("POST", "/v1/auth/login",
           "{\"email\":\"cust@example.test\",\"password\":\"wrong password\"}",
           NULL, xtb, NULL);
  resp *w2 = call(
      "POST", "/v1/auth/login",
      "{\"email\":\"nobody@example.test\",\"password\":\"wrong password\"}",
      NULL, xtb, NULL);
  CK_ERROR(w1, 401, "UNAUTHENTICATED");
  CK_ERROR(w2, 401, "UNAUTHENTICATED");
  ck_assert_str_eq(harness_json_str(w1->json, "error.message"),
                   harness_json_str(w2->json, "error.message"));
  ck_assert_uint_eq(
      json_array_size(harness_json_get(w1->json, "error.details")),
      json_array_size(harness_json_get(w2->json, "error.details")));
  harness_http_free(w1);
  harness_http_free(w2);
  /* No tenant named / unknown tenant. */
  r = call("POST", "/v1/auth/login",
           "{\"email\":\"cust@example.test\",\"password\":\"" PASSWORD "\"}",
           NULL, "Host: localhost", NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);
  r = call("POST", "/v1/auth/login",
           "{\"email\":\"cust@example.test\",\"password\":\"" PASSWORD "\"}",
           NULL, "X-Tenant: no-such-tenant", NULL);
  CK_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
  /* tenant_id in the body is not the client's to set. */
  char body[256];
  snprintf(body, sizeof body,
           "{\"email\":\"cust@example.test\",\"password\":\"" PASSWORD
           "\",\"tenant_id\":\"%s\"}",
           g_b.id);
  r = call("POST", "/v1/auth/login", body, NULL, xt, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "tenant_id"));
  harness_http_free(r);
}
END_TEST

START_TEST(refresh_rotates_and_reuse_is_refused) {
  char tok[PASETO_TOKEN_MAX + 1], ref[256];
  login(&g_a, g_a.owner_email, PASSWORD, tok, sizeof tok, ref, sizeof ref);
  char body[400];
  snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", ref);
  /* A stale Authorization header does not get in the way of a refresh. */
  resp *r = call("POST", "/v1/auth/refresh", body, "stale.token", NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_ne(harness_json_str(r->json, "refresh_token"), ref);
  ck_assert_str_eq(harness_json_str(r->json, "token_type"), "Bearer");
  ck_assert_ptr_nonnull(harness_json_get(r->json, "access_token"));
  ck_assert_ptr_null(harness_json_get(r->json, "user.tenant_id"));
  char newer[256];
  snprintf(newer, sizeof newer, "%s",
           harness_json_str(r->json, "refresh_token"));
  harness_http_free(r);
  r = call("POST", "/v1/auth/refresh", body, NULL, NULL, NULL);
  CK_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* Reuse revoked the whole family, the newest token too. */
  snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", newer);
  r = call("POST", "/v1/auth/refresh", body, NULL, NULL, NULL);
  CK_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  r = call("POST", "/v1/auth/refresh", "{}", NULL, NULL, NULL);
  ck_assert(r->status == 400 || r->status == 401);
  harness_http_free(r);
}
END_TEST

START_TEST(me_keys_and_logout) {
  char tok[PASETO_TOKEN_MAX + 1], ref[256];
  login(&g_a, g_a.owner_email, PASSWORD, tok, sizeof tok, ref, sizeof ref);
  resp *r = call("GET", "/v1/auth/me", NULL, tok, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  static const char *const keys[] = {"user", "tenant", NULL};
  CK_JSON_KEYS(r->json, keys);
  CK_JSON_KEYS(harness_json_get(r->json, "user"), kUserKeys);
  CK_JSON_KEYS(harness_json_get(r->json, "tenant"), kTenantKeys);
  ck_assert_str_eq(harness_json_str(r->json, "tenant.id"), g_a.id);
  harness_http_free(r);

  r = call("GET", "/v1/auth/keys", NULL, NULL, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  json_t *ks = harness_json_get(r->json, "keys");
  ck_assert_uint_ge(json_array_size(ks), 1);
  static const char *const kkeys[] = {"kid", "alg", "public_key", "status",
                                      NULL};
  CK_JSON_KEYS(json_array_get(ks, 0), kkeys);
  ck_assert_str_eq(
      json_string_value(json_object_get(json_array_get(ks, 0), "alg")),
      "v4.public");
  harness_http_free(r);

  char body[400];
  snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", ref);
  r = call("POST", "/v1/auth/logout", body, tok, NULL, NULL);
  CK_HTTP_STATUS(r, 204);
  ck_assert_uint_eq(r->len, 0);
  harness_http_free(r);
  /* Refused from then on (bus event, or Redis within a second). */
  int64_t until = time_mono_ms() + 3000;
  long st = 0;
  while (time_mono_ms() < until) {
    r = call("GET", "/v1/auth/me", NULL, tok, NULL, NULL);
    st = r->status;
    if (st == 401) {
      CK_ERROR(r, 401, "UNAUTHENTICATED");
      ck_assert_str_eq(harness_http_header(r, "WWW-Authenticate"),
                       "Bearer error=\"invalid_token\"");
    }
    harness_http_free(r);
    if (st == 401) break;
    time_sleep_ms(100);
  }
  ck_assert_int_eq(st, 401);
  r = call("POST", "/v1/auth/refresh", body, NULL, NULL, NULL);
  CK_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* Logout without a body is fine too. */
  login(&g_a, g_a.owner_email, PASSWORD, tok, sizeof tok, NULL, 0);
  r = call("POST", "/v1/auth/logout", NULL, tok, NULL, NULL);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
}
END_TEST

START_TEST(members_are_managed_by_owners_and_admins) {
  const char *owner = g_a.owner_token;
  resp *r = call(
      "POST", "/v1/tenant/members",
      "{\"email\":\"Staff@A.test\",\"name\":\"Sam\",\"password\":\"" PASSWORD
      "\",\"role\":\"staff\"}",
      owner, NULL, NULL);
  CK_HTTP_STATUS(r, 201);
  static const char *const keys[] = {"user", NULL};
  CK_JSON_KEYS(r->json, keys);
  CK_JSON_KEYS(harness_json_get(r->json, "user"), kUserKeys);
  ck_assert_str_eq(harness_json_str(r->json, "user.role"), "staff");
  char staff_id[UUID_STR_LEN + 1];
  snprintf(staff_id, sizeof staff_id, "%s",
           harness_json_str(r->json, "user.id"));
  harness_http_free(r);
  r = call("POST", "/v1/tenant/members",
           "{\"email\":\"o2@a.test\",\"name\":\"O\",\"password\":\"" PASSWORD
           "\",\"role\":\"owner\"}",
           owner, NULL, NULL);
  ck_assert_int_eq(r->status / 100, 4); /* only admin|staff */
  harness_http_free(r);
  r = call("POST", "/v1/tenant/members",
           "{\"email\":\"x@a.test\",\"name\":\"X\",\"password\":\"" PASSWORD
           "\",\"role\":\"staff\",\"issue_tokens\":true}",
           owner, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "issue_tokens"));
  harness_http_free(r);

  r = call("GET", "/v1/tenant/members", NULL, owner, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  json_t *m = harness_json_get(r->json, "members");
  ck_assert_uint_ge(json_array_size(m), 2);
  size_t i;
  json_t *u;
  json_array_foreach(m, i, u) CK_JSON_KEYS(u, kUserKeys);
  ck_assert_ptr_null(harness_json_get(r->json, "next_cursor"));
  harness_http_free(r);
  r = call("GET", "/v1/tenant/members?limit=1", NULL, owner, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(harness_json_get(r->json, "members")), 1);
  ck_assert(json_is_string(harness_json_get(r->json, "next_cursor")));
  harness_http_free(r);
  r = call("GET", "/v1/tenant/members?limit=abc", NULL, owner, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "limit"));
  harness_http_free(r);

  char path[128];
  snprintf(path, sizeof path, "/v1/tenant/members/%s", staff_id);
  r = call("PATCH", path, "{\"role\":\"admin\"}", owner, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  CK_JSON_KEYS(r->json, kUserKeys);
  ck_assert_str_eq(harness_json_str(r->json, "role"), "admin");
  harness_http_free(r);

  /* A staff member (here: a customer, registered here) cannot manage
   * members. */
  char tag[48], cust[64], cbody[256], cxt[96];
  harness_unique(tag, sizeof tag, "cust");
  snprintf(cust, sizeof cust, "%s@a.test", tag);
  snprintf(cbody, sizeof cbody,
           "{\"email\":\"%s\",\"password\":\"" PASSWORD "\",\"name\":\"C\"}",
           cust);
  snprintf(cxt, sizeof cxt, "X-Tenant: %s", g_a.slug);
  r = call("POST", "/v1/auth/register", cbody, NULL, cxt, NULL);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  char ctok[PASETO_TOKEN_MAX + 1];
  login(&g_a, cust, PASSWORD, ctok, sizeof ctok, NULL, 0);
  r = call("GET", "/v1/tenant/members", NULL, ctok, NULL, NULL);
  CK_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  r = call("PATCH", "/v1/tenant", "{\"name\":\"x\"}", ctok, NULL, NULL);
  CK_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);

  /* Nobody demotes the last owner. */
  r = call("GET", "/v1/auth/me", NULL, owner, NULL, NULL);
  char owner_path[128];
  snprintf(owner_path, sizeof owner_path, "/v1/tenant/members/%s",
           harness_json_str(r->json, "user.id"));
  harness_http_free(r);
  r = call("PATCH", owner_path, "{\"role\":\"staff\"}", owner, NULL, NULL);
  CK_ERROR(r, 400, "FAILED_PRECONDITION");
  harness_http_free(r);
  r = call("DELETE", owner_path, NULL, owner, NULL, NULL);
  CK_ERROR(r, 400, "FAILED_PRECONDITION");
  harness_http_free(r);

  /* Removing a member: 204, and that user's tokens stop working. */
  char stok[PASETO_TOKEN_MAX + 1];
  login(&g_a, "staff@a.test", PASSWORD, stok, sizeof stok, NULL, 0);
  r = call("DELETE", path, NULL, owner, NULL, NULL);
  CK_HTTP_STATUS(r, 204);
  ck_assert_uint_eq(r->len, 0);
  harness_http_free(r);
  int64_t until = time_mono_ms() + 3000;
  long st = 0;
  while (time_mono_ms() < until && st != 401) {
    r = call("GET", "/v1/auth/me", NULL, stok, NULL, NULL);
    st = r->status;
    harness_http_free(r);
    if (st != 401) time_sleep_ms(100);
  }
  ck_assert_int_eq(st, 401);
  r = call("DELETE", path, NULL, owner, NULL, NULL);
  CK_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
}
END_TEST

START_TEST(cross_tenant_attempts_are_refused) {
  char xt[96], host[128];
  snprintf(xt, sizeof xt, "X-Tenant: %s", g_b.slug);
  snprintf(host, sizeof host, "Host: %s.example.test", g_b.slug);
  resp *r = call("GET", "/v1/tenant", NULL, g_a.owner_token, xt, NULL);
  CK_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  r = call("GET", "/v1/tenant/members", NULL, g_a.owner_token, host, NULL);
  CK_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  /* A's owner cannot touch B's member by id. */
  r = call("GET", "/v1/auth/me", NULL, g_b.owner_token, NULL, NULL);
  char path[128];
  snprintf(path, sizeof path, "/v1/tenant/members/%s",
           harness_json_str(r->json, "user.id"));
  harness_http_free(r);
  r = call("PATCH", path, "{\"role\":\"staff\"}", g_a.owner_token, NULL, NULL);
  ck_assert(r->status == 404 || r->status == 403);
  harness_http_free(r);
  r = call("DELETE", path, NULL, g_a.owner_token, NULL, NULL);
  ck_assert(r->status == 404 || r->status == 403);
  harness_http_free(r);
  /* B's owner still is one. */
  r = call("GET", "/v1/tenant", NULL, g_b.owner_token, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "id"), g_b.id);
  harness_http_free(r);
}
END_TEST

static void operator_call(const char *method, const char *tenant_id) {
  rpc_client *c = harness_rpc_client_as(g_sys.tenants.rpc_url, "operator");
  Tenants__V1__SuspendRequest req = TENANTS__V1__SUSPEND_REQUEST__INIT;
  req.tenant_id = (char *)tenant_id;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.token = OPERATOR_SECRET;
  o.deadline_ms = 10000;
  rpc_result *res = NULL;
  ck_assert_int_eq(rpc_client_call_message(c, method, &req.base, &o, &res),
                   ERR_OK);
  ck_assert_msg(res->code == RPC_OK, "%s: %s", method, res->message);
  rpc_result_free(res);
  rpc_client_free(c);
}

START_TEST(suspended_tenant_is_403_for_everyone) {
  tenant t;
  create_tenant(&t, "susp");
  operator_call("tenants.v1.Tenants/Suspend", t.id);
  char xt[96];
  snprintf(xt, sizeof xt, "X-Tenant: %s", t.slug);
  long st = 0;
  int64_t until = time_mono_ms() + 3000;
  while (time_mono_ms() < until && st != 403) {
    resp *r = call("GET", "/v1/tenant", NULL, t.owner_token, NULL, NULL);
    st = r->status;
    if (st == 403) CK_ERROR(r, 403, "PERMISSION_DENIED");
    harness_http_free(r);
    if (st != 403) time_sleep_ms(100);
  }
  ck_assert_int_eq(st, 403);
  st = 0;
  until = time_mono_ms() + 3000;
  while (time_mono_ms() < until && st != 403) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", t.owner_email);
    resp *r = call("POST", "/v1/auth/login", body, NULL, xt, NULL);
    st = r->status;
    harness_http_free(r);
    if (st != 403) time_sleep_ms(100);
  }
  ck_assert_int_eq(st, 403);
  operator_call("tenants.v1.Tenants/Resume", t.id);
  st = 0;
  until = time_mono_ms() + 3000;
  while (time_mono_ms() < until && st != 200) {
    resp *r = call("GET", "/v1/tenant", NULL, t.owner_token, NULL, NULL);
    st = r->status;
    harness_http_free(r);
    if (st != 200) time_sleep_ms(100);
  }
  ck_assert_int_eq(st, 200);
}
END_TEST

START_TEST(login_attempts_are_rate_limited_per_email) {
  g_port = g_sys.gateway[1].http_port; /* GATEWAY_LOGIN_BURST=3 */
  char xt[96];
  snprintf(xt, sizeof xt, "X-Tenant: %s", g_b.slug);
  const char *body =
      "{\"email\":\"victim@b.test\",\"password\":\"guess guess\"}";
  for (int i = 0; i < LOGIN_BURST; i++) {
    resp *r = call("POST", "/v1/auth/login", body, NULL, xt, NULL);
    CK_ERROR(r, 401, "UNAUTHENTICATED");
    harness_http_free(r);
  }
  resp *r = call("POST", "/v1/auth/login", body, NULL, xt, NULL);
  CK_ERROR(r, 429, "RESOURCE_EXHAUSTED");
  const char *ra = harness_http_header(r, "Retry-After");
  ck_assert_ptr_nonnull(ra);
  ck_assert_int_ge(strtol(ra, NULL, 10), 1);
  harness_http_free(r);
  /* Another e-mail, same tenant and caller: its own bucket. */
  r = call("POST", "/v1/auth/login",
           "{\"email\":\"other@b.test\",\"password\":\"guess guess\"}", NULL,
           xt, NULL);
  CK_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* Case does not make a new bucket. */
  r = call("POST", "/v1/auth/login",
           "{\"email\":\"VICTIM@b.test\",\"password\":\"guess guess\"}", NULL,
           xt, NULL);
  CK_ERROR(r, 429, "RESOURCE_EXHAUSTED");
  harness_http_free(r);
  g_port = g_sys.gateway[0].http_port;
}
END_TEST

/* Issue 9: auth's per-account slowdown reaches the client as a clear 429
 * with Retry-After. The main gateway's login bucket (1000) never limits
 * here, so the 429 is auth's lock, keyed on the account alone: the e-mail
 * in upper case and with spaces or a tab around it counts against the
 * same account. */
START_TEST(an_accounts_lock_is_a_429_with_retry_after) {
  char xt[96], local[64], email[96], upper[96], reg[256];
  snprintf(xt, sizeof xt, "X-Tenant: %s", g_a.slug);
  harness_unique(local, sizeof local, "locked");
  snprintf(email, sizeof email, "%s@a.test", local);
  size_t i = 0;
  for (; email[i] != '\0'; i++)
    upper[i] =
        (char)(email[i] >= 'a' && email[i] <= 'z' ? email[i] - 32 : email[i]);
  upper[i] = '\0';
  snprintf(reg, sizeof reg,
           "{\"email\":\"%s\",\"password\":\"" PASSWORD "\",\"name\":\"L\"}",
           email);
  resp *r = call("POST", "/v1/auth/register", reg, NULL, xt, NULL);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  const char *spell[] = {"%s", " %s", "%s  ", "\\t%s "};
  int failures = 0;
  bool locked = false;
  /* Five failures are free (AUTH_LOGIN_FAILURES_FREE); the locks that
   * follow double, so a 429 comes well within 20 attempts. */
  for (int n = 0; n < 20 && !locked; n++) {
    char e[128], body[256];
    snprintf(e, sizeof e, spell[n % 4], n % 2 == 0 ? email : upper);
    snprintf(body, sizeof body,
             "{\"email\":\"%s\",\"password\":\"wrong guess %d\"}", e, n);
    r = call("POST", "/v1/auth/login", body, NULL, xt, NULL);
    if (r->status == 401) {
      CK_ERROR(r, 401, "UNAUTHENTICATED");
      failures++;
    } else {
      CK_ERROR(r, 429, "RESOURCE_EXHAUSTED");
      ck_assert_str_eq(harness_json_str(r->json, "error.message"),
                       "too many failed logins; try later");
      const char *ra = harness_http_header(r, "Retry-After");
      ck_assert_ptr_nonnull(ra);
      ck_assert_int_ge(strtol(ra, NULL, 10), 1);
      locked = true;
    }
    harness_http_free(r);
  }
  ck_assert_msg(locked, "%d failed logins and no lock", failures);
  ck_assert_int_ge(failures, 5);
}
END_TEST

START_TEST(callers_are_rate_limited_per_tenant_and_caller) {
  g_port = g_sys.gateway[1].http_port; /* GATEWAY_RATE_BURST=5 */
  int limited = 0, ok = 0;
  for (int i = 0; i < 8; i++) {
    resp *r = call("GET", "/v1/auth/keys", NULL, NULL, NULL, NULL);
    if (r->status == 429) {
      CK_ERROR(r, 429, "RESOURCE_EXHAUSTED");
      ck_assert_ptr_nonnull(harness_http_header(r, "Retry-After"));
      limited++;
    } else {
      CK_HTTP_STATUS(r, 200);
      ok++;
    }
    harness_http_free(r);
  }
  ck_assert_int_eq(ok, 5);
  ck_assert_int_eq(limited, 3);
  /* A user's bucket is separate from the anonymous address bucket. */
  resp *r = call("GET", "/v1/tenant", NULL, g_a.owner_token, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  g_port = g_sys.gateway[0].http_port;
}
END_TEST

START_TEST(framing_and_content_errors_come_before_any_rpc) {
  resp *r = call("GET", "/v1/nothing-here", NULL, NULL, NULL, NULL);
  CK_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
  r = call("DELETE", "/v1/tenant", NULL, g_a.owner_token, NULL, NULL);
  CK_HTTP_STATUS(r, 405);
  ck_assert_str_eq(harness_http_header(r, "Allow"), "GET, PATCH");
  harness_http_free(r);
  r = call("POST", "/v1/auth/login", "email=a", NULL,
           "Content-Type: application/x-www-form-urlencoded", NULL);
  CK_ERROR(r, 415, "INVALID_ARGUMENT");
  harness_http_free(r);
  r = call("POST", "/v1/tenants", "{\"name\":", NULL, NULL, NULL);
  CK_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, ""));
  harness_http_free(r);
  size_t big = 2 * 1024 * 1024;
  char *b = malloc(big + 1);
  memset(b, ' ', big);
  b[0] = '{';
  b[big - 1] = '}';
  b[big] = '\0';
  r = call("POST", "/v1/tenants", b, NULL, NULL, NULL);
  CK_ERROR(r, 413, "INVALID_ARGUMENT");
  harness_http_free(r);
  free(b);
  /* Transfer-Encoding the server cannot frame: 411. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)g_port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  const char req[] = "POST /v1/tenants HTTP/1.1\r\nHost: localhost\r\n"
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: gzip, chunked2\r\n\r\n{}";
  ck_assert_int_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL),
                   (ssize_t)(sizeof req - 1));
  char out[4096] = {0};
  size_t got = 0;
  int64_t until = time_mono_ms() + 5000;
  while (got < sizeof out - 1 && time_mono_ms() < until) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, out + got, sizeof out - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
    if (strstr(out, "}}")) break;
  }
  close(fd);
  ck_assert_msg(strncmp(out, "HTTP/1.1 411", 12) == 0, "%s", out);
}
END_TEST

START_TEST(request_ids_cors_and_security_headers) {
  resp *r = call("GET", "/v1/auth/keys", NULL, NULL, "X-Request-Id: trace-me-1",
                 "Origin: https://app.example.test");
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_http_header(r, "X-Request-Id"), "trace-me-1");
  ck_assert_str_eq(harness_http_header(r, "Access-Control-Allow-Origin"),
                   "https://app.example.test");
  ck_assert_str_eq(harness_http_header(r, "X-Content-Type-Options"), "nosniff");
  ck_assert_str_eq(harness_http_header(r, "Cache-Control"), "no-store");
  harness_http_free(r);
  r = call("OPTIONS", "/v1/tenant/members", NULL, NULL,
           "Origin: https://app.example.test",
           "Access-Control-Request-Method: POST");
  CK_HTTP_STATUS(r, 204);
  ck_assert_str_eq(harness_http_header(r, "Access-Control-Allow-Methods"),
                   "POST, GET");
  ck_assert_ptr_nonnull(strstr(
      harness_http_header(r, "Access-Control-Allow-Headers"), "Authorization"));
  harness_http_free(r);
  r = call("GET", "/v1/auth/keys", NULL, NULL, "Origin: https://evil.test",
           NULL);
  ck_assert_ptr_null(harness_http_header(r, "Access-Control-Allow-Origin"));
  harness_http_free(r);
  /* The access log names the request but never holds tokens. */
  char tok[PASETO_TOKEN_MAX + 1];
  login(&g_a, g_a.owner_email, PASSWORD, tok, sizeof tok, NULL, 0);
  r = call("GET", "/v1/auth/me", NULL, tok, "X-Request-Id: log-check-7", NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  time_sleep_ms(200);
  FILE *f = fopen(harness_log_path(g_sys.gateway[0].proc), "r");
  ck_assert_ptr_nonnull(f);
  char line[8192];
  bool seen = false;
  while (fgets(line, sizeof line, f)) {
    ck_assert_msg(strstr(line, tok) == NULL, "token in log: %s", line);
    ck_assert_msg(strstr(line, PASSWORD) == NULL, "password in log: %s", line);
    if (strstr(line, "\"request_id\":\"log-check-7\"") &&
        strstr(line, "\"path\":\"GET /v1/auth/me\"") &&
        strstr(line, "\"status\":\"200\"") && strstr(line, g_a.id))
      seen = true;
  }
  fclose(f);
  ck_assert(seen);
}
END_TEST

/* GET (or HEAD) path on the gateway's admin port; no assertion on the
 * transfer (a failed one answers status 0, body ""). */
static resp *admin(const char *method, const char *path) {
  return harness_http_request(method, g_sys.gateway[0].admin_port, path, NULL,
                              NULL, NULL);
}

/* ADR 0020: two replicas sharing one bucket in Redis, each taking tokens
 * in batches of 16 (a tenth of 160, GATEWAY_RATE_LIMIT_BATCH 16), grant
 * together no more than the bucket held (plus its refill, 1 a second)
 * and at most one batch per replica less. */
START_TEST(replicas_share_a_bucket_taken_in_batches) {
  harness_service a = {0}, b = {0};
  ck_assert(harness_system_start_gateway(
      &g_sys, &a,
      &(harness_gateway_opts){
          .name = "gateway-ra", .redis_db = 2, .env = kReplica}));
  ck_assert(harness_system_start_gateway(
      &g_sys, &b,
      &(harness_gateway_opts){
          .name = "gateway-rb", .redis_db = 2, .env = kReplica}));
  int64_t t0 = time_mono_ms();
  int ok = 0, limited = 0;
  for (int i = 0; i < 240; i++) {
    g_port = (i % 3 == 0) ? b.http_port : a.http_port; /* uneven on purpose */
    resp *r = call("GET", "/v1/auth/keys", NULL, NULL, NULL, NULL);
    if (r->status == 429) {
      ck_assert_ptr_nonnull(harness_http_header(r, "Retry-After"));
      limited++;
    } else {
      CK_HTTP_STATUS(r, 200);
      ok++;
    }
    harness_http_free(r);
  }
  int64_t secs = (time_mono_ms() - t0) / 1000 + 2;
  g_port = g_sys.gateway[0].http_port;
  ck_assert_int_eq(ok + limited, 240);
  ck_assert_msg(ok <= 160 + secs, "%d granted in %llds", ok, (long long)secs);
  ck_assert_msg(ok >= 160 - 2 * 15, "only %d granted", ok);
  ck_assert_int_gt(limited, 0);
  harness_service_stop(&a, 10000);
  harness_service_stop(&b, 10000);
}
END_TEST

START_TEST(redis_down_lets_requests_through_and_counts_it) {
  harness_redis_stop(&g_sys.redis);
  /* More calls than one batch of leased tokens (ADR 0020), so that some
   * must ask Redis: every one is let through. */
  for (int i = 0; i < 40; i++) {
    resp *r = call("GET", "/v1/auth/keys", NULL, NULL, NULL, NULL);
    CK_HTTP_STATUS(r, 200);
    harness_http_free(r);
  }
  resp *metrics = admin("GET", "/metrics");
  const char *m = metrics->body;
  ck_assert_msg(strstr(m, "gateway_ratelimit_decisions_total{bucket=\"caller\","
                          "decision=\"failed_open\"}") != NULL,
                "no failed_open decision in %zu bytes of metrics", strlen(m));
  ck_assert_ptr_nonnull(
      strstr(m, "gateway_http_request_duration_seconds_bucket"));
  ck_assert_ptr_nonnull(strstr(m, "gateway_upstream_duration_seconds"));
  harness_http_free(metrics);
  ck_assert_int_eq(harness_redis_restart(&g_sys.redis), 0);
}
END_TEST

/* The status of HEAD /readyz on the gateway's admin port (0: no answer). */
static long gateway_readyz(void) {
  resp *r = admin("HEAD", "/readyz");
  long status = r->status;
  harness_http_free(r);
  return status;
}

/* docs/adr/0006: a domain backend down fails its own routes (503), not
 * the gateway's readiness and not the other routes. */
START_TEST(a_domain_backend_down_fails_only_its_routes) {
  ck_assert_int_eq(gateway_readyz(), 200);
  harness_signal(g_sys.orders.proc, SIGKILL);
  ck_assert_int_ne(harness_wait_exit(g_sys.orders.proc, 5000), -1);
  time_sleep_ms(300);
  resp *r = call("GET", "/v1/products", NULL, g_a.owner_token, NULL, NULL);
  CK_ERROR(r, 503, "UNAVAILABLE");
  ck_assert_msg(r->secs < 4.0, "took %.2fs", r->secs);
  harness_http_free(r);
  r = call("GET", "/v1/tenant", NULL, g_a.owner_token, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  ck_assert_int_eq(gateway_readyz(), 200);
}
END_TEST

START_TEST(killed_backend_is_503_not_a_hang) {
  harness_signal(g_sys.tenants.proc, SIGKILL);
  ck_assert_int_ne(harness_wait_exit(g_sys.tenants.proc, 5000), -1);
  /* Give the gateway's connection a moment to notice. */
  time_sleep_ms(300);
  resp *r = call("GET", "/v1/tenant", NULL, g_a.owner_token, NULL, NULL);
  CK_ERROR(r, 503, "UNAVAILABLE");
  ck_assert_msg(r->secs < 4.0, "took %.2fs", r->secs);
  ck_assert_ptr_null(strstr(r->body, "tcp://"));
  harness_http_free(r);
  resp *ready = admin("GET", "/readyz");
  ck_assert_ptr_nonnull(strstr(ready->body, "tenants"));
  harness_http_free(ready);
  /* Routes to the live backend still work. */
  r = call("GET", "/v1/auth/keys", NULL, NULL, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
}
END_TEST

START_TEST(sigterm_drains_and_exits_zero) {
  harness_signal(g_sys.gateway[1].proc, SIGTERM);
  int st = harness_wait_exit(g_sys.gateway[1].proc, 15000);
  ck_assert_int_ne(st, -1);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

/* Each case its own tcase (CK_RUN_CASE=<case name>), each_case first. */
#define ADD_CASE(s, t) HARNESS_ADD_CASE((s), t, 120, each_case)

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!harness_system_start(&g_sys, &kSystem)) return 1;
  g_port = g_sys.gateway[0].http_port;

  Suite *s = suite_create("gateway_itest");
  ADD_CASE(s, two_tenants_are_created_through_the_api);
  ADD_CASE(s, create_tenant_answers_201_with_owner_and_tokens);
  ADD_CASE(s, get_and_patch_the_callers_tenant);
  ADD_CASE(s, register_and_login_by_subdomain_and_header);
  ADD_CASE(s, refresh_rotates_and_reuse_is_refused);
  ADD_CASE(s, me_keys_and_logout);
  ADD_CASE(s, members_are_managed_by_owners_and_admins);
  ADD_CASE(s, cross_tenant_attempts_are_refused);
  ADD_CASE(s, suspended_tenant_is_403_for_everyone);
  ADD_CASE(s, login_attempts_are_rate_limited_per_email);
  ADD_CASE(s, an_accounts_lock_is_a_429_with_retry_after);
  ADD_CASE(s, callers_are_rate_limited_per_tenant_and_caller);
  ADD_CASE(s, framing_and_content_errors_come_before_any_rpc);
  ADD_CASE(s, request_ids_cors_and_security_headers);
  ADD_CASE(s, replicas_share_a_bucket_taken_in_batches);
  ADD_CASE(s, redis_down_lets_requests_through_and_counts_it);
  /* Last: these take a process down for good (nothing after needs it). */
  ADD_CASE(s, a_domain_backend_down_fails_only_its_routes);
  ADD_CASE(s, killed_backend_is_503_not_a_hang);
  ADD_CASE(s, sigterm_drains_and_exits_zero);
  /* The cases share the system started above. */
  int failed = harness_run_shared(s);
  int rc = harness_system_end(&g_sys, failed);
  curl_global_cleanup();
  return rc;
}
