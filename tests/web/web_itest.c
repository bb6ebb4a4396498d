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
#include "tests/harness/system.h"

#define CLIENT_DIR "tests/web/client"
#define APP_DIR "clients/web"
#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PEPPER "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef"
#define SECRET_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static harness_system g_sys;

/* Short access tokens: the page must refresh during the test. */
static char *const kAuth[] = {"AUTH_ACCESS_TTL=15s", NULL};
static char *const kTenants[] = {"TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                                 "TENANTS_BASE_DOMAINS=localhost", NULL};
/* Webhooks to the scenario's own receiver on loopback; one attempt, so
 * a refused delivery is dead at once and the console can retry it. */
static char *const kNotifications[] = {
    "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=true",
    "NOTIFICATIONS_SECRET_KEY=" SECRET_KEY, "NOTIFICATIONS_MAX_ATTEMPTS=1",
    "NOTIFICATIONS_SEND_TIMEOUT=5s", NULL};
/* Beats reach PostgreSQL (and DeviceOnline the bus) within 100 ms; a
 * device is offline 4 s after its last beat (twice the interval). */
static char *const kSync[] = {PEPPER, "SYNC_HEARTBEAT_FLUSH=100ms",
                              "SYNC_HEARTBEAT_INTERVAL=2s", NULL};
/* The console's files, and the realtime URL it is told (realtime's port
 * is picked before the system starts so that it can be named here). */
static char g_app_dir[PATH_MAX + 32], g_app_rt[96];
static char *const kGateway[] = {g_app_dir,
                                 g_app_rt,
                                 "GATEWAY_BASE_DOMAIN=localhost",
                                 "GATEWAY_RATE_BURST=1000",
                                 "GATEWAY_LOGIN_BURST=1000",
                                 NULL};

static bool start_system(void) {
  char app[PATH_MAX];
  if (realpath(APP_DIR, app) == NULL) {
    fprintf(stderr, "no %s\n", APP_DIR);
    return false;
  }
  harness_system_opts o = {
      .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
               HARNESS_WITH(HARNESS_NOTIFICATIONS) |
               HARNESS_WITH(HARNESS_SYNC) | HARNESS_WITH(HARNESS_REALTIME) |
               HARNESS_WITH(HARNESS_GATEWAY),
      .rpc_workers = 4,
      .log_level = "info",
      .env = {[HARNESS_AUTH] = kAuth,
              [HARNESS_TENANTS] = kTenants,
              [HARNESS_NOTIFICATIONS] = kNotifications,
              [HARNESS_SYNC] = kSync,
              [HARNESS_GATEWAY] = kGateway},
      .ws_port = harness_free_port(),
  };
  snprintf(g_app_dir, sizeof g_app_dir, "GATEWAY_APP_DIR=%s", app);
  snprintf(g_app_rt, sizeof g_app_rt,
           "GATEWAY_APP_REALTIME_URL=ws://127.0.0.1:%d/v1/realtime", o.ws_port);
  return harness_system_start(&g_sys, &o);
}

START_TEST(console_in_headless_chromium) {
  char gw[96], out[PATH_MAX + 8];
  snprintf(gw, sizeof gw, "GW=http://127.0.0.1:%d", g_sys.gateway[0].http_port);
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
  if (!start_system()) return 1;
  Suite *s = suite_create("web_itest");
  TCase *tc = tcase_create("web");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, console_in_headless_chromium);
  suite_add_tcase(s, tc);
  int failed = harness_run_shared(s);
  return harness_system_end(&g_sys, failed);
}
