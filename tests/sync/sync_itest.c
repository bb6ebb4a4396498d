/*
 * sync_itest.c - the sync service end to end: PostgreSQL, Redis, auth,
 * tenants, orders, sync and the gateway as separate processes
 * (tests/harness), driven over HTTP with libcurl as a device and its
 * tenant's staff would, plus a few calls straight to sync's RPC port for
 * the service-identity guard.
 *
 * main() starts the system once; each test works in tenants of its own
 * (made through POST /v1/tenants), so tests do not see each other's rows.
 *
 * Devices and sessions: a device registered by staff gets its secret once
 * (only a keyed hash is stored), exchanges it for a "device" token that
 * works as staff on menu, tables and orders and is refused above (admin
 * routes, managing devices); a wrong secret and another tenant's device
 * get the same 401; deleting the device refuses its tokens everywhere
 * within a second.
 *
 * Heartbeats: two sync replicas share PostgreSQL and Redis; beats bring a
 * device online and silence (twice the interval) takes it offline, each
 * change announced exactly once through the outbox.
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/identity.h"
#include "tests/harness/rpc.h"
#include "tests/harness/service.h"

#define M(m) "sync.v1.Sync/" m
#define PASSWORD "correct horse battery"
#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PEPPER "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef"

static harness_pg g_pg;
static harness_redis g_redis;
/* Two sync replicas behind the gateway, as in production: the heartbeat
 * flush and the offline sweep must announce each change once. */
static harness_service g_auth, g_tenants, g_orders, g_sync, g_sync2, g_gw;

static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 8, .log_level = "info"};

/* ------------------------------------------------------------ helpers --- */

typedef harness_http_resp resp;
typedef harness_api_tenant tenant;

/* A request to the gateway with token (NULL: none) and an extra header
 * (NULL: none). */
static resp *call(const char *method, const char *path, const char *body,
                  const char *token, const char *header) {
  const char *h[2] = {header, NULL};
  return harness_http_call(method, g_gw.http_port, path, body, token, h);
}

static void create_tenant(tenant *t, const char *prefix) {
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, prefix, PASSWORD, t), 201);
}

/* A device of t registered by its owner: its id and secret. */
static void register_device(const tenant *t, const char *name, char *id,
                            char *secret, size_t cap) {
  char body[256];
  snprintf(body, sizeof body, "{\"name\":\"%s\",\"platform\":\"linux\"}", name);
  resp *r = call("POST", "/v1/sync/devices", body, t->owner_token, NULL);
  CK_HTTP_STATUS(r, 201);
  ck_assert_str_eq(harness_json_str(r->json, "device.name"), name);
  ck_assert_str_eq(harness_json_str(r->json, "device.status"), "offline");
  snprintf(id, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "device.id"));
  snprintf(secret, cap, "%s", harness_json_str(r->json, "device_secret"));
  ck_assert_uint_eq(strlen(secret), 43);
  harness_http_free(r);
}

/* POST /v1/sync/devices/{id}/session in tenant slug with secret: the
 * answer (the caller checks and frees it). */
static resp *session(const char *slug, const char *id, const char *secret) {
  char path[128], body[160], xt[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s/session", id);
  snprintf(body, sizeof body, "{\"device_secret\":\"%s\"}", secret);
  snprintf(xt, sizeof xt, "X-Tenant: %s", slug);
  return call("POST", path, body, NULL, xt);
}

/* A device token for device id of t into token[PASETO_TOKEN_MAX + 1]. */
static void device_token(const tenant *t, const char *id, const char *secret,
                         char *token) {
  resp *r = session(t->slug, id, secret);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "token_type"), "Bearer");
  ck_assert_int_gt(harness_json_int(r->json, "expires_in"), 0);
  snprintf(token, PASETO_TOKEN_MAX + 1, "%s",
           harness_json_str(r->json, "access_token"));
  harness_http_free(r);
}

static long status_of(const char *method, const char *path, const char *body,
                      const char *token) {
  resp *r = call(method, path, body, token, NULL);
  long s = r->status;
  harness_http_free(r);
  return s;
}

/* One value of a superuser query (past row-level security) as text into
 * out; false without a row. */
static bool db_value(const char *sql, const char *p1, const char *p2, char *out,
                     size_t cap) {
  db_config dc = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&dc, &p), ERR_OK);
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_OK);
  db_param ps[] = {db_text(p1), db_text(p2)};
  db_result *r = NULL;
  ck_assert_int_eq(db_exec(c, sql, ps, DB_NPARAMS(ps), &r), ERR_OK);
  bool found = db_nrows(r) == 1 && db_get(r, 0, 0) != NULL;
  if (found) snprintf(out, cap, "%s", db_get(r, 0, 0));
  db_result_free(r);
  db_release(c);
  db_pool_free(p);
  return found;
}

/* Rows of sync.outbox of type for device id (its id inside the payload). */
static long events_of(const char *type, const char *id) {
  char n[32];
  ck_assert(db_value("SELECT count(*) FROM sync.outbox WHERE type = $1 AND "
                     "position(convert_to($2, 'UTF8') IN payload) > 0",
                     type, id, n, sizeof n));
  return atol(n);
}

/* Waits up to 30 s for GET /v1/sync/devices/{id} to say status want. */
static bool wait_status(const tenant *t, const char *id, const char *want) {
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  for (int64_t end = time_now_ms() + 30000; time_now_ms() < end;) {
    resp *r = call("GET", path, NULL, t->owner_token, NULL);
    bool ok = r->status == 200 &&
              strcmp(harness_json_str(r->json, "status"), want) == 0;
    harness_http_free(r);
    if (ok) return true;
    usleep(100 * 1000);
  }
  return false;
}

/* -------------------------------------------------------------- tests --- */

START_TEST(a_device_registers_and_its_secret_is_stored_hashed) {
  tenant t;
  create_tenant(&t, "dev");
  char id[UUID_STR_LEN + 1], secret[64];
  register_device(&t, "Kitchen PC", id, secret, sizeof secret);
  /* Listed and read back, never with the secret. */
  resp *r = call("GET", "/v1/sync/devices", NULL, t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  json_t *list = json_object_get(r->json, "devices");
  ck_assert_uint_eq(json_array_size(list), 1);
  ck_assert_str_eq(harness_json_str(json_array_get(list, 0), "id"), id);
  ck_assert_ptr_null(strstr(r->body, secret));
  harness_http_free(r);
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  r = call("GET", path, NULL, t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  static const char *const keys[] = {
      "id",           "name",        "platform",   "status",
      "last_seen_at", "app_version", "created_at", NULL};
  harness_json_check_keys(r->json, keys, __FILE__, __LINE__);
  ck_assert_str_eq(harness_json_str(r->json, "platform"), "linux");
  ck_assert_ptr_null(strstr(r->body, secret));
  harness_http_free(r);
  /* The database holds 32 bytes that are not the secret. */
  char hex[80];
  ck_assert(db_value("SELECT encode(secret_hash, 'hex') FROM sync.devices "
                     "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                     t.id, id, hex, sizeof hex));
  ck_assert_uint_eq(strlen(hex), 64);
  ck_assert(db_value("SELECT count(*) FROM sync.devices WHERE tenant_id = "
                     "$1::uuid AND position(convert_to($2, 'UTF8') IN "
                     "secret_hash) > 0",
                     t.id, secret, hex, sizeof hex));
  ck_assert_str_eq(hex, "0");
  /* Input errors name their field; no token is 401. */
  r = call("POST", "/v1/sync/devices", "{\"name\":\"\"}", t.owner_token, NULL);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "name"));
  harness_http_free(r);
  ck_assert_int_eq(status_of("GET", "/v1/sync/devices", NULL, NULL), 401);
}
END_TEST

START_TEST(a_device_token_is_staff_and_nothing_above) {
  tenant t;
  create_tenant(&t, "devrole");
  char id[UUID_STR_LEN + 1], secret[64], tok[PASETO_TOKEN_MAX + 1];
  register_device(&t, "Till", id, secret, sizeof secret);
  device_token(&t, id, secret, tok);
  /* Staff routes of orders: the menu, tables and orders. */
  ck_assert_int_eq(status_of("GET", "/v1/tables", NULL, tok), 200);
  ck_assert_int_eq(status_of("GET", "/v1/products", NULL, tok), 200);
  ck_assert_int_eq(status_of("GET", "/v1/orders", NULL, tok), 200);
  /* Admin routes: refused. */
  resp *r = call("POST", "/v1/tables", "{\"label\":\"T1\"}", tok, NULL);
  CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  ck_assert_int_eq(status_of("GET", "/v1/tenant/members", NULL, tok), 403);
  ck_assert_int_eq(status_of("POST", "/v1/products",
                             "{\"name\":\"X\",\"price_cents\":100}", tok),
                   403);
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  ck_assert_int_eq(status_of("DELETE", path, NULL, tok), 403);
  /* Staff-level device management: refused to devices by name. */
  r = call("POST", "/v1/sync/devices", "{\"name\":\"Mine\"}", tok, NULL);
  CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  ck_assert_int_eq(status_of("GET", "/v1/sync/devices", NULL, tok), 403);
}
END_TEST

START_TEST(wrong_secrets_and_other_tenants_get_the_same_401) {
  tenant a, b;
  create_tenant(&a, "seca");
  create_tenant(&b, "secb");
  char id[UUID_STR_LEN + 1], secret[64], other[UUID_STR_LEN + 1];
  register_device(&a, "A's", id, secret, sizeof secret);
  char wrong[64];
  snprintf(wrong, sizeof wrong, "%s", secret);
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
  resp *r = session(a.slug, id, wrong);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  char *msg = strdup(harness_json_str(r->json, "message"));
  harness_http_free(r);
  /* An unknown device, and A's device with its right secret asked in B:
   * the same answer. */
  uuid_v7_str(other);
  const char *tries[][2] = {{a.slug, other}, {b.slug, id}};
  for (size_t i = 0; i < 2; i++) {
    r = session(tries[i][0], tries[i][1], secret);
    CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
    ck_assert_str_eq(harness_json_str(r->json, "message"), msg);
    harness_http_free(r);
  }
  free(msg);
  r = session(a.slug, id, "short");
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* B's owner sees nothing of A's devices. */
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  ck_assert_int_eq(status_of("GET", path, NULL, b.owner_token), 404);
  ck_assert_int_eq(status_of("DELETE", path, NULL, b.owner_token), 404);
  r = call("GET", "/v1/sync/devices", NULL, b.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "devices")), 0);
  harness_http_free(r);
  /* A's device token on B's address is refused. */
  char tok[PASETO_TOKEN_MAX + 1], xt[96];
  device_token(&a, id, secret, tok);
  snprintf(xt, sizeof xt, "X-Tenant: %s", b.slug);
  r = call("GET", "/v1/tables", NULL, tok, xt);
  ck_assert_int_ge(r->status, 400);
  harness_http_free(r);
}
END_TEST

START_TEST(a_deleted_devices_tokens_are_refused_within_a_second) {
  tenant t;
  create_tenant(&t, "revoke");
  char id[UUID_STR_LEN + 1], secret[64], tok[PASETO_TOKEN_MAX + 1];
  register_device(&t, "Old till", id, secret, sizeof secret);
  device_token(&t, id, secret, tok);
  ck_assert_int_eq(status_of("GET", "/v1/tables", NULL, tok), 200);
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  resp *r = call("DELETE", path, NULL, t.owner_token, NULL);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
  int64_t deleted = time_now_ms();
  /* The guarantee is one second after the delete answered: every call
   * that starts later is refused (the verifiers re-read revocations every
   * 500 ms; a busy machine only makes the calls start later). */
  int64_t wait = deleted + 1000 - time_now_ms();
  if (wait > 0) usleep((useconds_t)wait * 1000);
  ck_assert_int_eq(status_of("GET", "/v1/tables", NULL, tok), 401);
  ck_assert_int_eq(status_of("GET", "/v1/orders", NULL, tok), 401);
  /* Gone: no new session, no row. */
  r = session(t.slug, id, secret);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  ck_assert_int_eq(status_of("GET", path, NULL, t.owner_token), 404);
  ck_assert_int_eq(status_of("DELETE", path, NULL, t.owner_token), 404);
}
END_TEST

START_TEST(heartbeats_bring_a_device_online_and_silence_takes_it_offline) {
  tenant t;
  create_tenant(&t, "beat");
  char id[UUID_STR_LEN + 1], secret[64], tok[PASETO_TOKEN_MAX + 1];
  register_device(&t, "Pass", id, secret, sizeof secret);
  device_token(&t, id, secret, tok);
  /* Devices only; bounded input. */
  resp *r = call("POST", "/v1/sync/heartbeat", "{}", t.owner_token, NULL);
  CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  r = call("POST", "/v1/sync/heartbeat", "{\"pending\":-1}", tok, NULL);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "pending"));
  harness_http_free(r);
  /* A few beats, through both replicas. */
  for (int i = 0; i < 5; i++) {
    r = call("POST", "/v1/sync/heartbeat",
             "{\"app_version\":\"1.2.3\",\"pending\":4,\"cursor\":0}", tok,
             NULL);
    CK_HTTP_STATUS(r, 200);
    ck_assert_int_eq(harness_json_int(r->json, "interval_s"), 2);
    ck_assert_uint_eq(strlen(harness_json_str(r->json, "server_time")), 24);
    harness_http_free(r);
    usleep(100 * 1000);
  }
  ck_assert(wait_status(&t, id, "online"));
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  r = call("GET", path, NULL, t.owner_token, NULL);
  ck_assert_str_eq(harness_json_str(r->json, "app_version"), "1.2.3");
  ck_assert_uint_eq(strlen(harness_json_str(r->json, "last_seen_at")), 24);
  harness_http_free(r);
  char pending[16];
  ck_assert(db_value("SELECT pending::text FROM sync.devices WHERE "
                     "tenant_id = $1::uuid AND id = $2::uuid",
                     t.id, id, pending, sizeof pending));
  ck_assert_str_eq(pending, "4");
  ck_assert_int_eq(events_of("DeviceOnline", id), 1);
  /* Silence: offline after twice the interval, announced once. */
  ck_assert(wait_status(&t, id, "offline"));
  ck_assert_int_eq(events_of("DeviceOffline", id), 1);
  ck_assert_int_eq(events_of("DeviceOnline", id), 1);
  /* Back: online again, a second DeviceOnline. */
  r = call("POST", "/v1/sync/heartbeat", "{}", tok, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  ck_assert(wait_status(&t, id, "online"));
  ck_assert_int_eq(events_of("DeviceOnline", id), 2);
  ck_assert_int_eq(events_of("DeviceOffline", id), 1);
}
END_TEST

START_TEST(calls_without_identity_or_token_are_refused) {
  Sync__V1__PingRequest ping = SYNC__V1__PING_REQUEST__INIT;
  ping.message = "hello";
  /* The gateway may ping without a user. */
  rpc_client *gw = harness_rpc_client(g_sync.rpc_url);
  rpc_result *r = harness_rpc_call(gw, M("Ping"), &ping.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  /* A member method without the member's token. */
  Sync__V1__RegisterDeviceRequest req = SYNC__V1__REGISTER_DEVICE_REQUEST__INIT;
  req.name = "No token";
  r = harness_rpc_call(gw, M("RegisterDevice"), &req.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  rpc_client_free(gw);

  /* No service identity at all: refused before any handler runs. */
  rpc_client *anon = harness_rpc_client_as(g_sync.rpc_url, NULL);
  r = harness_rpc_call(anon, M("Ping"), &ping.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_UNAUTHENTICATED);
  rpc_result_free(r);
  rpc_client_free(anon);

  /* A valid identity of a service the method does not declare; and auth's
   * device-token method refuses everybody but sync. */
  rpc_client *other = harness_rpc_client_as(g_sync.rpc_url, "operator");
  r = harness_rpc_call(other, M("Ping"), &ping.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  rpc_client_free(other);
  rpc_client *orders = harness_rpc_client_as(g_auth.rpc_url, "orders");
  r = harness_rpc_call(orders, "auth.v1.Auth/IssueDeviceToken", &ping.base,
                       NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  rpc_client_free(orders);
}
END_TEST

/* --------------------------------------------------------------- main --- */

static bool start_system(void) {
  char a[96], t[96], o[96], s[192], ae[96], te[96];
  if (!harness_service_start_auth(&g_auth, "auth", &kSvc, NULL)) return false;
  snprintf(a, sizeof a, "AUTH_ADDR=%s", g_auth.rpc_url);
  snprintf(ae, sizeof ae, "AUTH_EVENTS=%s", g_auth.bus_url);
  char *ten_extra[] = {a, "TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                       "TENANTS_BASE_DOMAINS=localhost,example.test", NULL};
  if (!harness_service_start(&g_tenants, "tenants", "services/tenants/tenants",
                             &kSvc, ten_extra))
    return false;
  snprintf(t, sizeof t, "TENANTS_ADDR=%s", g_tenants.rpc_url);
  snprintf(te, sizeof te, "TENANTS_EVENTS=%s", g_tenants.bus_url);
  char *ord_extra[] = {a, t, NULL};
  if (!harness_service_start(&g_orders, "orders", "services/orders/orders",
                             &kSvc, ord_extra))
    return false;
  snprintf(o, sizeof o, "ORDERS_ADDR=%s", g_orders.rpc_url);
  char *sync_extra[] = {a,
                        o,
                        PEPPER,
                        "SYNC_HEARTBEAT_INTERVAL=2s",
                        "SYNC_HEARTBEAT_FLUSH=100ms",
                        NULL};
  if (!harness_service_start(&g_sync, "sync", "services/sync/sync", &kSvc,
                             sync_extra) ||
      !harness_service_start(&g_sync2, "sync-2", "services/sync/sync", &kSvc,
                             sync_extra))
    return false;
  snprintf(s, sizeof s, "SYNC_ADDR=%s,%s", g_sync.rpc_url, g_sync2.rpc_url);
  char *gw_extra[] = {a,
                      t,
                      o,
                      s,
                      ae,
                      te,
                      "GATEWAY_RATE_BURST=100000",
                      "GATEWAY_RATE_PER_MIN=100000",
                      "GATEWAY_BASE_DOMAIN=localhost,example.test",
                      "GATEWAY_DEADLINE_MS=5000",
                      NULL};
  if (!harness_service_start(&g_gw, "gateway", "services/gateway/gateway",
                             &kSvc, gw_extra))
    return false;
  char url[128];
  return harness_wait_http_ok(
      harness_service_http_url(&g_gw, "/healthz", url, sizeof url), 10000);
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  /* The service's key goes into the trust bundle before auth reads it
   * (auth verifies the service's identity on Keys). */
  (void)harness_identity_key_file("sync");
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start PostgreSQL/Redis\n");
    return EXIT_FAILURE;
  }
  if (!start_system()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the system\n");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("sync_itest");
  HARNESS_ADD_CASE(s, a_device_registers_and_its_secret_is_stored_hashed, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_device_token_is_staff_and_nothing_above, 120, NULL);
  HARNESS_ADD_CASE(s, wrong_secrets_and_other_tenants_get_the_same_401, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_deleted_devices_tokens_are_refused_within_a_second, 120,
                   NULL);
  HARNESS_ADD_CASE(
      s, heartbeats_bring_a_device_online_and_silence_takes_it_offline, 120,
      NULL);
  HARNESS_ADD_CASE(s, calls_without_identity_or_token_are_refused, 120, NULL);
  int failed = harness_run_shared(s);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_gw, 15000);
  harness_service_stop(&g_sync, 15000);
  harness_service_stop(&g_sync2, 15000);
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  curl_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
