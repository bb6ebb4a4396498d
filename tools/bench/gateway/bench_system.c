/*
 * bench_system.c - brings up the whole system for the gateway and orders
 * benchmarks (tests/harness: PostgreSQL, Redis, auth, tenants, orders,
 * gateway as processes), creates a tenant through the gateway, and prints
 * what the run.sh scripts need:
 *
 *   GATEWAY_PORT=<port>
 *   ADMIN_PORT=<gateway admin port>
 *   ORDERS_ADMIN_PORT=<orders admin port>
 *   TOKEN=<owner access token>
 *   TENANT_ID=<the tenant's id>
 *   PG_URL=<libpq keyword string of the PostgreSQL everything uses>
 *   PRODUCTS=<id,id,...>    (BENCH_PRODUCTS=N products with stock
 *                            BENCH_STOCK each, made through the gateway)
 *   PIDS='name:pid ...'     (every process but PostgreSQL's)
 *   PG_PID=<postmaster>      (its children are the backends)
 *
 * BENCH_ORDERS_REPLICAS=N (1 to 5, default 1) runs orders in N processes
 * behind the one gateway (tools/bench/replicas).
 *   READY
 *
 * then waits until stdin closes (run.sh holds it open while wrk runs) and
 * stops everything. Not a test: a benchmark fixture.
 *
 *   BAZEL_BIN=... bench_system   (from the repository root)
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

/* The backends log only warnings; the gateway's access log is at info. */
static const harness_service_opts kBackend = {
    .pg = &pg, .redis = &redis, .rpc_workers = 16, .log_level = "warn"};
static const harness_service_opts kGateway = {
    .pg = &pg, .redis = &redis, .log_level = "info"};

/* POSTs a JSON body (with a bearer token when tok is not NULL) to the
 * gateway; the parsed answer when the status is 2xx, otherwise NULL (the
 * answer is printed). */
static json_t *post(int port, const char *path, const char *tok,
                    const char *body) {
  harness_http_resp *r =
      harness_http_request("POST", port, path, body, tok, NULL);
  json_t *j = r->status / 100 == 2 ? json_incref(r->json) : NULL;
  if (j == NULL) fprintf(stderr, "POST %s: %ld %s\n", path, r->status, r->body);
  harness_http_free(r);
  return j;
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (harness_pg_start(&pg) != 0 || harness_redis_start(&redis) != 0) {
    harness_dump_logs();
    return 1;
  }
  /* BENCH_ORDERS_REPLICAS=N (1..5): orders in N processes, every one in
   * the gateway's ORDERS_ADDR (tools/bench/replicas). */
  const char *nr = getenv("BENCH_ORDERS_REPLICAS");
  long nord = nr ? strtol(nr, NULL, 10) : 1;
  if (nord < 1 || nord > 5) return 1;
  harness_service auth = {0}, tenants = {0}, orders[5] = {{0}}, gw = {0};
  if (!harness_service_start_auth(&auth, "auth", &kBackend, NULL)) goto fail;
  char aa[96];
  snprintf(aa, sizeof aa, "AUTH_ADDR=%s", auth.rpc_url);
  char *tx[] = {aa, NULL};
  if (!harness_service_start(&tenants, "tenants", "services/tenants/tenants",
                             &kBackend, tx))
    goto fail;
  char ta[96];
  snprintf(ta, sizeof ta, "TENANTS_ADDR=%s", tenants.rpc_url);
  char *ox[] = {aa, ta, NULL};
  char go[400], ge[200];
  size_t gl = (size_t)snprintf(go, sizeof go, "ORDERS_ADDR=");
  for (long i = 0; i < nord; i++) {
    char name[16];
    snprintf(name, sizeof name, i ? "orders-%ld" : "orders", i);
    if (!harness_service_start(&orders[i], name, "services/orders/orders",
                               &kBackend, ox))
      goto fail;
    gl += (size_t)snprintf(go + gl, sizeof go - gl, "%s%s", i ? "," : "",
                           orders[i].rpc_url);
  }
  snprintf(ge, sizeof ge, "TENANTS_EVENTS=%s", tenants.bus_url);
  char *gx[] = {aa,
                ta,
                go,
                ge,
                "GATEWAY_RATE_BURST=1000000000",
                "GATEWAY_RATE_PER_MIN=1000000000",
                NULL};
  if (!harness_service_start(&gw, "gateway", "services/gateway/gateway",
                             &kGateway, gx))
    goto fail;

  /* A tenant and its owner's token, through the gateway. */
  static harness_api_tenant t;
  if (harness_api_create_tenant(gw.http_port, "bench", "bench password", &t) !=
      201)
    goto fail;
  const char *tok = t.owner_token;
  char body[512];

  /* Products for the orders benchmark. */
  const char *np = getenv("BENCH_PRODUCTS");
  const char *stock = getenv("BENCH_STOCK");
  long nproducts = np ? strtol(np, NULL, 10) : 0;
  if (nproducts < 0 || nproducts > 1000) goto fail;
  size_t cap = (size_t)(nproducts + 1) * 40, used = 0;
  char *ids = calloc(1, cap);
  if (ids == NULL) goto fail;
  for (long i = 0; i < nproducts; i++) {
    snprintf(body, sizeof body,
             "{\"name\":\"Product %ld\",\"category\":\"bench\","
             "\"price_cents\":%ld,\"stock\":%s}",
             i, 100 + i, stock ? stock : "1000000");
    json_t *p = post(gw.http_port, "/v1/products", tok, body);
    const char *id = json_string_value(json_object_get(p, "id"));
    if (id == NULL) goto fail;
    used += (size_t)snprintf(ids + used, cap - used, "%s%s", i ? "," : "", id);
    json_decref(p);
  }
  /* Every process's pid, for CPU accounting (/proc/<pid>/stat). */
  printf("PIDS='gateway:%d auth:%d tenants:%d", (int)harness_pid(gw.proc),
         (int)harness_pid(auth.proc), (int)harness_pid(tenants.proc));
  for (long i = 0; i < nord; i++)
    printf(" orders-%ld:%d", i, (int)harness_pid(orders[i].proc));
  printf(" redis:%d'\nPG_PID=%d\n", (int)harness_pid(redis.proc),
         (int)harness_pid(pg.proc));
  printf("GATEWAY_PORT=%d\nADMIN_PORT=%d\nORDERS_ADMIN_PORT=%d\nTOKEN=%s\n"
         "TENANT_ID=%s\nPG_URL='%s'\nPRODUCTS=%s\nREADY\n",
         gw.http_port, gw.admin_port, orders[0].admin_port, tok, t.id, pg.url,
         ids);
  fflush(stdout);
  free(ids);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  harness_service_stop(&gw, 10000);
  for (long i = 0; i < nord; i++) harness_service_stop(&orders[i], 10000);
  harness_service_stop(&tenants, 10000);
  harness_service_stop(&auth, 10000);
  harness_redis_stop(&redis);
  harness_pg_stop(&pg);
  return 0;
fail:
  harness_dump_logs();
  return 1;
}
