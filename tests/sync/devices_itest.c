/*
 * devices_itest.c - realtime learns of sync's devices: PostgreSQL, Redis,
 * auth, tenants, orders, sync, the gateway and realtime as processes
 * (tests/harness), realtime fed by sync's bus (SYNC_EVENTS, Replay from
 * SYNC_ADDR), and a real WebSocket client, tests/sync/client/devices.js
 * (Node, the `ws` package, installed by npm into
 * tests/sync/client/node_modules on first use from its package-lock.json).
 *
 * The client makes two tenants over HTTP; A's owner subscribed to
 * devices.<A> receives DeviceOnline when A's device beats (the device as
 * GET /v1/sync/devices/{id} shows it); B's owner is refused devices.<A>
 * and receives nothing of A's device on devices.<B>.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/identity.h"
#include "tests/harness/service.h"

#define CLIENT_DIR "tests/sync/client"
#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PEPPER "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef"

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_orders, g_sync, g_gw, g_rt;
static int g_ws_port;

static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 4, .log_level = "info"};
static const harness_service_opts kNoDb = {.redis = &g_redis,
                                           .log_level = "info"};

#define ADDR(buf, key, url) snprintf(buf, sizeof buf, "%s=%s", key, url)

static bool start_sync_and_gateway(void) {
  char a[96], t[96], o[96], s[96];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(t, "TENANTS_ADDR", g_tenants.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(s, "SYNC_ADDR", g_sync.rpc_url);
  char *sync_extra[] = {a, o, PEPPER, "SYNC_HEARTBEAT_FLUSH=100ms", NULL};
  if (!harness_service_start(&g_sync, "sync", "services/sync/sync", &kSvc,
                             sync_extra))
    return false;
  ADDR(s, "SYNC_ADDR", g_sync.rpc_url);
  char *gw_extra[] = {a,
                      t,
                      o,
                      s,
                      "GATEWAY_BASE_DOMAIN=localhost",
                      "GATEWAY_RATE_BURST=1000",
                      "GATEWAY_LOGIN_BURST=1000",
                      NULL};
  if (!harness_service_start(&g_gw, "gateway", "services/gateway/gateway",
                             &kSvc, gw_extra))
    return false;
  char url[128];
  return harness_wait_http_ok(
      harness_service_http_url(&g_gw, "/healthz", url, sizeof url), 10000);
}

static bool start_realtime(void) {
  char a[96], o[96], oe[96], s[96], se[96], wp[32];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(oe, "ORDERS_EVENTS", g_orders.bus_url);
  ADDR(s, "SYNC_ADDR", g_sync.rpc_url);
  ADDR(se, "SYNC_EVENTS", g_sync.bus_url);
  g_ws_port = harness_free_port();
  snprintf(wp, sizeof wp, "WS_PORT=%d", g_ws_port);
  char *extra[] = {a, o, oe, s, se, wp, "WS_ADDR=127.0.0.1", NULL};
  return harness_service_start(&g_rt, "realtime", "services/realtime/realtime",
                               &kNoDb, extra) &&
         harness_wait_port(g_ws_port, 10000);
}

static bool start_system(void) {
  (void)harness_identity_key_file("sync");
  (void)harness_identity_key_file("realtime");
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0)
    return false;
  char a[96], t[96];
  bool ok = harness_service_start_auth(&g_auth, "auth", &kSvc, NULL);
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
  return ok && start_sync_and_gateway() && start_realtime();
}

START_TEST(device_events_reach_the_tenants_staff_only) {
  char gw[96], ws[96];
  snprintf(gw, sizeof gw, "GW=http://127.0.0.1:%d", g_gw.http_port);
  snprintf(ws, sizeof ws, "WS=ws://127.0.0.1:%d/v1/realtime", g_ws_port);
  char *env[] = {gw, ws, NULL};
  char *argv[] = {"/usr/bin/env", "node", CLIENT_DIR "/devices.js", NULL};
  ck_assert_int_eq(harness_run("devices", argv, env, 120000), 0);
}
END_TEST

int main(void) {
  harness_init();
  if (!harness_npm_ci(CLIENT_DIR, "ws")) {
    harness_dump_logs();
    fprintf(stderr, "cannot install the ws package (npm ci in %s)\n",
            CLIENT_DIR);
    return 1;
  }
  if (!start_system()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the system\n");
    return 1;
  }
  Suite *s = suite_create("devices_itest");
  HARNESS_ADD_CASE(s, device_events_reach_the_tenants_staff_only, 180, NULL);
  int failed = harness_run_shared(s);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_rt, 15000);
  harness_service_stop(&g_gw, 15000);
  harness_service_stop(&g_sync, 15000);
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
