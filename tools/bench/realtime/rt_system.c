/*
 * rt_system.c - brings up the whole system for the realtime benchmark
 * (tests/harness: PostgreSQL, Redis, auth, tenants, orders, the gateway
 * and realtime as processes), makes BENCH_TENANTS tenants through the
 * gateway, each with BENCH_PRODUCTS products, and prints what run.sh and
 * the Node driver need:
 *
 *   GATEWAY_PORT=<port>
 *   WS_PORT=<realtime's WebSocket port>
 *   RT_PID=<realtime's process id>       (its RSS and CPU are measured)
 *   RT_METRICS=<realtime's /metrics URL>  (its bus gap and backfill counts)
 *   TENANT=<tenant id> <owner token> <product id,product id,...>   (each)
 *   TOKEN=<tenant index> <another access token of its owner>  (BENCH_TOKENS
 *                                                  - 1 of them per tenant)
 *   READY
 *
 * then waits until stdin closes (run.sh holds it open while the benchmark
 * runs) and stops everything. Not a test: a benchmark fixture. Access
 * tokens live an hour here (AUTH_ACCESS_TTL), so no connection reaches its
 * token's expiry (close 4001) during a run. REALTIME_MAX_SUBSCRIPTIONS,
 * REALTIME_SEND_QUEUE_BYTES and REALTIME_MAX_CONNECTIONS_PER_IP, when set,
 * are passed on to realtime (to measure their effect).
 *
 *   BAZEL_BIN=... rt_system   (from the repository root)
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness/api.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/service.h"

static harness_pg pg;
static harness_redis redis;

static const harness_service_opts kBackend = {
    .pg = &pg, .redis = &redis, .rpc_workers = 16, .log_level = "warn"};
static const harness_service_opts kRealtime = {.redis = &redis,
                                               .log_level = "warn"};

static harness_service auth, tenants, orders, gw, rt;

#define ADDR(buf, key, url) snprintf(buf, sizeof buf, "%s=%s", key, url)

static bool start_backends(void) {
  char a[96], t[96];
  char *ax[] = {"AUTH_ACCESS_TTL=1h", NULL};
  if (!harness_service_start_auth(&auth, "auth", &kBackend, ax)) return false;
  ADDR(a, "AUTH_ADDR", auth.rpc_url);
  char *tx[] = {a, NULL};
  if (!harness_service_start(&tenants, "tenants", "services/tenants/tenants",
                             &kBackend, tx))
    return false;
  ADDR(t, "TENANTS_ADDR", tenants.rpc_url);
  char *ox[] = {a, t, NULL};
  return harness_service_start(&orders, "orders", "services/orders/orders",
                               &kBackend, ox);
}

static bool start_edges(int ws_port) {
  char a[96], t[96], o[96], oe[96], ae[96], te[96], wp[32];
  ADDR(a, "AUTH_ADDR", auth.rpc_url);
  ADDR(t, "TENANTS_ADDR", tenants.rpc_url);
  ADDR(o, "ORDERS_ADDR", orders.rpc_url);
  ADDR(oe, "ORDERS_EVENTS", orders.bus_url);
  ADDR(ae, "AUTH_EVENTS", auth.bus_url);
  ADDR(te, "TENANTS_EVENTS", tenants.bus_url);
  char *gx[] = {a,
                t,
                o,
                te,
                "GATEWAY_RATE_BURST=1000000000",
                "GATEWAY_RATE_PER_MIN=1000000000",
                NULL};
  if (!harness_service_start(&gw, "gateway", "services/gateway/gateway",
                             &kBackend, gx))
    return false;
  snprintf(wp, sizeof wp, "WS_PORT=%d", ws_port);
  static const char *const kPass[] = {"REALTIME_MAX_SUBSCRIPTIONS",
                                      "REALTIME_SEND_QUEUE_BYTES",
                                      "REALTIME_MAX_CONNECTIONS_PER_IP"};
  char pass[3][80];
  char *rx[] = {a,    o,    oe,   ae,  te, wp, "WS_ADDR=127.0.0.1",
                NULL, NULL, NULL, NULL};
  size_t k = 7;
  for (size_t i = 0; i < 3; i++) {
    const char *v = getenv(kPass[i]);
    if (v == NULL) continue;
    snprintf(pass[i], sizeof pass[i], "%s=%.20s", kPass[i], v);
    rx[k++] = pass[i];
  }
  return harness_service_start(&rt, "realtime", "services/realtime/realtime",
                               &kRealtime, rx) &&
         harness_wait_port(ws_port, 10000);
}

/* POSTs body as tok; the "id" of a 2xx answer into id[cap], else false. */
static bool post_id(const char *path, const char *tok, const char *body,
                    char *id, size_t cap) {
  harness_http_resp *r =
      harness_http_request("POST", gw.http_port, path, body, tok, NULL);
  const char *v = r->status / 100 == 2
                      ? json_string_value(json_object_get(r->json, "id"))
                      : NULL;
  if (v == NULL) fprintf(stderr, "POST %s: %ld %s\n", path, r->status, r->body);
  if (v != NULL) snprintf(id, cap, "%s", v);
  harness_http_free(r);
  return v != NULL;
}

/* ntokens - 1 more access tokens of t's owner, each from spending the
 * last refresh token (POST /v1/auth/refresh: a new pair, no password
 * hash), printed as "TOKEN=<n> <token>" lines: distinct tokens (each its
 * own jti) for the same user, as devices or tabs that logged in apart. */
static bool more_tokens(long n, harness_api_tenant *t, long ntokens) {
  char body[400];
  for (long i = 1; i < ntokens; i++) {
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", t->refresh);
    harness_http_resp *r = harness_http_request(
        "POST", gw.http_port, "/v1/auth/refresh", body, NULL, NULL);
    const char *a = json_string_value(json_object_get(r->json, "access_token"));
    const char *f =
        json_string_value(json_object_get(r->json, "refresh_token"));
    bool ok = r->status == 200 && a != NULL && f != NULL &&
              strlen(f) < sizeof t->refresh;
    if (ok) {
      printf("TOKEN=%ld %s\n", n, a);
      snprintf(t->refresh, sizeof t->refresh, "%s", f);
    } else {
      fprintf(stderr, "POST /v1/auth/refresh: %ld %s\n", r->status, r->body);
    }
    harness_http_free(r);
    if (!ok) return false;
  }
  return true;
}

/* One tenant with nproducts products; prints its TENANT line (and the
 * TOKEN lines of its owner's further tokens). */
static bool make_tenant(long n, long nproducts, long ntokens) {
  static harness_api_tenant t;
  char prefix[32], body[256], id[64];
  snprintf(prefix, sizeof prefix, "rtbench%ld", n);
  if (harness_api_create_tenant(gw.http_port, prefix, "bench password", &t) !=
      201)
    return false;
  printf("TENANT=%s %s ", t.id, t.owner_token);
  for (long i = 0; i < nproducts; i++) {
    snprintf(body, sizeof body,
             "{\"name\":\"Product %ld\",\"category\":\"bench\","
             "\"price_cents\":%ld,\"stock\":1000000}",
             i, 100 + i);
    if (!post_id("/v1/products", t.owner_token, body, id, sizeof id))
      return false;
    printf("%s%s", i ? "," : "", id);
  }
  printf("\n");
  return more_tokens(n, &t, ntokens);
}

static long env_long(const char *k, long def, long lo, long hi) {
  const char *v = getenv(k);
  long n = v != NULL ? strtol(v, NULL, 10) : def;
  return n < lo ? lo : n > hi ? hi : n;
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  long ntenants = env_long("BENCH_TENANTS", 10, 1, 100);
  long nproducts = env_long("BENCH_PRODUCTS", 5, 2, 100);
  long ntokens = env_long("BENCH_TOKENS", 1, 1, 100000);
  int ws_port = harness_free_port();
  if (harness_pg_start(&pg) != 0 || harness_redis_start(&redis) != 0 ||
      !start_backends() || !start_edges(ws_port))
    goto fail;
  char metrics[128];
  printf("GATEWAY_PORT=%d\nWS_PORT=%d\nRT_PID=%ld\nRT_METRICS=%s\n",
         gw.http_port, ws_port, (long)harness_pid(rt.proc),
         harness_service_admin_url(&rt, "/metrics", metrics, sizeof metrics));
  for (long i = 0; i < ntenants; i++)
    if (!make_tenant(i, nproducts, ntokens)) goto fail;
  printf("READY\n");
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  harness_service_stop(&rt, 15000);
  harness_service_stop(&gw, 10000);
  harness_service_stop(&orders, 10000);
  harness_service_stop(&tenants, 10000);
  harness_service_stop(&auth, 10000);
  harness_redis_stop(&redis);
  harness_pg_stop(&pg);
  return 0;
fail:
  harness_dump_logs();
  return 1;
}
