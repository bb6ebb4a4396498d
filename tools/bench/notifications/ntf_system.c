/*
 * ntf_system.c - the system side of the notifications benchmark
 * (tests/harness: PostgreSQL, Redis, auth, tenants, orders, the gateway
 * and notifications as processes). It makes one tenant with one product
 * and one webhook endpoint (OrderCreated) pointing at the receiver on
 * 127.0.0.1:$RECEIVER_PORT, places one warm-up order and waits until its
 * delivery succeeded (so notifications has a bus position to catch up
 * from), then prints
 *
 *   REDIS_PORT=<port>  PG_URL=<libpq keyword string>  NOTIF_PID=<pid>
 *   SECRET=<whsec_...> (the endpoint's signing secret)
 *   READY
 *
 * and obeys commands on stdin, one a line, answering each with a line:
 *
 *   BURST <workers> <n>   stop notifications, empty its deliveries, place
 *                         n orders, start it again with <workers> sending
 *                         threads (it catches up through Replay and fans
 *                         out while its workers send), wait until n
 *                         deliveries succeeded -> "DONE <pid>" (or "FAIL")
 *   STEADY <workers> <n> <rate>
 *                         notifications restarted with <workers>, its
 *                         deliveries emptied, n orders placed at <rate>/s
 *                         while it runs, wait as above -> "DONE <pid>"
 *
 * When stdin closes it stops everything. Not a test: a benchmark fixture
 * (tools/bench/notifications/README.md).
 *
 *   BAZEL_BIN=... RECEIVER_PORT=... ntf_system   (from the repository root)
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "tests/harness/api.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/service.h"

#define SECRET_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define WAIT_S 900

static harness_pg pg;
static harness_redis redis;
static const harness_service_opts kSvc = {
    .pg = &pg, .redis = &redis, .rpc_workers = 16, .log_level = "warn"};
static harness_service auth, tenants, orders, gw, notif;
static harness_api_tenant tenant;
static char product[64];

#define ADDR(buf, key, url) snprintf(buf, sizeof buf, "%s=%s", key, url)

static bool start_backends(void) {
  char a[96], t[96];
  char *ax[] = {"AUTH_ACCESS_TTL=1h", NULL};
  if (!harness_service_start_auth(&auth, "auth", &kSvc, ax)) return false;
  ADDR(a, "AUTH_ADDR", auth.rpc_url);
  char *tx[] = {a, "TENANTS_BASE_DOMAINS=localhost", NULL};
  if (!harness_service_start(&tenants, "tenants", "services/tenants/tenants",
                             &kSvc, tx))
    return false;
  ADDR(t, "TENANTS_ADDR", tenants.rpc_url);
  char *ox[] = {a, t, NULL};
  return harness_service_start(&orders, "orders", "services/orders/orders",
                               &kSvc, ox);
}

/* (Re)starts notifications with `workers` sending threads; the rest of its
 * configuration is the defaults, but private targets allowed (loopback). */
static bool start_notifications(int workers) {
  char a[96], o[96], oe[96], w[48];
  ADDR(a, "AUTH_ADDR", auth.rpc_url);
  ADDR(o, "ORDERS_ADDR", orders.rpc_url);
  ADDR(oe, "ORDERS_EVENTS", orders.bus_url);
  snprintf(w, sizeof w, "NOTIFICATIONS_WORKERS=%d", workers);
  char *nx[] = {a,
                o,
                oe,
                w,
                "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=true",
                "NOTIFICATIONS_SECRET_KEY=" SECRET_KEY,
                NULL};
  return notif.proc != NULL
             ? harness_service_restart(&notif, "notifications", &kSvc, nx)
             : harness_service_start(&notif, "notifications",
                                     "services/notifications/notifications",
                                     &kSvc, nx);
}

static bool start_gateway(void) {
  char a[96], t[96], o[96], n[96], ae[96], te[96];
  ADDR(a, "AUTH_ADDR", auth.rpc_url);
  ADDR(t, "TENANTS_ADDR", tenants.rpc_url);
  ADDR(o, "ORDERS_ADDR", orders.rpc_url);
  ADDR(n, "NOTIFICATIONS_ADDR", notif.rpc_url);
  ADDR(ae, "AUTH_EVENTS", auth.bus_url);
  ADDR(te, "TENANTS_EVENTS", tenants.bus_url);
  char *gx[] = {a,
                t,
                o,
                n,
                ae,
                te,
                "GATEWAY_BASE_DOMAIN=localhost",
                "GATEWAY_RATE_BURST=1000000000",
                "GATEWAY_RATE_PER_MIN=1000000000",
                NULL};
  return harness_service_start(&gw, "gateway", "services/gateway/gateway",
                               &kSvc, gx);
}

/* POSTs body as the owner; the answer's `key` into out[cap] on 2xx. */
static bool post(const char *path, const char *body, const char *key, char *out,
                 size_t cap) {
  harness_http_resp *r = harness_http_request("POST", gw.http_port, path, body,
                                              tenant.owner_token, NULL);
  const char *v = r->status / 100 == 2
                      ? json_string_value(json_object_get(r->json, key))
                      : NULL;
  if (v == NULL) fprintf(stderr, "POST %s: %ld %s\n", path, r->status, r->body);
  if (v != NULL && out != NULL) snprintf(out, cap, "%s", v);
  harness_http_free(r);
  return v != NULL;
}

static bool place_order(void) {
  char body[160];
  snprintf(body, sizeof body,
           "{\"items\":[{\"product_id\":\"%s\",\"quantity\":1}]}", product);
  return post("/v1/orders", body, "id", NULL, 0);
}

static long long succeeded(void) {
  return harness_pg_count(&pg,
                          "SELECT count(*) FROM notifications.deliveries "
                          "WHERE status = 'succeeded'",
                          NULL);
}

/* Polls until n deliveries succeeded (true) or WAIT_S passes. */
static bool wait_succeeded(long long n) {
  for (int i = 0; i < WAIT_S * 20; i++) {
    long long c = succeeded();
    if (c >= n) return true;
    if (c < 0) return false;
    time_sleep_ms(50);
  }
  fprintf(stderr, "only %lld of %lld deliveries succeeded\n", succeeded(), n);
  return false;
}

static bool empty_deliveries(void) {
  return harness_pg_count(&pg,
                          "WITH d AS (DELETE FROM notifications.deliveries "
                          "RETURNING 1) SELECT count(*) FROM d",
                          NULL) >= 0;
}

static bool setup(int port) {
  char body[256], secret[128];
  if (harness_api_create_tenant(gw.http_port, "nbench", "bench password",
                                &tenant) != 201 ||
      !post("/v1/products",
            "{\"name\":\"Soup\",\"category\":\"bench\",\"price_cents\":450}",
            "id", product, sizeof product))
    return false;
  snprintf(body, sizeof body,
           "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":"
           "[\"OrderCreated\"],\"description\":\"bench\"}",
           port);
  if (!post("/v1/webhooks", body, "secret", secret, sizeof secret) ||
      !place_order() || !wait_succeeded(1))
    return false;
  printf("REDIS_PORT=%d\nPG_URL=%s\nNOTIF_PID=%ld\nSECRET=%s\nREADY\n",
         redis.port, pg.url, (long)harness_pid(notif.proc), secret);
  fflush(stdout);
  return true;
}

static bool burst(int workers, long n) {
  harness_service_stop(&notif, 15000);
  if (!empty_deliveries()) return false;
  for (long i = 0; i < n; i++)
    if (!place_order()) return false;
  return start_notifications(workers) && wait_succeeded(n);
}

static bool steady(int workers, long n, long rate) {
  if (!start_notifications(workers) || !empty_deliveries()) return false;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    /* Order i is due at t0 + i/rate: a fixed schedule, not sleeps that
     * add up with the time each POST takes. */
    long long due = (long long)t0.tv_sec * 1000000000LL + t0.tv_nsec +
                    (long long)i * 1000000000LL / rate;
    struct timespec ts = {(time_t)(due / 1000000000LL),
                          (long)(due % 1000000000LL)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    if (!place_order()) return false;
  }
  return wait_succeeded(n);
}

static void serve_commands(void) {
  char line[128];
  while (fgets(line, sizeof line, stdin) != NULL) {
    int w = 0;
    long n = 0, rate = 0;
    bool ok = false;
    if (sscanf(line, "BURST %d %ld", &w, &n) == 2 && w > 0 && n > 0)
      ok = burst(w, n);
    else if (sscanf(line, "STEADY %d %ld %ld", &w, &n, &rate) == 3 && w > 0 &&
             n > 0 && rate > 0)
      ok = steady(w, n, rate);
    if (ok)
      printf("DONE %ld\n", (long)harness_pid(notif.proc));
    else
      printf("FAIL\n");
    fflush(stdout);
  }
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const char *rp = getenv("RECEIVER_PORT");
  char *end = NULL;
  long port = rp != NULL ? strtol(rp, &end, 10) : 0;
  if (rp == NULL || end == rp || *end != '\0' || port <= 0 || port > 65535) {
    fprintf(stderr, "RECEIVER_PORT must be set\n");
    return 2;
  }
  if (harness_pg_start(&pg) != 0 || harness_redis_start(&redis) != 0 ||
      !start_backends() || !start_notifications(4) || !start_gateway() ||
      !setup(port))
    goto fail;
  serve_commands();
  harness_service_stop(&gw, 10000);
  harness_service_stop(&notif, 15000);
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
