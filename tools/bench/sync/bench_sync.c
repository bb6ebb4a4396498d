/*
 * bench_sync.c - the sync benchmark's system and load (tools/bench/sync/
 * run.sh; docs/PERFORMANCE.md "Sync"). Brings up PostgreSQL, Redis, auth,
 * tenants, orders, sync and the gateway (tests/harness), makes a tenant
 * with 20 products, devices and their tokens through the gateway, prints
 *
 *   TENANT_ID=<id>  PG_URL='<libpq>'  PRODUCTS=<20 ids>
 *   PGB_DEVICES=<16 device ids for pgbench>  READY
 *
 * then runs the commands run.sh writes to stdin, one per line, printing
 * one RESULT line for each:
 *
 *   push SECS  BENCH_PUSHERS devices (default 4), each on its own thread,
 *              push batches of 50 createOrder mutations (two products,
 *              one of each) back to back for SECS over HTTP:
 *              "RESULT push mutations=N secs=S rate=R"
 *   pull       pushes (untimed) until 10,000 orders exist, then pulls
 *              from cursor 0 in pages of 1000 as staff until 10,000
 *              changes came: "RESULT pull changes=N secs=S cpu_gw=..
 *              cpu_sync=.. cpu_orders=.. cpu_pg=.. cpu_redis=..
 *              cpu_client=.." (CPU
 *              seconds, user + system, of each process over the pull;
 *              cpu_pg sums the postmaster's children: a measure that a
 *              loaded machine's scheduler does not blur like wall time)
 *   beat SECS  BENCH_BEATERS devices (default 8), one keep-alive
 *              connection each, beat back to back for SECS:
 *              "RESULT beat beats=N secs=S rate=R cpu_...=.." (as pull)
 *
 * and stops everything when stdin closes. Every answer is checked (a push
 * must apply its whole batch); a failure prints "FAIL ..." and exits 1.
 * Not a test: a benchmark fixture.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "tests/harness/api.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/service.h"

#define NPRODUCTS 20
#define BATCH 50
#define PULL_WANT 10000
#define MAX_DEVICES 64
#define PGB_DEVICES 16
#define PEPPER "SYNC_DEVICE_PEPPER=bench-pepper-not-secret-0123456789abcdef"

static harness_pg pg;
static harness_redis redis;
static const harness_service_opts kSvc = {
    .pg = &pg, .redis = &redis, .rpc_workers = 16, .log_level = "warn"};

static int g_port;
static harness_api_tenant g_t;
static char g_products[NPRODUCTS][UUID_STR_LEN + 1];

typedef struct device {
  char id[UUID_STR_LEN + 1];
  char token[1024];
  int64_t next; /* next mutation id */
  long done;    /* mutations applied / beats answered in this command */
  int64_t deadline_ms;
  bool failed;
} device;

static device g_push[MAX_DEVICES], g_beat[MAX_DEVICES];
/* The processes whose CPU time the pull and beat results report. */
static harness_service *g_gw, *g_sync, *g_ordsvc;
static int g_npush = 4, g_nbeat = 8;
static long g_orders; /* orders made by pushes so far */

static void fail(const char *what, const harness_http_resp *r) {
  printf("FAIL %s: %ld %.300s\n", what, r ? r->status : 0L, r ? r->body : "");
  fflush(stdout);
}

static json_t *post(const char *path, const char *tok, const char *body,
                    const char *header) {
  const char *h[2] = {header, NULL};
  harness_http_resp *r =
      harness_http_request("POST", g_port, path, body, tok, h);
  json_t *j = r->status / 100 == 2 ? json_incref(r->json) : NULL;
  if (j == NULL) fail(path, r);
  harness_http_free(r);
  return j;
}

/* A device of the tenant and, when token is not NULL, its token. */
static bool new_device(char *id, char *token, size_t cap) {
  json_t *d = post("/v1/sync/devices", g_t.owner_token,
                   "{\"name\":\"Bench till\",\"platform\":\"linux\"}", NULL);
  if (d == NULL) return false;
  snprintf(
      id, UUID_STR_LEN + 1, "%s",
      json_string_value(json_object_get(json_object_get(d, "device"), "id")));
  char path[128], body[128], xt[96];
  snprintf(body, sizeof body, "{\"device_secret\":\"%s\"}",
           json_string_value(json_object_get(d, "device_secret")));
  json_decref(d);
  if (token == NULL) return true;
  snprintf(path, sizeof path, "/v1/sync/devices/%s/session", id);
  snprintf(xt, sizeof xt, "X-Tenant: %s", g_t.slug);
  json_t *s = post(path, NULL, body, xt);
  if (s == NULL) return false;
  snprintf(token, cap, "%s",
           json_string_value(json_object_get(s, "access_token")));
  json_decref(s);
  return true;
}

/* One batch of BATCH createOrder mutations from d->next. */
static char *batch_body(device *d, unsigned *seed) {
  size_t cap = BATCH * 400 + 32, n = 0;
  char *b = malloc(cap);
  if (b == NULL) abort();
  n += (size_t)snprintf(b + n, cap - n, "{\"mutations\":[");
  for (int i = 0; i < BATCH; i++) {
    int a = (int)(rand_r(seed) % NPRODUCTS);
    int c = (a + 1 + (int)(rand_r(seed) % (NPRODUCTS - 1))) % NPRODUCTS;
    char oid[UUID_STR_LEN + 1];
    uuid_v7_str(oid);
    n += (size_t)snprintf(
        b + n, cap - n,
        "%s{\"id\":%lld,\"name\":\"createOrder\",\"client_time\":"
        "\"2026-12-06T10:00:00.000Z\",\"args\":{\"order_id\":\"%s\","
        "\"items\":[{\"product_id\":\"%s\",\"quantity\":1},"
        "{\"product_id\":\"%s\",\"quantity\":1}]}}",
        i ? "," : "", (long long)(d->next + i), oid, g_products[a],
        g_products[c]);
  }
  snprintf(b + n, cap - n, "]}");
  return b;
}

static void *push_thread(void *arg) {
  device *d = arg;
  unsigned seed = (unsigned)(uintptr_t)d;
  while (time_now_ms() < d->deadline_ms && !d->failed) {
    char *body = batch_body(d, &seed);
    harness_http_resp *r = harness_http_request("POST", g_port, "/v1/sync/push",
                                                body, d->token, NULL);
    free(body);
    json_int_t last =
        json_integer_value(json_object_get(r->json, "last_mutation_id"));
    if (r->status != 200 || last != d->next + BATCH - 1) {
      fail("push", r);
      d->failed = true;
    } else {
      d->next += BATCH;
      d->done += BATCH;
    }
    harness_http_free(r);
  }
  return NULL;
}

static size_t discard(char *p, size_t s, size_t n, void *u) {
  (void)p;
  (void)u;
  return s * n;
}

static void *beat_thread(void *arg) {
  device *d = arg;
  CURL *c = curl_easy_init();
  char url[128], auth[1100];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sync/heartbeat", g_port);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", d->token);
  struct curl_slist *h = curl_slist_append(NULL, auth);
  h = curl_slist_append(h, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"pending\":0}");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  while (time_now_ms() < d->deadline_ms) {
    long status = 0;
    if (curl_easy_perform(c) != CURLE_OK ||
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
        status != 200) {
      printf("FAIL beat: %ld\n", status);
      d->failed = true;
      break;
    }
    d->done++;
  }
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return NULL;
}

/* Runs fn on devs[0..n) for secs; the sum of their counts, or -1. */
static long run_threads(device *devs, int n, void *(*fn)(void *), double secs,
                        double *took) {
  pthread_t th[MAX_DEVICES];
  int64_t t0 = time_now_ms();
  for (int i = 0; i < n; i++) {
    devs[i].done = 0;
    devs[i].failed = false;
    devs[i].deadline_ms = t0 + (int64_t)(secs * 1000);
    pthread_create(&th[i], NULL, fn, &devs[i]);
  }
  long sum = 0;
  bool bad = false;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    sum += devs[i].done;
    bad |= devs[i].failed;
  }
  *took = (double)(time_now_ms() - t0) / 1000.0;
  return bad ? -1 : sum;
}

static bool cmd_push(double secs) {
  double took = 0;
  long n = run_threads(g_push, g_npush, push_thread, secs, &took);
  if (n < 0) return false;
  g_orders += n;
  printf("RESULT push mutations=%ld secs=%.2f rate=%.0f\n", n, took,
         (double)n / took);
  return true;
}

/* utime + stime of pid in clock ticks (0 when unreadable), and its
 * parent's pid into *ppid when not NULL. */
static long long proc_ticks(long pid, long *ppid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* After the command name's closing parenthesis: state, ppid, ...,
   * utime (field 14) and stime (15). */
  const char *p = strrchr(buf, ')');
  long long ut = 0, st = 0;
  long pp = 0;
  if (p == NULL || sscanf(p + 2,
                          "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u "
                          "%*u %lld %lld",
                          &pp, &ut, &st) != 3)
    return 0;
  if (ppid != NULL) *ppid = pp;
  return ut + st;
}

/* The ticks of pid's children (PostgreSQL's backends). */
static long long children_ticks(long pid) {
  long long sum = 0;
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL) {
    char *end = NULL;
    long child = strtol(e->d_name, &end, 10);
    long pp = 0;
    if (end == e->d_name || *end != '\0') continue;
    long long t = proc_ticks(child, &pp);
    if (pp == pid) sum += t;
  }
  if (d != NULL) closedir(d);
  return sum;
}

enum { CPU_GW, CPU_SYNC, CPU_ORDERS, CPU_PG, CPU_REDIS, CPU_CLIENT, CPU_N };
static const char *const kCpuNames[CPU_N] = {"gw", "sync",  "orders",
                                             "pg", "redis", "client"};

static void cpu_snapshot(long long t[CPU_N]) {
  t[CPU_GW] = proc_ticks(harness_pid(g_gw->proc), NULL);
  t[CPU_SYNC] = proc_ticks(harness_pid(g_sync->proc), NULL);
  t[CPU_ORDERS] = proc_ticks(harness_pid(g_ordsvc->proc), NULL);
  long pm = harness_pid(pg.proc);
  t[CPU_PG] = proc_ticks(pm, NULL) + children_ticks(pm);
  t[CPU_REDIS] = proc_ticks(harness_pid(redis.proc), NULL);
  t[CPU_CLIENT] = proc_ticks((long)getpid(), NULL); /* this process */
}

/* " cpu_gw=0.12 cpu_sync=..." for the CPU spent since before. */
static void print_cpu(const long long before[CPU_N]) {
  long long now[CPU_N];
  cpu_snapshot(now);
  double hz = (double)sysconf(_SC_CLK_TCK);
  for (int i = 0; i < CPU_N; i++)
    printf(" cpu_%s=%.2f", kCpuNames[i], (double)(now[i] - before[i]) / hz);
}

static bool cmd_beat(double secs) {
  double took = 0;
  long long cpu[CPU_N];
  cpu_snapshot(cpu);
  long n = run_threads(g_beat, g_nbeat, beat_thread, secs, &took);
  if (n < 0) return false;
  printf("RESULT beat beats=%ld secs=%.2f rate=%.0f", n, took,
         (double)n / took);
  print_cpu(cpu);
  printf("\n");
  return true;
}

static bool cmd_pull(void) {
  while (g_orders < PULL_WANT) {
    double took = 0;
    long n = run_threads(g_push, g_npush, push_thread, 2, &took);
    if (n < 0) return false;
    g_orders += n;
  }
  long got = 0;
  long long cursor = 0;
  long long cpu[CPU_N];
  cpu_snapshot(cpu);
  int64_t t0 = time_now_ms();
  bool more = true;
  while (got < PULL_WANT && more) {
    char path[96];
    snprintf(path, sizeof path, "/v1/sync/pull?cursor=%lld&limit=1000", cursor);
    harness_http_resp *r =
        harness_http_request("GET", g_port, path, NULL, g_t.owner_token, NULL);
    json_t *ch = json_object_get(r->json, "changes");
    if (r->status != 200 || !json_is_array(ch)) {
      fail("pull", r);
      harness_http_free(r);
      return false;
    }
    got += (long)json_array_size(ch);
    cursor = json_integer_value(json_object_get(r->json, "cursor"));
    more = json_is_true(json_object_get(r->json, "has_more"));
    harness_http_free(r);
  }
  double took = (double)(time_now_ms() - t0) / 1000.0;
  printf("RESULT pull changes=%ld secs=%.3f", got, took);
  print_cpu(cpu);
  printf("\n");
  return got >= PULL_WANT;
}

static bool start(harness_service *auth, harness_service *tenants,
                  harness_service *orders, harness_service *sync,
                  harness_service *gw) {
  char aa[96], ta[96], oa[96], sa[96];
  if (!harness_service_start_auth(auth, "auth", &kSvc, NULL)) return false;
  snprintf(aa, sizeof aa, "AUTH_ADDR=%s", auth->rpc_url);
  char *tx[] = {aa, NULL};
  if (!harness_service_start(tenants, "tenants", "services/tenants/tenants",
                             &kSvc, tx))
    return false;
  snprintf(ta, sizeof ta, "TENANTS_ADDR=%s", tenants->rpc_url);
  char *ox[] = {aa, ta, NULL};
  if (!harness_service_start(orders, "orders", "services/orders/orders", &kSvc,
                             ox))
    return false;
  snprintf(oa, sizeof oa, "ORDERS_ADDR=%s", orders->rpc_url);
  char *sx[] = {aa, oa, PEPPER, NULL};
  if (!harness_service_start(sync, "sync", "services/sync/sync", &kSvc, sx))
    return false;
  snprintf(sa, sizeof sa, "SYNC_ADDR=%s", sync->rpc_url);
  char *gx[] = {aa, ta, oa, sa, "GATEWAY_RATE_BURST=1000000000",
                "GATEWAY_RATE_PER_MIN=1000000000",
                /* A loaded shared machine must slow the run, not fail
                 * it: a push of 50 can take seconds there. */
                "GATEWAY_DEADLINE_MS=60000", NULL};
  return harness_service_start(gw, "gateway", "services/gateway/gateway", &kSvc,
                               gx);
}

static bool setup(void) {
  if (harness_api_create_tenant(g_port, "bsync", "bench password", &g_t) != 201)
    return false;
  for (int i = 0; i < NPRODUCTS; i++) {
    char body[160];
    snprintf(body, sizeof body,
             "{\"name\":\"Product %d\",\"price_cents\":%d,\"stock\":"
             "1000000}",
             i, 100 + i);
    json_t *p = post("/v1/products", g_t.owner_token, body, NULL);
    if (p == NULL) return false;
    snprintf(g_products[i], sizeof g_products[i], "%s",
             json_string_value(json_object_get(p, "id")));
    json_decref(p);
  }
  for (int i = 0; i < g_npush; i++) {
    g_push[i].next = 1;
    if (!new_device(g_push[i].id, g_push[i].token, sizeof g_push[i].token))
      return false;
  }
  for (int i = 0; i < g_nbeat; i++)
    if (!new_device(g_beat[i].id, g_beat[i].token, sizeof g_beat[i].token))
      return false;
  printf("TENANT_ID=%s\nPG_URL='%s'\nPRODUCTS=", g_t.id, pg.url);
  for (int i = 0; i < NPRODUCTS; i++)
    printf("%s%s", i ? "," : "", g_products[i]);
  printf("\nPGB_DEVICES=");
  for (int i = 0; i < PGB_DEVICES; i++) {
    char id[UUID_STR_LEN + 1];
    if (!new_device(id, NULL, 0)) return false;
    printf("%s%s", i ? "," : "", id);
  }
  printf("\nREADY\n");
  fflush(stdout);
  return true;
}

static int env_int(const char *name, int def) {
  const char *v = getenv(name);
  char *end = NULL;
  long n = v ? strtol(v, &end, 10) : def;
  if (v != NULL && (end == v || *end != '\0')) return def;
  return n >= 1 && n <= MAX_DEVICES ? (int)n : def;
}

int main(void) {
  harness_init();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  g_npush = env_int("BENCH_PUSHERS", 4);
  g_nbeat = env_int("BENCH_BEATERS", 8);
  harness_service auth = {0}, tenants = {0}, orders = {0}, sync = {0}, gw = {0};
  int status = 1;
  if (harness_pg_start(&pg) != 0 || harness_redis_start(&redis) != 0 ||
      !start(&auth, &tenants, &orders, &sync, &gw))
    goto out;
  g_port = gw.http_port;
  g_gw = &gw;
  g_sync = &sync;
  g_ordsvc = &orders;
  if (!setup()) goto out;
  char line[64];
  status = 0;
  while (status == 0 && fgets(line, sizeof line, stdin) != NULL) {
    double secs = 0;
    bool ok = true;
    if (sscanf(line, "push %lf", &secs) == 1)
      ok = cmd_push(secs);
    else if (sscanf(line, "beat %lf", &secs) == 1)
      ok = cmd_beat(secs);
    else if (strncmp(line, "pull", 4) == 0)
      ok = cmd_pull();
    fflush(stdout);
    if (!ok) status = 1;
  }
out:
  if (status != 0) harness_dump_logs();
  harness_service_stop(&gw, 10000);
  harness_service_stop(&sync, 10000);
  harness_service_stop(&orders, 10000);
  harness_service_stop(&tenants, 10000);
  harness_service_stop(&auth, 10000);
  harness_redis_stop(&redis);
  harness_pg_stop(&pg);
  return status;
}
