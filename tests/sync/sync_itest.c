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
 * within a second; Idempotency-Key on registration (replay with the same
 * secret, reuse 400, concurrent twins across the two replicas, the
 * secret never readable in the key table); expired keys deleted across
 * tenants by the expiry round, and only under its setting.
 *
 * Heartbeats: two sync replicas share PostgreSQL and Redis; beats bring a
 * device online and silence (twice the interval) takes it offline, each
 * change announced exactly once through the outbox.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <signal.h>
#include <sys/socket.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/idem/expiry.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/identity.h"
#include "tests/harness/idemcheck.h"
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

/* A count or id PostgreSQL printed, as a number (the whole text). */
static long long num(const char *s) {
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  ck_assert_msg(end != s && *end == '\0', "not a number: %s", s);
  return v;
}

/* Rows of sync.outbox of type for device id (its id inside the payload). */
static long events_of(const char *type, const char *id) {
  char n[32];
  ck_assert(db_value("SELECT count(*) FROM sync.outbox WHERE type = $1 AND "
                     "position(convert_to($2, 'UTF8') IN payload) > 0",
                     type, id, n, sizeof n));
  return (long)num(n);
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
    time_sleep_ms(100);
  }
  return false;
}

/* sync_conflicts_total{policy, resolution} of both replicas. */
static double conflicts_counted(const char *policy, const char *resolution) {
  char series[128];
  snprintf(series, sizeof series,
           "sync_conflicts_total{policy=\"%s\",resolution=\"%s\"}", policy,
           resolution);
  double a = harness_metric(g_sync.admin_port, series);
  double b = harness_metric(g_sync2.admin_port, series);
  ck_assert(a >= 0 && b >= 0);
  return a + b;
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
  /* HTTP-API.md's seven, and the two documented beyond it (OpenAPI:
   * what the heartbeats reported). */
  static const char *const keys[] = {
      "id",          "name",       "platform", "status", "last_seen_at",
      "app_version", "created_at", "pending",  "cursor", NULL};
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

/* Idempotency-Key on POST /v1/sync/devices (tests/harness/idemcheck.h),
 * over both sync replicas: the same key and body answer the first answer
 * again - the same device and device_secret - with one device; another
 * body under the key 400; two at once one device. The replayed secret
 * opens a session, and the saved answer never holds it readable. */
START_TEST(idempotency_key_on_register_device) {
  tenant t;
  create_tenant(&t, "devidem");
  char name[5][64], body[5][160];
  for (int i = 0; i < 5; i++) {
    snprintf(name[i], sizeof name[i], "%s-%d", t.slug, i);
    snprintf(body[i], sizeof body[i], "{\"name\":\"%.63s\"}", name[i]);
  }
  harness_idem_case c = {
      .port = g_gw.http_port,
      .path = "/v1/sync/devices",
      .token = t.owner_token,
      .key_prefix = "itest-device",
      .status = 201,
      .pg = &g_pg,
      .count_sql = "SELECT count(*) FROM sync.devices WHERE name = $1",
      .body = body[0],
      .count_arg = name[0],
      .other_body = body[1],
      .count_other_arg = name[1],
      .race_body = {body[2], body[3], body[4]},
      .race_arg = {name[2], name[3], name[4]}};
  harness_idem_check(&c);
  /* Once more by hand: the replay's secret is the device's. */
  char key[96], hk[128];
  harness_unique(key, sizeof key, "itest-device-secret");
  snprintf(hk, sizeof hk, "Idempotency-Key: %s", key);
  resp *r1 = call("POST", "/v1/sync/devices", "{\"name\":\"Sealed\"}",
                  t.owner_token, hk);
  CK_HTTP_STATUS(r1, 201);
  resp *r2 = call("POST", "/v1/sync/devices", "{\"name\":\"Sealed\"}",
                  t.owner_token, hk);
  CK_HTTP_STATUS(r2, 201);
  ck_assert_str_eq(r2->body, r1->body);
  char id[UUID_STR_LEN + 1], secret[64], tok[PASETO_TOKEN_MAX + 1], n[32];
  snprintf(id, sizeof id, "%s", harness_json_str(r2->json, "device.id"));
  snprintf(secret, sizeof secret, "%s",
           harness_json_str(r2->json, "device_secret"));
  ck_assert_uint_eq(strlen(secret), 43);
  device_token(&t, id, secret, tok);
  ck_assert_int_eq(harness_pg_count(&g_pg,
                                    "SELECT count(*) FROM sync.idempotency "
                                    "WHERE tenant_id = $1::uuid AND "
                                    "response_code = 0",
                                    t.id),
                   5);
  ck_assert(db_value("SELECT count(*) FROM sync.idempotency WHERE tenant_id "
                     "= $1::uuid AND position(convert_to($2, 'UTF8') IN "
                     "response) > 0",
                     t.id, secret, n, sizeof n));
  ck_assert_str_eq(n, "0");
  harness_http_free(r1);
  harness_http_free(r2);
}
END_TEST

/* A key row of tenant tid under key, expiring in `in` (an interval). */
static void key_row(const char *tid, const char *key, const char *in) {
  char sql[400], out[8];
  snprintf(sql, sizeof sql,
           "INSERT INTO sync.idempotency (tenant_id, principal, key, method, "
           "request_hash, response_code, response, expires_at) VALUES "
           "($1::uuid, 'u', $2, 'm', decode(repeat('00', 32), 'hex'), 0, "
           "'\\x00', now() + interval '%s') RETURNING 1",
           in);
  ck_assert(db_value(sql, tid, key, out, sizeof out));
}

/* The expiry round (libs/idem/expiry.h) as sync runs it - its role,
 * app.sync_sweeper - deletes expired keys of every tenant and keeps live
 * ones; without the setting, row-level security leaves it nothing. */
START_TEST(expired_idempotency_keys_are_deleted_across_tenants) {
  tenant a, b;
  create_tenant(&a, "keyexp");
  create_tenant(&b, "keyexp");
  key_row(a.id, "old", "-1 second");
  key_row(b.id, "old", "-1 minute");
  key_row(b.id, "live", "1 hour");
  db_config dc = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&dc, &p), ERR_OK);
  db_store *st = NULL;
  ck_assert_int_eq(db_store_new(p, "sync_app", &st), ERR_OK);
  const char *count = "SELECT count(*) FROM sync.idempotency WHERE "
                      "tenant_id IN ($1::uuid, $2::uuid)";
  char n[16];
  int64_t deleted = -1;
  /* (The running services' own rounds, a minute apart, may delete the
   * expired rows too: only what holds either way is asserted.) */
  ck_assert_int_eq(
      idem_expiry_run(st, "sync.idempotency", "app.not_the_sweeper", &deleted),
      ERR_OK);
  ck_assert_int_eq(deleted, 0);
  ck_assert_int_eq(
      idem_expiry_run(st, "sync.idempotency", "app.sync_sweeper", &deleted),
      ERR_OK);
  ck_assert(db_value(count, a.id, b.id, n, sizeof n));
  ck_assert_str_eq(n, "1");
  ck_assert(db_value("SELECT key FROM sync.idempotency WHERE tenant_id = "
                     "$1::uuid AND key = $2",
                     b.id, "live", n, sizeof n));
  db_store_free(st);
  db_pool_free(p);
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
  if (wait > 0) time_sleep_ms(wait);
  ck_assert_int_eq(status_of("GET", "/v1/tables", NULL, tok), 401);
  ck_assert_int_eq(status_of("GET", "/v1/orders", NULL, tok), 401);
  ck_assert_int_eq(status_of("POST", "/v1/sync/heartbeat", "{}", tok), 401);
  ck_assert_int_eq(status_of("GET", "/v1/sync/pull", NULL, tok), 401);
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
    time_sleep_ms(100);
  }
  ck_assert(wait_status(&t, id, "online"));
  /* The gauge (counted every 10 s by each replica) sees it; the device
   * keeps beating meanwhile (silence would take it offline in 4 s). */
  bool counted = false;
  for (int64_t end = time_now_ms() + 30000; !counted && time_now_ms() < end;
       time_sleep_ms(200)) {
    r = call("POST", "/v1/sync/heartbeat",
             "{\"app_version\":\"1.2.3\",\"pending\":4,\"cursor\":17}", tok,
             NULL);
    harness_http_free(r);
    counted = harness_metric(g_sync.admin_port, "sync_devices_online") >= 1 &&
              harness_metric(g_sync2.admin_port, "sync_devices_online") >= 1;
  }
  ck_assert(counted);
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", id);
  r = call("GET", path, NULL, t.owner_token, NULL);
  ck_assert_str_eq(harness_json_str(r->json, "app_version"), "1.2.3");
  ck_assert_uint_eq(strlen(harness_json_str(r->json, "last_seen_at")), 24);
  /* What its beats reported is shown (beyond HTTP-API.md's device). */
  ck_assert_int_eq(harness_json_int(r->json, "pending"), 4);
  ck_assert_int_eq(harness_json_int(r->json, "cursor"), 17);
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
  /* A beat that does not say keeps what was reported. */
  r = call("GET", path, NULL, t.owner_token, NULL);
  ck_assert_int_eq(harness_json_int(r->json, "cursor"), 17);
  ck_assert_int_eq(harness_json_int(r->json, "pending"), 4);
  harness_http_free(r);
}
END_TEST

/* Several devices of one tenant beating through both replicas: the
 * flush writes them together (one statement per tenant), each with its
 * own app_version and pending, each announced online exactly once. */
START_TEST(a_tenants_devices_flush_together_each_with_its_own_state) {
  tenant t;
  create_tenant(&t, "beats");
  enum { N = 5 };
  char ids[N][UUID_STR_LEN + 1], secret[64], tok[N][PASETO_TOKEN_MAX + 1];
  for (int i = 0; i < N; i++) {
    register_device(&t, "Till", ids[i], secret, sizeof secret);
    device_token(&t, ids[i], secret, tok[i]);
  }
  /* Interleaved, so each flush holds several devices. */
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < N; i++) {
      char body[96];
      snprintf(body, sizeof body, "{\"app_version\":\"v%d.%d\",\"pending\":%d}",
               i, round, 10 * i + round);
      resp *r = call("POST", "/v1/sync/heartbeat", body, tok[i], NULL);
      CK_HTTP_STATUS(r, 200);
      harness_http_free(r);
    }
  for (int i = 0; i < N; i++) {
    ck_assert(wait_status(&t, ids[i], "online"));
    /* The last beat's values (the flush may have taken them in two
     * rounds: wait for the last one). */
    char want[16], got[64] = "", pending[16] = "";
    snprintf(want, sizeof want, "v%d.2", i);
    for (int64_t end = time_now_ms() + 30000; time_now_ms() < end;) {
      ck_assert(db_value("SELECT app_version FROM sync.devices WHERE "
                         "tenant_id = $1::uuid AND id = $2::uuid",
                         t.id, ids[i], got, sizeof got));
      if (strcmp(got, want) == 0) break;
      time_sleep_ms(100);
    }
    ck_assert_str_eq(got, want);
    ck_assert(db_value("SELECT pending::text FROM sync.devices WHERE "
                       "tenant_id = $1::uuid AND id = $2::uuid",
                       t.id, ids[i], pending, sizeof pending));
    ck_assert_int_eq(num(pending), 10 * i + 2);
    ck_assert_int_eq(events_of("DeviceOnline", ids[i]), 1);
  }
}
END_TEST

/* ------------------------------------------------------------- push --- */

/* A device with a token in a fresh tenant whose menu has one product of
 * unlimited stock. */
typedef struct dev {
  tenant t;
  char id[UUID_STR_LEN + 1], secret[64], token[PASETO_TOKEN_MAX + 1];
  char product[UUID_STR_LEN + 1];
} dev;

static void product_of(tenant *t, char *out) {
  resp *r =
      call("POST", "/v1/products", "{\"name\":\"Soup\",\"price_cents\":450}",
           t->owner_token, NULL);
  CK_HTTP_STATUS(r, 201);
  snprintf(out, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

static void make_dev(dev *d, const char *prefix) {
  create_tenant(&d->t, prefix);
  register_device(&d->t, "Till", d->id, d->secret, sizeof d->secret);
  device_token(&d->t, d->id, d->secret, d->token);
  product_of(&d->t, d->product);
}

/* Another device of d's tenant into e (same product). */
static void second_dev(const dev *d, dev *e) {
  *e = *d;
  register_device(&e->t, "Second till", e->id, e->secret, sizeof e->secret);
  device_token(&e->t, e->id, e->secret, e->token);
}

/* A createOrder mutation's JSON for order oid (one line of product). */
static void create_mutation(char *out, size_t cap, int64_t mid, const char *oid,
                            const char *product) {
  snprintf(out, cap,
           "{\"id\":%lld,\"name\":\"createOrder\",\"client_time\":"
           "\"2026-12-06T10:00:00.000Z\",\"args\":{\"order_id\":\"%.36s\","
           "\"items\":[{\"product_id\":\"%.36s\",\"quantity\":1}],"
           "\"notes\":\"m%lld\"}}",
           (long long)mid, oid, product, (long long)mid);
}

/* POST /v1/sync/push with mutations[0..n) (JSON objects) as d. */
static resp *push(const dev *d, char *const *muts, size_t n) {
  size_t cap = 64;
  for (size_t i = 0; i < n; i++) cap += strlen(muts[i]) + 1;
  char *body = malloc(cap);
  ck_assert_ptr_nonnull(body);
  size_t off = (size_t)snprintf(body, cap, "{\"mutations\":[");
  for (size_t i = 0; i < n; i++)
    off +=
        (size_t)snprintf(body + off, cap - off, "%s%s", i ? "," : "", muts[i]);
  snprintf(body + off, cap - off, "]}");
  resp *r = call("POST", "/v1/sync/push", body, d->token, NULL);
  free(body);
  return r;
}

static resp *push1(const dev *d, const char *mut) {
  char *m[] = {(char *)mut};
  return push(d, m, 1);
}

static int64_t last_mutation_id(const dev *d) {
  char v[32];
  ck_assert(db_value("SELECT last_mutation_id::text FROM sync.devices WHERE "
                     "tenant_id = $1::uuid AND id = $2::uuid",
                     d->t.id, d->id, v, sizeof v));
  return num(v);
}

/* Orders of the tenant with this id (past RLS). */
static long orders_with_id(const char *tid, const char *oid) {
  char n[32];
  ck_assert(db_value("SELECT count(*) FROM orders.orders WHERE tenant_id = "
                     "$1::uuid AND id = $2::uuid",
                     tid, oid, n, sizeof n));
  return (long)num(n);
}

static long orders_of(const char *tid) {
  char n[32];
  ck_assert(db_value("SELECT count(*) FROM orders.orders WHERE tenant_id = "
                     "$1::uuid AND $2 = $2",
                     tid, "x", n, sizeof n));
  return (long)num(n);
}

/* Sends body to the gateway over a raw socket and closes it without
 * reading the answer - the device's connection cut before the answer
 * arrives. With wait_for > 0, first waits (up to 30 s) until the device's
 * last_mutation_id reaches it, so the server did the work. */
static void push_cut(const dev *d, const char *body, int64_t wait_for) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)g_gw.http_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  size_t cap = strlen(body) + strlen(d->token) + 256;
  char *req = malloc(cap);
  ck_assert_ptr_nonnull(req);
  int n = snprintf(req, cap,
                   "POST /v1/sync/push HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Authorization: Bearer %s\r\nContent-Type: "
                   "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   d->token, strlen(body), body);
  ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
  free(req);
  for (int64_t end = time_now_ms() + 30000;
       wait_for > 0 && last_mutation_id(d) < wait_for && time_now_ms() < end;)
    time_sleep_ms(20);
  close(fd);
}

static char *batch_body(char *const *muts, size_t n) {
  size_t cap = 64;
  for (size_t i = 0; i < n; i++) cap += strlen(muts[i]) + 1;
  char *body = malloc(cap);
  ck_assert_ptr_nonnull(body);
  size_t off = (size_t)snprintf(body, cap, "{\"mutations\":[");
  for (size_t i = 0; i < n; i++)
    off +=
        (size_t)snprintf(body + off, cap - off, "%s%s", i ? "," : "", muts[i]);
  snprintf(body + off, cap - off, "]}");
  return body;
}

#define NMUT 100
#define BATCH 5

START_TEST(a_hundred_mutations_with_cut_answers_apply_exactly_once) {
  dev d;
  make_dev(&d, "push");
  static char oids[NMUT][UUID_STR_LEN + 1];
  static char muts[NMUT][512];
  char *ptrs[NMUT];
  for (int i = 0; i < NMUT; i++) {
    uuid_v7_str(oids[i]);
    create_mutation(muts[i], sizeof muts[i], i + 1, oids[i], d.product);
    ptrs[i] = muts[i];
  }
  /* The device sends its unacknowledged mutations (from its last
   * acknowledged id, up to a batch) until the server has them all; a push
   * may be answered for only a prefix (a cut twin still running holds
   * the next one), and the device then sends the rest again. */
  int sent = 0, cuts = 0;
  int64_t last = 0, deadline = time_now_ms() + 120000;
  while (last < NMUT) {
    ck_assert_msg(time_now_ms() < deadline, "stuck at mutation %lld",
                  (long long)last);
    int b = (int)last, n = NMUT - b < BATCH ? NMUT - b : BATCH;
    sent++;
    if (sent % 7 == 0) { /* every 7th request loses its answer */
      char *body = batch_body(&ptrs[b], (size_t)n);
      push_cut(&d, body, cuts % 2 ? b + n : 0);
      free(body);
      cuts++;
      continue; /* and is sent again */
    }
    resp *r = push(&d, &ptrs[b], (size_t)n);
    if (r->status == 503) { /* nothing could be done now */
      harness_http_free(r);
      time_sleep_ms(50);
      continue;
    }
    CK_HTTP_STATUS(r, 200);
    int64_t now = harness_json_int(r->json, "last_mutation_id");
    json_t *res = json_object_get(r->json, "results");
    ck_assert_uint_ge(json_array_size(res), 1);
    ck_assert_int_eq(now, b + (int64_t)json_array_size(res));
    for (size_t i = 0; i < json_array_size(res); i++) {
      json_t *e = json_array_get(res, i);
      ck_assert_int_eq(harness_json_int(e, "id"), b + (int64_t)i + 1);
      const char *st = harness_json_str(e, "status");
      ck_assert_msg(strcmp(st, "applied") == 0 || strcmp(st, "duplicate") == 0,
                    "mutation %d: %s", b + (int)i + 1, r->body);
      ck_assert_str_eq(harness_json_str(e, "server_id"), oids[b + i]);
      ck_assert_int_eq(harness_json_int(e, "version"), 1);
    }
    harness_http_free(r);
    last = now;
  }
  ck_assert_int_ge(cuts, 2);
  ck_assert_int_eq(last, NMUT);
  ck_assert_int_eq(last_mutation_id(&d), NMUT);
  ck_assert_int_eq(orders_of(d.t.id), NMUT);
  for (int i = 0; i < NMUT; i++)
    ck_assert_int_eq(orders_with_id(d.t.id, oids[i]), 1);
  /* The whole history again: every one a duplicate with its first
   * result, nothing applied twice. */
  resp *r = push(&d, ptrs, 20);
  CK_HTTP_STATUS(r, 200);
  ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), NMUT);
  json_t *e = json_array_get(json_object_get(r->json, "results"), 3);
  ck_assert_str_eq(harness_json_str(e, "status"), "duplicate");
  ck_assert_str_eq(harness_json_str(e, "server_id"), oids[3]);
  harness_http_free(r);
  ck_assert_int_eq(orders_of(d.t.id), NMUT);
}
END_TEST

START_TEST(gaps_are_400_and_rejections_consume_their_id) {
  dev d;
  make_dev(&d, "gap");
  char m[512], oid[UUID_STR_LEN + 1];
  uuid_v7_str(oid);
  create_mutation(m, sizeof m, 2, oid, d.product); /* 1 never sent */
  resp *r = push1(&d, m);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "mutations[0].id"));
  harness_http_free(r);
  /* Not consecutive inside one push: 400 too. */
  char m1[512], m3[512], o1[UUID_STR_LEN + 1], o3[UUID_STR_LEN + 1];
  uuid_v7_str(o1);
  uuid_v7_str(o3);
  create_mutation(m1, sizeof m1, 1, o1, d.product);
  create_mutation(m3, sizeof m3, 3, o3, d.product);
  char *two[] = {m1, m3};
  r = push(&d, two, 2);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);
  ck_assert_int_eq(orders_of(d.t.id), 0);
  ck_assert_int_eq(last_mutation_id(&d), 0);
  /* Rejected mutations consume their id: a bad hash (corrupted in
   * transit), an unknown product, an unknown name. */
  char bad[600];
  snprintf(bad, sizeof bad,
           "{\"id\":1,\"name\":\"createOrder\",\"hash\":\"%064d\","
           "\"args\":{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\","
           "\"quantity\":1}]}}",
           0, o1, d.product);
  char unknown[600], noname[200], good[600];
  char pid[UUID_STR_LEN + 1];
  uuid_v7_str(pid);
  create_mutation(unknown, sizeof unknown, 2, o3, pid);
  snprintf(noname, sizeof noname,
           "{\"id\":3,\"name\":\"dropTable\",\"args\":{}}");
  /* A correct hash over the canonical args (keys sorted, no spaces). */
  char args[300], hash[65];
  snprintf(args, sizeof args,
           "{\"items\":[{\"product_id\":\"%s\",\"quantity\":2}],"
           "\"order_id\":\"%s\"}",
           d.product, oid);
  /* The contract's hash: hex SHA-256 of the canonical JSON. */
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)args, strlen(args));
  sodium_bin2hex(hash, sizeof hash, h, sizeof h);
  snprintf(good, sizeof good,
           "{\"id\":4,\"name\":\"createOrder\",\"hash\":\"%s\",\"args\":"
           "{\"order_id\": \"%s\", \"items\": [{\"quantity\": 2, "
           "\"product_id\": \"%s\"}]}}",
           hash, oid, d.product);
  char *four[] = {bad, unknown, noname, good};
  r = push(&d, four, 4);
  CK_HTTP_STATUS(r, 200);
  ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), 4);
  json_t *res = json_object_get(r->json, "results");
  const char *want[] = {"rejected", "rejected", "rejected", "applied"};
  for (size_t i = 0; i < 4; i++)
    ck_assert_msg(strcmp(harness_json_str(json_array_get(res, i), "status"),
                         want[i]) == 0,
                  "result %zu: %s", i, r->body);
  ck_assert_ptr_nonnull(
      strstr(harness_json_str(json_array_get(res, 0), "error"), "hash"));
  const char *err1 = harness_json_str(json_array_get(res, 1), "error");
  ck_assert_msg(strstr(err1, "product_id") != NULL, "%s", err1);
  ck_assert_ptr_null(json_object_get(json_array_get(res, 0), "server_id"));
  harness_http_free(r);
  ck_assert_int_eq(orders_of(d.t.id), 1);
  ck_assert_int_eq(orders_with_id(d.t.id, oid), 1);
  /* Staff may not push; a device may not touch another tenant's order. */
  r = call("POST", "/v1/sync/push", "{\"mutations\":[]}", d.t.owner_token,
           NULL);
  CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
}
END_TEST

/* The push run by push_thread. */
typedef struct bg_push {
  const dev *d;
  char *body;
  long status;
} bg_push;

static void *push_thread(void *arg) {
  bg_push *b = arg;
  const char *h[] = {NULL};
  harness_http_resp *r = harness_http_request(
      "POST", g_gw.http_port, "/v1/sync/push", b->body, b->d->token, h);
  b->status = r->status;
  harness_http_free(r);
  return NULL;
}

static char *g_sync_extra[12], *g_orders_extra[6];

/* Pushes 60 createOrder mutations of a fresh device in one request,
 * kill -9s the named part once some are applied, restarts it, and retries
 * the push until it is answered: every order exactly once. */
static void kill_mid_push(bool orders) {
  dev d;
  make_dev(&d, orders ? "killo" : "kill");
  enum { N = 60 };
  static char oids[N][UUID_STR_LEN + 1], muts[N][512];
  char *ptrs[N];
  for (int i = 0; i < N; i++) {
    uuid_v7_str(oids[i]);
    create_mutation(muts[i], sizeof muts[i], i + 1, oids[i], d.product);
    ptrs[i] = muts[i];
  }
  bg_push b = {.d = &d, .body = batch_body(ptrs, N)};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, push_thread, &b), 0);
  /* Mid-push: some applied, not all. */
  for (int64_t end = time_now_ms() + 30000;
       last_mutation_id(&d) < 1 && time_now_ms() < end;)
    time_sleep_ms(2);
  if (orders) {
    harness_signal(g_orders.proc, SIGKILL);
  } else {
    harness_signal(g_sync.proc, SIGKILL);
    harness_signal(g_sync2.proc, SIGKILL);
  }
  int64_t at_kill = last_mutation_id(&d);
  ck_assert_int_ge(at_kill, 1);
  pthread_join(th, NULL);
  /* How far the push got (a push that finished before the kill tests
   * less; the log says which happened). */
  fprintf(stderr, "kill -9 of %s with %lld of %d mutations recorded\n",
          orders ? "orders" : "sync", (long long)at_kill, N);
  if (orders)
    ck_assert(
        harness_service_restart(&g_orders, "orders", &kSvc, g_orders_extra));
  else {
    ck_assert(harness_service_restart(&g_sync, "sync", &kSvc, g_sync_extra));
    ck_assert(harness_service_restart(&g_sync2, "sync-2", &kSvc, g_sync_extra));
  }
  /* The device retries until the whole push is answered. */
  int64_t last = 0;
  for (int64_t end = time_now_ms() + 60000; last < N && time_now_ms() < end;) {
    resp *r = push(&d, ptrs, N);
    if (r->status == 200) last = harness_json_int(r->json, "last_mutation_id");
    harness_http_free(r);
    if (last < N) time_sleep_ms(200);
  }
  free(b.body);
  ck_assert_int_eq(last, N);
  ck_assert_int_eq(last_mutation_id(&d), N);
  ck_assert_int_eq(orders_of(d.t.id), N);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(orders_with_id(d.t.id, oids[i]), 1);
}

START_TEST(kill_9_of_sync_in_a_push_then_retry_is_exactly_once) {
  kill_mid_push(false);
}
END_TEST

START_TEST(kill_9_of_orders_in_a_push_then_retry_is_exactly_once) {
  kill_mid_push(true);
}
END_TEST

/* A status mutation's JSON. */
static void status_mutation(char *out, size_t cap, int64_t mid,
                            const char *name, const char *oid,
                            const char *status, int64_t base) {
  if (status != NULL)
    snprintf(out, cap,
             "{\"id\":%lld,\"name\":\"%s\",\"args\":{\"order_id\":\"%s\","
             "\"status\":\"%s\",\"base_version\":%lld}}",
             (long long)mid, name, oid, status, (long long)base);
  else
    snprintf(out, cap,
             "{\"id\":%lld,\"name\":\"%s\",\"args\":{\"order_id\":\"%s\","
             "\"base_version\":%lld}}",
             (long long)mid, name, oid, (long long)base);
}

/* d creates an order (its next mutation id mid); its id into oid. */
static void device_order(const dev *d, int64_t mid, char *oid) {
  char m[512];
  uuid_v7_str(oid);
  create_mutation(m, sizeof m, mid, oid, d->product);
  resp *r = push1(d, m);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(
      harness_json_str(json_array_get(json_object_get(r->json, "results"), 0),
                       "status"),
      "applied");
  harness_http_free(r);
}

/* The single result of a one-mutation push. */
static json_t *only_result(resp *r) {
  CK_HTTP_STATUS(r, 200);
  return json_array_get(json_object_get(r->json, "results"), 0);
}

START_TEST(two_devices_change_one_order_from_one_version) {
  dev a, b;
  make_dev(&a, "conf");
  second_dev(&a, &b);
  /* server_wins (the default). */
  char oid[UUID_STR_LEN + 1], m[512];
  device_order(&a, 1, oid);
  status_mutation(m, sizeof m, 2, "updateOrderStatus", oid, "confirmed", 1);
  resp *r = push1(&a, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
  ck_assert_int_eq(harness_json_int(only_result(r), "version"), 2);
  harness_http_free(r);
  status_mutation(m, sizeof m, 1, "cancelOrder", oid, NULL, 1);
  r = push1(&b, m);
  json_t *e = only_result(r);
  ck_assert_str_eq(harness_json_str(e, "status"), "conflict");
  ck_assert_int_eq(harness_json_int(e, "conflict.server_version"), 2);
  ck_assert_str_eq(harness_json_str(e, "conflict.server.status"), "confirmed");
  ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), 1);
  harness_http_free(r);
  /* Counted (sync_conflicts_total, on whichever replica took the push). */
  ck_assert_double_ge(conflicts_counted("server_wins", "server"), 1);
  /* The conflict consumed its id: the same push again is a duplicate. */
  r = push1(&b, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "duplicate");
  ck_assert_ptr_nonnull(json_object_get(only_result(r), "conflict"));
  harness_http_free(r);
  r = call("GET", "/v1/sync/conflicts", NULL, a.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "conflicts")), 0);
  harness_http_free(r);

  /* manual: the conflict is kept until staff resolve it. */
  r = call("PATCH", "/v1/sync/settings", "{\"conflict_policy\":\"manual\"}",
           a.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "conflict_policy"), "manual");
  harness_http_free(r);
  ck_assert_int_eq(status_of("PATCH", "/v1/sync/settings",
                             "{\"conflict_policy\":\"manual\"}", a.token),
                   403);
  char oid2[UUID_STR_LEN + 1];
  device_order(&a, 3, oid2);
  status_mutation(m, sizeof m, 4, "updateOrderStatus", oid2, "confirmed", 1);
  r = push1(&a, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
  harness_http_free(r);
  status_mutation(m, sizeof m, 2, "cancelOrder", oid2, NULL, 1);
  r = push1(&b, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "conflict");
  harness_http_free(r);
  ck_assert_double_ge(conflicts_counted("manual", "manual"), 1);
  r = call("GET", "/v1/sync/conflicts", NULL, a.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  json_t *list = json_object_get(r->json, "conflicts");
  ck_assert_uint_eq(json_array_size(list), 1);
  e = json_array_get(list, 0);
  ck_assert_str_eq(harness_json_str(e, "entity"), "order");
  ck_assert_str_eq(harness_json_str(e, "entity_id"), oid2);
  ck_assert_str_eq(harness_json_str(e, "device_id"), b.id);
  ck_assert_str_eq(harness_json_str(e, "client.status"), "cancelled");
  ck_assert_str_eq(harness_json_str(e, "server.status"), "confirmed");
  char cid[UUID_STR_LEN + 1], path[128];
  snprintf(cid, sizeof cid, "%s", harness_json_str(e, "id"));
  harness_http_free(r);
  /* Another tenant sees none of it. */
  tenant other;
  create_tenant(&other, "confo");
  r = call("GET", "/v1/sync/conflicts", NULL, other.owner_token, NULL);
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "conflicts")), 0);
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/sync/conflicts/%s/resolve", cid);
  ck_assert_int_eq(
      status_of("POST", path, "{\"choice\":\"client\"}", other.owner_token),
      404);
  /* The client's choice wins: the order is cancelled. */
  r = call("POST", path, "{\"choice\":\"client\"}", a.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "status"), "cancelled");
  ck_assert_str_eq(harness_json_str(r->json, "id"), oid2);
  harness_http_free(r);
  ck_assert_int_eq(
      status_of("POST", path, "{\"choice\":\"server\"}", a.t.owner_token), 404);
}
END_TEST

/* A change mutation with client_time hlc (its HLC). */
static void hlc_mutation(char *out, size_t cap, int64_t mid, const char *name,
                         const char *oid, const char *status, int64_t base,
                         const char *hlc) {
  char st[64] = "";
  if (status != NULL) snprintf(st, sizeof st, "\"status\":\"%s\",", status);
  snprintf(out, cap,
           "{\"id\":%lld,\"name\":\"%s\",\"client_time\":\"%s\",\"args\":{"
           "\"order_id\":\"%s\",%s\"base_version\":%lld}}",
           (long long)mid, name, hlc, oid, st, (long long)base);
}

static void order_state(const dev *d, const char *oid, char *out, size_t cap) {
  ck_assert(db_value("SELECT status || ':' || version FROM orders.orders "
                     "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                     d->t.id, oid, out, cap));
}

START_TEST(last_write_wins_picks_the_later_hlc) {
  dev a, b;
  make_dev(&a, "lww");
  second_dev(&a, &b);
  resp *r =
      call("PATCH", "/v1/sync/settings",
           "{\"conflict_policy\":\"last_write_wins\"}", a.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  char oid[UUID_STR_LEN + 1], m[640], v[32];
  device_order(&a, 1, oid);
  /* A confirms at 10:00:05 (counter 1): applied, version 2. */
  hlc_mutation(m, sizeof m, 2, "updateOrderStatus", oid, "confirmed", 1,
               "2026-12-06T10:00:05.000Z-0001-till-a");
  r = push1(&a, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
  harness_http_free(r);
  /* B cancelled from version 1 at 10:00:05 counter 0 - earlier by the
   * counter alone: the server's write stands (a conflict). */
  hlc_mutation(m, sizeof m, 1, "cancelOrder", oid, NULL, 1,
               "2026-12-06T10:00:05.000Z-0000-till-b");
  r = push1(&b, m);
  json_t *e = only_result(r);
  ck_assert_str_eq(harness_json_str(e, "status"), "conflict");
  ck_assert_int_eq(harness_json_int(e, "conflict.server_version"), 2);
  harness_http_free(r);
  order_state(&a, oid, v, sizeof v);
  ck_assert_str_eq(v, "confirmed:2");
  /* B again from version 1, later clock: B's change wins over A's. */
  hlc_mutation(m, sizeof m, 2, "updateOrderStatus", oid, "preparing", 1,
               "2026-12-06T10:00:09.000Z-0000-till-b");
  r = push1(&b, m);
  e = only_result(r);
  ck_assert_str_eq(harness_json_str(e, "status"), "applied");
  ck_assert_int_eq(harness_json_int(e, "version"), 3);
  harness_http_free(r);
  order_state(&a, oid, v, sizeof v);
  ck_assert_str_eq(v, "preparing:3");
  /* A's stale change from version 2 at 10:00:07 is older than B's. */
  hlc_mutation(m, sizeof m, 3, "cancelOrder", oid, NULL, 2,
               "2026-12-06T10:00:07.000Z-0000-till-a");
  r = push1(&a, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "conflict");
  harness_http_free(r);
  order_state(&a, oid, v, sizeof v);
  ck_assert_str_eq(v, "preparing:3");
  /* A write through the API carries the server's time: a device clock
   * from the morning loses to it, one from the future wins. */
  char path[128];
  snprintf(path, sizeof path, "/v1/orders/%s/status", oid);
  r = call("POST", path, "{\"status\":\"ready\",\"version\":3}",
           a.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  {
    hlc_mutation(m, sizeof m, 4, "updateOrderStatus", oid, "delivered", 3,
                 "2026-12-06T10:00:10.000Z-0000-till-a");
    r = push1(&a, m);
    ck_assert_str_eq(harness_json_str(only_result(r), "status"), "conflict");
    harness_http_free(r);
    hlc_mutation(m, sizeof m, 5, "updateOrderStatus", oid, "delivered", 3,
                 "2099-01-01T00:00:00.000Z-0000-till-a");
    r = push1(&a, m);
    ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
    harness_http_free(r);
    order_state(&a, oid, v, sizeof v);
    ck_assert_str_eq(v, "delivered:5");
  }
}
END_TEST

START_TEST(another_tenants_device_sees_nothing) {
  dev a, b;
  make_dev(&a, "isoa");
  make_dev(&b, "isob");
  char oid[UUID_STR_LEN + 1], m[512];
  device_order(&a, 1, oid);
  /* B's device on A's order: not found, exactly like no order. */
  status_mutation(m, sizeof m, 1, "updateOrderStatus", oid, "confirmed", 1);
  resp *r = push1(&b, m);
  json_t *e = only_result(r);
  ck_assert_str_eq(harness_json_str(e, "status"), "rejected");
  ck_assert_ptr_nonnull(strstr(harness_json_str(e, "error"), "NOT_FOUND"));
  harness_http_free(r);
  /* B's device reusing A's order id makes B's own order (ids are per
   * tenant); A's order is untouched. */
  char mc[512], v[32];
  create_mutation(mc, sizeof mc, 2, oid, b.product);
  r = push1(&b, mc);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
  harness_http_free(r);
  ck_assert_int_eq(orders_of(b.t.id), 1);
  ck_assert(db_value("SELECT status || ':' || version FROM orders.orders "
                     "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                     a.t.id, oid, v, sizeof v));
  ck_assert_str_eq(v, "pending:1");
  /* A's device token at B's address: refused before sync. */
  char xt[96];
  snprintf(xt, sizeof xt, "X-Tenant: %s", b.t.slug);
  r = call("POST", "/v1/sync/push", "{\"mutations\":[]}", a.token, xt);
  ck_assert_int_ge(r->status, 400);
  harness_http_free(r);
}
END_TEST

/* ------------------------------------------------------------- pull --- */

/* Issue 11: a pull from cursor 0 after 1,000 changes. */
#define PULL_ORDERS 364

/* GET /v1/sync/pull?cursor=&limit= as token. */
static resp *pull(const char *token, int64_t cursor, int limit) {
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/pull?cursor=%lld&limit=%d",
           (long long)cursor, limit);
  return call("GET", path, NULL, token, NULL);
}

/* Pushes mutations[0..n) (ids 1..n of a fresh device) in batches of 50;
 * they must all be applied. */
static void push_all(const dev *d, char **muts, size_t n) {
  for (size_t b = 0; b < n; b += 50) {
    size_t k = n - b < 50 ? n - b : 50;
    resp *r = push(d, &muts[b], k);
    CK_HTTP_STATUS(r, 200);
    /* A fresh device: ids from 1. */
    ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"),
                     (int64_t)(b + k));
    json_t *res = json_object_get(r->json, "results");
    for (size_t i = 0; i < json_array_size(res); i++)
      ck_assert_msg(strcmp(harness_json_str(json_array_get(res, i), "status"),
                           "applied") == 0,
                    "%s", r->body);
    harness_http_free(r);
  }
}

START_TEST(pull_from_zero_returns_each_order_once_newest_in_order) {
  dev d;
  make_dev(&d, "pull");
  static char oids[PULL_ORDERS][UUID_STR_LEN + 1];
  static char muts[4 * PULL_ORDERS][512];
  char *ptrs[4 * PULL_ORDERS];
  size_t n = 0;
  /* 364 orders; every one confirmed, every 2nd preparing, every 4th
   * ready: 1,001 changes of 364 entities. */
  for (int i = 0; i < PULL_ORDERS; i++) {
    uuid_v7_str(oids[i]);
    create_mutation(muts[n], sizeof muts[n], (int64_t)n + 1, oids[i],
                    d.product);
    ptrs[n] = muts[n];
    n++;
  }
  const char *steps[] = {"confirmed", "preparing", "ready"};
  int every[] = {1, 2, 4};
  for (int s = 0; s < 3; s++)
    for (int i = 0; i < PULL_ORDERS; i += every[s]) {
      status_mutation(muts[n], sizeof muts[n], (int64_t)n + 1,
                      "updateOrderStatus", oids[i], steps[s], s + 1);
      ptrs[n] = muts[n];
      n++;
    }
  push_all(&d, ptrs, n);
  /* Staff change the menu and the tables too: a table, and a product
   * made and deleted. */
  resp *r =
      call("POST", "/v1/tables", "{\"label\":\"T1\"}", d.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 201);
  char table[UUID_STR_LEN + 1], gone[UUID_STR_LEN + 1], path[96];
  snprintf(table, sizeof table, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
  product_of(&d.t, gone);
  snprintf(path, sizeof path, "/v1/products/%s", gone);
  ck_assert_int_eq(status_of("DELETE", path, NULL, d.t.owner_token), 204);
  /* Pages of 40 from 0: each entity once, seq growing, newest version. */
  int seen[PULL_ORDERS] = {0}, others = 0;
  int64_t cursor = 0, prev = 0;
  int pages = 0, total = 0;
  /* Each pull is counted in the lag histogram (the tests' pulls may run
   * on either replica; other cases' pulls do not run meanwhile). */
  double lag0 =
      harness_metric(g_sync.admin_port, "sync_pull_lag_changes_count") +
      harness_metric(g_sync2.admin_port, "sync_pull_lag_changes_count");
  for (;;) {
    r = pull(d.token, cursor, 40);
    CK_HTTP_STATUS(r, 200);
    ck_assert(!json_is_true(json_object_get(r->json, "reset")));
    ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), (long)n);
    json_t *ch = json_object_get(r->json, "changes");
    ck_assert_uint_le(json_array_size(ch), 40);
    for (size_t i = 0; i < json_array_size(ch); i++) {
      json_t *c = json_array_get(ch, i);
      int64_t seq = harness_json_int(c, "seq");
      ck_assert_int_gt(seq, prev);
      prev = seq;
      const char *id = harness_json_str(c, "id");
      const char *entity = harness_json_str(c, "entity");
      total++;
      if (strcmp(entity, "order") != 0) {
        others++;
        if (strcmp(id, gone) == 0) { /* deleted: no data */
          ck_assert_str_eq(harness_json_str(c, "op"), "delete");
          ck_assert(json_is_null(json_object_get(c, "data")));
        } else if (strcmp(entity, "table") == 0) {
          ck_assert_str_eq(id, table);
          ck_assert_str_eq(harness_json_str(c, "data.label"), "T1");
        } else {
          ck_assert_str_eq(id, d.product);
          ck_assert_str_eq(harness_json_str(c, "data.name"), "Soup");
        }
        continue;
      }
      ck_assert_str_eq(harness_json_str(c, "op"), "upsert");
      int k = -1;
      for (int j = 0; j < PULL_ORDERS; j++)
        if (strcmp(oids[j], id) == 0) k = j;
      ck_assert_int_ge(k, 0);
      seen[k]++;
      int64_t want = 2 + (k % 2 == 0) + (k % 4 == 0);
      ck_assert_int_eq(harness_json_int(c, "version"), want);
      ck_assert_int_eq(harness_json_int(c, "data.version"), want);
      ck_assert_str_eq(harness_json_str(c, "data.id"), id);
      ck_assert_str_eq(harness_json_str(c, "data.status"), k % 4 == 0 ? "ready"
                                                           : k % 2 == 0
                                                               ? "preparing"
                                                               : "confirmed");
    }
    cursor = harness_json_int(r->json, "cursor");
    bool more = json_is_true(json_object_get(r->json, "has_more"));
    harness_http_free(r);
    pages++;
    if (!more) break;
  }
  double lag1 =
      harness_metric(g_sync.admin_port, "sync_pull_lag_changes_count") +
      harness_metric(g_sync2.admin_port, "sync_pull_lag_changes_count");
  ck_assert_int_eq((long)(lag1 - lag0), pages);
  ck_assert_int_eq(others, 3); /* the product, the table, the deleted one */
  ck_assert_int_eq(total, PULL_ORDERS + 3);
  ck_assert_int_ge(pages, 3);
  for (int j = 0; j < PULL_ORDERS; j++) ck_assert_int_eq(seen[j], 1);
  /* Up to date: nothing more; staff pull too. */
  r = pull(d.token, cursor, 40);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "changes")), 0);
  ck_assert_int_eq(harness_json_int(r->json, "cursor"), cursor);
  harness_http_free(r);
  r = pull(d.t.owner_token, 0, 1000);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "changes")),
                    PULL_ORDERS + 3);
  ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), 0);
  harness_http_free(r);
  /* A change moves its entity to the end. */
  char m[512];
  status_mutation(m, sizeof m, (int64_t)n + 1, "cancelOrder", oids[1], NULL, 2);
  r = push1(&d, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
  harness_http_free(r);
  r = pull(d.token, cursor, 40);
  json_t *ch = json_object_get(r->json, "changes");
  ck_assert_uint_eq(json_array_size(ch), 1);
  ck_assert_str_eq(harness_json_str(json_array_get(ch, 0), "id"), oids[1]);
  ck_assert_str_eq(harness_json_str(json_array_get(ch, 0), "data.status"),
                   "cancelled");
  harness_http_free(r);
  /* Bounds. */
  r = pull(d.token, 0, 1001);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);
  r = pull(d.token, -1, 10);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);

  /* Another tenant: sees none of these, and this tenant's cursor is not
   * one of its own (reset). */
  dev other;
  make_dev(&other, "pullo");
  r = pull(other.token, 0, 1000);
  CK_HTTP_STATUS(r, 200);
  ch = json_object_get(r->json, "changes");
  ck_assert_uint_eq(json_array_size(ch), 1); /* its own product only */
  ck_assert_str_eq(harness_json_str(json_array_get(ch, 0), "id"),
                   other.product);
  harness_http_free(r);
  r = pull(other.token, cursor, 10);
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_true(json_object_get(r->json, "reset")));
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "changes")), 0);
  harness_http_free(r);
}
END_TEST

/* Moves the tenant's rows of table (sync.mutations, orders.changes: its
 * time column col) `ago` into the past, as superuser: what the retention
 * rounds see after that much time. */
static void age_rows(const char *table, const char *col, const char *tid,
                     const char *ago) {
  char sql[256], n[32];
  snprintf(sql, sizeof sql,
           "WITH u AS (UPDATE %s SET %s = now() - $2::interval WHERE "
           "tenant_id = $1::uuid RETURNING 1) SELECT count(*)::text FROM u",
           table, col);
  ck_assert(db_value(sql, tid, ago, n, sizeof n));
  ck_assert_int_gt(num(n), 0);
}

/* Waits (generously) until pull(token, cursor) answers reset as want. */
static bool wait_reset(const char *token, int64_t cursor, bool want) {
  for (int64_t end = time_now_ms() + 30000; time_now_ms() < end;) {
    resp *r = pull(token, cursor, 10);
    bool ok = r->status == 200 &&
              json_is_true(json_object_get(r->json, "reset")) == want;
    harness_http_free(r);
    if (ok) return true;
    time_sleep_ms(100);
  }
  return false;
}

/* The ids of a pull from 0 (one page of up to 1000) into a JSON array. */
static json_t *pulled_ids(const char *token) {
  resp *r = pull(token, 0, 1000);
  CK_HTTP_STATUS(r, 200);
  json_t *ids = json_array();
  json_t *ch = json_object_get(r->json, "changes");
  for (size_t i = 0; i < json_array_size(ch); i++)
    json_array_append_new(
        ids, json_string(harness_json_str(json_array_get(ch, i), "id")));
  harness_http_free(r);
  return ids;
}

static bool has_id(const json_t *ids, const char *id) {
  for (size_t i = 0; i < json_array_size(ids); i++)
    if (strcmp(json_string_value(json_array_get(ids, i)), id) == 0) return true;
  return false;
}

/* Orders prunes the log rows of finished entities (a cancelled order, a
 * deleted product) older than ORDERS_CHANGES_RETENTION (30 days): a
 * cursor from before them is told to reset; a reload from 0 still has
 * every live entity; a cursor after them goes on. */
START_TEST(a_cursor_older_than_the_kept_log_is_told_to_reset) {
  dev d;
  make_dev(&d, "prune");
  char open_o[UUID_STR_LEN + 1], done_o[UUID_STR_LEN + 1],
      gone[UUID_STR_LEN + 1];
  uuid_v7_str(open_o);
  uuid_v7_str(done_o);
  static char muts[3][512];
  create_mutation(muts[0], sizeof muts[0], 1, open_o, d.product);
  create_mutation(muts[1], sizeof muts[1], 2, done_o, d.product);
  status_mutation(muts[2], sizeof muts[2], 3, "cancelOrder", done_o, NULL, 1);
  char *ptrs[] = {muts[0], muts[1], muts[2]};
  push_all(&d, ptrs, 3);
  product_of(&d.t, gone);
  char path[96];
  snprintf(path, sizeof path, "/v1/products/%s", gone);
  ck_assert_int_eq(status_of("DELETE", path, NULL, d.t.owner_token), 204);
  /* The newest cursor, and one from the start (the first product). */
  resp *r = pull(d.token, 0, 1000);
  CK_HTTP_STATUS(r, 200);
  int64_t newest = harness_json_int(r->json, "cursor");
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "changes")), 4);
  harness_http_free(r);
  ck_assert(wait_reset(d.token, 1, false));
  /* Recent changes are kept however finished their entities are. */
  time_sleep_ms(600); /* three prune rounds; nothing may go */
  json_t *ids = pulled_ids(d.token);
  ck_assert_uint_eq(json_array_size(ids), 4);
  json_decref(ids);
  /* 31 days later (this tenant's rows only). */
  age_rows("orders.changes", "changed_at", d.t.id, "31 days");
  ck_assert(wait_reset(d.token, 1, true));
  ids = pulled_ids(d.token);
  ck_assert_msg(has_id(ids, open_o) && has_id(ids, d.product) &&
                    !has_id(ids, done_o) && !has_id(ids, gone),
                "kept: %s", json_dumps(ids, JSON_COMPACT));
  ck_assert_uint_eq(json_array_size(ids), 2);
  json_decref(ids);
  /* A cursor that saw the pruned changes is not told to reset. */
  r = pull(d.token, newest, 10);
  CK_HTTP_STATUS(r, 200);
  ck_assert(!json_is_true(json_object_get(r->json, "reset")));
  ck_assert_uint_eq(json_array_size(json_object_get(r->json, "changes")), 0);
  harness_http_free(r);
  /* Another tenant's log is untouched. */
  dev other;
  make_dev(&other, "pruneo");
  ids = pulled_ids(other.token);
  ck_assert_uint_eq(json_array_size(ids), 1);
  json_decref(ids);
  ck_assert(wait_reset(other.token, 1, false));
}
END_TEST

/* Mutation records older than SYNC_MUTATIONS_RETENTION (7 days) go; a
 * retried push of such an id is still a duplicate, never applied
 * again, only without its first result. */
START_TEST(old_mutation_records_are_pruned_and_retries_stay_duplicates) {
  dev d;
  make_dev(&d, "mutret");
  char oid[UUID_STR_LEN + 1], m[512], n[32];
  uuid_v7_str(oid);
  create_mutation(m, sizeof m, 1, oid, d.product);
  resp *r = push1(&d, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "applied");
  harness_http_free(r);
  /* Kept while young: the retry gets its first result. */
  time_sleep_ms(600);
  r = push1(&d, m);
  ck_assert_str_eq(harness_json_str(only_result(r), "status"), "duplicate");
  ck_assert_str_eq(harness_json_str(only_result(r), "server_id"), oid);
  harness_http_free(r);
  age_rows("sync.mutations", "created_at", d.t.id, "8 days");
  bool gone = false;
  for (int64_t end = time_now_ms() + 30000; !gone && time_now_ms() < end;) {
    ck_assert(db_value("SELECT count(*)::text FROM sync.mutations WHERE "
                       "tenant_id = $1::uuid AND device_id = $2::uuid",
                       d.t.id, d.id, n, sizeof n));
    gone = num(n) == 0;
    if (!gone) time_sleep_ms(100);
  }
  ck_assert(gone);
  r = push1(&d, m);
  json_t *res = only_result(r);
  ck_assert_str_eq(harness_json_str(res, "status"), "duplicate");
  ck_assert_ptr_null(json_object_get(res, "server_id"));
  ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), 1);
  harness_http_free(r);
  ck_assert(db_value("SELECT count(*)::text FROM orders.orders WHERE "
                     "tenant_id = $1::uuid AND id = $2::uuid",
                     d.t.id, oid, n, sizeof n));
  ck_assert_int_eq(num(n), 1);
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

/* ------------------------------------------------------------ files --- */

/* The system runs with SYNC_FILES_TTL=20s (6 s let the quota test's
 * 25 MiB file expire mid-test on a machine at load 25+), SYNC_FILES_SWEEP=200ms
 * and SYNC_FILES_QUOTA_BYTES=40 MiB (start_system). */
#define FILES_QUOTA (40L * 1024 * 1024)

/* n random bytes (NULs included) and their hex SHA-256. */
static char *random_file(size_t n, char hex[65]) {
  char *b = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(b);
  randombytes_buf(b, n);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)b, n);
  sodium_bin2hex(hex, 65, h, sizeof h);
  return b;
}

static resp *put_file(const char *token, const char *name, const char *data,
                      size_t n) {
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", name);
  const char *h[] = {"Content-Type: application/octet-stream", NULL};
  resp *r = harness_http_request_bytes("PUT", g_gw.http_port, path, data, n,
                                       token, h);
  ck_assert_msg(r->curl_rc == 0, "PUT %s: no answer", path);
  return r;
}

static long file_status(const char *method, const char *token,
                        const char *name) {
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", name);
  return status_of(method, path, NULL, token);
}

/* Rows of sync.files of tenant tid (past RLS). */
/* The number sql (its $1 the tenant id, $2 unused) gives for tenant
 * tid, past RLS; 0 without a row. */
static long tenant_number(const char *sql, const char *tid) {
  char n[32];
  return db_value(sql, tid, "x", n, sizeof n) ? (long)num(n) : 0;
}

static long files_of(const char *tid) {
  return tenant_number("SELECT count(*) FROM sync.files WHERE tenant_id = "
                       "$1::uuid AND $2 = $2",
                       tid);
}

START_TEST(files_round_trip_and_a_wrong_hash_stores_nothing) {
  dev d;
  make_dev(&d, "fil");
  char hex[65], other[65];
  char *data = random_file(100 * 1024, hex);
  char *lie = random_file(1000, other);
  /* The device uploads: 201 {sha256, size}; again: 200. */
  resp *r = put_file(d.token, hex, data, 100 * 1024);
  CK_HTTP_STATUS(r, 201);
  ck_assert_str_eq(harness_json_str(r->json, "sha256"), hex);
  ck_assert_int_eq(harness_json_int(r->json, "size"), 100 * 1024);
  ck_assert_ptr_null(harness_json_get(r->json, "existed"));
  harness_http_free(r);
  r = put_file(d.t.owner_token, hex, data, 100 * 1024);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  /* Staff read the bytes back exactly; HEAD says it is there. */
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", hex);
  r = call("GET", path, NULL, d.t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(r->len, 100 * 1024);
  ck_assert(memcmp(r->body, data, r->len) == 0);
  ck_assert_str_eq(harness_http_header(r, "Content-Type"),
                   "application/octet-stream");
  harness_http_free(r);
  ck_assert_int_eq(file_status("HEAD", d.token, hex), 200);
  /* Bytes whose hash is not the name: 400 naming content, nothing
   * stored under either name. */
  r = put_file(d.token, other, data, 1000);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "content"));
  harness_http_free(r);
  ck_assert_int_eq(file_status("GET", d.token, other), 404);
  ck_assert_int_eq(files_of(d.t.id), 1);
  /* A bad name, JSON instead of bytes, no token. */
  r = put_file(d.token, "ABC", data, 10);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "sha256"));
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/sync/files/%s", other);
  ck_assert_int_eq(status_of("PUT", path, "{}", d.token), 415);
  ck_assert_int_eq(file_status("GET", NULL, hex), 401);
  ck_assert_int_eq(files_of(d.t.id), 1);
  free(data);
  free(lie);
}
END_TEST

START_TEST(missing_lists_only_what_is_absent) {
  dev d;
  make_dev(&d, "mis");
  char a[65], b[65], c[65], x[65];
  char *da = random_file(10, a), *db = random_file(20, b),
       *dc = random_file(30, c), *dx = random_file(40, x);
  resp *r = put_file(d.token, a, da, 10);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  r = put_file(d.token, b, db, 20);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  char body[512];
  snprintf(body, sizeof body,
           "{\"hashes\":[\"%s\",\"%s\",\"%s\",\"%s\",\"%s\"]}", a, c, b, c, x);
  r = call("POST", "/v1/sync/files/missing", body, d.token, NULL);
  CK_HTTP_STATUS(r, 200);
  json_t *m = harness_json_get(r->json, "missing");
  ck_assert_uint_eq(json_array_size(m), 2);
  ck_assert_str_eq(json_string_value(json_array_get(m, 0)), c);
  ck_assert_str_eq(json_string_value(json_array_get(m, 1)), x);
  harness_http_free(r);
  /* A malformed hash is named; more than 1000 are refused. */
  snprintf(body, sizeof body, "{\"hashes\":[\"%s\",\"nothex\"]}", a);
  r = call("POST", "/v1/sync/files/missing", body, d.token, NULL);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "hashes[1]"));
  harness_http_free(r);
  size_t cap = 1001 * 68 + 32;
  char *big = malloc(cap);
  size_t n = (size_t)snprintf(big, cap, "{\"hashes\":[");
  for (int i = 0; i < 1001; i++)
    n += (size_t)snprintf(big + n, cap - n, "%s\"%s\"", i ? "," : "", a);
  snprintf(big + n, cap - n, "]}");
  r = call("POST", "/v1/sync/files/missing", big, d.token, NULL);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);
  free(big);
  free(da);
  free(db);
  free(dc);
  free(dx);
}
END_TEST

START_TEST(another_tenant_sees_nothing_of_a_file) {
  dev a, b;
  make_dev(&a, "fia");
  make_dev(&b, "fib");
  char hex[65], body[128];
  char *data = random_file(5000, hex);
  resp *r = put_file(a.token, hex, data, 5000);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  /* Same hash, other tenant: absent everywhere. */
  ck_assert_int_eq(file_status("GET", b.token, hex), 404);
  ck_assert_int_eq(file_status("HEAD", b.t.owner_token, hex), 404);
  snprintf(body, sizeof body, "{\"hashes\":[\"%s\"]}", hex);
  r = call("POST", "/v1/sync/files/missing", body, b.token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(harness_json_get(r->json, "missing")), 1);
  harness_http_free(r);
  /* A's token at B's address is refused before sync. */
  char path[128], xt[96];
  snprintf(path, sizeof path, "/v1/sync/files/%s", hex);
  snprintf(xt, sizeof xt, "X-Tenant: %s", b.t.slug);
  r = call("GET", path, NULL, a.token, xt);
  ck_assert_int_ne(r->status, 200);
  harness_http_free(r);
  /* B uploading the same bytes makes B's own copy (201, not 200). */
  r = put_file(b.token, hex, data, 5000);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  ck_assert_int_eq(files_of(a.t.id), 1);
  ck_assert_int_eq(files_of(b.t.id), 1);
  free(data);
}
END_TEST

START_TEST(the_quota_and_the_25_mib_cap_hold) {
  dev d;
  make_dev(&d, "quo");
  char big[65], mid[65], small[65], over[65];
  size_t nbig = 25u * 1024 * 1024, nmid = 16u * 1024 * 1024,
         nsmall = 10u * 1024 * 1024, nover = 25u * 1024 * 1024 + 1;
  char *dbig = random_file(nbig, big), *dmid = random_file(nmid, mid),
       *dsmall = random_file(nsmall, small), *dover = random_file(nover, over);
  /* One byte over 25 MiB: 413 from the gateway, nothing stored. */
  resp *r = put_file(d.token, over, dover, nover);
  ck_assert_int_eq(r->status, 413);
  harness_http_free(r);
  /* Exactly 25 MiB: stored and read back whole. */
  r = put_file(d.token, big, dbig, nbig);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", big);
  r = call("GET", path, NULL, d.token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(r->len, nbig);
  ck_assert(memcmp(r->body, dbig, nbig) == 0);
  harness_http_free(r);
  /* 25 + 16 MiB is over the 40 MiB quota: refused, nothing stored. */
  r = put_file(d.token, mid, dmid, nmid);
  CK_HTTP_ERROR(r, 400, "FAILED_PRECONDITION");
  harness_http_free(r);
  ck_assert_int_eq(file_status("HEAD", d.token, mid), 404);
  /* 25 + 10 MiB fits. */
  r = put_file(d.token, small, dsmall, nsmall);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  char used[32];
  ck_assert(db_value("SELECT bytes FROM sync.file_usage WHERE tenant_id = "
                     "$1::uuid AND $2 = $2",
                     d.t.id, "x", used, sizeof used));
  ck_assert_int_eq((long)num(used), (long)(nbig + nsmall));
  ck_assert_int_eq(files_of(d.t.id), 2);
  free(dbig);
  free(dmid);
  free(dsmall);
  free(dover);
}
END_TEST

START_TEST(expiry_removes_an_unused_file_and_keeps_a_used_one) {
  dev d;
  make_dev(&d, "exp");
  char unused[65], kept[65];
  char *du = random_file(3000, unused), *dk = random_file(4000, kept);
  resp *r = put_file(d.token, unused, du, 3000);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  r = put_file(d.token, kept, dk, 4000);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  /* Keep using one (reads, manifests) while the TTL (20 s) passes for the
   * other; the sweep runs every 200 ms on both replicas. */
  char path[128], body[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", unused);
  snprintf(body, sizeof body, "{\"hashes\":[\"%s\"]}", kept);
  bool gone = false;
  for (int64_t end = time_now_ms() + 90000; !gone && time_now_ms() < end;) {
    long k = file_status("HEAD", d.token, kept);
    ck_assert_int_eq(k, 200);
    resp *m = call("POST", "/v1/sync/files/missing", body, d.token, NULL);
    CK_HTTP_STATUS(m, 200);
    ck_assert_uint_eq(json_array_size(harness_json_get(m->json, "missing")), 0);
    harness_http_free(m);
    char n[32];
    ck_assert(db_value("SELECT count(*) FROM sync.files WHERE tenant_id = "
                       "$1::uuid AND sha256 = decode($2, 'hex')",
                       d.t.id, unused, n, sizeof n));
    gone = num(n) == 0;
    if (!gone) time_sleep_ms(300);
  }
  ck_assert_msg(gone, "the unused file was not removed within 90 s");
  ck_assert_int_eq(status_of("GET", path, NULL, d.token), 404);
  ck_assert_int_eq(file_status("GET", d.token, kept), 200);
  char used[32];
  ck_assert(db_value("SELECT bytes FROM sync.file_usage WHERE tenant_id = "
                     "$1::uuid AND $2 = $2",
                     d.t.id, "x", used, sizeof used));
  ck_assert_int_eq((long)num(used), 4000);
  free(du);
  free(dk);
}
END_TEST

/* Streaming (issue 11): the gateway sends an upload to sync in parts of
 * 256 KiB as they arrive, and reads a download back part by part. */

/* Bytes of tenant tid's staged upload parts; its unfinished uploads; the
 * bytes counted against its quota. */
static long staged_bytes(const char *tid) {
  return tenant_number("SELECT coalesce(sum(length(data)), 0) FROM "
                       "sync.upload_parts WHERE tenant_id = $1::uuid AND "
                       "$2 = $2",
                       tid);
}

static long uploads_of(const char *tid) {
  return tenant_number("SELECT count(*) FROM sync.uploads WHERE tenant_id = "
                       "$1::uuid AND stored_at IS NULL AND $2 = $2",
                       tid);
}

static long usage_of(const char *tid) {
  return tenant_number("SELECT bytes FROM sync.file_usage WHERE tenant_id = "
                       "$1::uuid AND $2 = $2",
                       tid);
}

/* A raw connection to the gateway that has sent head (the request's
 * headers and the blank line). */
static int gateway_socket(const char *head) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)g_gw.http_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(send(fd, head, strlen(head), MSG_NOSIGNAL),
                   (ssize_t)strlen(head));
  return fd;
}

START_TEST(a_large_file_streams_both_ways_byte_for_byte) {
  dev d;
  make_dev(&d, "str");
  char hex[65];
  size_t n = 3u * 1024 * 1024 + 5; /* 13 parts, the last of 5 bytes */
  char *data = random_file(n, hex);
  resp *r = put_file(d.token, hex, data, n);
  CK_HTTP_STATUS(r, 201);
  ck_assert_str_eq(harness_json_str(r->json, "sha256"), hex);
  ck_assert_int_eq(harness_json_int(r->json, "size"), (long)n);
  /* The answer is the public shape: no part bookkeeping in it. */
  ck_assert_ptr_null(harness_json_get(r->json, "done"));
  ck_assert_ptr_null(harness_json_get(r->json, "received"));
  harness_http_free(r);
  ck_assert_int_eq(files_of(d.t.id), 1);
  ck_assert_int_eq(staged_bytes(d.t.id), 0); /* parts gone once stored */
  ck_assert_int_eq(uploads_of(d.t.id), 0);
  ck_assert_int_eq(usage_of(d.t.id), (long)n);
  /* Read back part by part: every byte, in order, Content-Length whole. */
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", hex);
  r = call("GET", path, NULL, d.token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(r->len, n);
  ck_assert(memcmp(r->body, data, n) == 0);
  ck_assert_str_eq(harness_http_header(r, "Content-Length"), "3145733");
  harness_http_free(r);
  /* HEAD: the size, no bytes. */
  r = call("HEAD", path, NULL, d.token, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(r->len, 0);
  ck_assert_str_eq(harness_http_header(r, "Content-Length"), "3145733");
  harness_http_free(r);
  /* The same file again: 200, the body read and dropped, usage once. */
  r = put_file(d.token, hex, data, n);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  ck_assert_int_eq(usage_of(d.t.id), (long)n);
  free(data);
}
END_TEST

START_TEST(an_upload_reaches_sync_before_its_body_ends) {
  dev d;
  make_dev(&d, "half");
  char hex[65];
  size_t n = 3u * 1024 * 1024;
  char *data = random_file(n, hex);
  char head[PASETO_TOKEN_MAX + 512];
  snprintf(head, sizeof head,
           "PUT /v1/sync/files/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer %s\r\nContent-Type: "
           "application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
           hex, d.token, n);
  int fd = gateway_socket(head);
  /* A third of the body, then the client stalls: the parts it filled
   * are already in sync's staging table (the gateway did not wait for
   * the whole body, and holds at most one part of it). */
  size_t sent = n / 3;
  ck_assert_int_eq(send(fd, data, sent, MSG_NOSIGNAL), (ssize_t)sent);
  long staged = 0;
  for (int64_t end = time_now_ms() + 30000;
       staged < 3 * 256 * 1024 && time_now_ms() < end;) {
    staged = staged_bytes(d.t.id);
    if (staged < 3 * 256 * 1024) time_sleep_ms(50);
  }
  ck_assert_int_ge(staged, 3 * 256 * 1024);
  ck_assert_int_le(staged, (long)sent);
  ck_assert_int_eq(files_of(d.t.id), 0);
  /* The client goes away: nothing is stored; the staged upload is left
   * for sync's janitor (SYNC_UPLOAD_IDLE), which its own test covers. */
  close(fd);
  time_sleep_ms(300);
  ck_assert_int_eq(files_of(d.t.id), 0);
  ck_assert_int_eq(file_status("HEAD", d.token, hex), 404);
  /* The whole file later, as a new upload: stored once. */
  resp *r = put_file(d.token, hex, data, n);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  ck_assert_int_eq(files_of(d.t.id), 1);
  free(data);
}
END_TEST

/* Uploads held open part way: what the gateway holds of each is a part,
 * not what was sent. UP_CONNS uploads of UP_SIZE announced (their
 * reservations fit the 40 MiB quota), UP_SENT bytes of each sent (18
 * full parts), then the gateway's RSS is compared with its RSS after a
 * warm-up upload. Buffering the bodies would add UP_CONNS x UP_SENT
 * (31.5 MiB); parts add at most a part per upload plus allocator slack,
 * well under UP_RSS_MAX_KB. */
#define UP_CONNS 7
#define UP_SIZE (5u * 1024 * 1024)
#define UP_SENT (18u * 256 * 1024)
#define UP_RSS_MAX_KB (10 * 1024)

START_TEST(open_uploads_cost_the_gateway_a_part_each) {
  dev d;
  make_dev(&d, "mem");
  char hex[65];
  char *data = random_file(UP_SIZE, hex);
  resp *r = put_file(d.token, hex, data, UP_SIZE); /* warm-up: pools, arenas */
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  long before = harness_rss_kb(g_gw.proc);
  ck_assert_int_gt(before, 0);
  int fds[UP_CONNS];
  for (int i = 0; i < UP_CONNS; i++) {
    char name[65], head[PASETO_TOKEN_MAX + 512];
    randombytes_buf(data, 32); /* another name each (never stored) */
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)data, 64);
    sodium_bin2hex(name, sizeof name, h, sizeof h);
    snprintf(head, sizeof head,
             "PUT /v1/sync/files/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Authorization: Bearer %s\r\nContent-Type: "
             "application/octet-stream\r\nContent-Length: %u\r\n\r\n",
             name, d.token, UP_SIZE);
    fds[i] = gateway_socket(head);
    size_t off = 0;
    while (off < UP_SENT) {
      ssize_t w = send(fds[i], data + off, UP_SENT - off, MSG_NOSIGNAL);
      ck_assert_int_gt(w, 0);
      off += (size_t)w;
    }
  }
  /* Every full part has reached sync: the gateway holds none of them. */
  long want = (long)UP_CONNS * UP_SENT, staged = 0;
  for (int64_t end = time_now_ms() + 60000;
       staged < want && time_now_ms() < end;) {
    staged = staged_bytes(d.t.id);
    if (staged < want) time_sleep_ms(50);
  }
  ck_assert_int_eq(staged, want);
  long during = harness_rss_kb(g_gw.proc);
  printf("sync_itest: gateway VmRSS %ld KiB, %ld KiB with %d uploads of "
         "%u KiB held open after %u KiB each (+%ld KiB; bound +%d KiB, "
         "bodies buffered: +%u KiB)\n",
         before, during, UP_CONNS, UP_SIZE / 1024, UP_SENT / 1024,
         during - before, UP_RSS_MAX_KB, UP_CONNS * UP_SENT / 1024);
  for (int i = 0; i < UP_CONNS; i++) close(fds[i]);
  ck_assert_int_le(during - before, UP_RSS_MAX_KB);
  free(data);
}
END_TEST

START_TEST(a_wrong_hash_on_a_streamed_upload_leaves_nothing) {
  dev d;
  make_dev(&d, "lie");
  char hex[65], other[65];
  size_t n = 1024u * 1024 + 7;
  char *data = random_file(n, hex);
  char *lie = random_file(10, other);
  long before = usage_of(d.t.id);
  resp *r = put_file(d.token, other, data, n);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "content"));
  harness_http_free(r);
  /* No file, no staged part, no upload, the reservation given back. */
  ck_assert_int_eq(files_of(d.t.id), 0);
  ck_assert_int_eq(staged_bytes(d.t.id), 0);
  ck_assert_int_eq(uploads_of(d.t.id), 0);
  ck_assert_int_eq(usage_of(d.t.id), before);
  ck_assert_int_eq(file_status("HEAD", d.token, other), 404);
  /* A chunked upload has no size to reserve: 411 before any byte. */
  char head[PASETO_TOKEN_MAX + 512];
  snprintf(head, sizeof head,
           "PUT /v1/sync/files/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer %s\r\nContent-Type: "
           "application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
           hex, d.token);
  int fd = gateway_socket(head);
  char buf[512] = {0};
  ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
  ck_assert_int_gt(got, 12);
  ck_assert_msg(strncmp(buf, "HTTP/1.1 411", 12) == 0, "%s", buf);
  close(fd);
  /* The part fields are the gateway's: a client cannot set them. */
  char path[160];
  snprintf(path, sizeof path, "/v1/sync/files/%s?offset=5", hex);
  r = call("GET", path, NULL, d.token, NULL);
  ck_assert_int_eq(r->status, 400);
  harness_http_free(r);
  free(data);
  free(lie);
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
  /* The change log is pruned every 200 ms here (30 days' retention: the
   * retention test ages its own tenant's rows). */
  char *ord_extra[] = {strdup(a), strdup(t), "ORDERS_JANITOR_INTERVAL=200ms",
                       "ORDERS_CHANGES_PRUNE_EVERY=200ms", NULL};
  memcpy(g_orders_extra, ord_extra, sizeof ord_extra);
  if (!harness_service_start(&g_orders, "orders", "services/orders/orders",
                             &kSvc, ord_extra))
    return false;
  snprintf(o, sizeof o, "ORDERS_ADDR=%s", g_orders.rpc_url);
  char *sync_extra[] = {strdup(a),
                        strdup(o),
                        PEPPER,
                        "SYNC_HEARTBEAT_INTERVAL=2s",
                        "SYNC_HEARTBEAT_FLUSH=100ms",
                        "SYNC_FILES_TTL=20s",
                        "SYNC_FILES_SWEEP=200ms",
                        "SYNC_FILES_QUOTA_BYTES=41943040",
                        "SYNC_RETENTION_SWEEP=200ms",
                        NULL};
  /* Kept for the restarts of the kill -9 test. */
  memcpy(g_sync_extra, sync_extra, sizeof sync_extra);
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
  HARNESS_ADD_CASE(s, idempotency_key_on_register_device, 120, NULL);
  HARNESS_ADD_CASE(s, expired_idempotency_keys_are_deleted_across_tenants, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_device_token_is_staff_and_nothing_above, 120, NULL);
  HARNESS_ADD_CASE(s, wrong_secrets_and_other_tenants_get_the_same_401, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_deleted_devices_tokens_are_refused_within_a_second, 120,
                   NULL);
  HARNESS_ADD_CASE(
      s, heartbeats_bring_a_device_online_and_silence_takes_it_offline, 120,
      NULL);
  HARNESS_ADD_CASE(s, a_tenants_devices_flush_together_each_with_its_own_state,
                   120, NULL);
  HARNESS_ADD_CASE(s, a_hundred_mutations_with_cut_answers_apply_exactly_once,
                   300, NULL);
  HARNESS_ADD_CASE(s, gaps_are_400_and_rejections_consume_their_id, 120, NULL);
  HARNESS_ADD_CASE(s, two_devices_change_one_order_from_one_version, 120, NULL);
  HARNESS_ADD_CASE(s, last_write_wins_picks_the_later_hlc, 120, NULL);
  HARNESS_ADD_CASE(s, another_tenants_device_sees_nothing, 120, NULL);
  HARNESS_ADD_CASE(s, pull_from_zero_returns_each_order_once_newest_in_order,
                   300, NULL);
  HARNESS_ADD_CASE(s, a_cursor_older_than_the_kept_log_is_told_to_reset, 120,
                   NULL);
  HARNESS_ADD_CASE(s,
                   old_mutation_records_are_pruned_and_retries_stay_duplicates,
                   120, NULL);
  HARNESS_ADD_CASE(s, calls_without_identity_or_token_are_refused, 120, NULL);
  HARNESS_ADD_CASE(s, files_round_trip_and_a_wrong_hash_stores_nothing, 120,
                   NULL);
  HARNESS_ADD_CASE(s, missing_lists_only_what_is_absent, 120, NULL);
  HARNESS_ADD_CASE(s, another_tenant_sees_nothing_of_a_file, 120, NULL);
  HARNESS_ADD_CASE(s, the_quota_and_the_25_mib_cap_hold, 300, NULL);
  HARNESS_ADD_CASE(s, expiry_removes_an_unused_file_and_keeps_a_used_one, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_large_file_streams_both_ways_byte_for_byte, 120, NULL);
  HARNESS_ADD_CASE(s, an_upload_reaches_sync_before_its_body_ends, 120, NULL);
  HARNESS_ADD_CASE(s, a_wrong_hash_on_a_streamed_upload_leaves_nothing, 120,
                   NULL);
  HARNESS_ADD_CASE(s, open_uploads_cost_the_gateway_a_part_each, 120, NULL);
  /* Last: they kill and restart both sync replicas, then orders. */
  HARNESS_ADD_CASE(s, kill_9_of_sync_in_a_push_then_retry_is_exactly_once, 300,
                   NULL);
  HARNESS_ADD_CASE(s, kill_9_of_orders_in_a_push_then_retry_is_exactly_once,
                   300, NULL);
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
