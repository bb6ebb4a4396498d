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
 *   READY
 *
 * then waits until stdin closes (run.sh holds it open while wrk runs) and
 * stops everything. Not a test: a benchmark fixture.
 *
 *   BAZEL_BIN=... bench_system   (from the repository root)
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/paseto/paseto.h"
#include "tests/harness/harness.h"

typedef struct svc {
  harness_proc *proc;
  int rpc, admin, bus, http;
  char rpc_url[64], bus_url[64];
} svc;

static harness_pg pg;
static harness_redis redis;
static char root[512];

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *out = NULL;
  if (vasprintf(&out, f, ap) < 0) abort();
  va_end(ap);
  return out;
}

/* level: LOG_LEVEL (the gateway's access log is at info). */
static bool start(svc *s, const char *name, const char *bin, const char *mig,
                  const char *level, char **extra) {
  s->rpc = harness_free_port();
  s->admin = harness_free_port();
  s->bus = harness_free_port();
  s->http = harness_free_port();
  snprintf(s->rpc_url, sizeof s->rpc_url, "tcp://127.0.0.1:%d", s->rpc);
  snprintf(s->bus_url, sizeof s->bus_url, "tcp://127.0.0.1:%d", s->bus);
  char *env[40];
  int n = 0;
  env[n++] = fmt("DATABASE_URL=%s", pg.url);
  env[n++] = fmt("REDIS_URL=%s", redis.url);
  env[n++] = fmt("RPC_LISTEN=%s", s->rpc_url);
  env[n++] = fmt("BUS_LISTEN=%s", s->bus_url);
  env[n++] = fmt("ADMIN_ADDR=%s", "127.0.0.1");
  env[n++] = fmt("ADMIN_PORT=%d", s->admin);
  env[n++] = fmt("HTTP_ADDR=%s", "127.0.0.1");
  env[n++] = fmt("HTTP_PORT=%d", s->http);
  env[n++] = fmt("MIGRATIONS_DIR=%s/services/%s/migrations", root, mig);
  env[n++] = fmt("LOG_LEVEL=%s", level);
  int own = n;
  for (int i = 0; extra && extra[i] && n < 39; i++) env[n++] = extra[i];
  env[n] = NULL;
  char path[512];
  snprintf(path, sizeof path, "%s", harness_bin_path(bin));
  char *argv[] = {path, NULL};
  s->proc = harness_spawn(name, argv, env);
  for (int i = 0; i < own; i++) free(env[i]);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", s->admin);
  return s->proc && harness_wait_http_ok(url, 30000);
}

static size_t collect(char *p, size_t sz, size_t n, void *arg) {
  char **buf = arg;
  size_t old = *buf ? strlen(*buf) : 0;
  char *b = realloc(*buf, old + sz * n + 1);
  if (b == NULL) return 0;
  memcpy(b + old, p, sz * n);
  b[old + sz * n] = '\0';
  *buf = b;
  return sz * n;
}

/* POSTs a JSON body (with a bearer token when tok is not NULL) to the
 * gateway; the parsed answer when the status is 2xx, otherwise NULL (the
 * answer is printed). */
static json_t *post(int port, const char *path, const char *tok,
                    const char *body) {
  char url[160], auth[1200];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  CURL *c = curl_easy_init();
  char *out = NULL;
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  if (tok != NULL) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    h = curl_slist_append(h, auth);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  json_t *j = (status / 100 == 2 && out) ? json_loads(out, 0, NULL) : NULL;
  if (j == NULL) fprintf(stderr, "POST %s: %ld %s\n", path, status, out ? out : "");
  free(out);
  return j;
}

int main(void) {
  harness_init();
  if (getcwd(root, sizeof root) == NULL || paseto_init() != ERR_OK) return 1;
  paseto_secret_key sk;
  paseto_keygen(&sk, NULL);
  char hex[PASETO_SECRET_HEX_LEN + 1];
  paseto_secret_key_to_hex(&sk, hex);
  paseto_secret_key_wipe(&sk);
  if (harness_pg_start(&pg) != 0 || harness_redis_start(&redis) != 0) {
    harness_dump_logs();
    return 1;
  }
  svc auth, tenants, orders, gw;
  char keys[200];
  snprintf(keys, sizeof keys, "AUTH_SIGNING_KEYS=%s", hex);
  char *ax[] = {keys, "AUTH_PWHASH_OPSLIMIT=1", "AUTH_PWHASH_MEMLIMIT_KIB=8192",
                "RPC_WORKERS=16", NULL};
  if (!start(&auth, "auth", "services/auth/auth", "auth", "warn", ax)) goto fail;
  char aa[96];
  snprintf(aa, sizeof aa, "AUTH_ADDR=%s", auth.rpc_url);
  char *tx[] = {aa, "RPC_WORKERS=16", NULL};
  if (!start(&tenants, "tenants", "services/tenants/tenants", "tenants", "warn",
             tx))
    goto fail;
  char ta[96];
  snprintf(ta, sizeof ta, "TENANTS_ADDR=%s", tenants.rpc_url);
  char *ox[] = {aa, ta, "RPC_WORKERS=16", NULL};
  if (!start(&orders, "orders", "services/orders/orders", "orders", "warn", ox))
    goto fail;
  char ga[96], gt[96], go[96], ge[200];
  snprintf(ga, sizeof ga, "AUTH_ADDR=%s", auth.rpc_url);
  snprintf(gt, sizeof gt, "TENANTS_ADDR=%s", tenants.rpc_url);
  snprintf(go, sizeof go, "ORDERS_ADDR=%s", orders.rpc_url);
  snprintf(ge, sizeof ge, "TENANTS_EVENTS=%s", tenants.bus_url);
  char *gx[] = {ga, gt, go, ge, "GATEWAY_RATE_BURST=1000000000",
                "GATEWAY_RATE_PER_MIN=1000000000", NULL};
  if (!start(&gw, "gateway", "services/gateway/gateway", "gateway", "info", gx)) goto fail;

  /* A tenant and its owner's token, through the gateway. */
  char slug[40], u[UUID_STR_LEN + 1], body[512];
  uuid_v7_str(u);
  snprintf(slug, sizeof slug, "bench-%.8s", u + 28);
  snprintf(body, sizeof body,
           "{\"name\":\"Bench\",\"slug\":\"%s\",\"owner\":{\"email\":"
           "\"owner@bench.test\",\"password\":\"bench password\",\"name\":\"B\"}}",
           slug);
  json_t *j = post(gw.http, "/v1/tenants", NULL, body);
  const char *tok = json_string_value(json_object_get(j, "access_token"));
  const char *tid = json_string_value(
      json_object_get(json_object_get(j, "tenant"), "id"));
  if (tok == NULL || tid == NULL) goto fail;

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
    json_t *p = post(gw.http, "/v1/products", tok, body);
    const char *id = json_string_value(json_object_get(p, "id"));
    if (id == NULL) goto fail;
    used += (size_t)snprintf(ids + used, cap - used, "%s%s", i ? "," : "", id);
    json_decref(p);
  }
  printf("GATEWAY_PORT=%d\nADMIN_PORT=%d\nORDERS_ADMIN_PORT=%d\nTOKEN=%s\n"
         "TENANT_ID=%s\nPG_URL='%s'\nPRODUCTS=%s\nREADY\n",
         gw.http, gw.admin, orders.admin, tok, tid, pg.url, ids);
  fflush(stdout);
  free(ids);
  json_decref(j);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  harness_stop(gw.proc, 10000);
  harness_stop(orders.proc, 10000);
  harness_stop(tenants.proc, 10000);
  harness_stop(auth.proc, 10000);
  harness_redis_stop(&redis);
  harness_pg_stop(&pg);
  return 0;
fail:
  harness_dump_logs();
  return 1;
}
