/*
 * tenants_itest.c - the tenants service with the auth service, both as
 * separate processes over real PostgreSQL and Redis, driven over libs/rpc.
 *
 * main() starts PostgreSQL, Redis, auth and one tenants process shared by
 * the tests (each test makes its own tenants with unique slugs, so they
 * do not interfere). The crash test starts tenants processes of its own
 * (the first with the TENANTS_TEST_CRASH_AFTER_OWNER hook, so it dies
 * between creating the owner and activating the tenant; the second
 * without it, reaping what the first left behind). The test process
 * also reads the database and Redis directly to check what is really
 * there, not only what the services answer.
 */
#include <check.h>
#include <pthread.h>
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
#include "libs/tenantdir/tenantdir.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/rpc.h"
#include "tests/harness/service.h"
#include "tests/harness/tokensrv.h"

#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PASSWORD "correct horse battery"
#define T(m) "tenants.v1.Tenants/" m
#define A(m) "auth.v1.Auth/" m

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants;
static harness_tokensrv *g_tok; /* the tenants' web sites (verification) */
static char g_tok_env[96];      /* TENANTS_DOMAIN_VERIFY_CONNECT_TO=... */

/* Every service of this test: one PostgreSQL, one Redis. */
static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 8, .log_level = "debug"};

/* --------------------------------------------------------- processes --- */

/* A tenants process; extra settings (NULL-terminated) are appended.
 * Returns false if it never got ready (or died: crash tests check that
 * themselves). */
static bool start_tenants(harness_service *s, const char *name,
                          const char *extra1, const char *extra2,
                          const char *extra3) {
  char auth_addr[96];
  snprintf(auth_addr, sizeof auth_addr, "AUTH_ADDR=%s", g_auth.rpc_url);
  char *extra[] = {auth_addr,
                   "TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                   "TENANTS_BASE_DOMAINS=localhost,example.test",
                   g_tok_env,
                   (char *)extra1,
                   (char *)extra2,
                   (char *)extra3,
                   NULL};
  return harness_service_start(s, name, "services/tenants/tenants_testhooks",
                               &kSvc, extra);
}

/* ----------------------------------------------------------- calls --- */

typedef struct ctx {
  rpc_client *tenants, *auth;
  rpc_client *operator; /* tenants as the operator identity (Suspend) */
} ctx;

static void ctx_open(ctx *x) {
  x->tenants = harness_rpc_client(g_tenants.rpc_url);
  x->operator= harness_rpc_client_as(g_tenants.rpc_url, "operator");
  x->auth = harness_rpc_client(g_auth.rpc_url);
}

static void ctx_close(ctx *x) {
  rpc_client_free(x->tenants);
  rpc_client_free(x->operator);
  rpc_client_free(x->auth);
}

static rpc_result *call(rpc_client *c, const char *method,
                        const ProtobufCMessage *m, const char *token,
                        const char *tenant_id) {
  return harness_rpc_call(c, method, m, token, tenant_id, NULL);
}

typedef struct created {
  char id[UUID_STR_LEN + 1];
  char slug[40];
  char token[PASETO_TOKEN_MAX + 1];
  char user_id[UUID_STR_LEN + 1];
} created;

static rpc_result *create_raw(rpc_client *c, const char *slug,
                              const char *currency, const char *email,
                              const char *password) {
  Tenants__V1__Owner owner = TENANTS__V1__OWNER__INIT;
  owner.email = (char *)email;
  owner.password = (char *)password;
  owner.name = "Owner Name";
  Tenants__V1__CreateTenantRequest req =
      TENANTS__V1__CREATE_TENANT_REQUEST__INIT;
  req.name = "Pizzeria Test";
  req.slug = (char *)slug;
  if (currency != NULL) {
    req.currency_present_case =
        TENANTS__V1__CREATE_TENANT_REQUEST__CURRENCY_PRESENT_CURRENCY;
    req.currency = (char *)currency;
  }
  req.owner = &owner;
  return call(c, T("CreateTenant"), &req.base, NULL, NULL);
}

/* Creates a tenant that must succeed. */
static void create_ok(ctx *x, const char *prefix, created *out) {
  memset(out, 0, sizeof *out);
  harness_unique(out->slug, sizeof out->slug, prefix);
  char email[96];
  snprintf(email, sizeof email, "Owner@%s.Example", out->slug);
  rpc_result *r = create_raw(x->tenants, out->slug, NULL, email, PASSWORD);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__CreateTenantResponse *resp =
      tenants__v1__create_tenant_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_ptr_nonnull(resp);
  ck_assert_ptr_nonnull(resp->tenant);
  ck_assert_ptr_nonnull(resp->user);
  snprintf(out->id, sizeof out->id, "%s", resp->tenant->id);
  snprintf(out->token, sizeof out->token, "%s", resp->access_token);
  snprintf(out->user_id, sizeof out->user_id, "%s", resp->user->id);
  tenants__v1__create_tenant_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
}

static int resolve_code(rpc_client *c, bool host, const char *key,
                        char *tid_out, char *status_out) {
  Tenants__V1__ResolveRequest req = TENANTS__V1__RESOLVE_REQUEST__INIT;
  if (host) {
    req.key_case = TENANTS__V1__RESOLVE_REQUEST__KEY_HOST;
    req.host = (char *)key;
  } else {
    req.key_case = TENANTS__V1__RESOLVE_REQUEST__KEY_SLUG;
    req.slug = (char *)key;
  }
  rpc_result *r = call(c, T("Resolve"), &req.base, NULL, NULL);
  int code = r->code;
  if (code == RPC_OK) {
    Tenants__V1__ResolveResponse *resp =
        tenants__v1__resolve_response__unpack(NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(resp);
    if (tid_out) snprintf(tid_out, UUID_STR_LEN + 1, "%s", resp->tenant_id);
    if (status_out) snprintf(status_out, 16, "%s", resp->status);
    tenants__v1__resolve_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return code;
}

static rpc_result *get_tenant(ctx *x, const char *token, const char *tid_env,
                              const char *id) {
  Tenants__V1__GetTenantRequest req = TENANTS__V1__GET_TENANT_REQUEST__INIT;
  req.id = (char *)(id ? id : "");
  return call(x->tenants, T("GetTenant"), &req.base, token, tid_env);
}

static rpc_result *status_call(ctx *x, const char *method, const char *tid,
                               const char *secret) {
  if (strcmp(method, T("Suspend")) == 0) {
    Tenants__V1__SuspendRequest req = TENANTS__V1__SUSPEND_REQUEST__INIT;
    req.tenant_id = (char *)tid;
    req.reason = "itest";
    return call(x->operator, method, &req.base, secret, NULL);
  }
  Tenants__V1__ResumeRequest req = TENANTS__V1__RESUME_REQUEST__INIT;
  req.tenant_id = (char *)tid;
  return call(x->operator, method, &req.base, secret, NULL);
}

/* A customer of tenant tid: Register + Login at auth; the access token. */
static void customer_token(ctx *x, const char *tid, char *out, size_t cap) {
  char email[96];
  char u[UUID_STR_LEN + 1];
  uuid_v7_str(u);
  snprintf(email, sizeof email, "customer-%.8s@example.test", u + 28);
  Auth__V1__RegisterRequest reg = AUTH__V1__REGISTER_REQUEST__INIT;
  reg.email = email;
  reg.password = PASSWORD;
  reg.name = "A Customer";
  rpc_result *r = call(x->auth, A("Register"), &reg.base, NULL, tid);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  Auth__V1__LoginRequest login = AUTH__V1__LOGIN_REQUEST__INIT;
  login.email = email;
  login.password = PASSWORD;
  r = call(x->auth, A("Login"), &login.base, NULL, tid);
  CK_RPC_CODE(r, RPC_OK);
  Auth__V1__LoginResponse *lr =
      auth__v1__login_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(lr);
  snprintf(out, cap, "%s", lr->access_token);
  auth__v1__login_response__free_unpacked(lr, NULL);
  rpc_result_free(r);
}

/* ---------------------------------------------------- direct checks --- */

/* A number straight from the database (RLS does not apply). */
static int64_t sql_count(const char *sql, const char *arg) {
  return harness_pg_count(&g_pg, sql, arg);
}

static bool sql_text(const char *sql, const char *arg, char *out, size_t cap) {
  db_config cfg = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_OK);
  db_param ps[] = {db_text(arg)};
  db_result *r = NULL;
  ck_assert_int_eq(db_exec(c, sql, ps, 1, &r), ERR_OK);
  bool found = db_nrows(r) == 1;
  if (found) snprintf(out, cap, "%s", db_get(r, 0, 0));
  db_result_free(r);
  db_release(c);
  db_pool_free(p);
  return found;
}

/* GET of a Redis key; "" when absent. */
static void redis_get(const char *key, char *out, size_t cap) {
  cache_config cc = {.url = g_redis.url};
  cache *rc = NULL;
  ck_assert_int_eq(cache_new(&cc, &rc), ERR_OK);
  char *v = NULL;
  size_t n = 0;
  int err = cache_get(rc, key, &v, &n);
  ck_assert_msg(err == ERR_OK || err == ERR_NOTFOUND, "redis: %s",
                err_str(err));
  snprintf(out, cap, "%s", err == ERR_OK ? v : "");
  free(v);
  cache_free(rc);
}

/* ----------------------------------------------------------- create --- */

START_TEST(create_tenant_returns_owner_and_verifiable_tokens) {
  ctx x;
  ctx_open(&x);
  char slug[40];
  harness_unique(slug, sizeof slug, "pizza");
  char email[96];
  snprintf(email, sizeof email, "Owner@%s.Example", slug);
  rpc_result *r = create_raw(x.tenants, slug, "usd", email, PASSWORD);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__CreateTenantResponse *resp =
      tenants__v1__create_tenant_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_ptr_nonnull(resp);
  Tenants__V1__Tenant *t = resp->tenant;
  ck_assert(uuid_is_valid(t->id));
  ck_assert_str_eq(t->slug, slug);
  ck_assert_str_eq(t->name, "Pizzeria Test");
  ck_assert_str_eq(t->currency, "USD");
  ck_assert_str_eq(t->status, "active");
  int64_t ms = 0;
  ck_assert_int_eq(strlen(t->created_at), RFC3339_MS_LEN);
  ck_assert_int_eq(
      time_parse_rfc3339(t->created_at, strlen(t->created_at), &ms), ERR_OK);
  ck_assert_int_lt(llabs(ms - time_now_ms()), 600000);
  ck_assert_str_eq(resp->user->role, "owner");
  ck_assert_str_eq(resp->user->tenant_id, t->id);
  ck_assert(strstr(resp->user->email, "owner@") == resp->user->email);
  ck_assert_str_eq(resp->token_type, "Bearer");
  ck_assert_uint_gt(resp->expires_in, 0);
  ck_assert(strncmp(resp->access_token, "v4.public.", 10) == 0);
  ck_assert_int_gt(strlen(resp->refresh_token), 20);

  /* auth verifies the token: it names the new tenant and the owner role */
  Auth__V1__VerifyRequest vr = AUTH__V1__VERIFY_REQUEST__INIT;
  vr.token = resp->access_token;
  rpc_result *v = call(x.auth, A("Verify"), &vr.base, NULL, NULL);
  CK_RPC_CODE(v, RPC_OK);
  Auth__V1__VerifyResponse *claims =
      auth__v1__verify_response__unpack(NULL, v->payload_len, v->payload);
  ck_assert_ptr_nonnull(claims);
  ck_assert_str_eq(claims->claims->tid, t->id);
  ck_assert_str_eq(claims->claims->role, "owner");
  ck_assert_str_eq(claims->claims->sub, resp->user->id);
  auth__v1__verify_response__free_unpacked(claims, NULL);
  rpc_result_free(v);

  /* the refresh token works too */
  Auth__V1__RefreshRequest rr = AUTH__V1__REFRESH_REQUEST__INIT;
  rr.refresh_token = resp->refresh_token;
  v = call(x.auth, A("Refresh"), &rr.base, NULL, NULL);
  CK_RPC_CODE(v, RPC_OK);
  rpc_result_free(v);

  /* and tenants accepts the token for GetTenant */
  rpc_result *g = get_tenant(&x, resp->access_token, NULL, NULL);
  CK_RPC_CODE(g, RPC_OK);
  Tenants__V1__GetTenantResponse *gt = tenants__v1__get_tenant_response__unpack(
      NULL, g->payload_len, g->payload);
  ck_assert_str_eq(gt->tenant->id, t->id);
  ck_assert_str_eq(gt->tenant->created_at, t->created_at);
  tenants__v1__get_tenant_response__free_unpacked(gt, NULL);
  rpc_result_free(g);

  /* the status key is there for other services */
  char key[80], val[32];
  snprintf(key, sizeof key, "tenant:status:%s", t->id);
  redis_get(key, val, sizeof val);
  ck_assert_str_eq(val, "active");

  tenants__v1__create_tenant_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  ctx_close(&x);
}
END_TEST

START_TEST(default_currency_is_eur) {
  ctx x;
  ctx_open(&x);
  created c;
  create_ok(&x, "plain", &c);
  rpc_result *g = get_tenant(&x, c.token, c.id, c.id);
  CK_RPC_CODE(g, RPC_OK);
  Tenants__V1__GetTenantResponse *gt = tenants__v1__get_tenant_response__unpack(
      NULL, g->payload_len, g->payload);
  ck_assert_str_eq(gt->tenant->currency, "EUR");
  tenants__v1__get_tenant_response__free_unpacked(gt, NULL);
  rpc_result_free(g);
  ctx_close(&x);
}
END_TEST

START_TEST(duplicate_slug_is_already_exists) {
  ctx x;
  ctx_open(&x);
  created c;
  create_ok(&x, "dup", &c);
  rpc_result *r =
      create_raw(x.tenants, c.slug, NULL, "other@example.test", PASSWORD);
  CK_RPC_CODE(r, RPC_ALREADY_EXISTS);
  ck_assert(harness_rpc_has_violation(r, "slug"));
  rpc_result_free(r);
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM tenants.tenants WHERE slug = $1", c.slug),
      1);
  ctx_close(&x);
}
END_TEST

START_TEST(reserved_and_malformed_slugs_are_invalid_argument) {
  ctx x;
  ctx_open(&x);
  const char *bad[] = {"www",
                       "api",
                       "admin",
                       "app",
                       "support",
                       "ab",
                       "-abc",
                       "abc-",
                       "Abc",
                       "a_bc",
                       "a.bc",
                       "",
                       "abcdefghijabcdefghijabcdefghijabc"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rpc_result *r =
        create_raw(x.tenants, bad[i], NULL, "o@example.test", PASSWORD);
    ck_assert_msg(r->code == RPC_INVALID_ARGUMENT, "slug [%s]: %s", bad[i],
                  rpc_code_name(r->code));
    ck_assert_msg(harness_rpc_has_violation(r, "slug"),
                  "slug [%s]: no violation", bad[i]);
    rpc_result_free(r);
    if (bad[i][0] != '\0')
      ck_assert_int_eq(
          sql_count("SELECT count(*) FROM tenants.tenants WHERE slug = $1",
                    bad[i]),
          0);
  }
  /* every bad field is named at once */
  char slug[40];
  harness_unique(slug, sizeof slug, "multi");
  rpc_result *r =
      create_raw(x.tenants, "WWW", "EURO", "o@example.test", PASSWORD);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  ck_assert(harness_rpc_has_violation(r, "slug"));
  ck_assert(harness_rpc_has_violation(r, "currency"));
  rpc_result_free(r);
  r = create_raw(x.tenants, slug, "XAU", "o@example.test", PASSWORD);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  ck_assert(harness_rpc_has_violation(r, "currency"));
  ck_assert(!harness_rpc_has_violation(r, "slug"));
  rpc_result_free(r);
  /* no owner at all */
  Tenants__V1__CreateTenantRequest req =
      TENANTS__V1__CREATE_TENANT_REQUEST__INIT;
  req.name = "";
  req.slug = slug;
  r = call(x.tenants, T("CreateTenant"), &req.base, NULL, NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  ck_assert(harness_rpc_has_violation(r, "owner"));
  ck_assert(harness_rpc_has_violation(r, "name"));
  rpc_result_free(r);
  /* garbage payload */
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  rpc_result *g = NULL;
  ck_assert_int_eq(
      rpc_client_call(x.tenants, T("CreateTenant"), "\xff\xff\xff", 3, &o, &g),
      ERR_OK);
  CK_RPC_CODE(g, RPC_INVALID_ARGUMENT);
  rpc_result_free(g);
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM tenants.tenants WHERE slug = $1", slug),
      0);
  ctx_close(&x);
}
END_TEST

START_TEST(bad_owner_password_leaves_no_tenant) {
  ctx x;
  ctx_open(&x);
  char slug[40];
  harness_unique(slug, sizeof slug, "badpw");
  rpc_result *r = create_raw(x.tenants, slug, NULL, "o@example.test", "short");
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  ck_assert_msg(harness_rpc_has_violation(r, "owner.password"),
                "violations: %zu first %s", r->nviolations,
                r->nviolations ? r->violations[0].field : "-");
  ck_assert(strstr(r->message, "short") == NULL); /* no password echoed */
  rpc_result_free(r);
  r = create_raw(x.tenants, slug, NULL, "not-an-email", PASSWORD);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  ck_assert(harness_rpc_has_violation(r, "owner.email"));
  rpc_result_free(r);
  /* nothing remains: not resolvable, no row, slug free again */
  ck_assert_int_eq(resolve_code(x.tenants, false, slug, NULL, NULL),
                   RPC_NOT_FOUND);
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM tenants.tenants WHERE slug = $1", slug),
      0);
  r = create_raw(x.tenants, slug, NULL, "o@example.test", PASSWORD);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ctx_close(&x);
}
END_TEST

typedef struct racer {
  const char *slug;
  int code;
} racer;

static void *race_create(void *arg) {
  racer *r = arg;
  rpc_client *c = harness_rpc_client(g_tenants.rpc_url);
  rpc_result *res =
      create_raw(c, r->slug, NULL, "racer@example.test", PASSWORD);
  r->code = res->code;
  rpc_result_free(res);
  rpc_client_free(c);
  return NULL;
}

/* The database, not a check-then-insert, keeps slugs unique. */
START_TEST(concurrent_creates_of_one_slug_make_one_tenant) {
  char slug[40];
  harness_unique(slug, sizeof slug, "race");
  enum { N = 6 };
  racer rs[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    rs[i] = (racer){.slug = slug, .code = -1};
    ck_assert_int_eq(pthread_create(&th[i], NULL, race_create, &rs[i]), 0);
  }
  int ok = 0, exists = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    ok += rs[i].code == RPC_OK;
    exists += rs[i].code == RPC_ALREADY_EXISTS;
  }
  ck_assert_int_eq(ok, 1);
  ck_assert_int_eq(exists, N - 1);
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM tenants.tenants WHERE slug = $1", slug),
      1);
  char tid[UUID_STR_LEN + 1];
  ck_assert(sql_text("SELECT id::text FROM tenants.tenants WHERE slug = $1",
                     slug, tid, sizeof tid));
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM auth.users WHERE tenant_id = $1::uuid",
                tid),
      1);
}
END_TEST

/* ------------------------------------------------------------ crash --- */

START_TEST(crash_between_owner_and_activation_leaves_nothing) {
  harness_service crashy;
  ck_assert_msg(start_tenants(&crashy, "tenants-crashy",
                              "TENANTS_TEST_CRASH_AFTER_OWNER=1", NULL, NULL),
                "crash-hook tenants did not start");
  rpc_client *c = harness_rpc_client(crashy.rpc_url);
  char slug[40];
  harness_unique(slug, sizeof slug, "crash");
  rpc_result *r = create_raw(c, slug, NULL, "o@example.test", PASSWORD);
  ck_assert_msg(r->code == RPC_UNAVAILABLE, "got %s", rpc_code_name(r->code));
  rpc_result_free(r);
  rpc_client_free(c);
  int st = harness_wait_exit(crashy.proc, 10000);
  ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 137,
                "status %d", st);

  /* the half-made state really exists: a provisioning row and its owner */
  char tid[UUID_STR_LEN + 1];
  ck_assert(sql_text("SELECT id::text FROM tenants.tenants WHERE slug = $1 AND "
                     "status = 'provisioning'",
                     slug, tid, sizeof tid));
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM auth.users WHERE tenant_id = $1::uuid",
                tid),
      1);
  /* ... and is invisible */
  ctx x;
  ctx_open(&x);
  ck_assert_int_eq(resolve_code(x.tenants, false, slug, NULL, NULL),
                   RPC_NOT_FOUND);
  char host[80];
  snprintf(host, sizeof host, "%s.localhost", slug);
  ck_assert_int_eq(resolve_code(x.tenants, true, host, NULL, NULL),
                   RPC_NOT_FOUND);

  /* a restarted process reaps it (max age 1 s, janitor every 200 ms) */
  harness_service again;
  ck_assert(start_tenants(&again, "tenants-restarted",
                          "TENANTS_PROVISIONING_MAX_AGE=1s",
                          "TENANTS_JANITOR_INTERVAL=200ms", NULL));
  int64_t give_up = time_mono_ms() + 30000;
  while (sql_count("SELECT count(*) FROM tenants.tenants WHERE slug = $1",
                   slug) != 0) {
    ck_assert_msg(time_mono_ms() < give_up, "the tenant was not reaped");
    time_sleep_ms(100);
  }
  ck_assert_int_eq(
      sql_count("SELECT count(*) FROM auth.users WHERE tenant_id = $1::uuid",
                tid),
      0);
  ck_assert_int_eq(resolve_code(x.tenants, false, slug, NULL, NULL),
                   RPC_NOT_FOUND);

  /* the slug is free again */
  rpc_client *c2 = harness_rpc_client(again.rpc_url);
  r = create_raw(c2, slug, NULL, "o@example.test", PASSWORD);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  char tid2[UUID_STR_LEN + 1], status[16];
  ck_assert_int_eq(resolve_code(x.tenants, false, slug, tid2, status), RPC_OK);
  ck_assert_str_ne(tid2, tid);
  ck_assert_str_eq(status, "active");
  rpc_client_free(c2);
  ctx_close(&x);
  harness_service_stop(&again, 10000);
}
END_TEST

/* ---------------------------------------------------------- resolve --- */

static rpc_result *domain_call(ctx *x, const char *method, const char *host,
                               const char *token) {
  if (strcmp(method, T("AddDomain")) == 0) {
    Tenants__V1__AddDomainRequest req = TENANTS__V1__ADD_DOMAIN_REQUEST__INIT;
    req.host = (char *)host;
    return call(x->tenants, method, &req.base, token, NULL);
  }
  if (strcmp(method, T("VerifyDomain")) == 0) {
    Tenants__V1__VerifyDomainRequest req =
        TENANTS__V1__VERIFY_DOMAIN_REQUEST__INIT;
    req.host = (char *)host;
    return call(x->tenants, method, &req.base, token, NULL);
  }
  Tenants__V1__RemoveDomainRequest req =
      TENANTS__V1__REMOVE_DOMAIN_REQUEST__INIT;
  req.host = (char *)host;
  return call(x->tenants, method, &req.base, token, NULL);
}

/* AddDomain that must succeed: the claim is unverified and says how to
 * verify; its token into token[44]. */
static void add_unverified(ctx *x, const char *host, const char *host_lc,
                           const char *owner_token, const char *tid,
                           char token[44]) {
  rpc_result *r = domain_call(x, T("AddDomain"), host, owner_token);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__AddDomainResponse *ad = tenants__v1__add_domain_response__unpack(
      NULL, r->payload_len, r->payload);
  ck_assert_str_eq(ad->domain->host, host_lc);
  ck_assert_str_eq(ad->domain->tenant_id, tid);
  ck_assert(!ad->domain->verified);
  ck_assert_ptr_nonnull(ad->domain->verification);
  ck_assert_str_eq(ad->domain->verification->method, "http");
  ck_assert_uint_eq(strlen(ad->domain->verification->token), 43);
  char url[400];
  snprintf(url, sizeof url,
           "http://%s/.well-known/restaurant-domain-verification/%s", host_lc,
           ad->domain->verification->token);
  ck_assert_str_eq(ad->domain->verification->url, url);
  snprintf(token, 44, "%s", ad->domain->verification->token);
  tenants__v1__add_domain_response__free_unpacked(ad, NULL);
  rpc_result_free(r);
}

/* VerifyDomain with the stand-in site serving body for token. */
static rpc_result *verify_with(ctx *x, const char *host, const char *token,
                               const char *body, const char *owner_token) {
  harness_tokensrv_set(g_tok, token, body);
  return domain_call(x, T("VerifyDomain"), host, owner_token);
}

START_TEST(resolve_by_slug_host_and_custom_domain) {
  ctx x;
  ctx_open(&x);
  created a, b;
  create_ok(&x, "resa", &a);
  create_ok(&x, "resb", &b);
  char tid[UUID_STR_LEN + 1], status[16], host[160], upper[160];
  ck_assert_int_eq(resolve_code(x.tenants, false, a.slug, tid, status), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  ck_assert_str_eq(status, "active");
  /* the answer is cached in Redis, and the cached answer agrees */
  char key[120], val[200];
  snprintf(key, sizeof key, "tenants:resolve:slug:%s", a.slug);
  redis_get(key, val, sizeof val);
  ck_assert_msg(strstr(val, a.id) != NULL && strstr(val, " active") != NULL,
                "cached [%s]", val);
  ck_assert_int_eq(resolve_code(x.tenants, false, a.slug, tid, status), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  snprintf(host, sizeof host, "%s.localhost", a.slug);
  ck_assert_int_eq(resolve_code(x.tenants, true, host, tid, NULL), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  snprintf(upper, sizeof upper, "%s.EXAMPLE.test:8443", a.slug);
  for (char *p = upper; *p && *p != '.'; p++)
    if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
  ck_assert_int_eq(resolve_code(x.tenants, true, upper, tid, NULL), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  ck_assert_int_eq(resolve_code(x.tenants, false, "no-such-tenant", NULL, NULL),
                   RPC_NOT_FOUND);
  ck_assert_int_eq(resolve_code(x.tenants, false, "www", NULL, NULL),
                   RPC_NOT_FOUND);
  ck_assert_int_eq(resolve_code(x.tenants, true, "www.localhost", NULL, NULL),
                   RPC_NOT_FOUND);
  ck_assert_int_eq(resolve_code(x.tenants, true, "bad host!", NULL, NULL),
                   RPC_INVALID_ARGUMENT);
  ck_assert_int_eq(resolve_code(x.tenants, false, "Bad_Slug", NULL, NULL),
                   RPC_INVALID_ARGUMENT);
  Tenants__V1__ResolveRequest none = TENANTS__V1__RESOLVE_REQUEST__INIT;
  rpc_result *r = call(x.tenants, T("Resolve"), &none.base, NULL, NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);

  /* custom domain: added by the owner, resolvable, exclusive, removable */
  char custom[160];
  snprintf(custom, sizeof custom, "Order.%s.Pizza.IT", a.slug);
  char custom_lc[160];
  snprintf(custom_lc, sizeof custom_lc, "order.%s.pizza.it", a.slug);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, NULL, NULL),
                   RPC_NOT_FOUND);
  char tok_a[44], tok_b[44];
  add_unverified(&x, custom, custom_lc, a.token, a.id, tok_a);
  /* Unverified: it does not route. A wrong answer leaves it so. */
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, NULL, NULL),
                   RPC_NOT_FOUND);
  r = verify_with(&x, custom_lc, tok_a, "not-the-token", a.token);
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  ck_assert(harness_rpc_has_violation(r, "host"));
  rpc_result_free(r);
  r = verify_with(&x, custom_lc, tok_a, NULL, a.token); /* 404 */
  CK_RPC_CODE(r, RPC_FAILED_PRECONDITION);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, NULL, NULL),
                   RPC_NOT_FOUND);
  /* b may claim it too while nobody has proved control ... */
  add_unverified(&x, custom_lc, custom_lc, b.token, b.id, tok_b);
  /* ... a proves control (the body with a trailing newline, as a file
   * written by echo has): it routes to a, verifying again is a no-op */
  char body[64];
  snprintf(body, sizeof body, "%s\n", tok_a);
  r = verify_with(&x, custom_lc, tok_a, body, a.token);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__VerifyDomainResponse *vd =
      tenants__v1__verify_domain_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert(vd->domain->verified);
  ck_assert_ptr_null(vd->domain->verification);
  ck_assert_int_eq(vd->domain->verified_at_present_case,
                   TENANTS__V1__DOMAIN__VERIFIED_AT_PRESENT_VERIFIED_AT);
  tenants__v1__verify_domain_response__free_unpacked(vd, NULL);
  rpc_result_free(r);
  r = domain_call(&x, T("VerifyDomain"), custom_lc, a.token);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, tid, NULL), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  /* ... and then b can neither verify its claim nor claim it again */
  r = verify_with(&x, custom_lc, tok_b, tok_b, b.token);
  CK_RPC_CODE(r, RPC_ALREADY_EXISTS);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, tid, NULL), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  r = domain_call(&x, T("RemoveDomain"), custom_lc, b.token);
  CK_RPC_CODE(r, RPC_OK); /* b drops its claim: a's route is untouched */
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, tid, NULL), RPC_OK);
  ck_assert_str_eq(tid, a.id);
  r = domain_call(&x, T("AddDomain"), custom_lc, b.token);
  CK_RPC_CODE(r, RPC_ALREADY_EXISTS);
  ck_assert(harness_rpc_has_violation(r, "host"));
  rpc_result_free(r);
  r = domain_call(&x, T("AddDomain"), "x.localhost", a.token);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  r = domain_call(&x, T("AddDomain"), "10.1.2.3", a.token);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  /* ListDomains */
  Tenants__V1__ListDomainsRequest lreq =
      TENANTS__V1__LIST_DOMAINS_REQUEST__INIT;
  r = call(x.tenants, T("ListDomains"), &lreq.base, a.token, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__ListDomainsResponse *ld =
      tenants__v1__list_domains_response__unpack(NULL, r->payload_len,
                                                 r->payload);
  ck_assert_uint_eq(ld->n_domains, 1);
  ck_assert_str_eq(ld->domains[0]->host, custom_lc);
  tenants__v1__list_domains_response__free_unpacked(ld, NULL);
  rpc_result_free(r);
  /* b cannot remove a's domain */
  r = domain_call(&x, T("RemoveDomain"), custom_lc, b.token);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);
  r = domain_call(&x, T("RemoveDomain"), custom_lc, a.token);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, NULL, NULL),
                   RPC_NOT_FOUND);
  /* and b may take it now, even though a tombstone is cached: after
   * proving control */
  add_unverified(&x, custom_lc, custom_lc, b.token, b.id, tok_b);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, NULL, NULL),
                   RPC_NOT_FOUND);
  r = verify_with(&x, custom_lc, tok_b, tok_b, b.token);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, true, custom_lc, tid, NULL), RPC_OK);
  ck_assert_str_eq(tid, b.id);
  ctx_close(&x);
}
END_TEST

/* ---------------------------------------------------------- suspend --- */

START_TEST(suspend_shows_in_resolve_redis_and_tokens) {
  ctx x;
  ctx_open(&x);
  created c;
  create_ok(&x, "susp", &c);
  char status[16], key[80], val[32];
  ck_assert_int_eq(resolve_code(x.tenants, false, c.slug, NULL, status),
                   RPC_OK);
  ck_assert_str_eq(status, "active"); /* now cached in Redis as active */
  snprintf(key, sizeof key, "tenant:status:%s", c.id);

  /* who may suspend: only the operator */
  rpc_result *r = status_call(&x, T("Suspend"), c.id, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  r = status_call(&x, T("Suspend"), c.id, "wrong-secret-wrong-secret");
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = status_call(&x, T("Suspend"), c.id, c.token); /* even the owner */
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = status_call(&x, T("Suspend"), "not-a-uuid", OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  char unknown[UUID_STR_LEN + 1];
  uuid_v7_str(unknown);
  r = status_call(&x, T("Suspend"), unknown, OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_NOT_FOUND);
  rpc_result_free(r);

  r = status_call(&x, T("Suspend"), c.id, OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__SuspendResponse *sr =
      tenants__v1__suspend_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_str_eq(sr->tenant->status, "suspended");
  tenants__v1__suspend_response__free_unpacked(sr, NULL);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, false, c.slug, NULL, status),
                   RPC_OK);
  ck_assert_str_eq(status, "suspended");
  char ckey[120], cval[200];
  snprintf(ckey, sizeof ckey, "tenants:resolve:slug:%s", c.slug);
  redis_get(ckey, cval, sizeof cval);
  ck_assert_msg(strstr(cval, " suspended") != NULL, "cached [%s]", cval);
  char host[80];
  snprintf(host, sizeof host, "%s.localhost", c.slug);
  ck_assert_int_eq(resolve_code(x.tenants, true, host, NULL, status), RPC_OK);
  ck_assert_str_eq(status, "suspended");
  redis_get(key, val, sizeof val);
  ck_assert_str_eq(val, "suspended");
  /* the owner's token is refused now (libs/authn reads the status) */
  int64_t give_up = time_mono_ms() + 5000;
  for (;;) {
    rpc_result *g = get_tenant(&x, c.token, NULL, NULL);
    int code = g->code;
    rpc_result_free(g);
    if (code == RPC_PERMISSION_DENIED) break;
    ck_assert_msg(time_mono_ms() < give_up, "token still accepted: %s",
                  rpc_code_name(code));
    time_sleep_ms(100);
  }
  /* suspending twice is fine */
  r = status_call(&x, T("Suspend"), c.id, OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);

  r = status_call(&x, T("Resume"), c.id, OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(resolve_code(x.tenants, false, c.slug, NULL, status),
                   RPC_OK);
  ck_assert_str_eq(status, "active");
  redis_get(key, val, sizeof val);
  ck_assert_str_eq(val, "active");
  give_up = time_mono_ms() + 5000;
  for (;;) {
    rpc_result *g = get_tenant(&x, c.token, NULL, NULL);
    int code = g->code;
    rpc_result_free(g);
    if (code == RPC_OK) break;
    ck_assert_msg(time_mono_ms() < give_up, "token still refused");
    time_sleep_ms(100);
  }
  ctx_close(&x);
}
END_TEST

/* ----------------------------------------------------------- update --- */

static rpc_result *update(ctx *x, const char *token, const char *name,
                          const char *currency) {
  Tenants__V1__UpdateTenantRequest req =
      TENANTS__V1__UPDATE_TENANT_REQUEST__INIT;
  if (name != NULL) {
    req.name_present_case =
        TENANTS__V1__UPDATE_TENANT_REQUEST__NAME_PRESENT_NAME;
    req.name = (char *)name;
  }
  if (currency != NULL) {
    req.currency_present_case =
        TENANTS__V1__UPDATE_TENANT_REQUEST__CURRENCY_PRESENT_CURRENCY;
    req.currency = (char *)currency;
  }
  return call(x->tenants, T("UpdateTenant"), &req.base, token, NULL);
}

static void expect_tenant(rpc_result *r, const char *name,
                          const char *currency) {
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__UpdateTenantResponse *u =
      tenants__v1__update_tenant_response__unpack(NULL, r->payload_len,
                                                  r->payload);
  ck_assert_ptr_nonnull(u);
  ck_assert_str_eq(u->tenant->name, name);
  ck_assert_str_eq(u->tenant->currency, currency);
  tenants__v1__update_tenant_response__free_unpacked(u, NULL);
  rpc_result_free(r);
}

START_TEST(update_tenant_by_owner_but_not_by_customer) {
  ctx x;
  ctx_open(&x);
  created c;
  create_ok(&x, "upd", &c);
  expect_tenant(update(&x, c.token, "Trattoria Nuova", NULL), "Trattoria Nuova",
                "EUR");
  expect_tenant(update(&x, c.token, NULL, "chf"), "Trattoria Nuova", "CHF");
  expect_tenant(update(&x, c.token, NULL, NULL), "Trattoria Nuova", "CHF");
  rpc_result *r = update(&x, c.token, "", "ZZZ");
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  ck_assert(harness_rpc_has_violation(r, "name"));
  ck_assert(harness_rpc_has_violation(r, "currency"));
  rpc_result_free(r);

  char customer[PASETO_TOKEN_MAX + 1];
  customer_token(&x, c.id, customer, sizeof customer);
  r = update(&x, customer, "Hijacked", NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  /* a customer is still a member: may read */
  r = get_tenant(&x, customer, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__GetTenantResponse *g = tenants__v1__get_tenant_response__unpack(
      NULL, r->payload_len, r->payload);
  ck_assert_str_eq(g->tenant->name, "Trattoria Nuova");
  tenants__v1__get_tenant_response__free_unpacked(g, NULL);
  rpc_result_free(r);
  /* nor manage domains */
  r = domain_call(&x, T("AddDomain"), "shop.customer-attempt.test", customer);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  ctx_close(&x);
}
END_TEST

/* GetTenant's name for token (RPC_OK asserted) into out. */
static void tenant_name(ctx *x, const char *token, char *out, size_t cap) {
  rpc_result *r = get_tenant(x, token, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__GetTenantResponse *g = tenants__v1__get_tenant_response__unpack(
      NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(g);
  snprintf(out, cap, "%s", g->tenant->name);
  tenants__v1__get_tenant_response__free_unpacked(g, NULL);
  rpc_result_free(r);
}

static void redis_set(const char *key, const char *val) {
  cache_config cc = {.url = g_redis.url};
  cache *rc = NULL;
  ck_assert_int_eq(cache_new(&cc, &rc), ERR_OK);
  ck_assert_int_eq(cache_set(rc, key, val, strlen(val), 60000), ERR_OK);
  cache_free(rc);
}

START_TEST(tenant_reads_come_from_redis_and_see_every_change) {
  ctx x;
  ctx_open(&x);
  created c;
  create_ok(&x, "rd", &c);
  char name[128], key[80], v[600];
  tenant_name(&x, c.token, name, sizeof name);
  /* The first read filled the record; the next ones are served from it
   * (a record planted at the same version is what GetTenant answers: no
   * database read). */
  snprintf(key, sizeof key, "tenants:tenant:%s", c.id);
  redis_get(key, v, sizeof v);
  ck_assert_str_ne(v, "");
  char *sp = strchr(v, ' ');
  ck_assert_ptr_nonnull(sp);
  ck_assert_ptr_nonnull(strstr(sp, name));
  char planted[700];
  snprintf(planted, sizeof planted,
           "%.*s active EUR 2026-01-01T00:00:00.000Z "
           "%s Planted in Redis",
           (int)(sp - v), v, c.slug);
  redis_set(key, planted);
  tenant_name(&x, c.token, name, sizeof name);
  ck_assert_str_eq(name, "Planted in Redis");

  /* Every change is read at once, whatever was cached. */
  static const char *const names[] = {"Osteria Uno", "Osteria Due",
                                      "Osteria Tre"};
  for (int i = 0; i < 3; i++) {
    expect_tenant(update(&x, c.token, names[i], NULL), names[i], "EUR");
    tenant_name(&x, c.token, name, sizeof name);
    ck_assert_str_eq(name, names[i]);
  }
  /* Garbage in the record is a miss, not an answer. */
  redis_set(key, "7 active EUR");
  tenant_name(&x, c.token, name, sizeof name);
  ck_assert_str_eq(name, "Osteria Tre");

  /* Redis down: reads and writes go on with the database. */
  harness_redis_stop(&g_redis);
  expect_tenant(update(&x, c.token, "Osteria Quattro", NULL), "Osteria Quattro",
                "EUR");
  tenant_name(&x, c.token, name, sizeof name);
  ck_assert_str_eq(name, "Osteria Quattro");
  ck_assert_int_eq(harness_redis_restart(&g_redis), 0);
  tenant_name(&x, c.token, name, sizeof name);
  ck_assert_str_eq(name, "Osteria Quattro");
  ctx_close(&x);
}
END_TEST

START_TEST(other_tenants_token_is_refused) {
  ctx x;
  ctx_open(&x);
  created a, b;
  create_ok(&x, "isoa", &a);
  create_ok(&x, "isob", &b);
  rpc_result *r = get_tenant(&x, a.token, NULL, b.id);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = get_tenant(&x, a.token, b.id, NULL); /* envelope names b (Host) */
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  Tenants__V1__UpdateTenantRequest req =
      TENANTS__V1__UPDATE_TENANT_REQUEST__INIT;
  req.name_present_case = TENANTS__V1__UPDATE_TENANT_REQUEST__NAME_PRESENT_NAME;
  req.name = "Taken Over";
  r = call(x.tenants, T("UpdateTenant"), &req.base, a.token, b.id);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = get_tenant(&x, b.token, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Tenants__V1__GetTenantResponse *g = tenants__v1__get_tenant_response__unpack(
      NULL, r->payload_len, r->payload);
  ck_assert_str_eq(g->tenant->name, "Pizzeria Test");
  tenants__v1__get_tenant_response__free_unpacked(g, NULL);
  rpc_result_free(r);
  /* no token, garbage, tampered */
  r = get_tenant(&x, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  r = get_tenant(&x, "v4.public.garbage", NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  char tampered[PASETO_TOKEN_MAX + 1];
  snprintf(tampered, sizeof tampered, "%s", a.token);
  tampered[20] = tampered[20] == 'A' ? 'B' : 'A';
  r = get_tenant(&x, tampered, NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  /* the operator secret is not a member token */
  r = get_tenant(&x, OPERATOR_SECRET, NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  ctx_close(&x);
}
END_TEST

/* ----------------------------------------------------------- events --- */

typedef struct seen {
  pthread_mutex_t mu;
  int n;
  char tenant[8][UUID_STR_LEN + 1];
  char change[8][32];
  uint64_t seq[8];
  tenantdir *dir;
} seen;

static int on_event(void *arg, const Rpc__V1__Event *ev) {
  seen *s = arg;
  tenantdir_on_event(s->dir, ev->topic, ev);
  pthread_mutex_lock(&s->mu);
  if (s->n < 8) {
    snprintf(s->tenant[s->n], sizeof s->tenant[0], "%s", ev->tenant_id);
    Tenants__V1__TenantChanged *tc = tenants__v1__tenant_changed__unpack(
        NULL, ev->payload.len, ev->payload.data);
    snprintf(s->change[s->n], sizeof s->change[0], "%s", tc ? tc->change : "?");
    if (tc) tenants__v1__tenant_changed__free_unpacked(tc, NULL);
    s->seq[s->n] = ev->seq;
    s->n++;
  }
  pthread_mutex_unlock(&s->mu);
  return ERR_OK;
}

typedef struct replayer {
  rpc_client *c;
} replayer;

static int backfill(void *arg, const char *source, uint64_t after,
                    uint64_t up_to, uint32_t limit, bus_backfill *out) {
  replayer *r = arg;
  return bus_replay_fetch(r->c, source, after, limit, 5000, out);
}

static bool wait_change(seen *s, const char *tid, const char *change) {
  int64_t give_up = time_mono_ms() + 15000;
  while (time_mono_ms() < give_up) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
      if (strcmp(s->tenant[i], tid) == 0 && strcmp(s->change[i], change) == 0) {
        pthread_mutex_unlock(&s->mu);
        return true;
      }
    pthread_mutex_unlock(&s->mu);
    time_sleep_ms(50);
  }
  return false;
}

START_TEST(changes_are_published_and_drop_client_caches) {
  ctx x;
  ctx_open(&x);
  created c;
  create_ok(&x, "evt", &c);

  tenantdir_options to = TENANTDIR_OPTIONS_INIT;
  to.client = x.tenants;
  to.ttl_ms = 600000; /* only an event can make it forget */
  tenantdir *dir = NULL;
  ck_assert_int_eq(tenantdir_new(&to, &dir), ERR_OK);
  tenantdir_entry e;
  ck_assert_int_eq(tenantdir_resolve_slug(dir, c.slug, &e), ERR_OK);
  ck_assert_str_eq(e.tenant_id, c.id);
  ck_assert(!e.suspended);

  seen s = {.dir = dir};
  pthread_mutex_init(&s.mu, NULL);
  /* Start from the source's newest seq, so that an event lost before the
   * subscription took effect is healed through Replay (catch-up and idle
   * checks) instead of making the test wait for it. */
  Rpc__V1__ReplayRequest now = RPC__V1__REPLAY_REQUEST__INIT;
  now.limit = 1;
  rpc_result *nr =
      call(x.tenants, "tenants.v1.Events/Replay", &now.base, NULL, NULL);
  CK_RPC_CODE(nr, RPC_OK);
  Rpc__V1__ReplayResponse *nresp =
      rpc__v1__replay_response__unpack(NULL, nr->payload_len, nr->payload);
  ck_assert_ptr_nonnull(nresp);
  uint64_t start_seq = nresp->last_seq;
  ck_assert_uint_gt(start_seq, 0); /* create_ok's "created" event at least */
  rpc__v1__replay_response__free_unpacked(nresp, NULL);
  rpc_result_free(nr);

  replayer rp = {x.tenants};
  bus_subscriber_options so;
  bus_subscriber_options_init(&so);
  so.tracker.backfill = backfill;
  so.tracker.backfill_arg = &rp;
  so.tracker.idle_check_ms = 300;
  bus_subscriber *sub = NULL;
  ck_assert_int_eq(
      bus_subscriber_new(g_tenants.bus_url, on_event, &s, &so, &sub), ERR_OK);
  ck_assert_int_eq(bus_subscribe_exact(sub, "tenants.changed"), ERR_OK);
  ck_assert_int_eq(bus_subscriber_set_position(sub, "tenants", start_seq),
                   ERR_OK);
  ck_assert_int_eq(bus_subscriber_start(sub), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(sub, 1, 10000), ERR_OK);
  time_sleep_ms(200); /* let the subscription reach the publisher */

  rpc_result *r = status_call(&x, T("Suspend"), c.id, OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_msg(wait_change(&s, c.id, "suspended"), "no suspended event");
  /* the client cache dropped the tenant: the next answer is fresh */
  ck_assert_int_eq(tenantdir_resolve_slug(dir, c.slug, &e), ERR_OK);
  ck_assert(e.suspended);
  r = update(&x, NULL, "x", NULL); /* unauthenticated: no event */
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  r = status_call(&x, T("Resume"), c.id, OPERATOR_SECRET);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_msg(wait_change(&s, c.id, "resumed"), "no resumed event");
  ck_assert_int_eq(tenantdir_resolve_slug(dir, c.slug, &e), ERR_OK);
  ck_assert(!e.suspended);
  bus_subscriber_free(sub);

  /* sequence numbers ascend without holes, and Replay serves them again */
  pthread_mutex_lock(&s.mu);
  ck_assert_int_ge(s.n, 2);
  ck_assert_uint_eq(s.seq[0], start_seq + 1);
  for (int i = 1; i < s.n; i++) ck_assert_uint_eq(s.seq[i], s.seq[i - 1] + 1);
  uint64_t first = s.seq[0];
  pthread_mutex_unlock(&s.mu);
  Rpc__V1__ReplayRequest rq = RPC__V1__REPLAY_REQUEST__INIT;
  rq.after_seq = first - 1;
  rq.limit = 10;
  r = call(x.tenants, "tenants.v1.Events/Replay", &rq.base, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Rpc__V1__ReplayResponse *rr =
      rpc__v1__replay_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(rr);
  ck_assert_uint_ge(rr->n_events, 2);
  ck_assert_uint_eq(rr->events[0]->seq, first);
  ck_assert_str_eq(rr->events[0]->topic, "tenants.changed");
  ck_assert_str_eq(rr->events[0]->source, "tenants");
  ck_assert_str_eq(rr->events[0]->tenant_id, c.id);
  ck_assert_uint_ge(rr->last_seq, first + 1);
  rpc__v1__replay_response__free_unpacked(rr, NULL);
  rpc_result_free(r);
  tenantdir_free(dir);
  pthread_mutex_destroy(&s.mu);
  ctx_close(&x);
}
END_TEST

/* ------------------------------------------------- isolation, logs --- */

/* The second wall: as the service's role, rows are visible only in the
 * tenant's own scope or in directory scope. */
START_TEST(row_level_security_binds_the_service_role) {
  ctx x;
  ctx_open(&x);
  created a, b;
  create_ok(&x, "rlsa", &a);
  create_ok(&x, "rlsb", &b);
  ctx_close(&x);
  db_config cfg = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&cfg, &p), ERR_OK);
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_OK);
  const char *count =
      "SELECT count(*) FROM tenants.tenants WHERE id IN ($1::uuid, $2::uuid)";
  db_param ids[] = {db_text(a.id), db_text(b.id)};
  db_param role[] = {db_text("tenants_app")};
  int64_t n = -1;
  db_result *r = NULL;
  /* no scope: nothing */
  ck_assert_int_eq(db_begin(c, NULL), ERR_OK);
  ck_assert_int_eq(
      db_exec(c, "SELECT set_config('role', $1, true)", role, 1, NULL), ERR_OK);
  ck_assert_int_eq(db_exec(c, count, ids, 2, &r), ERR_OK);
  ck_assert_int_eq(db_get_int64(r, 0, 0, &n), ERR_OK);
  ck_assert_int_eq(n, 0);
  db_result_free(r);
  ck_assert_int_eq(db_rollback(c), ERR_OK);
  /* tenant a's scope: only a, and a's rows cannot be moved to b */
  ck_assert_int_eq(db_begin(c, a.id), ERR_OK);
  ck_assert_int_eq(
      db_exec(c, "SELECT set_config('role', $1, true)", role, 1, NULL), ERR_OK);
  ck_assert_int_eq(db_exec(c, count, ids, 2, &r), ERR_OK);
  ck_assert_int_eq(db_get_int64(r, 0, 0, &n), ERR_OK);
  ck_assert_int_eq(n, 1);
  db_result_free(r);
  db_param upd[] = {db_text(b.id)};
  ck_assert_int_eq(
      db_exec(c, "UPDATE tenants.tenants SET name = 'x' WHERE id = $1::uuid",
              upd, 1, &r),
      ERR_OK);
  ck_assert_int_eq(db_affected(r), 0);
  db_result_free(r);
  ck_assert_int_eq(db_rollback(c), ERR_OK);
  /* directory scope: both */
  ck_assert_int_eq(db_begin(c, NULL), ERR_OK);
  ck_assert_int_eq(
      db_exec(c, "SELECT set_config('role', $1, true)", role, 1, NULL), ERR_OK);
  ck_assert_int_eq(db_exec(c, "SELECT set_config('app.directory', 'on', true)",
                           NULL, 0, NULL),
                   ERR_OK);
  ck_assert_int_eq(db_exec(c, count, ids, 2, &r), ERR_OK);
  ck_assert_int_eq(db_get_int64(r, 0, 0, &n), ERR_OK);
  ck_assert_int_eq(n, 2);
  db_result_free(r);
  ck_assert_int_eq(db_rollback(c), ERR_OK);
  db_release(c);
  db_pool_free(p);
}
END_TEST

/* Runs last: after every test above, no password, operator secret or
 * access token is in the tenants service's log. */
START_TEST(logs_hold_no_secrets) {
  FILE *f = fopen(harness_log_path(g_tenants.proc), "r");
  ck_assert_ptr_nonnull(f);
  char line[8192];
  int lines = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lines++;
    ck_assert_msg(strstr(line, PASSWORD) == NULL, "password logged: %s", line);
    ck_assert_msg(strstr(line, OPERATOR_SECRET) == NULL, "secret logged: %s",
                  line);
    ck_assert_msg(strstr(line, "v4.public.") == NULL, "token logged: %s", line);
    ck_assert_msg(strstr(line, "\"short\"") == NULL, "password logged: %s",
                  line);
  }
  fclose(f);
  ck_assert_int_gt(lines, 10);
}
END_TEST

/* ------------------------------------------------------------- main --- */

int main(void) {
  harness_init();
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start PostgreSQL/Redis\n");
    return 1;
  }
  g_tok = harness_tokensrv_start();
  if (g_tok == NULL) return 1;
  harness_tokensrv_env(g_tok, g_tok_env, sizeof g_tok_env);
  if (!harness_service_start_auth(&g_auth, "auth", &kSvc, NULL) ||
      !start_tenants(&g_tenants, "tenants", NULL, NULL, NULL)) {
    harness_dump_logs();
    fprintf(stderr, "cannot start auth/tenants\n");
    return 1;
  }

  Suite *s = suite_create("tenants_itest");
  TCase *tc = tcase_create("tenants");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, create_tenant_returns_owner_and_verifiable_tokens);
  tcase_add_test(tc, default_currency_is_eur);
  tcase_add_test(tc, duplicate_slug_is_already_exists);
  tcase_add_test(tc, reserved_and_malformed_slugs_are_invalid_argument);
  tcase_add_test(tc, bad_owner_password_leaves_no_tenant);
  tcase_add_test(tc, concurrent_creates_of_one_slug_make_one_tenant);
  tcase_add_test(tc, crash_between_owner_and_activation_leaves_nothing);
  tcase_add_test(tc, resolve_by_slug_host_and_custom_domain);
  tcase_add_test(tc, suspend_shows_in_resolve_redis_and_tokens);
  tcase_add_test(tc, update_tenant_by_owner_but_not_by_customer);
  tcase_add_test(tc, other_tenants_token_is_refused);
  tcase_add_test(tc, changes_are_published_and_drop_client_caches);
  tcase_add_test(tc, row_level_security_binds_the_service_role);
  tcase_add_test(tc, logs_hold_no_secrets);
  /* Last: it restarts Redis. */
  tcase_add_test(tc, tenant_reads_come_from_redis_and_see_every_change);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_tokensrv_stop(g_tok);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
