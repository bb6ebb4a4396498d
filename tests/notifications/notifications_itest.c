/*
 * notifications_itest.c - webhooks end to end: PostgreSQL, Redis, auth,
 * tenants, orders, the gateway and notifications as processes
 * (tests/harness), a webhook receiver in this process (receiver.h: a real
 * HTTP server that checks signatures with its own HMAC code), and every
 * call over the gateway's public HTTP API.
 *
 * An order placed -> a signed webhook at the receiver; 500 twice then 200
 * -> three attempts, one success, nothing more, each attempt on record
 * (GET /v1/deliveries/{id}: 500, 500, 200); always 500 -> dead after
 * the configured attempts, then POST /v1/deliveries/{id}/retry once the
 * receiver recovers -> delivered (and counted in /metrics); a 302 not
 * followed; a receiver that never answers timing out, one answering 4 MiB
 * still a success; a test send, and a rotation signing
 * with both secrets; notifications killed with SIGKILL while a request is
 * in flight, orders placed while it is down, then restarted -> every
 * event delivered and none again to a receiver whose 2xx was recorded;
 * another tenant's endpoints and deliveries 404 (a customer 403, no token
 * 401); bad input 400 naming the
 * field; Idempotency-Key on POST /v1/webhooks (replay with the same
 * secret, reuse 400, a concurrent twin, the secret sealed at rest,
 * expired keys deleted); Redis
 * flushed mid-attempt (stream, group, pending entries and delayed set gone) ->
 * still delivered; and, last, notifications restarted with private targets
 * refused
 * -> a loopback URL refused at creation, and an existing loopback
 * endpoint's delivery refused at send time.
 *
 * The retry schedule is shortened through configuration (base 300 ms,
 * claim timeout 2 s, sweep every second): every wait is for a condition
 * with a generous deadline, never a fixed sleep that must be long enough.
 */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/idem/expiry.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/idemcheck.h"
#include "tests/harness/system.h"
#include "tests/notifications/receiver.h"

#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PASSWORD "correct horse battery"
#define SECRET_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define WAIT_MS 60000
#define MAX_ATTEMPTS 3

static harness_system g_sys;
static receiver *g_rx;

typedef harness_http_resp resp;

/* ---------------------------------------------------------- processes -- */

/* Webhooks to the test's receiver on loopback; three attempts with short
 * retries, and short claims and sweeps, so recovery is seen quickly. */
#define NOTIFICATIONS_SETTINGS                                                 \
  "NOTIFICATIONS_SECRET_KEY=" SECRET_KEY, "NOTIFICATIONS_MAX_ATTEMPTS=3",      \
      "NOTIFICATIONS_RETRY_BASE=300ms", "NOTIFICATIONS_SEND_TIMEOUT=5s",       \
      "NOTIFICATIONS_CLAIM_TIMEOUT=2s", "NOTIFICATIONS_SWEEP_INTERVAL=1s",     \
      "NOTIFICATIONS_SWEEP_GRACE=2s"
static char *const kNotifications[] = {
    "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=true", NOTIFICATIONS_SETTINGS, NULL};
static char *const kNotificationsNoPrivate[] = {
    "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=false", NOTIFICATIONS_SETTINGS, NULL};
static char *const kTenants[] = {"TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                                 "TENANTS_BASE_DOMAINS=localhost", NULL};
static char *const kGateway[] = {"GATEWAY_BASE_DOMAIN=localhost",
                                 "GATEWAY_RATE_BURST=10000",
                                 "GATEWAY_LOGIN_BURST=1000", NULL};

static const harness_system_opts kSystem = {
    .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
             HARNESS_WITH(HARNESS_NOTIFICATIONS) |
             HARNESS_WITH(HARNESS_GATEWAY),
    .rpc_workers = 4,
    .log_level = "info",
    .env = {[HARNESS_TENANTS] = kTenants,
            [HARNESS_NOTIFICATIONS] = kNotifications,
            [HARNESS_GATEWAY] = kGateway},
};

/* Notifications again on its ports, private targets allowed or not. */
static bool restart_notifications(bool allow_private) {
  return harness_system_restart(&g_sys, HARNESS_NOTIFICATIONS, NULL,
                                allow_private ? kNotifications
                                              : kNotificationsNoPrivate);
}

/* ------------------------------------------------------------ helpers -- */

static resp *call(const char *method, const char *path, const char *body,
                  const char *token) {
  return harness_http_call(method, g_sys.gateway[0].http_port, path, body,
                           token, NULL);
}

static void tenant(const char *prefix, harness_api_tenant *t) {
  ck_assert_int_eq(harness_api_create_tenant(g_sys.gateway[0].http_port, prefix,
                                             PASSWORD, t),
                   201);
}

/* A product of t's; its id into id. */
static void product(const harness_api_tenant *t, char id[UUID_STR_LEN + 1]) {
  resp *r = call("POST", "/v1/products",
                 "{\"name\":\"Soup\",\"price_cents\":450}", t->owner_token);
  CK_HTTP_STATUS(r, 201);
  snprintf(id, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

/* Places an order of product pid; its id into oid (may be NULL). */
static void order(const harness_api_tenant *t, const char *pid, char *oid) {
  char body[160];
  snprintf(body, sizeof body,
           "{\"items\":[{\"product_id\":\"%s\",\"quantity\":1}]}", pid);
  resp *r = call("POST", "/v1/orders", body, t->owner_token);
  CK_HTTP_STATUS(r, 201);
  if (oid != NULL)
    snprintf(oid, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

/* A webhook of t to the receiver's /r/<name> for events (a JSON array);
 * its id into id; the receiver learns its secret. */
static void webhook(const harness_api_tenant *t, const char *name,
                    const char *events, char id[UUID_STR_LEN + 1]) {
  char body[256];
  snprintf(body, sizeof body,
           "{\"url\":\"http://127.0.0.1:%d/r/%s\",\"events\":%s,"
           "\"description\":\"itest %s\"}",
           receiver_port(g_rx), name, events, name);
  resp *r = call("POST", "/v1/webhooks", body, t->owner_token);
  CK_HTTP_STATUS(r, 201);
  static const char *const kKeys[] = {"id",          "url",    "events",
                                      "description", "active", "secret",
                                      "created_at",  NULL};
  CK_JSON_KEYS(r->json, kKeys);
  const char *secret = harness_json_str(r->json, "secret");
  ck_assert(strncmp(secret, "whsec_", 6) == 0);
  receiver_set_secret(g_rx, name, secret);
  snprintf(id, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

/* Waits until cond(arg) or WAIT_MS; the result of the last check. */
static bool wait_for(bool (*cond)(void *), void *arg) {
  int64_t end = time_mono_ms() + WAIT_MS;
  while (!cond(arg)) {
    if (time_mono_ms() > end) return false;
    time_sleep_ms(50);
  }
  return true;
}

typedef struct count_at_least {
  const char *name;
  int n;
} count_at_least;

static bool has_count(void *arg) {
  count_at_least *c = arg;
  return receiver_count(g_rx, c->name) >= c->n;
}

#define WAIT_HITS(name, n)                                                     \
  ck_assert_msg(wait_for(has_count, &(count_at_least){(name), (n)}),           \
                "%s: %d requests, want %d", (name),                            \
                receiver_count(g_rx, (name)), (n))

/* GET /v1/webhooks/{id}/deliveries[?query]: the answer (200 asserted). */
static resp *deliveries(const harness_api_tenant *t, const char *wid,
                        const char *query) {
  char path[200];
  snprintf(path, sizeof path, "/v1/webhooks/%s/deliveries%s%s", wid,
           query ? "?" : "", query ? query : "");
  resp *r = call("GET", path, NULL, t->owner_token);
  CK_HTTP_STATUS(r, 200);
  return r;
}

typedef struct delivery_wait {
  const harness_api_tenant *t;
  const char *wid, *status;
  int n; /* deliveries in that status */
} delivery_wait;

static bool has_deliveries(void *arg) {
  delivery_wait *w = arg;
  char q[64];
  snprintf(q, sizeof q, "status=%s", w->status);
  char path[200];
  snprintf(path, sizeof path, "/v1/webhooks/%s/deliveries?%s", w->wid, q);
  resp *r = harness_http_request("GET", g_sys.gateway[0].http_port, path, NULL,
                                 w->t->owner_token, NULL);
  size_t n = json_array_size(harness_json_get(r->json, "deliveries"));
  harness_http_free(r);
  return (int)n >= w->n;
}

#define WAIT_DELIVERIES(tp, wid, st, n)                                        \
  ck_assert_msg(                                                               \
      wait_for(has_deliveries, &(delivery_wait){(tp), (wid), (st), (n)}),      \
      "no %d %s deliveries for %s", (n), (st), (wid))

/* GET /v1/deliveries/{id} as token: the answer (status asserted). */
static resp *delivery(const char *token, const char *id, int status) {
  char path[96];
  snprintf(path, sizeof path, "/v1/deliveries/%s", id);
  resp *r = call("GET", path, NULL, token);
  CK_HTTP_STATUS(r, status);
  return r;
}

/* The delivery's recorded attempts are, in order, codes[0..n) with
 * numbers[0..n); each has a time and a duration. */
static void check_attempts(resp *r, const int *codes, const int *numbers,
                           size_t n) {
  json_t *att = harness_json_get(r->json, "attempts");
  ck_assert_uint_eq(json_array_size(att), n);
  static const char *const kKeys[] = {"number", "at",          "status_code",
                                      "error",  "duration_ms", NULL};
  char prev[64] = "";
  for (size_t i = 0; i < n; i++) {
    json_t *a = json_array_get(att, i);
    CK_JSON_KEYS(a, kKeys);
    ck_assert_int_eq(harness_json_int(a, "status_code"), codes[i]);
    ck_assert_int_eq(harness_json_int(a, "number"), numbers[i]);
    ck_assert_str_eq(harness_json_str(a, "error"),
                     codes[i] == 200 ? "" : "HTTP 500");
    ck_assert(harness_json_int(a, "duration_ms") >= 0);
    const char *at = harness_json_str(a, "at");
    ck_assert_uint_eq(strlen(at), 24); /* 2026-11-22T10:00:00.123Z */
    ck_assert_msg(strcmp(prev, at) <= 0, "attempts out of order");
    snprintf(prev, sizeof prev, "%s", at);
  }
}

/* ------------------------------------------------------------- cases -- */

START_TEST(an_order_placed_arrives_signed_at_the_receiver) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  tenant("wh-a", &t);
  product(&t, pid);
  webhook(&t, "placed", "[\"OrderCreated\"]", wid);
  order(&t, pid, oid);
  WAIT_HITS("placed", 1);
  receiver_hit h;
  ck_assert(receiver_hit_at(g_rx, "placed", 0, &h));
  ck_assert_int_eq(h.status, 200);
  ck_assert_int_eq(h.nsig, 1);
  ck_assert_int_eq(h.valid_new, 1); /* our own HMAC agrees */
  ck_assert(h.ts > 0 && llabs(h.ts - time_now_ms() / 1000) < 600);
  json_t *b = json_loads(h.body, 0, NULL);
  ck_assert_ptr_nonnull(b);
  static const char *const kKeys[] = {"id",         "type", "tenant_id",
                                      "created_at", "data", NULL};
  CK_JSON_KEYS(b, kKeys);
  ck_assert_str_eq(harness_json_str(b, "id"), h.id);
  ck_assert_str_eq(harness_json_str(b, "type"), "OrderCreated");
  ck_assert_str_eq(harness_json_str(b, "tenant_id"), t.id);
  ck_assert_str_eq(harness_json_str(b, "data.id"), oid);
  json_decref(b);
  receiver_hit_free(&h);
  /* Recorded: succeeded after one attempt; the secret is not shown again
   * and is sealed at rest. */
  WAIT_DELIVERIES(&t, wid, "succeeded", 1);
  resp *r = deliveries(&t, wid, NULL);
  json_t *d = json_array_get(harness_json_get(r->json, "deliveries"), 0);
  ck_assert_str_eq(harness_json_str(d, "event_type"), "OrderCreated");
  ck_assert_int_eq(harness_json_int(d, "attempts"), 1);
  ck_assert_int_eq(harness_json_int(d, "last_status_code"), 200);
  ck_assert_ptr_null(harness_json_get(r->json, "next_cursor"));
  harness_http_free(r);
  char path[96];
  snprintf(path, sizeof path, "/v1/webhooks/%s", wid);
  r = call("GET", path, NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_ptr_null(harness_json_get(r->json, "secret"));
  harness_http_free(r);
  r = call("GET", "/v1/webhooks", NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "webhooks")), 1);
  ck_assert_ptr_null(harness_json_get(
      json_array_get(harness_json_get(r->json, "webhooks"), 0), "secret"));
  harness_http_free(r);
  ck_assert_int_eq(
      harness_pg_count(&g_sys.pg,
                       "SELECT octet_length(secret_box) FROM "
                       "notifications.endpoints WHERE id = $1::uuid",
                       wid),
      24 + 16 + 24);
}
END_TEST

START_TEST(two_failures_then_success_is_three_attempts_and_no_more) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1];
  tenant("wh-retry", &t);
  product(&t, pid);
  receiver_set_mode(g_rx, "flaky", RECEIVER_FAIL_FIRST, 2);
  webhook(&t, "flaky", "[\"OrderCreated\"]", wid);
  order(&t, pid, NULL);
  WAIT_DELIVERIES(&t, wid, "succeeded", 1);
  ck_assert_int_eq(receiver_count(g_rx, "flaky"), 3);
  receiver_hit h[3];
  for (int i = 0; i < 3; i++) {
    ck_assert(receiver_hit_at(g_rx, "flaky", i, &h[i]));
    ck_assert_int_eq(h[i].valid_new, 1);
    ck_assert_str_eq(h[i].id, h[0].id); /* one event, tried again */
    ck_assert_str_eq(h[i].body, h[0].body);
  }
  ck_assert_int_eq(h[0].status, 500);
  ck_assert_int_eq(h[1].status, 500);
  ck_assert_int_eq(h[2].status, 200);
  for (int i = 0; i < 3; i++) receiver_hit_free(&h[i]);
  resp *r = deliveries(&t, wid, "status=succeeded");
  json_t *d = json_array_get(harness_json_get(r->json, "deliveries"), 0);
  ck_assert_int_eq(harness_json_int(d, "attempts"), 3);
  ck_assert_str_eq(harness_json_str(d, "next_attempt_at"), "");
  char did[UUID_STR_LEN + 1];
  snprintf(did, sizeof did, "%s", harness_json_str(d, "id"));
  harness_http_free(r);
  /* Every attempt is on record, not only the last: 500, 500, 200. */
  r = delivery(t.owner_token, did, 200);
  ck_assert_str_eq(harness_json_str(r->json, "delivery.id"), did);
  ck_assert_str_eq(harness_json_str(r->json, "delivery.status"), "succeeded");
  ck_assert_int_eq(harness_json_int(r->json, "delivery.attempts"), 3);
  check_attempts(r, (const int[]){500, 500, 200}, (const int[]){1, 2, 3}, 3);
  harness_http_free(r);
  /* Several sweeps and claim timeouts later, still three. */
  time_sleep_ms(5000);
  ck_assert_int_eq(receiver_count(g_rx, "flaky"), 3);
}
END_TEST

START_TEST(always_failing_is_dead_then_retried_by_hand) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1], did[UUID_STR_LEN + 1];
  tenant("wh-dead", &t);
  product(&t, pid);
  receiver_set_mode(g_rx, "down", RECEIVER_FAIL, 0);
  webhook(&t, "down", "[\"OrderCreated\"]", wid);
  order(&t, pid, NULL);
  WAIT_DELIVERIES(&t, wid, "dead", 1);
  ck_assert_int_eq(receiver_count(g_rx, "down"), MAX_ATTEMPTS);
  resp *r = deliveries(&t, wid, "status=dead");
  json_t *d = json_array_get(harness_json_get(r->json, "deliveries"), 0);
  ck_assert_int_eq(harness_json_int(d, "attempts"), MAX_ATTEMPTS);
  ck_assert_int_eq(harness_json_int(d, "last_status_code"), 500);
  ck_assert_str_eq(harness_json_str(d, "last_error"), "HTTP 500");
  snprintf(did, sizeof did, "%s", harness_json_str(d, "id"));
  harness_http_free(r);
  /* Pending and succeeded ones cannot be retried: only dead. */
  receiver_set_mode(g_rx, "down", RECEIVER_OK, 0);
  char path[96];
  snprintf(path, sizeof path, "/v1/deliveries/%s/retry", did);
  r = call("POST", path, "{}", t.owner_token);
  CK_HTTP_STATUS(r, 202);
  harness_http_free(r);
  WAIT_DELIVERIES(&t, wid, "succeeded", 1);
  ck_assert_int_eq(receiver_count(g_rx, "down"), MAX_ATTEMPTS + 1);
  receiver_hit h;
  ck_assert(receiver_hit_at(g_rx, "down", MAX_ATTEMPTS, &h));
  ck_assert_int_eq(h.status, 200);
  ck_assert_int_eq(h.valid_new, 1);
  receiver_hit_free(&h);
  r = call("POST", path, "{}", t.owner_token);
  CK_HTTP_ERROR(r, 400, "FAILED_PRECONDITION");
  harness_http_free(r);
  /* The history keeps the dead round and the retried one. */
  r = delivery(t.owner_token, did, 200);
  check_attempts(r, (const int[]){500, 500, 500, 200},
                 (const int[]){1, 2, 3, 1}, 4);
  harness_http_free(r);
  /* Counted: attempts by outcome and the dead letter. */
  r = harness_http_request("GET", g_sys.notifications.admin_port, "/metrics",
                           NULL, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  ck_assert(
      strstr(r->body, "notifications_attempts_total{outcome=\"failure\"}"));
  ck_assert(
      strstr(r->body, "notifications_attempts_total{outcome=\"success\"}"));
  ck_assert(strstr(r->body, "notifications_dead_letters_total "));
  ck_assert(strstr(r->body, "notifications_dead_letters_total 0\n") == NULL);
  ck_assert(strstr(r->body, "notifications_delivery_latency_seconds_count"));
  ck_assert(strstr(r->body, "notifications_queue_depth{queue=\"ready\"}"));
  harness_http_free(r);
}
END_TEST

START_TEST(redirects_are_not_followed) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1];
  tenant("wh-redir", &t);
  product(&t, pid);
  receiver_set_mode(g_rx, "redir", RECEIVER_REDIRECT, 0);
  webhook(&t, "redir", "[\"OrderCreated\"]", wid);
  order(&t, pid, NULL);
  WAIT_DELIVERIES(&t, wid, "dead", 1);
  ck_assert_int_eq(receiver_count(g_rx, "redir"), MAX_ATTEMPTS);
  ck_assert_int_eq(receiver_count(g_rx, "redir-target"), 0);
  resp *r = deliveries(&t, wid, "status=dead");
  json_t *d = json_array_get(harness_json_get(r->json, "deliveries"), 0);
  ck_assert_int_eq(harness_json_int(d, "last_status_code"), 302);
  harness_http_free(r);
}
END_TEST

START_TEST(a_test_send_and_a_rotation_sign_with_both_secrets) {
  harness_api_tenant t;
  char wid[UUID_STR_LEN + 1], path[128];
  tenant("wh-rot", &t);
  webhook(&t, "rot", "[\"StockLow\"]", wid);
  snprintf(path, sizeof path, "/v1/webhooks/%s/test", wid);
  resp *r = call("POST", path, NULL, t.owner_token); /* no body at all */
  CK_HTTP_STATUS(r, 202);
  harness_http_free(r);
  WAIT_HITS("rot", 1);
  receiver_hit h;
  ck_assert(receiver_hit_at(g_rx, "rot", 0, &h));
  ck_assert_int_eq(h.nsig, 1);
  ck_assert_int_eq(h.valid_new, 1);
  ck_assert(strstr(h.body, "\"type\":\"webhook.test\"") != NULL);
  ck_assert(strstr(h.body, wid) != NULL);
  receiver_hit_free(&h);
  snprintf(path, sizeof path, "/v1/webhooks/%s/rotate-secret", wid);
  r = call("POST", path, "{}", t.owner_token);
  CK_HTTP_STATUS(r, 200);
  const char *secret = harness_json_str(r->json, "secret");
  ck_assert(strncmp(secret, "whsec_", 6) == 0);
  receiver_set_secret(g_rx, "rot", secret);
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/webhooks/%s/test", wid);
  r = call("POST", path, "{}", t.owner_token);
  CK_HTTP_STATUS(r, 202);
  harness_http_free(r);
  WAIT_HITS("rot", 2);
  ck_assert(receiver_hit_at(g_rx, "rot", 1, &h));
  ck_assert_int_eq(h.nsig, 2); /* new and, during the grace, old */
  ck_assert_int_eq(h.valid_new, 1);
  ck_assert_int_eq(h.valid_old, 1);
  receiver_hit_free(&h);
}
END_TEST

/* Deliveries of the endpoint in status st, straight from the database. */
static long long db_deliveries(const char *wid, const char *st) {
  char sql[200];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM notifications.deliveries WHERE "
           "endpoint_id = $1::uuid AND status = '%s'",
           st);
  return harness_pg_count(&g_sys.pg, sql, wid);
}

static bool held_one(void *arg) { return receiver_held(g_rx, arg) >= 1; }

typedef struct db_wait {
  const char *wid, *status;
  long long n;
} db_wait;
static bool db_has(void *arg) {
  db_wait *w = arg;
  return db_deliveries(w->wid, w->status) >= w->n;
}

START_TEST(sigkill_mid_delivery_loses_nothing_and_repeats_no_recorded_2xx) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1];
  tenant("wh-kill", &t);
  product(&t, pid);
  webhook(&t, "kill", "[\"OrderCreated\"]", wid);
  /* Two delivered and recorded before the crash. */
  order(&t, pid, NULL);
  order(&t, pid, NULL);
  ck_assert(wait_for(db_has, &(db_wait){wid, "succeeded", 2}));
  int before = receiver_count(g_rx, "kill");
  ck_assert_int_eq(before, 2);
  char done_ids[2][64];
  for (int i = 0; i < 2; i++) {
    receiver_hit h;
    ck_assert(receiver_hit_at(g_rx, "kill", i, &h));
    snprintf(done_ids[i], sizeof done_ids[i], "%s", h.id);
    receiver_hit_free(&h);
  }
  /* Three more; the receiver holds the first request it gets. */
  receiver_set_mode(g_rx, "kill", RECEIVER_HOLD, 0);
  for (int i = 0; i < 3; i++) order(&t, pid, NULL);
  ck_assert(wait_for(held_one, "kill"));
  harness_signal(g_sys.notifications.proc, SIGKILL);
  ck_assert(harness_wait_exit(g_sys.notifications.proc, 10000) != -1);
  /* Two more while it is down: caught up from its bus position. */
  order(&t, pid, NULL);
  order(&t, pid, NULL);
  receiver_release(g_rx, "kill"); /* answers into a closed connection */
  ck_assert(restart_notifications(true));
  ck_assert(wait_for(db_has, &(db_wait){wid, "succeeded", 7}));
  ck_assert_int_eq(db_deliveries(wid, "pending"), 0);
  ck_assert_int_eq(db_deliveries(wid, "dead"), 0);
  /* Those whose 2xx was recorded before the crash came once. */
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(receiver_ok_count(g_rx, "kill", done_ids[i]), 1);
  /* Every event reached the receiver with a 2xx answer. */
  resp *r = deliveries(&t, wid, NULL);
  json_t *ds = harness_json_get(r->json, "deliveries");
  ck_assert_int_eq(json_array_size(ds), 7);
  for (size_t i = 0; i < json_array_size(ds); i++)
    ck_assert_int_ge(
        receiver_ok_count(g_rx, "kill",
                          harness_json_str(json_array_get(ds, i), "event_id")),
        1);
  harness_http_free(r);
}
END_TEST

START_TEST(another_tenants_endpoints_and_deliveries_are_404) {
  harness_api_tenant a, b;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1], did[UUID_STR_LEN + 1];
  tenant("wh-iso-a", &a);
  tenant("wh-iso-b", &b);
  product(&a, pid);
  receiver_set_mode(g_rx, "iso", RECEIVER_FAIL, 0);
  webhook(&a, "iso", "[\"OrderCreated\"]", wid);
  order(&a, pid, NULL);
  WAIT_DELIVERIES(&a, wid, "dead", 1);
  resp *r = deliveries(&a, wid, NULL);
  snprintf(
      did, sizeof did, "%s",
      harness_json_str(
          json_array_get(harness_json_get(r->json, "deliveries"), 0), "id"));
  harness_http_free(r);
  char paths[6][2][128];
  snprintf(paths[0][0], 128, "GET");
  snprintf(paths[0][1], 128, "/v1/webhooks/%s", wid);
  snprintf(paths[1][0], 128, "PATCH");
  snprintf(paths[1][1], 128, "/v1/webhooks/%s", wid);
  snprintf(paths[2][0], 128, "DELETE");
  snprintf(paths[2][1], 128, "/v1/webhooks/%s", wid);
  snprintf(paths[3][0], 128, "POST");
  snprintf(paths[3][1], 128, "/v1/webhooks/%s/rotate-secret", wid);
  snprintf(paths[4][0], 128, "POST");
  snprintf(paths[4][1], 128, "/v1/deliveries/%s/retry", did);
  snprintf(paths[5][0], 128, "GET");
  snprintf(paths[5][1], 128, "/v1/webhooks/%s/deliveries", wid);
  for (int i = 0; i < 6; i++) {
    bool get =
        strcmp(paths[i][0], "GET") == 0 || strcmp(paths[i][0], "DELETE") == 0;
    r = call(paths[i][0], paths[i][1],
             get ? NULL : (i == 1 ? "{\"active\":false}" : "{}"),
             b.owner_token);
    CK_HTTP_ERROR(r, 404, "NOT_FOUND");
    harness_http_free(r);
  }
  snprintf(paths[0][1], 128, "/v1/webhooks/%s/test", wid);
  r = call("POST", paths[0][1], "{}", b.owner_token);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
  r = call("GET", "/v1/webhooks", NULL, b.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "webhooks")), 0);
  harness_http_free(r);
  /* A's delivery and its attempts: 404 for B, exactly like a missing one. */
  r = delivery(b.owner_token, did, 404);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  ck_assert_ptr_null(harness_json_get(r->json, "attempts"));
  harness_http_free(r);
  char missing[UUID_STR_LEN + 1];
  uuid_v7_str(missing);
  r = delivery(a.owner_token, missing, 404);
  harness_http_free(r);
  r = delivery(a.owner_token, did, 200);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "attempts")),
                   MAX_ATTEMPTS);
  harness_http_free(r);
  r = delivery(a.owner_token, "not-a-uuid", 400);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);
  /* Still A's, unchanged, and its delivery still dead. */
  ck_assert_int_eq(db_deliveries(wid, "dead"), 1);
  ck_assert_int_eq(
      harness_pg_count(&g_sys.pg,
                       "SELECT count(*) FROM notifications.endpoints "
                       "WHERE id = $1::uuid AND active",
                       wid),
      1);
  /* Below admin: 403, for a customer of the same tenant. */
  char xt[96], reg[200], login[200];
  snprintf(xt, sizeof xt, "X-Tenant: %s", a.slug);
  const char *const hx[] = {xt, NULL};
  snprintf(reg, sizeof reg,
           "{\"email\":\"cust@%s.example.test\",\"password\":\"%s\","
           "\"name\":\"Cleo\"}",
           a.slug, PASSWORD);
  r = harness_http_call("POST", g_sys.gateway[0].http_port, "/v1/auth/register",
                        reg, NULL, hx);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  snprintf(login, sizeof login, "cust@%s.example.test", a.slug);
  char ctok[1024];
  ck_assert_int_eq(harness_api_login(g_sys.gateway[0].http_port, a.slug, login,
                                     PASSWORD, ctok, sizeof ctok, NULL, 0),
                   200);
  r = call("GET", "/v1/webhooks", NULL, ctok);
  CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  snprintf(paths[0][1], 128, "/v1/deliveries/%s/retry", did);
  r = call("POST", paths[0][1], "{}", ctok);
  CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
  harness_http_free(r);
  r = delivery(ctok, did, 403);
  harness_http_free(r);
  /* Anonymous: 401. */
  r = call("GET", "/v1/webhooks", NULL, NULL);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
}
END_TEST

START_TEST(bad_input_is_400_naming_the_field) {
  harness_api_tenant t;
  char wid[UUID_STR_LEN + 1];
  tenant("wh-bad", &t);
  webhook(&t, "bad", "[\"OrderCreated\"]", wid);
  static const struct {
    const char *body, *field;
  } kBad[] = {
      {"{\"url\":\"ftp://example.com/\",\"events\":[\"OrderCreated\"]}", "url"},
      {"{\"url\":\"https://u:p@example.com/\",\"events\":[\"OrderCreated\"]}",
       "url"},
      {"{\"url\":\"\",\"events\":[\"OrderCreated\"]}", "url"},
      {"{\"url\":\"https://example.com/\",\"events\":[\"Nope\"]}", "events[0]"},
      {"{\"url\":\"https://example.com/\",\"events\":[]}", "events"},
      {"{\"url\":\"https://example.com/\",\"events\":[\"OrderCreated\","
       "\"OrderCreated\"]}",
       "events[1]"},
  };
  for (size_t i = 0; i < sizeof kBad / sizeof kBad[0]; i++) {
    resp *r = call("POST", "/v1/webhooks", kBad[i].body, t.owner_token);
    CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
    ck_assert_msg(harness_http_has_detail(r, kBad[i].field), "%s: %s",
                  kBad[i].body, r->body);
    harness_http_free(r);
  }
  /* Oversize: a 3000-byte URL, a 600-character description, a body over
   * the route's limit. */
  char *big = malloc(20000);
  snprintf(big, 20000,
           "{\"url\":\"https://example.com/%0*d\",\"events\":"
           "[\"OrderCreated\"]}",
           3000, 0);
  resp *r = call("POST", "/v1/webhooks", big, t.owner_token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "url"));
  harness_http_free(r);
  char desc[700];
  memset(desc, 'd', 600);
  desc[600] = '\0';
  snprintf(big, 20000,
           "{\"url\":\"https://example.com/\",\"events\":[\"OrderCreated\"],"
           "\"description\":\"%s\"}",
           desc);
  r = call("POST", "/v1/webhooks", big, t.owner_token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "description"));
  harness_http_free(r);
  snprintf(big, 20000, "{\"url\":\"https://example.com/\",\"description\":\"");
  size_t n = strlen(big);
  memset(big + n, 'x', 18000);
  snprintf(big + n + 18000, 20000 - n - 18000, "\"}");
  r = call("POST", "/v1/webhooks", big, t.owner_token);
  CK_HTTP_ERROR(r, 413, "INVALID_ARGUMENT");
  harness_http_free(r);
  free(big);
  /* PATCH checks what it is given; the list its query; ids are UUIDs. */
  char path[160];
  snprintf(path, sizeof path, "/v1/webhooks/%s", wid);
  r = call("PATCH", path, "{\"events\":[\"Nope\"]}", t.owner_token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "events[0]"));
  harness_http_free(r);
  r = call("PATCH", path, "{\"active\":false,\"description\":\"off\"}",
           t.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_false(harness_json_get(r->json, "active")));
  ck_assert_str_eq(harness_json_str(r->json, "description"), "off");
  ck_assert_str_eq(harness_json_str(r->json, "events"), "<missing>");
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/webhooks/%s/deliveries?limit=500&cursor=zz",
           wid);
  r = call("GET", path, NULL, t.owner_token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "limit"));
  ck_assert(harness_http_has_detail(r, "cursor"));
  harness_http_free(r);
  r = call("GET", "/v1/webhooks/not-a-uuid", NULL, t.owner_token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "id"));
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/webhooks/%s", wid);
  r = call("DELETE", path, NULL, t.owner_token);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
  r = call("GET", path, NULL, t.owner_token);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
}
END_TEST

/* Idempotency-Key on POST /v1/webhooks (HTTP-API.md "Conventions",
 * tests/harness/idemcheck.h): the same key and body answer the first
 * answer again - the same secret - with one endpoint; another body under
 * the key 400; two at once one endpoint. The saved answer holds the
 * secret sealed: no "whsec_" readable in the key table. */
START_TEST(idempotency_key_on_create_webhook) {
  harness_api_tenant t;
  tenant("wh-idem", &t);
  char url[5][160], body[5][256];
  for (int i = 0; i < 5; i++) {
    snprintf(url[i], sizeof url[i], "https://example.com/idem/%s/%d", t.slug,
             i);
    snprintf(body[i], sizeof body[i],
             "{\"url\":\"%.160s\",\"events\":[\"OrderCreated\"]}", url[i]);
  }
  harness_idem_case c = {
      .port = g_sys.gateway[0].http_port,
      .path = "/v1/webhooks",
      .token = t.owner_token,
      .key_prefix = "itest-webhook",
      .status = 201,
      .pg = &g_sys.pg,
      .count_sql =
          "SELECT count(*) FROM notifications.endpoints WHERE url = $1",
      .body = body[0],
      .count_arg = url[0],
      .other_body = body[1],
      .count_other_arg = url[1],
      .race_body = {body[2], body[3], body[4]},
      .race_arg = {url[2], url[3], url[4]}};
  harness_idem_check(&c);
  ck_assert_int_ge(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.idempotency WHERE "
                                    "tenant_id = $1::uuid AND "
                                    "response_code = 0",
                                    t.id),
                   4);
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.idempotency WHERE "
                                    "position(convert_to($1, 'UTF8') in "
                                    "response) > 0",
                                    "whsec_"),
                   0);
  /* An expired key goes in the expiry round as the service runs it (its
   * role, app.notifications_sweep); the live ones stay. */
  ck_assert_int_eq(
      harness_pg_count(&g_sys.pg,
                       "WITH i AS (INSERT INTO notifications.idempotency "
                       "(tenant_id, principal, key, method, request_hash, "
                       "response_code, response, expires_at) VALUES "
                       "($1::uuid, 'u', 'old', 'm', decode(repeat('00', 32), "
                       "'hex'), 0, '\\x00', now() - interval '1 second') "
                       "RETURNING 1) SELECT count(*) FROM i",
                       t.id),
      1);
  db_config dc = {.conninfo = g_sys.pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&dc, &p), ERR_OK);
  db_store *st = NULL;
  ck_assert_int_eq(db_store_new(p, "notifications_app", &st), ERR_OK);
  ck_assert_int_eq(idem_expiry_run(st, "notifications.idempotency",
                                   "app.notifications_sweep", NULL),
                   ERR_OK);
  db_store_free(st);
  db_pool_free(p);
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.idempotency WHERE "
                                    "tenant_id = $1::uuid AND key = 'old'",
                                    t.id),
                   0);
  ck_assert_int_ge(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.idempotency WHERE "
                                    "tenant_id = $1::uuid",
                                    t.id),
                   4);
}
END_TEST

/* FLUSHALL over RESP on a socket of our own: Redis loses everything, as
 * a restart without persistence does. */
static void flush_redis(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)g_sys.redis.port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  const char cmd[] = "*1\r\n$8\r\nFLUSHALL\r\n";
  ck_assert_int_eq(write(fd, cmd, sizeof cmd - 1), (ssize_t)(sizeof cmd - 1));
  char buf[16] = "";
  ck_assert_int_gt(read(fd, buf, sizeof buf - 1), 0);
  ck_assert(strncmp(buf, "+OK", 3) == 0);
  close(fd);
}

START_TEST(redis_losing_the_queue_loses_no_delivery) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1];
  tenant("wh-redis", &t);
  product(&t, pid);
  receiver_set_mode(g_rx, "lost", RECEIVER_HOLD, 500);
  webhook(&t, "lost", "[\"OrderCreated\"]", wid);
  order(&t, pid, NULL);
  ck_assert(wait_for(held_one, "lost"));
  /* The stream, its group and pending entries are gone mid-attempt. */
  flush_redis();
  receiver_set_mode(g_rx, "lost", RECEIVER_OK, 0); /* this one answers 500 */
  WAIT_DELIVERIES(&t, wid, "succeeded", 1);
  ck_assert_int_eq(receiver_count(g_rx, "lost"), 2);
  receiver_hit h;
  ck_assert(receiver_hit_at(g_rx, "lost", 0, &h));
  ck_assert_int_eq(h.status, 500);
  receiver_hit_free(&h);
  /* And the queue works on after it. */
  order(&t, pid, NULL);
  WAIT_DELIVERIES(&t, wid, "succeeded", 2);
}
END_TEST

START_TEST(a_slow_receiver_times_out_and_a_huge_answer_still_counts) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], slow[UUID_STR_LEN + 1], huge[UUID_STR_LEN + 1];
  tenant("wh-slow", &t);
  product(&t, pid);
  receiver_set_mode(g_rx, "slow", RECEIVER_HOLD, 0); /* never answers */
  receiver_set_mode(g_rx, "huge", RECEIVER_HUGE, 0);
  webhook(&t, "slow", "[\"OrderCreated\"]", slow);
  webhook(&t, "huge", "[\"OrderCreated\"]", huge);
  order(&t, pid, NULL);
  /* 4 MiB answered with 200: a success (curl reads NOTIFICATIONS_RESPONSE_MAX
   * bytes of it, then cuts the transfer; the status is what counts). */
  WAIT_DELIVERIES(&t, huge, "succeeded", 1);
  ck_assert_int_eq(receiver_count(g_rx, "huge"), 1);
  /* No answer within NOTIFICATIONS_SEND_TIMEOUT (5 s here): a failure,
   * each time, then dead. */
  WAIT_DELIVERIES(&t, slow, "dead", 1);
  ck_assert_int_eq(receiver_count(g_rx, "slow"), MAX_ATTEMPTS);
  resp *r = deliveries(&t, slow, "status=dead");
  json_t *d = json_array_get(harness_json_get(r->json, "deliveries"), 0);
  ck_assert_str_eq(harness_json_str(d, "last_error"), "timed out");
  ck_assert_int_eq(harness_json_int(d, "last_status_code"), 0);
  harness_http_free(r);
  receiver_release(g_rx, "slow");
}
END_TEST

typedef struct reach {
  const char *token;
} reach;

/* The gateway's client has dialled the restarted service again. */
static bool gateway_reaches_notifications(void *arg) {
  reach *w = arg;
  resp *r = harness_http_request("GET", g_sys.gateway[0].http_port,
                                 "/v1/webhooks", NULL, w->token, NULL);
  bool ok = r->status == 200;
  harness_http_free(r);
  return ok;
}

/* Every request of receiver name so far: n of them, each a distinct
 * webhook-id with a valid signature (nothing sent twice). */
static void assert_each_once(const char *name, int n) {
  ck_assert_int_eq(receiver_count(g_rx, name), n);
  for (int i = 0; i < n; i++) {
    receiver_hit h;
    ck_assert(receiver_hit_at(g_rx, name, i, &h));
    ck_assert_int_eq(h.valid_new, 1);
    ck_assert_int_eq(receiver_ok_count(g_rx, name, h.id), 1);
    receiver_hit_free(&h);
  }
}

/* Bytes of the notifications log from offset on contain needle. */
static bool log_has_since(long offset, const char *needle) {
  FILE *f = fopen(harness_log_path(g_sys.notifications.proc), "r");
  if (f == NULL) return false;
  if (fseek(f, 0, SEEK_END) == 0 && ftell(f) < offset) offset = 0;
  (void)fseek(f, offset, SEEK_SET);
  char line[4096];
  bool hit = false;
  while (!hit && fgets(line, sizeof line, f) != NULL)
    hit = strstr(line, needle) != NULL;
  fclose(f);
  return hit;
}

static long log_size(void) {
  FILE *f = fopen(harness_log_path(g_sys.notifications.proc), "r");
  long n = 0;
  if (f != NULL && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
  if (f != NULL) fclose(f);
  return n;
}

START_TEST(a_catch_up_of_two_tenants_events_delivers_each_once) {
  /* Orders placed while notifications is down come back through Replay
   * in pages, fanned out a page per transaction across both tenants and
   * queued in chunks (more than one: 130 jobs). */
  harness_api_tenant a, b;
  char pa[UUID_STR_LEN + 1], pb[UUID_STR_LEN + 1];
  char wa[UUID_STR_LEN + 1], wb[UUID_STR_LEN + 1];
  tenant("wh-batch-a", &a);
  tenant("wh-batch-b", &b);
  /* A test before may have restarted notifications. */
  ck_assert(wait_for(gateway_reaches_notifications, &(reach){a.owner_token}));
  product(&a, pa);
  product(&b, pb);
  webhook(&a, "batch-a", "[\"OrderCreated\"]", wa);
  webhook(&b, "batch-b", "[\"OrderCreated\"]", wb);
  order(&a, pa, NULL); /* a position to catch up from */
  ck_assert(wait_for(db_has, &(db_wait){wa, "succeeded", 1}));
  harness_service_stop(&g_sys.notifications, 15000);
  for (int i = 0; i < 65; i++) {
    order(&a, pa, NULL);
    order(&b, pb, NULL);
  }
  long mark = log_size();
  ck_assert(restart_notifications(true));
  /* Each tenant's own events only, each once (a mix-up of tenants in a
   * page would move events from one count to the other). */
  ck_assert(wait_for(db_has, &(db_wait){wa, "succeeded", 66}));
  ck_assert(wait_for(db_has, &(db_wait){wb, "succeeded", 65}));
  ck_assert_int_eq(db_deliveries(wa, "pending"), 0);
  ck_assert_int_eq(db_deliveries(wb, "pending"), 0);
  assert_each_once("batch-a", 66);
  assert_each_once("batch-b", 65);
  /* Queued by the fan-out itself, not left to the sweep. */
  ck_assert(!log_has_since(mark, "jobs not queued"));
  /* The next test finds notifications reachable again. */
  ck_assert(wait_for(gateway_reaches_notifications, &(reach){a.owner_token}));
}
END_TEST

/* Last: restarts notifications with private targets refused. */
START_TEST(private_targets_are_refused_when_not_allowed) {
  harness_api_tenant t;
  char pid[UUID_STR_LEN + 1], wid[UUID_STR_LEN + 1];
  tenant("wh-ssrf", &t);
  product(&t, pid);
  webhook(&t, "ssrf", "[\"OrderCreated\"]", wid); /* allowed for now */
  ck_assert(restart_notifications(false));
  ck_assert(wait_for(gateway_reaches_notifications, &(reach){t.owner_token}));
  static const char *const kUrls[] = {
      "http://127.0.0.1:%d/r/x", "http://localhost:%d/r/x",
      "http://[::1]:%d/r/x",     "http://169.254.169.254:%d/latest",
      "http://10.0.0.1:%d/",     "http://[::ffff:127.0.0.1]:%d/"};
  for (size_t i = 0; i < sizeof kUrls / sizeof kUrls[0]; i++) {
    char url[96], body[200];
    snprintf(url, sizeof url, kUrls[i], receiver_port(g_rx));
    snprintf(body, sizeof body, "{\"url\":\"%s\",\"events\":[\"StockLow\"]}",
             url);
    resp *r = call("POST", "/v1/webhooks", body, t.owner_token);
    CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
    ck_assert_msg(harness_http_has_detail(r, "url"), "%s", url);
    harness_http_free(r);
  }
  /* The endpoint made while allowed is refused at send time. */
  order(&t, pid, NULL);
  WAIT_DELIVERIES(&t, wid, "dead", 1);
  ck_assert_int_eq(receiver_count(g_rx, "ssrf"), 0);
  resp *r = deliveries(&t, wid, "status=dead");
  json_t *d = json_array_get(harness_json_get(r->json, "deliveries"), 0);
  ck_assert(strstr(harness_json_str(d, "last_error"), "private") != NULL);
  ck_assert_int_eq(harness_json_int(d, "last_status_code"), 0);
  harness_http_free(r);
}
END_TEST

int main(void) {
  harness_init();
  g_rx = receiver_start();
  if (g_rx == NULL) {
    fprintf(stderr, "cannot start the webhook receiver\n");
    return 1;
  }
  if (!harness_system_start(&g_sys, &kSystem)) return 1;
  Suite *s = suite_create("notifications_itest");
  HARNESS_ADD_CASE(s, an_order_placed_arrives_signed_at_the_receiver, 120,
                   NULL);
  HARNESS_ADD_CASE(s, two_failures_then_success_is_three_attempts_and_no_more,
                   120, NULL);
  HARNESS_ADD_CASE(s, always_failing_is_dead_then_retried_by_hand, 120, NULL);
  HARNESS_ADD_CASE(s, a_test_send_and_a_rotation_sign_with_both_secrets, 120,
                   NULL);
  HARNESS_ADD_CASE(s, redirects_are_not_followed, 120, NULL);
  HARNESS_ADD_CASE(s, a_slow_receiver_times_out_and_a_huge_answer_still_counts,
                   120, NULL);
  HARNESS_ADD_CASE(
      s, sigkill_mid_delivery_loses_nothing_and_repeats_no_recorded_2xx, 180,
      NULL);
  HARNESS_ADD_CASE(s, a_catch_up_of_two_tenants_events_delivers_each_once, 240,
                   NULL);
  HARNESS_ADD_CASE(s, another_tenants_endpoints_and_deliveries_are_404, 120,
                   NULL);
  HARNESS_ADD_CASE(s, bad_input_is_400_naming_the_field, 120, NULL);
  HARNESS_ADD_CASE(s, idempotency_key_on_create_webhook, 120, NULL);
  HARNESS_ADD_CASE(s, redis_losing_the_queue_loses_no_delivery, 120, NULL);
  HARNESS_ADD_CASE(s, private_targets_are_refused_when_not_allowed, 120, NULL);
  int failed = harness_run_shared(s);
  int rc = harness_system_end(&g_sys, failed);
  receiver_stop(g_rx);
  return rc;
}
