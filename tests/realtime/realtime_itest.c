/*
 * realtime_itest.c - the realtime service end to end with a real
 * WebSocket client: PostgreSQL, Redis, auth, tenants, orders, the gateway
 * and realtime as processes (tests/harness), and the client
 * tests/realtime/client/scenario.js (Node, the `ws` package, installed by
 * npm into tests/realtime/client/node_modules on first use from its
 * package-lock.json).
 *
 * The scenario makes two tenants, a staff member and a customer over the
 * gateway's HTTP API, and checks over WebSocket: no or a bad token ->
 * close 4001; staff of A subscribed to orders.A receives the order created
 * over HTTP with data equal to GET /v1/orders/{id}, and the kitchen ticket
 * on kitchen.A; a customer and a member of tenant B are refused orders.A
 * (PERMISSION_DENIED) and never receive a publication; malformed JSON and
 * an unknown op -> INVALID_ARGUMENT with the connection kept; a 70 KiB
 * message -> close 1009. Recovery (issue 13): subscribe, disconnect, five
 * orders, reconnect with recover -> recovered with exactly those five in
 * order; a recover racing new orders gets each publication once; a wrong
 * epoch, the channel's hash deleted in Redis (and its history with it),
 * its keys flushed -> recovered false; history for staff, refused to a
 * customer. Presence across two replicas, refused to a customer and to
 * another tenant; refresh (another user's token -> 4003); logout and
 * member removal closing live sockets with 4003 on both replicas (the
 * second learns of revocations only through Redis, and only through the
 * revocation counter: its safety-net full pass, REALTIME_RECHECK_FULL, is
 * a day, longer than the test waits); a customer's own
 * orders on private.user.<id>, nothing of another customer's; more
 * connections from one address than the cap -> refused. Two replicas on
 * one Redis and one bus: clients on both get every publication; kill -9
 * of the second while clients are on both -> the first's clients lose
 * nothing, the second's reconnect to the first with recover and get
 * exactly what they missed, and their presence expires. Liveness: on the
 * second replica (REALTIME_PING_IDLE=2s) a client that answers no ping is
 * dropped and one that answers stays. Slow client: on replica 1
 * (REALTIME_SEND_QUEUE_BYTES=SEND_QUEUE) a client that stops reading is
 * closed 4008 while another on the same channel receives every
 * publication in order. Then realtime gets SIGTERM and must exit 0.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/service.h"

#define CLIENT_DIR "tests/realtime/client"
#define OPERATOR_SECRET "itest-operator-secret-0123456789"

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_orders, g_gw, g_rt, g_rt2;
static int g_ws_port, g_ws2_port;

#define ADDR_CAP 48 /* REALTIME_MAX_CONNECTIONS_PER_IP */
/* Replica 1's REALTIME_SEND_QUEUE_BYTES: small, so that a client that
 * stops reading reaches it after a few MB fill the kernel's buffers, yet
 * well above a burst of publications (the scenario PATCHes 10 at a time,
 * ~90 KB), so that a reader slowed by a loaded machine is not cut too
 * (64 KiB once was, in CI). */
#define SEND_QUEUE 262144

static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 4, .log_level = "info"};
/* realtime needs no PostgreSQL. */
static const harness_service_opts kNoDb = {.redis = &g_redis,
                                           .log_level = "debug"};

#define ADDR(buf, key, url) snprintf(buf, sizeof buf, "%s=%s", key, url)

static bool start_gateway(void) {
  char a[96], t[96], o[96], ae[96], te[96];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(t, "TENANTS_ADDR", g_tenants.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(ae, "AUTH_EVENTS", g_auth.bus_url);
  ADDR(te, "TENANTS_EVENTS", g_tenants.bus_url);
  char *extra[] = {a,
                   t,
                   o,
                   ae,
                   te,
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

/* A realtime replica on *port. with_events: fed auth's and tenants'
 * events (revocations at once), and a send queue of SEND_QUEUE bytes (the
 * slow-client case); without, it learns of revocations only through Redis
 * (the recheck's backstop when events are lost), and pings a connection
 * after 2 s of silence (the liveness case). */
static bool start_realtime(harness_service *svc, const char *name, int *port,
                           bool with_events) {
  char a[96], o[96], oe[96], ae[96], te[96], wp[32], cap[64], sq[64];
  ADDR(a, "AUTH_ADDR", g_auth.rpc_url);
  ADDR(o, "ORDERS_ADDR", g_orders.rpc_url);
  ADDR(oe, "ORDERS_EVENTS", g_orders.bus_url);
  ADDR(ae, "AUTH_EVENTS", with_events ? g_auth.bus_url : "");
  ADDR(te, "TENANTS_EVENTS", with_events ? g_tenants.bus_url : "");
  *port = harness_free_port();
  snprintf(wp, sizeof wp, "WS_PORT=%d", *port);
  snprintf(cap, sizeof cap, "REALTIME_MAX_CONNECTIONS_PER_IP=%d", ADDR_CAP);
  snprintf(sq, sizeof sq, "REALTIME_SEND_QUEUE_BYTES=%d", SEND_QUEUE);
  char *extra[] = {a,
                   o,
                   oe,
                   ae,
                   te,
                   wp,
                   "WS_ADDR=127.0.0.1",
                   "REALTIME_PRESENCE_TTL=3s",
                   cap,
                   with_events ? sq : "REALTIME_PING_IDLE=2s",
                   with_events ? "REALTIME_RECHECK_FULL=5s"
                               : "REALTIME_RECHECK_FULL=24h",
                   NULL};
  return harness_service_start(svc, name, "services/realtime/realtime", &kNoDb,
                               extra) &&
         harness_wait_port(*port, 10000);
}

static bool start_system(void) {
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
  return ok && start_gateway() &&
         start_realtime(&g_rt, "realtime", &g_ws_port, true) &&
         start_realtime(&g_rt2, "realtime2", &g_ws2_port, false);
}

START_TEST(websocket_scenario_with_a_real_client) {
  char gw[96], ws[96], ws2[96], rp[32], pid2[32], cap[32], m[128], murl[96],
      sq[32];
  snprintf(gw, sizeof gw, "GW=http://127.0.0.1:%d", g_gw.http_port);
  snprintf(ws, sizeof ws, "WS=ws://127.0.0.1:%d/v1/realtime", g_ws_port);
  snprintf(ws2, sizeof ws2, "WS2=ws://127.0.0.1:%d/v1/realtime", g_ws2_port);
  snprintf(rp, sizeof rp, "REDIS_PORT=%d", g_redis.port);
  snprintf(pid2, sizeof pid2, "WS2_PID=%d", (int)harness_pid(g_rt2.proc));
  snprintf(cap, sizeof cap, "ADDR_CAP=%d", ADDR_CAP);
  snprintf(sq, sizeof sq, "SEND_QUEUE=%d", SEND_QUEUE);
  snprintf(m, sizeof m, "METRICS=%s",
           harness_service_admin_url(&g_rt, "/metrics", murl, sizeof murl));
  char *env[] = {gw, ws, ws2, rp, pid2, cap, m, sq, NULL};
  char *argv[] = {"/usr/bin/env", "node", CLIENT_DIR "/scenario.js", NULL};
  int rc = harness_run("scenario", argv, env, 300000);
  if (rc != 0) harness_dump_logs();
  ck_assert_int_eq(rc, 0);
}
END_TEST

START_TEST(sigterm_drains_and_exits_zero) {
  harness_signal(g_rt.proc, SIGTERM);
  int st = harness_wait_exit(g_rt.proc, 20000);
  ck_assert(st != -1 && WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 0);
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
  Suite *s = suite_create("realtime_itest");
  TCase *tc = tcase_create("realtime");
  tcase_set_timeout(tc, 360);
  tcase_add_test(tc, websocket_scenario_with_a_real_client);
  tcase_add_test(tc, sigterm_drains_and_exits_zero);
  suite_add_tcase(s, tc);
  /* The cases share the system started above. */
  int failed = harness_run_shared(s);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_rt, 15000);
  harness_service_stop(&g_rt2, 15000);
  harness_service_stop(&g_gw, 15000);
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
