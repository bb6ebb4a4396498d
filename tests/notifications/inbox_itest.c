/*
 * inbox_itest.c - the in-app inbox end to end: PostgreSQL, Redis, auth,
 * tenants, orders, notifications, the gateway and realtime as processes
 * (tests/harness), every call over the gateway's public HTTP API, and a
 * real WebSocket client (client/inbox.js on Node's `ws` package).
 *
 * A customer's order moved along by the owner -> one notification per
 * status change in the customer's inbox (unread count right, ?unread,
 * pages, read and read-all), none in anyone else's; low stock -> the owner
 * and the admins are notified, customers are not; each notification also
 * on the customer's realtime channel private.user.<id>, the same one the
 * inbox shows; hostile cases: another user's notification 404 (in the
 * tenant and from another tenant), no token 401, bad input 400 naming the
 * field; each status change also e-mailed to the customer over SMTP (a
 * real SMTP server, tools/sinks/smtp_sink.py, keeps what it gets).
 * Phones (auth): spellings normalised to one E.164 number, bad ones 400
 * naming phone, set and removed by the user; SMS (tools/sinks/sms_sink.py
 * as the provider) only when the tenant's settings turn it on, every
 * channel off silencing an order update, staff alerts by their own
 * settings, campaigns by their own channels, the number never in a log;
 * settings admin-only and per tenant; campaign lists in pages, another
 * tenant seeing none; Idempotency-Key on POST /v1/campaigns (replay,
 * reuse 400, a concurrent twin). Every wait is for a condition with a
 * generous deadline.
 */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/idemcheck.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "tests/harness/rpc.h"
#include "tests/harness/system.h"
#include "services/notifications/sms.h"

#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PASSWORD "correct horse battery"
#define SECRET_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define WAIT_MS 60000
#define CLIENT_DIR "tests/realtime/client" /* the ws package lives there */
#define SCRIPT "tests/notifications/client/inbox.js"

static harness_system g_sys;
static int g_smtp_port, g_sms_port;
static harness_proc *g_smtp, *g_sms;
static char g_mail_file[128], g_sms_file[128];

typedef harness_http_resp resp;

/* ---------------------------------------------------------- processes -- */

/* One of tools/sinks as name, on a free port (*port), every message as
 * a JSON line in out (/tmp/inbox-itest-<file>-<pid>.jsonl, emptied). */
static harness_proc *start_sink(const char *name, const char *script,
                                const char *file, int *port, char *out,
                                size_t cap) {
  char p[16];
  *port = harness_free_port();
  snprintf(p, sizeof p, "%d", *port);
  snprintf(out, cap, "/tmp/inbox-itest-%s-%d.jsonl", file, (int)getpid());
  unlink(out);
  char *argv[] = {
      "/usr/bin/python3", (char *)script, "--port", p, "--out", out, NULL};
  harness_proc *proc = harness_spawn(name, argv, NULL);
  if (proc != NULL && harness_wait_port(*port, 10000)) return proc;
  harness_stop(proc, 2000);
  return NULL;
}

/* The SMTP sink (g_mail_file) and the SMS provider's stand-in
 * (g_sms_file). */
static bool start_sinks(void) {
  g_smtp = start_sink("smtp-sink", "tools/sinks/smtp_sink.py", "mail",
                      &g_smtp_port, g_mail_file, sizeof g_mail_file);
  g_sms = start_sink("sms-sink", "tools/sinks/sms_sink.py", "sms-all",
                     &g_sms_port, g_sms_file, sizeof g_sms_file);
  return g_smtp != NULL && g_sms != NULL;
}

/* Notifications sends through the two sinks (their ports known once they
 * run), in quick small campaign batches. */
static char g_smtp_url[64], g_sms_url[128];
static char *const kNotifications[] = {
    "NOTIFICATIONS_SECRET_KEY=" SECRET_KEY,
    "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=true",
    "NOTIFICATIONS_OUTBOX_POLL=200ms",
    g_smtp_url,
    "NOTIFICATIONS_MAIL_FROM=noreply@bistro.example",
    "NOTIFICATIONS_CAMPAIGN_BATCH=100",
    "NOTIFICATIONS_CAMPAIGN_INTERVAL=100ms",
    "NOTIFICATIONS_CAMPAIGN_POLL=100ms",
    "NOTIFICATIONS_WORKERS=8",
    g_sms_url,
    "SMS_ACCOUNT=AC9",
    "SMS_TOKEN=itest-sms-secret",
    "SMS_FROM=+15550000000",
    NULL};
static char *const kTenants[] = {"TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                                 "TENANTS_BASE_DOMAINS=localhost", NULL};
static char *const kGateway[] = {"GATEWAY_BASE_DOMAIN=localhost",
                                 "GATEWAY_RATE_BURST=10000",
                                 "GATEWAY_LOGIN_BURST=1000", NULL};

static const harness_system_opts kSystem = {
    .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
             HARNESS_WITH(HARNESS_NOTIFICATIONS) |
             HARNESS_WITH(HARNESS_REALTIME) | HARNESS_WITH(HARNESS_GATEWAY),
    .rpc_workers = 4,
    .log_level = "info",
    .env = {[HARNESS_TENANTS] = kTenants,
            [HARNESS_NOTIFICATIONS] = kNotifications,
            [HARNESS_GATEWAY] = kGateway},
};

static bool start_system(void) {
  if (!start_sinks()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the sinks\n");
    return false;
  }
  snprintf(g_smtp_url, sizeof g_smtp_url, "SMTP_URL=smtp://127.0.0.1:%d",
           g_smtp_port);
  snprintf(g_sms_url, sizeof g_sms_url,
           "SMS_URL=http://127.0.0.1:%d/2010-04-01/Accounts/AC9/Messages.json",
           g_sms_port);
  return harness_system_start(&g_sys, &kSystem);
}

/* ------------------------------------------------------------ helpers -- */

typedef struct person {
  char id[UUID_STR_LEN + 1];
  char token[PASETO_TOKEN_MAX + 1];
} person;

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

/* A member of t with role, logged in: a customer registers (X-Tenant),
 * staff and admins are made by the owner. */
static void member(const harness_api_tenant *t, const char *name,
                   const char *role, person *p) {
  char email[96], body[256], xt[96];
  bool customer = strcmp(role, "customer") == 0;
  snprintf(email, sizeof email, "%s@%s.example.test", name, t->slug);
  snprintf(body, sizeof body,
           "{\"email\":\"%s\",\"name\":\"%s\",\"password\":\"%s\"%s%s%s}",
           email, name, PASSWORD, customer ? "" : ",\"role\":\"",
           customer ? "" : role, customer ? "" : "\"");
  snprintf(xt, sizeof xt, "X-Tenant: %s", t->slug);
  const char *const hdrs[] = {xt, NULL};
  resp *r = customer ? harness_http_call("POST", g_sys.gateway[0].http_port,
                                         "/v1/auth/register", body, NULL, hdrs)
                     : call("POST", "/v1/tenant/members", body, t->owner_token);
  CK_HTTP_STATUS(r, 201);
  snprintf(p->id, sizeof p->id, "%s", harness_json_str(r->json, "user.id"));
  harness_http_free(r);
  ck_assert_int_eq(harness_api_login(g_sys.gateway[0].http_port, t->slug, email,
                                     PASSWORD, p->token, sizeof p->token, NULL,
                                     0),
                   200);
}

/* A product of t with stock and a low-stock threshold; its id into id. */
static void product(const harness_api_tenant *t, int stock, int threshold,
                    char id[UUID_STR_LEN + 1]) {
  char body[160];
  snprintf(body, sizeof body,
           "{\"name\":\"Soup\",\"price_cents\":450,\"stock\":%d,"
           "\"low_stock_threshold\":%d}",
           stock, threshold);
  resp *r = call("POST", "/v1/products", body, t->owner_token);
  CK_HTTP_STATUS(r, 201);
  snprintf(id, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

/* An order of quantity of pid by token; its id into oid. */
static void order(const char *token, const char *pid, int quantity,
                  char oid[UUID_STR_LEN + 1]) {
  char body[160];
  snprintf(body, sizeof body,
           "{\"items\":[{\"product_id\":\"%s\",\"quantity\":%d}]}", pid,
           quantity);
  resp *r = call("POST", "/v1/orders", body, token);
  CK_HTTP_STATUS(r, 201);
  snprintf(oid, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

static void set_status(const harness_api_tenant *t, const char *oid,
                       const char *status) {
  char path[96], body[64];
  snprintf(path, sizeof path, "/v1/orders/%s/status", oid);
  snprintf(body, sizeof body, "{\"status\":\"%s\"}", status);
  resp *r = call("POST", path, body, t->owner_token);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
}

/* The string at path in the answer's first notification. */
static const char *first(resp *r, const char *path) {
  json_t *n = json_array_get(harness_json_get(r->json, "notifications"), 0);
  ck_assert_ptr_nonnull(n);
  return harness_json_str(n, path);
}

/* GET /v1/notifications[?query] as token (200 asserted). */
static resp *inbox(const char *token, const char *query) {
  char path[256];
  snprintf(path, sizeof path, "/v1/notifications%s%s", query ? "?" : "",
           query ? query : "");
  resp *r = call("GET", path, NULL, token);
  CK_HTTP_STATUS(r, 200);
  return r;
}

typedef struct inbox_wait {
  const char *token;
  size_t n;
} inbox_wait;

static bool has_items(void *arg) {
  inbox_wait *w = arg;
  resp *r =
      harness_http_request("GET", g_sys.gateway[0].http_port,
                           "/v1/notifications?limit=100", NULL, w->token, NULL);
  size_t n = json_array_size(harness_json_get(r->json, "notifications"));
  harness_http_free(r);
  return n >= w->n;
}

static bool wait_for(bool (*cond)(void *), void *arg) {
  int64_t end = time_mono_ms() + WAIT_MS;
  while (!cond(arg)) {
    if (time_mono_ms() > end) return false;
    time_sleep_ms(50);
  }
  return true;
}

#define WAIT_INBOX(tok, count)                                                 \
  ck_assert_msg(wait_for(has_items, &(inbox_wait){(tok), (count)}),            \
                "inbox never had %d notifications", (count))

/* ------------------------------------------------------------- cases -- */

START_TEST(status_changes_fill_the_customers_inbox_and_only_theirs) {
  harness_api_tenant t;
  person cust, other;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  tenant("in-a", &t);
  member(&t, "cust", "customer", &cust);
  member(&t, "other", "customer", &other);
  product(&t, 100, 1, pid);
  order(cust.token, pid, 1, oid);
  set_status(&t, oid, "confirmed");
  set_status(&t, oid, "preparing");
  set_status(&t, oid, "ready");
  WAIT_INBOX(cust.token, 3);
  resp *r = inbox(cust.token, NULL);
  static const char *const kTop[] = {"notifications", "unread_count", NULL};
  CK_JSON_KEYS(r->json, kTop);
  ck_assert_int_eq(harness_json_int(r->json, "unread_count"), 3);
  json_t *l = harness_json_get(r->json, "notifications");
  ck_assert_int_eq(json_array_size(l), 3);
  static const char *const kKeys[] = {"id",   "type",    "title",      "body",
                                      "data", "read_at", "created_at", NULL};
  static const char *const kStatus[] = {"ready", "preparing", "confirmed"};
  for (size_t i = 0; i < 3; i++) { /* newest first */
    json_t *n = json_array_get(l, i);
    CK_JSON_KEYS(n, kKeys);
    ck_assert_str_eq(harness_json_str(n, "type"), "order.status_changed");
    ck_assert_str_eq(harness_json_str(n, "data.order_id"), oid);
    ck_assert_str_eq(harness_json_str(n, "data.status"), kStatus[i]);
    ck_assert_str_eq(harness_json_str(n, "read_at"), "");
    ck_assert(strstr(harness_json_str(n, "title"), kStatus[i]) != NULL);
  }
  harness_http_free(r);
  /* Nobody else hears of it: not the owner, not another customer. */
  r = inbox(t.owner_token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   0);
  ck_assert_int_eq(harness_json_int(r->json, "unread_count"), 0);
  harness_http_free(r);
  r = inbox(other.token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   0);
  harness_http_free(r);
  /* Exactly one row per (event, recipient) in the database. */
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM notifications.inbox "
                                    "WHERE user_id = $1::uuid",
                                    cust.id),
                   3);
}
END_TEST

START_TEST(pages_read_and_read_all) {
  harness_api_tenant t;
  person cust;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  tenant("in-read", &t);
  member(&t, "cust", "customer", &cust);
  product(&t, 100, 1, pid);
  order(cust.token, pid, 1, oid);
  set_status(&t, oid, "confirmed");
  set_status(&t, oid, "preparing");
  set_status(&t, oid, "ready");
  WAIT_INBOX(cust.token, 3);
  /* Pages of two: the cursor leads to the last one, then no cursor. */
  resp *r = inbox(cust.token, "limit=2");
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   2);
  char q[160], newest[UUID_STR_LEN + 1];
  snprintf(q, sizeof q, "limit=2&cursor=%s",
           harness_json_str(r->json, "next_cursor"));
  snprintf(newest, sizeof newest, "%s", first(r, "id"));
  harness_http_free(r);
  r = inbox(cust.token, q);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   1);
  ck_assert_str_eq(first(r, "data.status"), "confirmed");
  ck_assert_ptr_null(harness_json_get(r->json, "next_cursor"));
  harness_http_free(r);
  /* One read: the count drops, ?unread leaves it out, reading it again
   * keeps its read_at. */
  char path[128];
  snprintf(path, sizeof path, "/v1/notifications/%s/read", newest);
  r = call("POST", path, NULL, cust.token);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
  r = inbox(cust.token, "unread=true");
  ck_assert_int_eq(harness_json_int(r->json, "unread_count"), 2);
  json_t *l = harness_json_get(r->json, "notifications");
  ck_assert_int_eq(json_array_size(l), 2);
  for (size_t i = 0; i < 2; i++)
    ck_assert_str_ne(harness_json_str(json_array_get(l, i), "id"), newest);
  harness_http_free(r);
  r = inbox(cust.token, "limit=1");
  char read_at[64];
  snprintf(read_at, sizeof read_at, "%s", first(r, "read_at"));
  ck_assert(read_at[0] != '\0');
  harness_http_free(r);
  r = call("POST", path, NULL, cust.token);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
  r = inbox(cust.token, "limit=1");
  ck_assert_str_eq(first(r, "read_at"), read_at);
  harness_http_free(r);
  /* Read-all: nothing unread. */
  r = call("POST", "/v1/notifications/read-all", NULL, cust.token);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
  r = inbox(cust.token, "unread=true");
  ck_assert_int_eq(harness_json_int(r->json, "unread_count"), 0);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   0);
  harness_http_free(r);
  r = inbox(cust.token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   3);
  harness_http_free(r);
}
END_TEST

typedef struct stock_wait {
  const char *token;
} stock_wait;

static bool has_stock_low(void *arg) {
  stock_wait *w = arg;
  resp *r = harness_http_request("GET", g_sys.gateway[0].http_port,
                                 "/v1/notifications", NULL, w->token, NULL);
  json_t *n = json_array_get(harness_json_get(r->json, "notifications"), 0);
  const char *type = json_string_value(json_object_get(n, "type"));
  bool ok = type != NULL && strcmp(type, "stock.low") == 0;
  harness_http_free(r);
  return ok;
}

START_TEST(low_stock_notifies_the_owner_and_admins_only) {
  harness_api_tenant t;
  person admin, staff, cust;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  tenant("in-stock", &t);
  member(&t, "admin", "admin", &admin);
  member(&t, "staff", "staff", &staff);
  member(&t, "cust", "customer", &cust);
  product(&t, 5, 3, pid);
  order(cust.token, pid, 4, oid); /* 1 left, under the threshold */
  ck_assert(wait_for(has_stock_low, &(stock_wait){t.owner_token}));
  ck_assert(wait_for(has_stock_low, &(stock_wait){admin.token}));
  resp *r = inbox(admin.token, NULL);
  ck_assert_str_eq(first(r, "data.product_id"), pid);
  ck_assert_str_eq(first(r, "data.stock"), "1");
  ck_assert_int_eq(harness_json_int(r->json, "unread_count"), 1);
  harness_http_free(r);
  /* Staff and customers: nothing (the event was fully handled: the owner
   * and the admin already have theirs). */
  r = inbox(staff.token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   0);
  harness_http_free(r);
  r = inbox(cust.token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   0);
  harness_http_free(r);
}
END_TEST

START_TEST(another_users_notification_is_404_and_bad_input_400) {
  harness_api_tenant t, u;
  person cust, other;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  tenant("in-hostile", &t);
  tenant("in-hostile-b", &u);
  member(&t, "cust", "customer", &cust);
  member(&t, "other", "customer", &other);
  product(&t, 100, 1, pid);
  order(cust.token, pid, 1, oid);
  set_status(&t, oid, "confirmed");
  WAIT_INBOX(cust.token, 1);
  resp *r = inbox(cust.token, NULL);
  char path[128], id[UUID_STR_LEN + 1];
  snprintf(id, sizeof id, "%s", first(r, "id"));
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/notifications/%s/read", id);
  /* Another customer, the tenant's owner, another tenant's owner: 404,
   * and the notification stays unread. */
  const char *const hostile[] = {other.token, t.owner_token, u.owner_token};
  for (size_t i = 0; i < 3; i++) {
    r = call("POST", path, NULL, hostile[i]);
    CK_HTTP_ERROR(r, 404, "NOT_FOUND");
    harness_http_free(r);
    r = call("POST", "/v1/notifications/read-all", NULL, hostile[i]);
    CK_HTTP_STATUS(r, 204);
    harness_http_free(r);
  }
  r = inbox(cust.token, "unread=true");
  ck_assert_int_eq(harness_json_int(r->json, "unread_count"), 1);
  harness_http_free(r);
  /* No token: 401. */
  r = call("GET", "/v1/notifications", NULL, NULL);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  r = call("POST", path, NULL, NULL);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* Bad input: 400 naming the field. */
  static const struct {
    const char *method, *path, *field;
  } kBad[] = {
      {"GET", "/v1/notifications?limit=101", "limit"},
      {"GET", "/v1/notifications?cursor=nope", "cursor"},
      {"GET", "/v1/notifications?unread=maybe", "unread"},
      {"POST", "/v1/notifications/not-a-uuid/read", "id"},
  };
  for (size_t i = 0; i < sizeof kBad / sizeof kBad[0]; i++) {
    r = call(kBad[i].method, kBad[i].path, NULL, cust.token);
    CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
    ck_assert_msg(harness_http_has_detail(r, kBad[i].field), "%s: %s",
                  kBad[i].path, r->body);
    harness_http_free(r);
  }
}
END_TEST

START_TEST(each_notification_is_pushed_on_the_private_channel) {
  harness_api_tenant t;
  person cust, other;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  tenant("in-rt", &t);
  member(&t, "cust", "customer", &cust);
  member(&t, "other", "customer", &other);
  product(&t, 100, 1, pid);
  order(cust.token, pid, 1, oid);
  set_status(&t, oid, "confirmed");
  WAIT_INBOX(cust.token, 1);
  char gw[64], ws[96], mod[PATH_MAX + 16], ct[PASETO_TOKEN_MAX + 32], ci[64],
      ot[PASETO_TOKEN_MAX + 32], xt[PASETO_TOKEN_MAX + 32], o[64],
      real[PATH_MAX];
  ck_assert_ptr_nonnull(realpath(CLIENT_DIR "/node_modules/ws", real));
  snprintf(gw, sizeof gw, "GW=http://127.0.0.1:%d", g_sys.gateway[0].http_port);
  snprintf(ws, sizeof ws, "WS=ws://127.0.0.1:%d/v1/realtime", g_sys.ws_port);
  snprintf(mod, sizeof mod, "WS_MODULE=%s", real);
  snprintf(ct, sizeof ct, "CUSTOMER_TOKEN=%s", cust.token);
  snprintf(ci, sizeof ci, "CUSTOMER_ID=%s", cust.id);
  snprintf(ot, sizeof ot, "OWNER_TOKEN=%s", t.owner_token);
  snprintf(xt, sizeof xt, "OTHER_TOKEN=%s", other.token);
  snprintf(o, sizeof o, "ORDER_ID=%s", oid);
  char *env[] = {gw, ws, mod, ct, ci, ot, xt, o, NULL};
  char *argv[] = {"/usr/bin/env", "node", SCRIPT, NULL};
  int rc = harness_run("inbox.js", argv, env, 120000);
  if (rc != 0) harness_dump_logs();
  ck_assert_int_eq(rc, 0);
}
END_TEST

/* The messages the sink kept for rcpt, as JSON objects (json_decref). */
static json_t *mails_to(const char *rcpt) {
  json_t *all = json_array();
  FILE *f = fopen(g_mail_file, "r");
  char line[65536];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    json_t *m = json_loads(line, 0, NULL);
    const char *to =
        json_string_value(json_array_get(json_object_get(m, "rcpt_to"), 0));
    if (to != NULL && strcmp(to, rcpt) == 0) json_array_append(all, m);
    json_decref(m);
  }
  if (f != NULL) fclose(f);
  return all;
}

typedef struct mail_wait {
  const char *rcpt;
  size_t n;
} mail_wait;

static bool has_mails(void *arg) {
  mail_wait *w = arg;
  json_t *all = mails_to(w->rcpt);
  bool ok = json_array_size(all) >= w->n;
  json_decref(all);
  return ok;
}

START_TEST(each_status_change_is_emailed_through_smtp) {
  harness_api_tenant t;
  person cust, other;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1], email[128], oemail[128];
  tenant("in-mail", &t);
  member(&t, "cust", "customer", &cust);
  member(&t, "other", "customer", &other);
  snprintf(email, sizeof email, "cust@%s.example.test", t.slug);
  snprintf(oemail, sizeof oemail, "other@%s.example.test", t.slug);
  product(&t, 100, 1, pid);
  order(cust.token, pid, 1, oid);
  set_status(&t, oid, "confirmed");
  set_status(&t, oid, "preparing");
  ck_assert_msg(wait_for(has_mails, &(mail_wait){email, 2}),
                "no two e-mails to %s", email);
  WAIT_INBOX(cust.token, 2);
  /* Once each, whatever retries: the queue records the 250. */
  time_sleep_ms(500);
  json_t *all = mails_to(email);
  ck_assert_int_eq(json_array_size(all), 2);
  resp *r = inbox(cust.token, NULL);
  bool seen[2] = {false, false};
  for (size_t i = 0; i < 2; i++) {
    json_t *m = json_array_get(all, i);
    const char *data = harness_json_str(m, "data");
    ck_assert_str_eq(harness_json_str(m, "mail_from"),
                     "noreply@bistro.example");
    ck_assert(strstr(data, "From: <noreply@bistro.example>\r\n") != NULL);
    ck_assert(strstr(data, "Content-Type: text/plain; charset=utf-8") != NULL);
    ck_assert(strstr(data, "Message-ID: <") != NULL);
    /* Subject and text are the inbox's title and body. */
    for (size_t k = 0; k < 2; k++) {
      json_t *n = json_array_get(harness_json_get(r->json, "notifications"), k);
      char subj[300];
      snprintf(subj, sizeof subj, "Subject: %s\r\n",
               harness_json_str(n, "title"));
      if (strstr(data, subj) != NULL &&
          strstr(data, harness_json_str(n, "body")) != NULL)
        seen[k] = true;
    }
  }
  ck_assert(seen[0] && seen[1]);
  harness_http_free(r);
  json_decref(all);
  /* Nobody else was written to. */
  all = mails_to(oemail);
  ck_assert_int_eq(json_array_size(all), 0);
  json_decref(all);
}
END_TEST

/* ---------------------------------------------------------- campaigns -- */

/* n customers of t made straight in auth's table (a fixture: 1,000
 * registrations would hash 1,000 passwords); e-mails c<i>@<slug>... */
static void customers(const harness_api_tenant *t, int n) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "WITH ins AS (INSERT INTO auth.users (id, tenant_id, email, name, "
           "role, password_hash) SELECT gen_random_uuid(), $1::uuid, "
           "'c' || i || '@%s.example.test', 'Customer ' || i, 'customer', "
           "'x' FROM generate_series(1, %d) AS i RETURNING 1) "
           "SELECT count(*) FROM ins",
           t->slug, n);
  ck_assert_int_eq(harness_pg_count(&g_sys.pg, sql, t->id), n);
}

static resp *campaign_get(const harness_api_tenant *t, const char *id) {
  char path[96];
  snprintf(path, sizeof path, "/v1/campaigns/%s", id);
  return call("GET", path, NULL, t->owner_token);
}

typedef struct campaign_wait {
  const harness_api_tenant *t;
  const char *id;
  long long delivered;
} campaign_wait;

static bool campaign_done(void *arg) {
  campaign_wait *w = arg;
  char path[96];
  snprintf(path, sizeof path, "/v1/campaigns/%s", w->id);
  resp *r = harness_http_request("GET", g_sys.gateway[0].http_port, path, NULL,
                                 w->t->owner_token, NULL);
  json_t *st = json_object_get(r->json, "status");
  json_t *d = json_object_get(json_object_get(r->json, "stats"), "delivered");
  bool ok = json_is_string(st) && strcmp(json_string_value(st), "sent") == 0 &&
            json_integer_value(d) >= w->delivered;
  harness_http_free(r);
  return ok;
}

static bool wait_long(bool (*cond)(void *), void *arg, int64_t ms) {
  int64_t end = time_mono_ms() + ms;
  while (!cond(arg)) {
    if (time_mono_ms() > end) return false;
    time_sleep_ms(200);
  }
  return true;
}

/* The sink's messages whose recipient ends with suffix. */
static size_t mails_ending(const char *suffix) {
  size_t n = 0, sl = strlen(suffix);
  FILE *f = fopen(g_mail_file, "r");
  char line[65536];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    json_t *m = json_loads(line, 0, NULL);
    const char *to =
        json_string_value(json_array_get(json_object_get(m, "rcpt_to"), 0));
    if (to != NULL && strlen(to) > sl &&
        strcmp(to + strlen(to) - sl, suffix) == 0)
      n++;
    json_decref(m);
  }
  if (f != NULL) fclose(f);
  return n;
}

START_TEST(a_campaign_to_1000_customers_goes_out_in_batches) {
  harness_api_tenant t;
  person staff;
  tenant("camp", &t);
  member(&t, "staff", "staff", &staff);
  customers(&t, 1000);
  resp *r = call("POST", "/v1/campaigns",
                 "{\"name\":\"Spring\",\"title\":\"Spring menu\","
                 "\"body\":\"New dishes this week.\","
                 "\"channels\":[\"in_app\",\"email\"],"
                 "\"audience\":{\"roles\":[\"customer\"]}}",
                 t.owner_token);
  CK_HTTP_STATUS(r, 201);
  static const char *const kKeys[] = {
      "id",     "name",         "title",   "body",  "channels",   "audience",
      "status", "scheduled_at", "sent_at", "stats", "created_at", "updated_at",
      NULL};
  CK_JSON_KEYS(r->json, kKeys);
  ck_assert_str_eq(harness_json_str(r->json, "status"), "draft");
  ck_assert_int_eq(harness_json_int(r->json, "stats.targeted"), 0);
  char id[UUID_STR_LEN + 1], path[128];
  snprintf(id, sizeof id, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/campaigns/%s/send", id);
  r = call("POST", path, NULL, t.owner_token);
  CK_HTTP_STATUS(r, 202);
  harness_http_free(r);
  /* Sending again is refused: it is no longer a draft. */
  r = call("POST", path, NULL, t.owner_token);
  CK_HTTP_ERROR(r, 400, "FAILED_PRECONDITION");
  harness_http_free(r);
  ck_assert_msg(
      wait_long(campaign_done, &(campaign_wait){&t, id, 2000}, 300000),
      "the campaign was not sent with 2000 delivered");
  r = campaign_get(&t, id);
  ck_assert_int_eq(harness_json_int(r->json, "stats.targeted"), 2000);
  ck_assert_int_eq(harness_json_int(r->json, "stats.delivered"), 2000);
  ck_assert_int_eq(harness_json_int(r->json, "stats.failed"), 0);
  ck_assert(harness_json_str(r->json, "sent_at")[0] != '\0');
  harness_http_free(r);
  /* In batches of 100 (NOTIFICATIONS_CAMPAIGN_BATCH), each recipient once. */
  ck_assert_int_ge(
      harness_pg_count(&g_sys.pg,
                       "SELECT batches FROM notifications.campaigns "
                       "WHERE id = $1::uuid",
                       id),
      10);
  ck_assert_int_eq(
      harness_pg_count(&g_sys.pg,
                       "SELECT count(DISTINCT user_id) FROM "
                       "notifications.inbox WHERE event_id = $1::uuid",
                       id),
      1000);
  char suffix[96];
  snprintf(suffix, sizeof suffix, "@%s.example.test", t.slug);
  ck_assert_uint_eq(mails_ending(suffix), 1000);
  /* Staff were not in the audience. */
  r = inbox(staff.token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   0);
  harness_http_free(r);
}
END_TEST

typedef struct status_wait {
  const harness_api_tenant *t;
  const char *id, *status;
} status_wait;

static bool has_status(void *arg) {
  status_wait *w = arg;
  char path[96];
  snprintf(path, sizeof path, "/v1/campaigns/%s", w->id);
  resp *r = harness_http_request("GET", g_sys.gateway[0].http_port, path, NULL,
                                 w->t->owner_token, NULL);
  json_t *st = json_object_get(r->json, "status");
  bool ok = json_is_string(st) && strcmp(json_string_value(st), w->status) == 0;
  harness_http_free(r);
  return ok;
}

/* Idempotency-Key on POST /v1/campaigns (tests/harness/idemcheck.h):
 * the same key and body answer the first answer again with one campaign;
 * another body under the key 400; two at once one campaign. Drafts: none
 * is sent. */
START_TEST(idempotency_key_on_create_campaign) {
  harness_api_tenant t;
  tenant("camp-idem", &t);
  char name[5][64], body[5][256];
  for (int i = 0; i < 5; i++) {
    snprintf(name[i], sizeof name[i], "%s-%d", t.slug, i);
    snprintf(body[i], sizeof body[i],
             "{\"name\":\"%.63s\",\"title\":\"Hello\",\"channels\":"
             "[\"in_app\"],\"audience\":{\"roles\":[\"staff\"]}}",
             name[i]);
  }
  harness_idem_case c = {
      .port = g_sys.gateway[0].http_port,
      .path = "/v1/campaigns",
      .token = t.owner_token,
      .key_prefix = "itest-campaign",
      .status = 201,
      .pg = &g_sys.pg,
      .count_sql =
          "SELECT count(*) FROM notifications.campaigns WHERE name = $1",
      .body = body[0],
      .count_arg = name[0],
      .other_body = body[1],
      .count_other_arg = name[1],
      .race_body = {body[2], body[3], body[4]},
      .race_arg = {name[2], name[3], name[4]}};
  harness_idem_check(&c);
}
END_TEST

START_TEST(campaigns_scheduled_edited_cancelled_and_refused) {
  harness_api_tenant t, u;
  person cust, staff;
  tenant("camp-rules", &t);
  tenant("camp-other", &u);
  member(&t, "cust", "customer", &cust);
  member(&t, "staff", "staff", &staff);
  char when[RFC3339_MS_LEN + 1], body[512];
  ck_assert_int_eq(time_format_rfc3339(time_now_ms() + 2000, when), ERR_OK);
  snprintf(body, sizeof body,
           "{\"name\":\"Soon\",\"title\":\"Hello\",\"channels\":"
           "[\"in_app\"],\"audience\":{\"roles\":[\"customer\"]},"
           "\"scheduled_at\":\"%s\"}",
           when);
  resp *r = call("POST", "/v1/campaigns", body, t.owner_token);
  CK_HTTP_STATUS(r, 201);
  ck_assert_str_eq(harness_json_str(r->json, "status"), "scheduled");
  char id[UUID_STR_LEN + 1], path[128];
  snprintf(id, sizeof id, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
  /* The periodic job sends it when due: the customer has it. */
  ck_assert(wait_for(has_status, &(status_wait){&t, id, "sent"}));
  WAIT_INBOX(cust.token, 1);
  r = inbox(cust.token, NULL);
  ck_assert_str_eq(first(r, "type"), "campaign");
  ck_assert_str_eq(first(r, "title"), "Hello");
  ck_assert_str_eq(first(r, "data.campaign_id"), id);
  harness_http_free(r);
  /* A sent campaign cannot be edited. */
  snprintf(path, sizeof path, "/v1/campaigns/%s", id);
  r = call("PATCH", path, "{\"name\":\"Later\"}", t.owner_token);
  CK_HTTP_ERROR(r, 400, "FAILED_PRECONDITION");
  ck_assert(harness_http_has_detail(r, "status"));
  harness_http_free(r);
  /* A scheduled one is edited, then deleted: cancelled, kept. */
  ck_assert_int_eq(time_format_rfc3339(time_now_ms() + 3600000, when), ERR_OK);
  snprintf(body, sizeof body,
           "{\"name\":\"Later\",\"title\":\"Hi\",\"channels\":"
           "[\"in_app\"],\"audience\":{\"roles\":[\"staff\"]},"
           "\"scheduled_at\":\"%s\"}",
           when);
  r = call("POST", "/v1/campaigns", body, t.owner_token);
  CK_HTTP_STATUS(r, 201);
  snprintf(id, sizeof id, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
  snprintf(path, sizeof path, "/v1/campaigns/%s", id);
  r = call("PATCH", path, "{\"title\":\"Hi there\"}", t.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "title"), "Hi there");
  ck_assert_str_eq(harness_json_str(r->json, "name"), "Later");
  harness_http_free(r);
  r = call("DELETE", path, NULL, t.owner_token);
  CK_HTTP_STATUS(r, 204);
  harness_http_free(r);
  r = campaign_get(&t, id);
  ck_assert_str_eq(harness_json_str(r->json, "status"), "cancelled");
  harness_http_free(r);
  /* Another tenant's: 404. A customer or staff member: 403. */
  r = call("GET", path, NULL, u.owner_token);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
  r = call("DELETE", path, NULL, u.owner_token);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
  const char *const weak[] = {cust.token, staff.token};
  for (size_t i = 0; i < 2; i++) {
    r = call("POST", "/v1/campaigns", body, weak[i]);
    CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
    harness_http_free(r);
    r = call("GET", "/v1/campaigns", NULL, weak[i]);
    CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
    harness_http_free(r);
  }
  r = call("POST", "/v1/campaigns", body, NULL);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* Bad input: 400 naming each field. */
  static const struct {
    const char *body, *field;
  } kBad[] = {
      {"{\"name\":\"\",\"title\":\"t\",\"channels\":[\"in_app\"],"
       "\"audience\":{\"roles\":[\"customer\"]}}",
       "name"},
      {"{\"name\":\"n\",\"title\":\"t\",\"channels\":[\"fax\"],"
       "\"audience\":{\"roles\":[\"customer\"]}}",
       "channels[0]"},
      {"{\"name\":\"n\",\"title\":\"t\",\"channels\":[],"
       "\"audience\":{\"roles\":[\"customer\"]}}",
       "channels"},
      {"{\"name\":\"n\",\"title\":\"t\",\"channels\":[\"email\"]}",
       "audience.roles"},
      {"{\"name\":\"n\",\"title\":\"t\",\"channels\":[\"email\"],"
       "\"audience\":{\"roles\":[\"king\"]}}",
       "audience.roles[0]"},
      {"{\"name\":\"n\",\"title\":\"t\",\"channels\":[\"email\"],"
       "\"audience\":{\"roles\":[\"staff\"]},"
       "\"scheduled_at\":\"2001-01-01T00:00:00Z\"}",
       "scheduled_at"},
      {"{\"name\":\"n\",\"title\":\"t\",\"channels\":[\"email\",\"email\"],"
       "\"audience\":{\"roles\":[\"staff\"]}}",
       "channels[1]"},
  };
  for (size_t i = 0; i < sizeof kBad / sizeof kBad[0]; i++) {
    r = call("POST", "/v1/campaigns", kBad[i].body, t.owner_token);
    CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
    ck_assert_msg(harness_http_has_detail(r, kBad[i].field), "%s: %s",
                  kBad[i].body, r->body);
    harness_http_free(r);
  }
}
END_TEST

/* ------------------------------------------------------ auth's side -- */

START_TEST(only_notifications_may_list_recipients_and_only_as_a_service) {
  harness_api_tenant t;
  person cust;
  tenant("in-recip", &t);
  member(&t, "cust", "customer", &cust);
  char *roles[] = {"owner", "customer"};
  Auth__V1__ListRecipientsRequest req = AUTH__V1__LIST_RECIPIENTS_REQUEST__INIT;
  req.tenant_id = t.id;
  req.roles = roles;
  req.n_roles = 2;
  /* As notifications, no user token: the owner and the customer, with
   * their addresses. */
  rpc_client *n = harness_rpc_client_as(g_sys.auth.rpc_url, "notifications");
  rpc_result *r = harness_rpc_call(n, "auth.v1.Auth/ListRecipients", &req.base,
                                   NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Auth__V1__ListRecipientsResponse *lr =
      auth__v1__list_recipients_response__unpack(NULL, r->payload_len,
                                                 r->payload);
  ck_assert_ptr_nonnull(lr);
  ck_assert_uint_eq(lr->n_users, 2);
  for (size_t i = 0; i < lr->n_users; i++)
    ck_assert(strstr(lr->users[i]->email, t.slug) != NULL);
  auth__v1__list_recipients_response__free_unpacked(lr, NULL);
  rpc_result_free(r);
  /* On behalf of a user (a forwarded token): refused. */
  r = harness_rpc_call(n, "auth.v1.Auth/ListRecipients", &req.base,
                       t.owner_token, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  /* A role that is not one: 400 naming roles. */
  char *bad[] = {"king"};
  req.roles = bad;
  req.n_roles = 1;
  r = harness_rpc_call(n, "auth.v1.Auth/ListRecipients", &req.base, NULL, NULL,
                       NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "roles");
  rpc_result_free(r);
  rpc_client_free(n);
  /* Any other service (the gateway, orders): refused by the guard. */
  req.roles = roles;
  req.n_roles = 2;
  const char *const others[] = {"gateway", "orders"};
  for (size_t i = 0; i < 2; i++) {
    rpc_client *o = harness_rpc_client_as(g_sys.auth.rpc_url, others[i]);
    r = harness_rpc_call(o, "auth.v1.Auth/ListRecipients", &req.base, NULL,
                         NULL, NULL);
    CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
    rpc_result_free(r);
    rpc_client_free(o);
  }
}
END_TEST

/* ------------------------------------------------------------- sms -- */

START_TEST(an_sms_is_a_form_post_with_credentials_to_the_provider) {
  char port[16], file[128], url[160];
  int p = harness_free_port();
  snprintf(port, sizeof port, "%d", p);
  snprintf(file, sizeof file, "/tmp/inbox-itest-sms-%d.jsonl", (int)getpid());
  unlink(file);
  char *argv[] = {"/usr/bin/python3",
                  "tools/sinks/sms_sink.py",
                  "--port",
                  port,
                  "--out",
                  file,
                  NULL};
  harness_proc *sink = harness_spawn("sms-sink", argv, NULL);
  ck_assert(sink != NULL && harness_wait_port(p, 10000));
  snprintf(url, sizeof url,
           "http://127.0.0.1:%d/2010-04-01/Accounts/AC1/Messages.json", p);
  sms_config c = {.url = url,
                  .account = "AC1",
                  .token = "itest-sms-token",
                  .from = "+15550000000",
                  .timeout_ms = 5000};
  sender_result res;
  ck_assert_int_eq(
      sms_send(&c, "+15551234567", "Your order is ready & hot", &res), ERR_OK);
  ck_assert_msg(res.ok, "%d %s", res.status_code, res.error);
  ck_assert_int_eq(res.status_code, 201);
  FILE *f = fopen(file, "r");
  ck_assert_ptr_nonnull(f);
  char line[4096];
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  fclose(f);
  json_t *m = json_loads(line, 0, NULL);
  ck_assert_str_eq(harness_json_str(m, "user"), "AC1");
  ck_assert_str_eq(harness_json_str(m, "form.To"), "+15551234567");
  ck_assert_str_eq(harness_json_str(m, "form.From"), "+15550000000");
  ck_assert_str_eq(harness_json_str(m, "form.Body"),
                   "Your order is ready & hot");
  json_decref(m);
  /* A number that is not E.164 is never sent; a provider that is down is
   * a failed attempt (the queue retries it). */
  ck_assert_int_eq(sms_send(&c, "5551234567\r\n", "x", &res), ERR_INVAL);
  harness_stop(sink, 2000);
  ck_assert_int_eq(sms_send(&c, "+15551234567", "x", &res), ERR_OK);
  ck_assert(!res.ok);
  ck_assert(strstr(res.error, "itest-sms-token") == NULL);
  unlink(file);
}
END_TEST

/* ------------------------------------------------------ phones, sms -- */

#define NUMBER "+4915112345678"

/* A customer of t registered with phone (a JSON value, e.g. "\"+49 ...\"")
 * and logged in; the answer's user.phone into shown. */
static void customer_with_phone(const harness_api_tenant *t, const char *name,
                                const char *phone, person *p, char *shown,
                                size_t cap) {
  char email[96], body[384], xt[96];
  snprintf(email, sizeof email, "%s@%s.example.test", name, t->slug);
  snprintf(body, sizeof body,
           "{\"email\":\"%s\",\"name\":\"%s\",\"password\":\"%s\","
           "\"phone\":%s}",
           email, name, PASSWORD, phone);
  snprintf(xt, sizeof xt, "X-Tenant: %s", t->slug);
  const char *const hdrs[] = {xt, NULL};
  resp *r = harness_http_call("POST", g_sys.gateway[0].http_port,
                              "/v1/auth/register", body, NULL, hdrs);
  CK_HTTP_STATUS(r, 201);
  snprintf(p->id, sizeof p->id, "%s", harness_json_str(r->json, "user.id"));
  snprintf(shown, cap, "%s", harness_json_str(r->json, "user.phone"));
  harness_http_free(r);
  ck_assert_int_eq(harness_api_login(g_sys.gateway[0].http_port, t->slug, email,
                                     PASSWORD, p->token, sizeof p->token, NULL,
                                     0),
                   200);
}

/* Register (X-Tenant t) with body: the answer. */
static resp *register_as(const harness_api_tenant *t, const char *body) {
  char xt[96];
  snprintf(xt, sizeof xt, "X-Tenant: %s", t->slug);
  const char *const hdrs[] = {xt, NULL};
  return harness_http_call("POST", g_sys.gateway[0].http_port,
                           "/v1/auth/register", body, NULL, hdrs);
}

/* The SMS the provider got for number whose text has needle (NULL: any). */
static size_t sms_to(const char *number, const char *needle) {
  size_t n = 0;
  FILE *f = fopen(g_sms_file, "r");
  char line[8192];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    json_t *m = json_loads(line, 0, NULL);
    const char *to =
        json_string_value(json_object_get(json_object_get(m, "form"), "To"));
    const char *text =
        json_string_value(json_object_get(json_object_get(m, "form"), "Body"));
    if (to != NULL && strcmp(to, number) == 0 &&
        (needle == NULL || (text != NULL && strstr(text, needle) != NULL)))
      n++;
    json_decref(m);
  }
  if (f != NULL) fclose(f);
  return n;
}

typedef struct sms_wait {
  const char *number, *needle;
  size_t n;
} sms_wait;

static bool has_sms(void *arg) {
  sms_wait *w = arg;
  return sms_to(w->number, w->needle) >= w->n;
}

START_TEST(phones_are_normalised_once_and_bad_ones_refused) {
  harness_api_tenant t;
  person a, b;
  char shown[64];
  tenant("ph", &t);
  /* Two spellings of one number are one number. */
  customer_with_phone(&t, "pa", "\"+49 (151) 123-456.78\"", &a, shown,
                      sizeof shown);
  ck_assert_str_eq(shown, NUMBER);
  customer_with_phone(&t, "pb", "\"" NUMBER "\"", &b, shown, sizeof shown);
  ck_assert_str_eq(shown, NUMBER);
  ck_assert_int_eq(
      harness_pg_count(&g_sys.pg,
                       "SELECT count(*) FROM auth.users WHERE tenant_id = "
                       "$1::uuid AND phone = '" NUMBER "'",
                       t.id),
      2);
  /* Anything else is 400 naming phone, and nobody is made. */
  static const char *const kBad[] = {
      "\"015112345678\"",
      "\"0049 151 12345678\"",
      "\"+49 151 CALL-ME\"",
      "\"+1234567\"",
      "\"+1234567890123456\"",
      "\"+0151 12345678\"",
      "\"+49/151/123456\"",
      "\"   \"",
      "\"+49 151 1234 5678 9999 0000 1111 2222\"",
      "49151123",
      "\"+49 151\\n12345678\""};
  for (size_t i = 0; i < sizeof kBad / sizeof kBad[0]; i++) {
    char body[384];
    snprintf(body, sizeof body,
             "{\"email\":\"bad%zu@%s.example.test\",\"name\":\"Bad\","
             "\"password\":\"%s\",\"phone\":%s}",
             i, t.slug, PASSWORD, kBad[i]);
    resp *r = register_as(&t, body);
    ck_assert_msg(r->status == 400, "%s: %ld", kBad[i], (long)r->status);
    ck_assert_str_eq(harness_json_str(r->json, "error.code"),
                     "INVALID_ARGUMENT");
    ck_assert(harness_http_has_detail(r, "phone"));
    harness_http_free(r);
  }
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM auth.users WHERE "
                                    "tenant_id = $1::uuid AND name = 'Bad'",
                                    t.id),
                   0);
  /* Without a phone the user is exactly the contract's shape. */
  resp *r = register_as(&t, "{\"email\":\"nophone@x.example.test\","
                            "\"name\":\"N\",\"password\":\"" PASSWORD "\"}");
  CK_HTTP_STATUS(r, 201);
  ck_assert_ptr_null(harness_json_get(r->json, "user.phone"));
  harness_http_free(r);
  /* A member made by the owner, with a phone; the list shows it. */
  r = call("POST", "/v1/tenant/members",
           "{\"email\":\"st@x.example.test\",\"name\":\"St\",\"password\":"
           "\"" PASSWORD "\",\"role\":\"staff\",\"phone\":\"+1 555-123-4567\"}",
           t.owner_token);
  CK_HTTP_STATUS(r, 201);
  ck_assert_str_eq(harness_json_str(r->json, "user.phone"), "+15551234567");
  harness_http_free(r);
  r = call("POST", "/v1/tenant/members",
           "{\"email\":\"st2@x.example.test\",\"name\":\"St\",\"password\":"
           "\"" PASSWORD "\",\"role\":\"staff\",\"phone\":\"555 1234\"}",
           t.owner_token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert(harness_http_has_detail(r, "phone"));
  harness_http_free(r);
  r = call("GET", "/v1/tenant/members", NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  json_t *m = harness_json_get(r->json, "members");
  bool found = false;
  for (size_t i = 0; i < json_array_size(m); i++)
    found = found || strcmp(harness_json_str(json_array_get(m, i), "phone"),
                            "+15551234567") == 0;
  ck_assert(found);
  harness_http_free(r);
  /* The user changes it (PATCH /v1/auth/me), removes it, cannot set junk;
   * only their own. */
  r = call("PATCH", "/v1/auth/me", "{\"phone\":\"+44 20 7946 0958\"}", a.token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "user.phone"), "+442079460958");
  ck_assert_str_eq(harness_json_str(r->json, "user.id"), a.id);
  ck_assert_ptr_null(harness_json_get(r->json, "user.tenant_id"));
  harness_http_free(r);
  r = call("GET", "/v1/auth/me", NULL, a.token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "user.phone"), "+442079460958");
  harness_http_free(r);
  r = call("PATCH", "/v1/auth/me", "{\"phone\":\"call me\"}", a.token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  harness_http_free(r);
  r = call("PATCH", "/v1/auth/me", "{}", a.token); /* nothing: unchanged */
  CK_HTTP_STATUS(r, 200);
  ck_assert_str_eq(harness_json_str(r->json, "user.phone"), "+442079460958");
  harness_http_free(r);
  r = call("PATCH", "/v1/auth/me", "{\"phone\":\"\"}", a.token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_ptr_null(harness_json_get(r->json, "user.phone"));
  harness_http_free(r);
  r = call("PATCH", "/v1/auth/me", "{\"user_id\":\"x\",\"phone\":\"\"}",
           a.token);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT"); /* no such field */
  harness_http_free(r);
  r = call("PATCH", "/v1/auth/me", "{\"phone\":\"" NUMBER "\"}", NULL);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* b's number is untouched by a's changes. */
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM auth.users WHERE "
                                    "id = $1::uuid AND phone = '" NUMBER "'",
                                    b.id),
                   1);
}
END_TEST

/* Whether s's log has needle anywhere. */
static bool log_has(const harness_service *s, const char *needle) {
  FILE *f = fopen(harness_log_path(s->proc), "r");
  ck_assert_ptr_nonnull(f);
  char line[8192];
  bool found = false;
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

/* PATCH /v1/notifications/settings as token with body: the answer. */
static resp *set_settings(const char *token, const char *body) {
  return call("PATCH", "/v1/notifications/settings", body, token);
}

static long long sms_rows(const harness_api_tenant *t) {
  return harness_pg_count(&g_sys.pg,
                          "SELECT count(*) FROM notifications.deliveries "
                          "WHERE tenant_id = $1::uuid AND kind = 'sms'",
                          t->id);
}

START_TEST(sms_and_every_channel_follow_the_tenants_settings) {
  harness_api_tenant t;
  person cust;
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1], shown[64], email[128];
  tenant("sms", &t);
  customer_with_phone(&t, "smsc", "\"+49 151 1234 5678\"", &cust, shown,
                      sizeof shown);
  snprintf(email, sizeof email, "smsc@%s.example.test", t.slug);
  /* The defaults: in-app and e-mail on, SMS off. */
  resp *r = call("GET", "/v1/notifications/settings", NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  static const char *const kKeys[] = {"order_updates", "staff_alerts",
                                      "updated_at", NULL};
  CK_JSON_KEYS(r->json, kKeys);
  ck_assert(json_is_true(harness_json_get(r->json, "order_updates.in_app")));
  ck_assert(json_is_true(harness_json_get(r->json, "order_updates.email")));
  ck_assert(json_is_false(harness_json_get(r->json, "order_updates.sms")));
  ck_assert(json_is_false(harness_json_get(r->json, "staff_alerts.sms")));
  ck_assert_str_eq(harness_json_str(r->json, "updated_at"), "");
  harness_http_free(r);
  product(&t, 100, 1, pid);
  order(cust.token, pid, 1, oid);
  set_status(&t, oid, "confirmed");
  /* The e-mail of that change comes from the same transaction that would
   * have made its SMS: once it is there, no SMS was made. */
  ck_assert_msg(wait_for(has_mails, &(mail_wait){email, 1}), "no e-mail");
  ck_assert_int_eq(sms_rows(&t), 0);
  ck_assert_uint_eq(sms_to(NUMBER, NULL), 0);
  /* SMS on (nothing else changes): the next change is texted. */
  r = set_settings(t.owner_token, "{\"order_updates\":{\"sms\":true}}");
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_true(harness_json_get(r->json, "order_updates.sms")));
  ck_assert(json_is_true(harness_json_get(r->json, "order_updates.in_app")));
  ck_assert(json_is_true(harness_json_get(r->json, "order_updates.email")));
  ck_assert(json_is_false(harness_json_get(r->json, "staff_alerts.sms")));
  ck_assert(harness_json_str(r->json, "updated_at")[0] != '\0');
  harness_http_free(r);
  set_status(&t, oid, "preparing");
  ck_assert_msg(wait_for(has_sms, &(sms_wait){NUMBER, "preparing", 1}),
                "no SMS for preparing");
  ck_assert_msg(wait_for(has_mails, &(mail_wait){email, 2}), "no e-mail");
  WAIT_INBOX(cust.token, 2);
  /* Every channel off: the customer hears nothing of "ready". A low
   * stock after it (staff alerts stay on) reaches the owner once "ready"
   * was handled (events are fanned out one after the other). */
  r = set_settings(t.owner_token,
                   "{\"order_updates\":{\"in_app\":false,\"email\":false,"
                   "\"sms\":false}}");
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  set_status(&t, oid, "ready");
  char low[UUID_STR_LEN + 1], oid2[UUID_STR_LEN + 1];
  product(&t, 5, 3, low);
  order(t.owner_token, low, 4, oid2);
  ck_assert(wait_for(has_stock_low, &(stock_wait){t.owner_token}));
  time_sleep_ms(500); /* a stray message would have had time to arrive */
  r = inbox(cust.token, NULL);
  ck_assert_int_eq(json_array_size(harness_json_get(r->json, "notifications")),
                   2);
  ck_assert_str_eq(first(r, "data.status"), "preparing");
  harness_http_free(r);
  ck_assert_uint_eq(sms_to(NUMBER, NULL), 1);
  ck_assert_int_eq(sms_rows(&t), 1);
  json_t *all = mails_to(email);
  ck_assert_int_eq(json_array_size(all), 2);
  json_decref(all);
  /* In-app on again (e-mail stays off): "delivered" is in the inbox. */
  r = set_settings(t.owner_token, "{\"order_updates\":{\"in_app\":true}}");
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_false(harness_json_get(r->json, "order_updates.email")));
  harness_http_free(r);
  set_status(&t, oid, "delivered");
  WAIT_INBOX(cust.token, 3);
  r = inbox(cust.token, NULL);
  ck_assert_str_eq(first(r, "data.status"), "delivered");
  harness_http_free(r);
  /* The number is never in the service's log, in full or otherwise. */
  ck_assert(!log_has(&g_sys.notifications, "15112345678"));
  ck_assert(!log_has(&g_sys.auth, "15112345678"));
  /* Campaigns use their own channels: sms reaches the customer with a
   * phone even though the tenant's order_updates.sms is off. */
  r = call("POST", "/v1/campaigns",
           "{\"name\":\"Txt\",\"title\":\"Soup day\",\"body\":\"Soup is "
           "half price\",\"channels\":[\"sms\"],"
           "\"audience\":{\"roles\":[\"customer\"]}}",
           t.owner_token);
  CK_HTTP_STATUS(r, 201);
  char path[128];
  snprintf(path, sizeof path, "/v1/campaigns/%s/send",
           harness_json_str(r->json, "id"));
  harness_http_free(r);
  r = call("POST", path, NULL, t.owner_token);
  CK_HTTP_STATUS(r, 202);
  harness_http_free(r);
  ck_assert_msg(wait_for(has_sms, &(sms_wait){NUMBER, "half price", 1}),
                "no campaign SMS");
}
END_TEST

START_TEST(settings_are_for_admins_of_their_own_tenant) {
  harness_api_tenant t, u;
  person cust, staff, admin;
  tenant("set-a", &t);
  tenant("set-b", &u);
  member(&t, "c", "customer", &cust);
  member(&t, "s", "staff", &staff);
  member(&t, "a", "admin", &admin);
  const char *weak[] = {cust.token, staff.token};
  for (size_t i = 0; i < 2; i++) {
    resp *r = call("GET", "/v1/notifications/settings", NULL, weak[i]);
    CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
    harness_http_free(r);
    r = set_settings(weak[i], "{\"order_updates\":{\"sms\":true}}");
    CK_HTTP_ERROR(r, 403, "PERMISSION_DENIED");
    harness_http_free(r);
  }
  resp *r = call("GET", "/v1/notifications/settings", NULL, NULL);
  CK_HTTP_ERROR(r, 401, "UNAUTHENTICATED");
  harness_http_free(r);
  /* An admin may; two changes of different channels both stand. */
  r = set_settings(admin.token, "{\"staff_alerts\":{\"email\":false}}");
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  r = set_settings(t.owner_token, "{\"staff_alerts\":{\"sms\":true}}");
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_false(harness_json_get(r->json, "staff_alerts.email")));
  ck_assert(json_is_true(harness_json_get(r->json, "staff_alerts.sms")));
  ck_assert(json_is_true(harness_json_get(r->json, "staff_alerts.in_app")));
  harness_http_free(r);
  /* Bad types are refused by name; nothing changes. */
  r = set_settings(t.owner_token, "{\"staff_alerts\":{\"sms\":\"yes\"}}");
  CK_HTTP_STATUS(r, 400);
  harness_http_free(r);
  r = set_settings(t.owner_token, "{\"staff_alerts\":{\"fax\":true}}");
  CK_HTTP_STATUS(r, 400);
  harness_http_free(r);
  /* The other tenant still has the defaults, and its change is its own. */
  r = call("GET", "/v1/notifications/settings", NULL, u.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_true(harness_json_get(r->json, "staff_alerts.email")));
  ck_assert(json_is_false(harness_json_get(r->json, "staff_alerts.sms")));
  ck_assert_str_eq(harness_json_str(r->json, "updated_at"), "");
  harness_http_free(r);
  r = set_settings(u.owner_token, "{\"order_updates\":{\"email\":false}}");
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  r = call("GET", "/v1/notifications/settings", NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert(json_is_true(harness_json_get(r->json, "order_updates.email")));
  ck_assert(json_is_true(harness_json_get(r->json, "staff_alerts.sms")));
  harness_http_free(r);
  /* One row each, behind row-level security. */
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.settings WHERE tenant_id "
                                    "= $1::uuid AND staff_sms",
                                    t.id),
                   1);
  /* Staff alerts follow staff_alerts: SMS is on for t, so a low stock
   * texts the owner, who has a phone now; the admin without one gets the
   * in-app notification only. */
  r = call("PATCH", "/v1/auth/me", "{\"phone\":\"+1 (555) 000-1111\"}",
           t.owner_token);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  char pid[UUID_STR_LEN + 1], oid[UUID_STR_LEN + 1];
  product(&t, 5, 3, pid);
  order(cust.token, pid, 4, oid);
  ck_assert(wait_for(has_stock_low, &(stock_wait){admin.token}));
  ck_assert_msg(wait_for(has_sms, &(sms_wait){"+15550001111", "1 left", 1}),
                "no low-stock SMS to the owner");
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.deliveries WHERE tenant_id "
                                    "= $1::uuid AND kind = 'sms'",
                                    t.id),
                   1);
  /* staff_alerts.email is off: the owner and the admin got no e-mail. */
  ck_assert_int_eq(harness_pg_count(&g_sys.pg,
                                    "SELECT count(*) FROM "
                                    "notifications.deliveries WHERE tenant_id "
                                    "= $1::uuid AND kind = 'email'",
                                    t.id),
                   0);
}
END_TEST

START_TEST(campaigns_list_in_pages_and_only_the_tenants_own) {
  harness_api_tenant t, u;
  tenant("camp-pg", &t);
  tenant("camp-pg2", &u);
  char ids[5][UUID_STR_LEN + 1];
  for (int i = 0; i < 5; i++) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"C%d\",\"title\":\"T\",\"body\":\"B\","
             "\"channels\":[\"in_app\"],\"audience\":{\"roles\":[\"staff\"]}}",
             i);
    resp *r = call("POST", "/v1/campaigns", body, t.owner_token);
    CK_HTTP_STATUS(r, 201);
    snprintf(ids[i], sizeof ids[i], "%s", harness_json_str(r->json, "id"));
    harness_http_free(r);
  }
  /* Pages of two, newest first, each campaign once, then no next_cursor. */
  char cursor[64] = "";
  int seen = 0;
  for (int page = 0; page < 3; page++) {
    char path[160];
    snprintf(path, sizeof path, "/v1/campaigns?limit=2%s%s",
             cursor[0] ? "&cursor=" : "", cursor);
    resp *r = call("GET", path, NULL, t.owner_token);
    CK_HTTP_STATUS(r, 200);
    json_t *l = harness_json_get(r->json, "campaigns");
    ck_assert_uint_eq(json_array_size(l), page < 2 ? 2 : 1);
    for (size_t i = 0; i < json_array_size(l); i++, seen++)
      ck_assert_str_eq(harness_json_str(json_array_get(l, i), "id"),
                       ids[4 - seen]);
    json_t *next = harness_json_get(r->json, "next_cursor");
    if (page < 2) {
      ck_assert(json_is_string(next));
      snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
    } else {
      ck_assert_ptr_null(next); /* present only while more remain */
    }
    harness_http_free(r);
  }
  ck_assert_int_eq(seen, 5);
  /* The default page holds them all (20). */
  resp *r = call("GET", "/v1/campaigns", NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_uint_eq(json_array_size(harness_json_get(r->json, "campaigns")), 5);
  ck_assert_ptr_null(harness_json_get(r->json, "next_cursor"));
  harness_http_free(r);
  /* Bad pages are 400 naming the parameter. */
  static const char *const kBad[][2] = {
      {"limit=101", "limit"},
      {"limit=-1", "limit"},
      {"cursor=xyz", "cursor"},
      {"cursor=01a24da2-102b-7542", "cursor"}};
  for (size_t i = 0; i < sizeof kBad / sizeof kBad[0]; i++) {
    char path[160];
    snprintf(path, sizeof path, "/v1/campaigns?%s", kBad[i][0]);
    r = call("GET", path, NULL, t.owner_token);
    CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
    ck_assert(harness_http_has_detail(r, kBad[i][1]));
    harness_http_free(r);
  }
  /* Another tenant sees none of them, with or without t's cursor. */
  char path[160];
  snprintf(path, sizeof path, "/v1/campaigns?limit=2&cursor=%s", cursor);
  const char *const paths[] = {"/v1/campaigns", path};
  for (size_t i = 0; i < 2; i++) {
    r = call("GET", paths[i], NULL, u.owner_token);
    CK_HTTP_STATUS(r, 200);
    ck_assert_uint_eq(json_array_size(harness_json_get(r->json, "campaigns")),
                      0);
    harness_http_free(r);
  }
  snprintf(path, sizeof path, "/v1/campaigns/%s", ids[0]);
  r = call("GET", path, NULL, u.owner_token);
  CK_HTTP_ERROR(r, 404, "NOT_FOUND");
  harness_http_free(r);
}
END_TEST

int main(void) {
  harness_init();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  if (!harness_npm_ci(CLIENT_DIR, "ws")) {
    fprintf(stderr, "cannot install the ws package (npm ci in %s)\n",
            CLIENT_DIR);
    return 1;
  }
  if (!start_system()) return 1;
  Suite *s = suite_create("inbox_itest");
  HARNESS_ADD_CASE(s, status_changes_fill_the_customers_inbox_and_only_theirs,
                   120, NULL);
  HARNESS_ADD_CASE(s, pages_read_and_read_all, 120, NULL);
  HARNESS_ADD_CASE(s, low_stock_notifies_the_owner_and_admins_only, 120, NULL);
  HARNESS_ADD_CASE(s, another_users_notification_is_404_and_bad_input_400, 120,
                   NULL);
  HARNESS_ADD_CASE(s, each_notification_is_pushed_on_the_private_channel, 180,
                   NULL);
  HARNESS_ADD_CASE(s, each_status_change_is_emailed_through_smtp, 120, NULL);
  HARNESS_ADD_CASE(s, idempotency_key_on_create_campaign, 120, NULL);
  HARNESS_ADD_CASE(s, campaigns_scheduled_edited_cancelled_and_refused, 120,
                   NULL);
  HARNESS_ADD_CASE(s, a_campaign_to_1000_customers_goes_out_in_batches, 400,
                   NULL);
  HARNESS_ADD_CASE(s, an_sms_is_a_form_post_with_credentials_to_the_provider,
                   60, NULL);
  HARNESS_ADD_CASE(s,
                   only_notifications_may_list_recipients_and_only_as_a_service,
                   60, NULL);
  HARNESS_ADD_CASE(s, phones_are_normalised_once_and_bad_ones_refused, 120,
                   NULL);
  HARNESS_ADD_CASE(s, sms_and_every_channel_follow_the_tenants_settings, 180,
                   NULL);
  HARNESS_ADD_CASE(s, settings_are_for_admins_of_their_own_tenant, 120, NULL);
  HARNESS_ADD_CASE(s, campaigns_list_in_pages_and_only_the_tenants_own, 120,
                   NULL);
  int failed = harness_run_shared(s);
  int rc = harness_system_end(&g_sys, failed);
  harness_stop(g_smtp, 2000);
  harness_stop(g_sms, 2000);
  unlink(g_mail_file);
  unlink(g_sms_file);
  return rc;
}
