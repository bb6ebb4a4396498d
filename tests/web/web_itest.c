/*
 * web_itest.c - the web console (clients/web) in headless Chromium
 * against the real system: PostgreSQL, Redis, auth, tenants, orders,
 * notifications, sync, realtime (fed by orders' and sync's buses) and the
 * gateway serving the console under /app/, as processes (tests/harness). The
 * browser is Debian's chromium driven by playwright-core
 * (tests/web/client/console.js, installed by npm ci from its package-lock.json
 * on first use; no browser is downloaded).
 *
 * console.js checks the gateway's static files over HTTP (headers, CSP,
 * 404 for paths that try to leave the directory, 405, 304), then in the
 * browser: log in as an admin; an order placed over HTTP appears on the
 * board without a reload; clicking advances it and GET /v1/orders/{id}
 * shows the new status; a status change made by another session moves
 * the card live; the connection drops and an order placed meanwhile
 * arrives through recovery (no HTTP reload); a recovery the server
 * refuses (wrong epoch) reloads over HTTP, and an order arriving live
 * while that reload's list answer is held stays on the board; the menu
 * shows the stock the orders took; a webhook delivery the scenario's
 * receiver refused is shown dead, retried from the console and succeeds;
 * a device registered over HTTP (its session, a heartbeat a second)
 * appears online on the devices section without a reload, and offline
 * when its beats stop; a campaign created and sent from the console
 * reaches `sent` with stats.targeted the members of the chosen roles, and
 * the API agrees; a staff user is offered devices but not campaigns (the
 * API answers it 403);
 * the 15 s access token (AUTH_ACCESS_TTL here) is refreshed over HTTP and
 * on the live socket, which outlives the first token, while a second
 * page whose refresh frames the test's proxy drops is closed 4001 at the
 * first token's expiry and returns to the login screen; no token is in
 * localStorage, sessionStorage or a cookie; the admin is removed by the
 * owner from another session (revocation: close 4003) and the page
 * returns to the login screen; a second admin removed while the test's
 * proxy swallows the close frame returns to it through HTTP 401 and a
 * failed refresh; the phone layout and the keyboard; no console error or
 * page error in the whole run (the expected 401s of that one step
 * aside); screenshots (board, devices, campaigns, staff) in
 * .run/test-logs/web_itest/
 * (WEB_ITEST_OUT overrides).
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/service.h"

#define CLIENT_DIR "tests/web/client"
#define APP_DIR "clients/web"
#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PEPPER "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef"
#define SECRET_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_orders, g_notif, g_sync, g_gw, g_rt;
static int g_ws_port;

static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 4, .log_level = "info"};
static const harness_service_opts kNoDb = {.redis = &g_redis,
                                           .log_level = "info"};

#define ADDR(buf, key, url) snprintf(buf, sizeof buf, "%s=%s", key, url)

/* Beats reach PostgreSQL (and DeviceOnline the bus) within 100 ms; a
 * device is offline 4 s after its last beat (twice the interval). */
static bool start_sync(void) {
  char a[96], o[96];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  char *extra[] = {a,
                   o,
                   PEPPER,
                   "SYNC_HEARTBEAT_FLUSH=100ms",
                   "SYNC_HEARTBEAT_INTERVAL=2s",
                   NULL};
  return harness_service_start(&g_sync, "sync", "services/sync/sync", &kSvc,
                               extra);
}

static bool start_realtime(void) {
  char a[96], o[96], oe[96], ae[96], te[96], s[96], se[96], wp[32];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(oe, "ORDERS_EVENTS", g_orders.bus_url);
  ADDR(ae, "AUTH_EVENTS", g_auth.bus_url);
  ADDR(te, "TENANTS_EVENTS", g_tenants.bus_url);
  ADDR(s, "SYNC_ADDR", g_sync.rpc_url);
  ADDR(se, "SYNC_EVENTS", g_sync.bus_url);
  g_ws_port = harness_free_port();
  snprintf(wp, sizeof wp, "WS_PORT=%d", g_ws_port);
  char *extra[] = {a, o, oe, ae, te, s, se, wp, "WS_ADDR=127.0.0.1", NULL};
  return harness_service_start(&g_rt, "realtime", "services/realtime/realtime",
                               &kNoDb, extra) &&
         harness_wait_port(g_ws_port, 10000);
}

/* Webhooks to the scenario's own receiver on loopback; one attempt, so
 * a refused delivery is dead at once and the console can retry it. */
static bool start_notifications(void) {
  char a[96], o[96], oe[96];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(oe, "ORDERS_EVENTS", g_orders.bus_url);
  char *extra[] = {a,
                   o,
                   oe,
                   "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=true",
                   "NOTIFICATIONS_SECRET_KEY=" SECRET_KEY,
                   "NOTIFICATIONS_MAX_ATTEMPTS=1",
                   "NOTIFICATIONS_SEND_TIMEOUT=5s",
                   NULL};
  return harness_service_start(&g_notif, "notifications",
                               "services/notifications/notifications", &kSvc,
                               extra);
}

static bool start_gateway(void) {
  char a[96], t[96], o[96], n[96], s[96], ae[96], te[96], dir[PATH_MAX + 32],
      rt[PATH_MAX];
  char app[PATH_MAX];
  if (realpath(APP_DIR, app) == NULL) return false;
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(t, "TENANTS_ADDR", g_tenants.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(n, "NOTIFICATIONS_ADDR", g_notif.rpc_url);
  ADDR(s, "SYNC_ADDR", g_sync.rpc_url);
  ADDR(ae, "AUTH_EVENTS", g_auth.bus_url);
  ADDR(te, "TENANTS_EVENTS", g_tenants.bus_url);
  snprintf(dir, sizeof dir, "GATEWAY_APP_DIR=%s", app);
  snprintf(rt, sizeof rt,
           "GATEWAY_APP_REALTIME_URL=ws://127.0.0.1:%d/v1/realtime", g_ws_port);
  char *extra[] = {a,
                   t,
                   o,
                   n,
                   s,
                   ae,
                   te,
                   dir,
                   rt,
                   "GATEWAY_BASE_DOMAIN=localhost",
                   "GATEWAY_RATE_BURST=1000",
                   "GATEWAY_LOGIN_BURST=1000",
                   NULL};
  if (!harness_service_start(&g_gw, "gateway", "services/gateway/gateway",
                             &kSvc, extra))
    return false;
  char url[128];
  return harness_wait_http_ok(
      harness_service_http_url(&g_gw, "/healthz", url, sizeof url), 10000);
}

static bool start_system(void) {
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0)
    return false;
  char a[96], t[96];
  /* Short access tokens: the page must refresh during the test. */
  char *auth_extra[] = {"AUTH_ACCESS_TTL=15s", NULL};
  bool ok = harness_service_start_auth(&g_auth, "auth", &kSvc, auth_extra);
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  char *ten_extra[] = {a, "TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                       "TENANTS_BASE_DOMAINS=localhost", NULL};
  ok =
      ok && harness_service_start(&g_tenants, "tenants",
                                  "services/tenants/tenants", &kSvc, ten_extra);
  ADDR(t, "TENANTS_ADDR", g_tenants.rpc_url);
  char *ord_extra[] = {a, t, NULL};
  ok = ok && harness_service_start(&g_orders, "orders",
                                   "services/orders/orders", &kSvc, ord_extra);
  return ok && start_notifications() && start_sync() && start_realtime() &&
         start_gateway();
}

START_TEST(console_in_headless_chromium) {
  char gw[96], out[PATH_MAX + 8];
  snprintf(gw, sizeof gw, "GW=http://127.0.0.1:%d", g_gw.http_port);
  const char *o = getenv("WEB_ITEST_OUT");
  snprintf(out, sizeof out, "OUT=%s",
           o != NULL && o[0] ? o : ".run/test-logs/web_itest");
  char *env[] = {gw, out, NULL};
  char *argv[] = {"/usr/bin/env", "node", CLIENT_DIR "/console.js", NULL};
  int rc = harness_run("console", argv, env, 180000);
  if (rc != 0) harness_dump_logs();
  ck_assert_int_eq(rc, 0);
}
END_TEST

int main(void) {
  harness_init();
  if (!harness_npm_ci(CLIENT_DIR, "playwright-core")) {
    harness_dump_logs();
    fprintf(stderr, "cannot install playwright-core (npm ci in %s)\n",
            CLIENT_DIR);
    return 1;
  }
  if (!start_system()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the system\n");
    return 1;
  }
  Suite *s = suite_create("web_itest");
  TCase *tc = tcase_create("web");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, console_in_headless_chromium);
  suite_add_tcase(s, tc);
  int failed = harness_run_shared(s);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_gw, 15000);
  harness_service_stop(&g_rt, 15000);
  harness_service_stop(&g_sync, 15000);
  harness_service_stop(&g_notif, 15000);
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
