/*
 * syncd_itest.c - clients/syncd end to end: PostgreSQL, Redis, auth,
 * tenants, orders, sync and the gateway as separate processes
 * (tests/harness), and syncd itself as users run it - `syncd run` in the
 * background, every other command a short-lived process on the same
 * SQLite file.
 *
 * Offline and back: the daemon pulls the menu, the gateway stops (the
 * network is gone), 50 orders and 20 status changes are made through the
 * command line, the gateway returns, and the daemon is kill -9'd once
 * while it pushes. After a restart every order is on the server exactly
 * once with the right status, and the local replica equals the server's.
 * Then a conflict made on purpose (the same order changed on the server
 * and on the device from the same version) shows in `syncd conflicts`.
 *
 * Files: a watched folder's files reach the server by hash - each
 * content once, nothing the server already has, nothing outside the
 * folder (symlinks) or over the cap; offline and back; kill -9 mid-upload
 * and a restart leave nothing corrupt on the server; a file landing in
 * the folder starts a round at once (inotify).
 */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/identity.h"
#include "tests/harness/service.h"

#define PASSWORD "correct horse battery"
#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define NORDERS 50

extern char **environ;

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_orders, g_sync, g_gw, g_rt;
static char *g_gw_extra[12], *g_rt_extra[8];
static int g_ws_port;
static char g_syncd[512], g_db[512];

static const harness_service_opts kSvc = {
    .pg = &g_pg, .redis = &g_redis, .rpc_workers = 8, .log_level = "info"};
static const harness_service_opts kNoDb = {.redis = &g_redis,
                                           .log_level = "info"};

typedef harness_http_resp resp;

static resp *call(const char *method, const char *path, const char *body,
                  const char *token) {
  const char *h[] = {NULL};
  return harness_http_call(method, g_gw.http_port, path, body, token, h);
}

/* Runs `syncd --db <file> args...` to completion; its stdout into
 * out[cap] (may be NULL); the exit status. */
static int cli(char *out, size_t cap, const char *const *args) {
  char *argv[16] = {g_syncd, "--db", g_db};
  int n = 3;
  for (int i = 0; args[i] != NULL && n < 15; i++) argv[n++] = (char *)args[i];
  argv[n] = NULL;
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid;
  ck_assert_int_eq(posix_spawn(&pid, g_syncd, &fa, NULL, argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  size_t got = 0;
  char sink[4096];
  char *buf = out != NULL ? out : sink;
  size_t bcap = out != NULL ? cap : sizeof sink;
  ssize_t r;
  while ((r = read(fds[0], buf + got, bcap - 1 - got)) > 0) {
    got += (size_t)r;
    if (got + 1 >= bcap) got = 0; /* the sink only: keep draining */
  }
  buf[got] = '\0';
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A command's stdout parsed as JSON (the caller frees it). */
static json_t *cli_json(const char *const *args) {
  static char out[1 << 20];
  ck_assert_int_eq(cli(out, sizeof out, args), 0);
  json_t *v = json_loads(out, 0, NULL);
  ck_assert_msg(v != NULL, "not JSON: %s", out);
  return v;
}

static json_t *status_json(void) {
  const char *a[] = {"status", NULL};
  return cli_json(a);
}

static long long status_int(const char *key) {
  json_t *s = status_json();
  long long v = json_integer_value(json_object_get(s, key));
  json_decref(s);
  return v;
}

/* `syncd run` in the background; extra: one more VAR=value (or NULL). */
static harness_proc *start_daemon_with(char *extra) {
  char *argv[] = {g_syncd, "--db", g_db, "run", NULL};
  /* extra first: of two equal names, getenv sees the first. */
  char *env[] = {extra != NULL ? extra : "SYNCD_HEARTBEAT=1",
                 "SYNCD_POLL_MS=300",
                 "SYNCD_BACKOFF_BASE_MS=100",
                 "SYNCD_BACKOFF_MAX_MS=800",
                 "SYNCD_PUSH_BATCH=3",
                 "SYNCD_HEARTBEAT=1",
                 NULL};
  harness_proc *p = harness_spawn("syncd", argv, env);
  ck_assert_ptr_nonnull(p);
  return p;
}

static harness_proc *start_daemon(void) { return start_daemon_with(NULL); }

/* Waits up to 60 s for the daemon to be online with an empty outbox. */
static bool wait_synced(void) {
  for (int64_t end = time_now_ms() + 60000; time_now_ms() < end;) {
    json_t *s = status_json();
    bool ok = json_is_true(json_object_get(s, "online")) &&
              json_integer_value(json_object_get(s, "pending")) == 0 &&
              json_integer_value(json_object_get(s, "cursor")) > 0;
    json_decref(s);
    if (ok) return true;
    time_sleep_ms(200);
  }
  return false;
}

/* The server's order id as "status:version" (GET as the owner). */
static void server_order(const char *token, const char *id, char *out,
                         size_t cap) {
  char path[96];
  snprintf(path, sizeof path, "/v1/orders/%s", id);
  resp *r = call("GET", path, NULL, token);
  CK_HTTP_STATUS(r, 200);
  snprintf(out, cap, "%s:%lld", harness_json_str(r->json, "status"),
           harness_json_int(r->json, "version"));
  harness_http_free(r);
}

/* The local replica equals the server's: the same orders (GET /v1/orders,
 * one page) with the same status and version. */
static void replica_equals_server(const char *token, size_t want) {
  const char *a[] = {"orders", "--json", NULL};
  json_t *doc = cli_json(a), *local = json_object_get(doc, "orders");
  resp *r = call("GET", "/v1/orders?limit=100", NULL, token);
  CK_HTTP_STATUS(r, 200);
  json_t *server = json_object_get(r->json, "orders");
  ck_assert_uint_eq(json_array_size(server), want);
  ck_assert_uint_eq(json_array_size(local), want);
  size_t i, j;
  json_t *s, *l;
  json_array_foreach(server, i, s) {
    bool found = false;
    json_array_foreach(local, j, l) {
      if (strcmp(harness_json_str(l, "id"), harness_json_str(s, "id")) != 0)
        continue;
      found = true;
      ck_assert_str_eq(harness_json_str(l, "status"),
                       harness_json_str(s, "status"));
      ck_assert_int_eq(harness_json_int(l, "version"),
                       harness_json_int(s, "version"));
      ck_assert_int_eq(harness_json_int(l, "data.total_cents"),
                       harness_json_int(s, "total_cents"));
      ck_assert_int_eq(harness_json_int(l, "synced"), 1);
    }
    ck_assert_msg(found, "server order %s not in the replica",
                  harness_json_str(s, "id"));
  }
  harness_http_free(r);
  json_decref(doc);
}

static void order_status(const char *id, const char *status) {
  const char *a[] = {"order", "status", id, status, NULL};
  ck_assert_int_eq(cli(NULL, 0, a), 0);
}

/* A tenant with a product, a table and syncd registered in it (staff
 * credentials given once); the daemon running and synced. */
typedef struct kitchen {
  harness_api_tenant t;
  char product[UUID_STR_LEN + 1], table[UUID_STR_LEN + 1];
  char device[UUID_STR_LEN + 1];
  harness_proc *daemon;
} kitchen;

static void post_id(const char *path, const char *body, const char *token,
                    char *out) {
  resp *r = call("POST", path, body, token);
  CK_HTTP_STATUS(r, 201);
  snprintf(out, UUID_STR_LEN + 1, "%s", harness_json_str(r->json, "id"));
  harness_http_free(r);
}

static void open_kitchen(kitchen *k) {
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "kit", PASSWORD, &k->t), 201);
  post_id("/v1/products", "{\"name\":\"Soup\",\"price_cents\":450}",
          k->t.owner_token, k->product);
  post_id("/v1/tables", "{\"label\":\"T1\"}", k->t.owner_token, k->table);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_gw.http_port);
  setenv("SYNCD_EMAIL", k->t.owner_email, 1);
  setenv("SYNCD_PASSWORD", PASSWORD, 1);
  const char *a[] = {"init",    "--url",  url,          "--tenant",
                     k->t.slug, "--name", "Kitchen PC", NULL};
  char out[256];
  ck_assert_int_eq(cli(out, sizeof out, a), 0);
  ck_assert_ptr_nonnull(strstr(out, "registered device "));
  /* A second init registers nothing more: the stored secret is reused. */
  ck_assert_int_eq(cli(NULL, 0, a), 1);
  unsetenv("SYNCD_EMAIL");
  unsetenv("SYNCD_PASSWORD");
  json_t *s = status_json();
  snprintf(k->device, sizeof k->device, "%s", harness_json_str(s, "device_id"));
  json_decref(s);
  k->daemon = start_daemon();
  ck_assert_msg(wait_synced(), "syncd never synced the menu");
}

static long long server_last_mutation(const kitchen *k) {
  return harness_pg_count(
      &g_pg, "SELECT last_mutation_id FROM sync.devices WHERE id = $1::uuid",
      k->device);
}

/* Waits up to 30 s for `syncd status` to say online == want. */
static bool wait_online(bool want) {
  for (int64_t end = time_now_ms() + 30000; time_now_ms() < end;) {
    json_t *s = status_json();
    bool ok = json_is_true(json_object_get(s, "online")) == want;
    json_decref(s);
    if (ok) return true;
    time_sleep_ms(200);
  }
  return false;
}

/* Waits up to 30 s for the server to show the device `want`. */
static bool wait_device(const kitchen *k, const char *want) {
  char path[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s", k->device);
  for (int64_t end = time_now_ms() + 30000; time_now_ms() < end;) {
    resp *r = call("GET", path, NULL, k->t.owner_token);
    bool ok = r->status == 200 &&
              strcmp(harness_json_str(r->json, "status"), want) == 0;
    harness_http_free(r);
    if (ok) return true;
    time_sleep_ms(200);
  }
  return false;
}

START_TEST(offline_orders_survive_kill_9_and_land_exactly_once) {
  kitchen k;
  open_kitchen(&k);
  /* Heartbeats: the server sees the daemon online. */
  ck_assert(wait_device(&k, "online"));
  /* The network goes; the daemon notices. */
  harness_service_stop(&g_gw, 15000);
  ck_assert(wait_online(false));
  static char ids[NORDERS][UUID_STR_LEN + 1];
  for (int i = 0; i < NORDERS; i++) {
    char out[128];
    const char *with_table[] = {"order",   "add",   "--product",
                                k.product, "--qty", "2",
                                "--table", k.table, NULL};
    const char *plain[] = {"order", "add", "--product", k.product,
                           "--qty", "1",   NULL};
    ck_assert_int_eq(cli(out, sizeof out, i % 5 == 0 ? with_table : plain), 0);
    ck_assert_uint_eq(strlen(out), UUID_STR_LEN + 1);
    snprintf(ids[i], sizeof ids[i], "%.36s", out);
  }
  /* 20 status changes: 0-9 confirmed, 0-4 then preparing, 10-14
   * cancelled. */
  for (int i = 0; i < 10; i++) order_status(ids[i], "confirmed");
  for (int i = 0; i < 5; i++) order_status(ids[i], "preparing");
  for (int i = 10; i < 15; i++) order_status(ids[i], "cancelled");
  /* Refused locally, nothing queued. */
  const char *bad[] = {"order", "status", ids[20], "eaten", NULL};
  ck_assert_int_eq(cli(NULL, 0, bad), 1);
  ck_assert_int_eq(status_int("pending"), NORDERS + 20);
  ck_assert_int_eq(status_int("last_mutation_id"), NORDERS + 20);
  ck_assert_int_eq(server_last_mutation(&k), 0);
  /* The network returns; the daemon dies mid-push. */
  ck_assert(harness_service_restart(&g_gw, "gateway", &kSvc, g_gw_extra));
  long long at_kill = 0;
  for (int64_t end = time_now_ms() + 30000;
       (at_kill = server_last_mutation(&k)) < 1 && time_now_ms() < end;)
    time_sleep_ms(2);
  harness_signal(k.daemon, SIGKILL);
  ck_assert_int_ge(at_kill, 1);
  harness_wait_exit(k.daemon, 10000);
  harness_stop(k.daemon, 1000);
  long long pending = status_int("pending");
  fprintf(stderr,
          "syncd kill -9 with %lld of %d mutations on the server, "
          "%lld pending locally\n",
          server_last_mutation(&k), NORDERS + 20, pending);
  k.daemon = start_daemon();
  ck_assert_msg(wait_synced(), "syncd never caught up");
  ck_assert_int_eq(server_last_mutation(&k), NORDERS + 20);
  /* Every order exactly once, with the right status. */
  ck_assert_int_eq(harness_pg_count(&g_pg,
                                    "SELECT count(*) FROM orders.orders "
                                    "WHERE tenant_id = $1::uuid",
                                    k.t.id),
                   NORDERS);
  for (int i = 0; i < NORDERS; i++) {
    char got[64];
    server_order(k.t.owner_token, ids[i], got, sizeof got);
    const char *want = i < 5    ? "preparing:3"
                       : i < 10 ? "confirmed:2"
                       : i < 15 ? "cancelled:2"
                                : "pending:1";
    ck_assert_msg(strcmp(got, want) == 0, "order %d: %s, want %s", i, got,
                  want);
  }
  replica_equals_server(k.t.owner_token, NORDERS);
  ck_assert_int_eq(status_int("conflicts"), 0);

  /* A conflict on purpose: order 5 (confirmed, v2) is cancelled on the
   * server while the device, not seeing it, moves it on from v2. */
  harness_stop(k.daemon, 15000);
  order_status(ids[5], "preparing");
  char path[96];
  snprintf(path, sizeof path, "/v1/orders/%s/cancel", ids[5]);
  resp *r = call("POST", path, NULL, k.t.owner_token);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  k.daemon = start_daemon();
  ck_assert_msg(wait_synced(), "syncd never pushed the conflicting change");
  const char *ca[] = {"conflicts", "--json", NULL};
  json_t *c = cli_json(ca);
  json_t *list = json_object_get(c, "conflicts");
  ck_assert_uint_eq(json_array_size(list), 1);
  json_t *e = json_array_get(list, 0);
  ck_assert_str_eq(harness_json_str(e, "order_id"), ids[5]);
  ck_assert_str_eq(harness_json_str(e, "name"), "updateOrderStatus");
  ck_assert_str_eq(harness_json_str(e, "client.status"), "preparing");
  ck_assert_int_eq(harness_json_int(e, "client.base_version"), 2);
  ck_assert_int_eq(harness_json_int(e, "server_version"), 3);
  ck_assert_str_eq(harness_json_str(e, "server.status"), "cancelled");
  json_decref(c);
  /* People see it too. */
  char table[4096];
  const char *ct[] = {"conflicts", NULL};
  ck_assert_int_eq(cli(table, sizeof table, ct), 0);
  ck_assert_ptr_nonnull(strstr(table, ids[5]));
  ck_assert_ptr_nonnull(strstr(table, "cancelled"));
  /* The server's version stands, here and there. */
  char got[64];
  server_order(k.t.owner_token, ids[5], got, sizeof got);
  ck_assert_str_eq(got, "cancelled:3");
  replica_equals_server(k.t.owner_token, NORDERS);
  /* The file holding the device secret is the user's alone, and the
   * daemon's log holds no token. */
  struct stat sb;
  ck_assert_int_eq(stat(g_db, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0600);
  FILE *f = fopen(harness_log_path(k.daemon), "r");
  ck_assert_ptr_nonnull(f);
  char line[4096];
  int lines = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    lines++;
    ck_assert_ptr_null(strstr(line, "v4.public."));
    ck_assert_ptr_null(strstr(line, "secret"));
  }
  fclose(f);
  ck_assert_int_gt(lines, 0);
  harness_stop(k.daemon, 15000);
}
END_TEST

START_TEST(bad_input_and_wrong_secrets_are_refused) {
  /* A file not registered: run refuses; a wrong device secret is refused
   * and stores nothing. */
  char saved[512];
  snprintf(saved, sizeof saved, "%s", g_db);
  snprintf(g_db, sizeof g_db, "%s/other.db", harness_init());
  const char *run[] = {"run", NULL};
  ck_assert_int_eq(cli(NULL, 0, run), 1);
  harness_api_tenant t;
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "kitb", PASSWORD, &t), 201);
  char url[128], dev[UUID_STR_LEN + 1];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_gw.http_port);
  uuid_v7_str(dev);
  setenv("SYNCD_DEVICE_SECRET", "not-the-secret", 1);
  const char *a[] = {"init", "--url",    url, "--tenant",
                     t.slug, "--device", dev, NULL};
  ck_assert_int_eq(cli(NULL, 0, a), 1);
  unsetenv("SYNCD_DEVICE_SECRET");
  json_t *s = status_json();
  ck_assert_str_eq(harness_json_str(s, "device_id"), "");
  json_decref(s);
  /* Wrong staff password: refused. */
  setenv("SYNCD_EMAIL", t.owner_email, 1);
  setenv("SYNCD_PASSWORD", "wrong password here", 1);
  const char *b[] = {"init", "--url", url, "--tenant", t.slug, NULL};
  ck_assert_int_eq(cli(NULL, 0, b), 1);
  unsetenv("SYNCD_EMAIL");
  unsetenv("SYNCD_PASSWORD");
  /* Orders for products the replica does not have: refused locally. */
  char pid[UUID_STR_LEN + 1];
  uuid_v7_str(pid);
  const char *o[] = {"order", "add", "--product", pid, "--qty", "1", NULL};
  ck_assert_int_eq(cli(NULL, 0, o), 1);
  const char *q[] = {"order", "add", "--product", "x", "--qty", "99999", NULL};
  ck_assert_int_eq(cli(NULL, 0, q), 1);
  ck_assert_int_eq(status_int("pending"), 0);
  snprintf(g_db, sizeof g_db, "%s", saved);
}
END_TEST

/* A device registered elsewhere that already pushed two mutations:
 * `init --device` on a fresh file resumes its ids at 3, and its orders
 * (and the earlier ones) reach the replica. */
START_TEST(a_reinstalled_device_resumes_its_mutation_ids) {
  harness_api_tenant t;
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "kitr", PASSWORD, &t), 201);
  char product[UUID_STR_LEN + 1], dev[UUID_STR_LEN + 1], secret[128];
  post_id("/v1/products", "{\"name\":\"Tea\",\"price_cents\":250}",
          t.owner_token, product);
  resp *r =
      call("POST", "/v1/sync/devices", "{\"name\":\"Old PC\"}", t.owner_token);
  CK_HTTP_STATUS(r, 201);
  snprintf(dev, sizeof dev, "%s", harness_json_str(r->json, "device.id"));
  snprintf(secret, sizeof secret, "%s",
           harness_json_str(r->json, "device_secret"));
  harness_http_free(r);
  char path[128], body[256], xt[96];
  snprintf(path, sizeof path, "/v1/sync/devices/%s/session", dev);
  snprintf(body, sizeof body, "{\"device_secret\":\"%s\"}", secret);
  snprintf(xt, sizeof xt, "X-Tenant: %s", t.slug);
  const char *h[] = {xt, NULL};
  r = harness_http_call("POST", g_gw.http_port, path, body, NULL, h);
  CK_HTTP_STATUS(r, 200);
  char token[1024];
  snprintf(token, sizeof token, "%s",
           harness_json_str(r->json, "access_token"));
  harness_http_free(r);
  char push[1024], o1[UUID_STR_LEN + 1], o2[UUID_STR_LEN + 1];
  uuid_v7_str(o1);
  uuid_v7_str(o2);
  snprintf(push, sizeof push,
           "{\"mutations\":[{\"id\":1,\"name\":\"createOrder\",\"args\":{"
           "\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\","
           "\"quantity\":1}]}},{\"id\":2,\"name\":\"createOrder\",\"args\":{"
           "\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\","
           "\"quantity\":1}]}}]}",
           o1, product, o2, product);
  r = call("POST", "/v1/sync/push", push, token);
  CK_HTTP_STATUS(r, 200);
  ck_assert_int_eq(harness_json_int(r->json, "last_mutation_id"), 2);
  harness_http_free(r);

  char saved[512], url[128];
  snprintf(saved, sizeof saved, "%s", g_db);
  snprintf(g_db, sizeof g_db, "%s/reinstalled.db", harness_init());
  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_gw.http_port);
  setenv("SYNCD_DEVICE_SECRET", secret, 1);
  const char *a[] = {"init", "--url",    url, "--tenant",
                     t.slug, "--device", dev, NULL};
  ck_assert_int_eq(cli(NULL, 0, a), 0);
  unsetenv("SYNCD_DEVICE_SECRET");
  ck_assert_int_eq(status_int("last_mutation_id"), 2);
  harness_proc *d = start_daemon();
  ck_assert(wait_synced());
  char out[128];
  const char *add[] = {"order", "add", "--product", product,
                       "--qty", "3",   NULL};
  ck_assert_int_eq(cli(out, sizeof out, add), 0);
  ck_assert(wait_synced());
  ck_assert_int_eq(harness_pg_count(&g_pg,
                                    "SELECT last_mutation_id FROM "
                                    "sync.devices WHERE id = $1::uuid",
                                    dev),
                   3);
  replica_equals_server(t.owner_token, 3);
  harness_stop(d, 15000);
  snprintf(g_db, sizeof g_db, "%s", saved);
}
END_TEST

/* -------------------------------------------------------------- files --- */

/* n random bytes written to dir/name (mode 0644); their hex SHA-256 into
 * hex (may be NULL). Returns the bytes (the caller frees them). */
static unsigned char *write_random(const char *dir, const char *name, size_t n,
                                   char hex[65]) {
  unsigned char *b = malloc(n);
  ck_assert_ptr_nonnull(b);
  randombytes_buf(b, n);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
  if (hex != NULL) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, b, n);
    sodium_bin2hex(hex, 65, h, sizeof h);
  }
  return b;
}

static void write_bytes(const char *dir, const char *name,
                        const unsigned char *b, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* PUT /v1/sync/files/{sha256} requests the gateway answered since it
 * started, whatever their status (its metrics). */
static long long file_puts(void) {
  resp *r = harness_http_request("GET", g_gw.admin_port, "/metrics", NULL, NULL,
                                 NULL);
  ck_assert_int_eq(r->status, 200);
  long long n = 0;
  char *save = NULL;
  for (char *line = strtok_r(r->body, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "gateway_http_requests_total{", 28) != 0 ||
        strstr(line, "PUT") == NULL || strstr(line, "/v1/sync/files/") == NULL)
      continue;
    const char *v = strrchr(line, ' ');
    char *end = NULL;
    long long c = v != NULL ? strtoll(v + 1, &end, 10) : 0;
    if (v != NULL && end != v + 1) n += c;
  }
  harness_http_free(r);
  return n;
}

/* Whether the server holds hex (any tenant: the contents are random). */
static long long on_server(const char *hex) {
  return harness_pg_count(
      &g_pg, "SELECT count(*) FROM sync.files WHERE sha256 = decode($1, 'hex')",
      hex);
}

/* The server's files of tenant tid that are not what their name says. */
static long long corrupt_on_server(const char *tid) {
  return harness_pg_count(&g_pg,
                          "SELECT count(*) FROM sync.files WHERE tenant_id = "
                          "$1::uuid AND sha256 <> sha256(content)",
                          tid);
}

/* Waits up to 90 s for `syncd files` to list want files, all uploaded. */
static bool wait_files_uploaded(size_t want) {
  for (int64_t end = time_now_ms() + 90000; time_now_ms() < end;) {
    const char *a[] = {"files", "--json", NULL};
    json_t *doc = cli_json(a), *list = json_object_get(doc, "files");
    bool ok = json_array_size(list) == want;
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f) if (strcmp(harness_json_str(f, "state"),
                                              "uploaded") != 0) ok = false;
    json_decref(doc);
    if (ok) return true;
    time_sleep_ms(200);
  }
  return false;
}

/* Waits up to 60 s for `syncd files` to list want files, pending of them
 * not uploaded. */
static bool wait_files_listed(size_t want, size_t pending) {
  for (int64_t end = time_now_ms() + 60000; time_now_ms() < end;) {
    const char *a[] = {"files", "--json", NULL};
    json_t *doc = cli_json(a), *list = json_object_get(doc, "files");
    size_t n = 0, i;
    json_t *f;
    json_array_foreach(list, i, f) if (strcmp(harness_json_str(f, "state"),
                                              "pending") == 0) n++;
    bool ok = json_array_size(list) == want && n == pending;
    json_decref(doc);
    if (ok) return true;
    time_sleep_ms(200);
  }
  return false;
}

/* Waits up to 30 s for the daemon's log to hold needle. */
static bool wait_log(const harness_proc *p, const char *needle) {
  for (int64_t end = time_now_ms() + 30000; time_now_ms() < end;) {
    FILE *f = fopen(harness_log_path(p), "r");
    char line[4096];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
      found = strstr(line, needle) != NULL;
    if (f != NULL) fclose(f);
    if (found) return true;
    time_sleep_ms(20);
  }
  return false;
}

START_TEST(a_folder_is_uploaded_by_hash_once_each) {
  harness_api_tenant t;
  ck_assert_int_eq(
      harness_api_create_tenant(g_gw.http_port, "kitf", PASSWORD, &t), 201);
  char saved[512], dir[600], url[128];
  snprintf(saved, sizeof saved, "%s", g_db);
  snprintf(g_db, sizeof g_db, "%s/files.db", harness_init());
  snprintf(dir, sizeof dir, "%s/watched", harness_init());
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  /* The server already has pre.pdf (uploaded by staff over HTTP). */
  char hpre[65], ha[65], hb[65], hbig[65], hout[65];
  unsigned char *pre = write_random(dir, "pre.pdf", 3000, hpre);
  char path[128];
  snprintf(path, sizeof path, "/v1/sync/files/%s", hpre);
  const char *oct[] = {"Content-Type: application/octet-stream", NULL};
  resp *r = harness_http_request_bytes(
      "PUT", g_gw.http_port, path, (const char *)pre, 3000, t.owner_token, oct);
  CK_HTTP_STATUS(r, 201);
  harness_http_free(r);
  free(pre);
  long long puts0 = file_puts();
  ck_assert_int_ge(puts0, 1);
  /* a.pdf and copy.pdf: the same bytes; b.pdf; big.pdf: 2 MiB. */
  unsigned char *a = write_random(dir, "a.pdf", 1000, ha);
  write_bytes(dir, "copy.pdf", a, 1000);
  free(a);
  free(write_random(dir, "b.pdf", 5000, hb));
  free(write_random(dir, "big.pdf", 2u << 20, hbig));
  /* Never uploaded: a symlink to a file outside the folder, a file over
   * the 25 MiB cap, a hidden file, a folder. */
  free(write_random(harness_init(), "outside.pdf", 700, hout));
  char target[1024], link[1024];
  snprintf(target, sizeof target, "%s/outside.pdf", harness_init());
  snprintf(link, sizeof link, "%s/link.pdf", dir);
  ck_assert_int_eq(symlink(target, link), 0);
  snprintf(link, sizeof link, "%s/huge.pdf", dir);
  int fd = open(link, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, (off_t)26 << 20), 0);
  close(fd);
  free(write_random(dir, ".partial.pdf", 100, NULL));
  snprintf(link, sizeof link, "%s/sub", dir);
  ck_assert_int_eq(mkdir(link, 0700), 0);

  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_gw.http_port);
  setenv("SYNCD_EMAIL", t.owner_email, 1);
  setenv("SYNCD_PASSWORD", PASSWORD, 1);
  const char *init[] = {"init",   "--url",  url,       "--tenant", t.slug,
                        "--name", "Office", "--files", dir,        NULL};
  ck_assert_int_eq(cli(NULL, 0, init), 0);
  unsetenv("SYNCD_EMAIL");
  unsetenv("SYNCD_PASSWORD");
  harness_proc *d = start_daemon();
  ck_assert_msg(wait_files_uploaded(5), "the folder never got uploaded");
  /* Exactly the 4 distinct contents, each PUT once except pre.pdf, which
   * was not sent at all; nothing from outside the folder. */
  ck_assert_int_eq(harness_pg_count(&g_pg,
                                    "SELECT count(*) FROM sync.files WHERE "
                                    "tenant_id = $1::uuid",
                                    t.id),
                   4);
  const char *mine[] = {hpre, ha, hb, hbig};
  for (int i = 0; i < 4; i++) ck_assert_int_eq(on_server(mine[i]), 1);
  ck_assert_int_eq(on_server(hout), 0);
  ck_assert_int_eq(file_puts() - puts0, 3);
  ck_assert_int_eq(corrupt_on_server(t.id), 0);
  snprintf(path, sizeof path, "/v1/sync/files/%s", hbig);
  r = call("HEAD", path, NULL, t.owner_token);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);

  /* Offline: a new file and a changed one wait; back online, they go
   * (the gateway's counters start again at 0). */
  harness_service_stop(&g_gw, 15000);
  ck_assert(wait_online(false));
  char hnew[65], hb2[65];
  free(write_random(dir, "new.pdf", 4000, hnew));
  free(write_random(dir, "b.pdf", 6000, hb2));
  /* Hashed and listed while offline, pending. */
  ck_assert_msg(wait_files_listed(6, 2), "offline changes never recorded");
  ck_assert_int_eq(on_server(hnew), 0);
  ck_assert(harness_service_restart(&g_gw, "gateway", &kSvc, g_gw_extra));
  ck_assert_msg(wait_files_uploaded(6), "the files never went after offline");
  ck_assert_int_eq(on_server(hnew), 1);
  ck_assert_int_eq(on_server(hb2), 1);
  ck_assert_int_eq(file_puts(), 2);

  /* kill -9 mid-upload (the send rate capped so it is surely mid-way):
   * nothing half-stored; a restart sends it whole. */
  harness_stop(d, 15000);
  char hlate[65];
  free(write_random(dir, "late.pdf", 6u << 20, hlate));
  d = start_daemon_with("SYNCD_UPLOAD_BPS=1048576");
  char needle[128];
  snprintf(needle, sizeof needle, "uploading %s", hlate);
  ck_assert_msg(wait_log(d, needle), "the upload never started");
  harness_signal(d, SIGKILL);
  harness_wait_exit(d, 10000);
  harness_stop(d, 1000);
  ck_assert_int_eq(on_server(hlate), 0);
  const char *fl[] = {"files", NULL};
  char table[8192];
  ck_assert_int_eq(cli(table, sizeof table, fl), 0);
  ck_assert_ptr_nonnull(strstr(table, "pending"));
  d = start_daemon();
  ck_assert_msg(wait_files_uploaded(7), "the upload never completed");
  ck_assert_int_eq(on_server(hlate), 1);
  ck_assert_int_eq(corrupt_on_server(t.id), 0);

  /* inotify: with a poll of an hour, a file landing in the folder still
   * goes out (only the folder's event can start that round). */
  harness_stop(d, 15000);
  d = start_daemon_with("SYNCD_POLL_MS=3600000");
  ck_assert(wait_online(true));
  char hnote[65];
  free(write_random(dir, "note.pdf", 900, hnote));
  ck_assert_msg(wait_files_uploaded(8), "inotify never started a round");
  ck_assert_int_eq(on_server(hnote), 1);
  harness_stop(d, 15000);
  snprintf(g_db, sizeof g_db, "%s", saved);
}
END_TEST

/* ----------------------------------------------------------- realtime --- */

/* How many lines of p's log (appended across restarts) hold needle. */
static int log_count(const harness_proc *p, const char *needle) {
  FILE *f = fopen(harness_log_path(p), "r");
  char line[4096];
  int n = 0;
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    n += strstr(line, needle) != NULL;
  if (f != NULL) fclose(f);
  return n;
}

static bool wait_log_count(const harness_proc *p, const char *needle, int n) {
  for (int64_t end = time_now_ms() + 60000; time_now_ms() < end;) {
    if (log_count(p, needle) >= n) return true;
    time_sleep_ms(50);
  }
  return false;
}

/* Waits up to 60 s for the local replica to show order id with status
 * want. */
static bool wait_replica(const char *id, const char *want) {
  const char *a[] = {"orders", "--json", NULL};
  for (int64_t end = time_now_ms() + 60000; time_now_ms() < end;) {
    json_t *o = cli_json(a), *r;
    size_t i;
    bool ok = false;
    json_array_foreach(json_object_get(o, "orders"), i, r) ok =
        ok || (strcmp(harness_json_str(r, "id"), id) == 0 &&
               strcmp(harness_json_str(r, "status"), want) == 0);
    json_decref(o);
    if (ok) return true;
    time_sleep_ms(200);
  }
  return false;
}

static void staff_order(const kitchen *k, char *id) {
  char body[160];
  snprintf(body, sizeof body,
           "{\"items\":[{\"product_id\":\"%s\",\"quantity\":1}]}", k->product);
  post_id("/v1/orders", body, k->t.owner_token, id);
}

/* With an hour's poll, only realtime can start the rounds that bring an
 * order made over HTTP into the replica: the daemon's first round ends
 * before it opens the WebSocket (it needs the round's device token), so
 * every later round is a realtime notification's (a subscription or a
 * publication). Realtime stopped: reconnects once it is back; a daemon
 * started while it is down keeps syncing by the poll. */
START_TEST(realtime_starts_pulls_and_the_poll_survives_without_it) {
  char saved[512], url[128];
  snprintf(saved, sizeof saved, "%s", g_db);
  snprintf(g_db, sizeof g_db, "%s/rt.db", harness_init());
  kitchen k;
  open_kitchen(&k);
  const char *subscribed = "syncd: realtime subscribed";
  int subs = log_count(k.daemon, subscribed); /* the log is appended to */
  harness_stop(k.daemon, 15000);
  const char *bad[] = {"init", "--realtime", "http://127.0.0.1:1", NULL};
  ck_assert_int_eq(cli(NULL, 0, bad), 1);
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/v1/realtime", g_ws_port);
  const char *a[] = {"init", "--realtime", url, NULL};
  ck_assert_int_eq(cli(NULL, 0, a), 0);

  harness_proc *d = start_daemon_with("SYNCD_POLL_MS=3600000");
  ck_assert_msg(wait_log_count(d, subscribed, subs + 1),
                "syncd never subscribed to realtime");
  char id[UUID_STR_LEN + 1], path[96];
  staff_order(&k, id);
  ck_assert_msg(wait_replica(id, "pending"),
                "a realtime publication never started a pull");
  snprintf(path, sizeof path, "/v1/orders/%s/status", id);
  resp *r = call("POST", path, "{\"status\":\"confirmed\"}", k.t.owner_token);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  ck_assert(wait_replica(id, "confirmed"));

  /* Realtime gone and back: syncd reconnects (backoff) and is nudged
   * again, still with the hour's poll. */
  harness_service_stop(&g_rt, 15000);
  ck_assert(wait_log_count(d, "syncd: realtime lost", 1));
  ck_assert(harness_service_restart(&g_rt, "realtime", &kNoDb, g_rt_extra));
  ck_assert_msg(wait_log_count(d, subscribed, subs + 2),
                "syncd never reconnected to realtime");
  char id2[UUID_STR_LEN + 1];
  staff_order(&k, id2);
  ck_assert_msg(wait_replica(id2, "pending"),
                "no pull after realtime came back");

  /* Realtime down: the poll path alone, and the outbox still goes. */
  harness_stop(d, 15000);
  harness_service_stop(&g_rt, 15000);
  d = start_daemon();
  ck_assert(wait_online(true));
  char id3[UUID_STR_LEN + 1], local[64];
  staff_order(&k, id3);
  ck_assert_msg(wait_replica(id3, "pending"), "the poll never pulled");
  const char *add[] = {"order", "add", "--product", k.product,
                       "--qty", "2",   NULL};
  ck_assert_int_eq(cli(local, sizeof local, add), 0);
  local[strcspn(local, "\n")] = '\0';
  ck_assert(wait_synced());
  snprintf(path, sizeof path, "/v1/orders/%s", local);
  r = call("GET", path, NULL, k.t.owner_token);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  ck_assert_int_eq(log_count(d, subscribed), subs + 2);
  /* The token never reaches the log. */
  FILE *f = fopen(harness_log_path(d), "r");
  char line[4096];
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    ck_assert_ptr_null(strstr(line, "v4.public."));
  if (f != NULL) fclose(f);
  harness_stop(d, 15000);
  ck_assert(harness_service_restart(&g_rt, "realtime", &kNoDb, g_rt_extra));
  snprintf(g_db, sizeof g_db, "%s", saved);
}
END_TEST

/* --------------------------------------------------------------- main --- */

/* realtime fed by orders' bus; its environment kept for restarts. */
static bool start_realtime(char *auth_addr, char *orders_addr) {
  static char oe[160], wp[32];
  snprintf(oe, sizeof oe, "ORDERS_EVENTS=%s", g_orders.bus_url);
  g_ws_port = harness_free_port();
  snprintf(wp, sizeof wp, "WS_PORT=%d", g_ws_port);
  char *extra[] = {auth_addr, orders_addr, oe, wp, "WS_ADDR=127.0.0.1", NULL};
  memcpy(g_rt_extra, extra, sizeof extra);
  return harness_service_start(&g_rt, "realtime", "services/realtime/realtime",
                               &kNoDb, g_rt_extra) &&
         harness_wait_port(g_ws_port, 10000);
}

static bool start_system(void) {
  static char a[96], t[96], o[96], s[192];
  if (!harness_service_start_auth(&g_auth, "auth", &kSvc, NULL)) return false;
  snprintf(a, sizeof a, "AUTH_ADDR=%s", g_auth.rpc_url);
  char *ten_extra[] = {a, "TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                       "TENANTS_BASE_DOMAINS=localhost,example.test", NULL};
  if (!harness_service_start(&g_tenants, "tenants", "services/tenants/tenants",
                             &kSvc, ten_extra))
    return false;
  snprintf(t, sizeof t, "TENANTS_ADDR=%s", g_tenants.rpc_url);
  char *ord_extra[] = {a, t, NULL};
  if (!harness_service_start(&g_orders, "orders", "services/orders/orders",
                             &kSvc, ord_extra))
    return false;
  snprintf(o, sizeof o, "ORDERS_ADDR=%s", g_orders.rpc_url);
  char *sync_extra[] = {
      a, o, "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef",
      "SYNC_HEARTBEAT_INTERVAL=2s", NULL};
  if (!harness_service_start(&g_sync, "sync", "services/sync/sync", &kSvc,
                             sync_extra))
    return false;
  snprintf(s, sizeof s, "SYNC_ADDR=%s", g_sync.rpc_url);
  char *gw_extra[] = {a,
                      t,
                      o,
                      s,
                      "GATEWAY_RATE_BURST=100000",
                      "GATEWAY_RATE_PER_MIN=100000",
                      "GATEWAY_BASE_DOMAIN=localhost,example.test",
                      "GATEWAY_DEADLINE_MS=5000",
                      NULL};
  /* Kept for the gateway's restart. */
  memcpy(g_gw_extra, gw_extra, sizeof gw_extra);
  if (!harness_service_start(&g_gw, "gateway", "services/gateway/gateway",
                             &kSvc, gw_extra))
    return false;
  char url[128];
  return harness_wait_http_ok(
             harness_service_http_url(&g_gw, "/healthz", url, sizeof url),
             10000) &&
         start_realtime(a, o);
}

int main(void) {
  const char *dir = harness_init();
  if (sodium_init() < 0) return EXIT_FAILURE;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  snprintf(g_syncd, sizeof g_syncd, "%s",
           harness_bin_path("clients/syncd/syncd"));
  snprintf(g_db, sizeof g_db, "%s/kitchen.db", dir);
  (void)harness_identity_key_file("sync");
  (void)harness_identity_key_file("realtime");
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0 ||
      !start_system()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the system\n");
    return EXIT_FAILURE;
  }
  Suite *su = suite_create("syncd_itest");
  HARNESS_ADD_CASE(su, bad_input_and_wrong_secrets_are_refused, 120, NULL);
  HARNESS_ADD_CASE(su, a_reinstalled_device_resumes_its_mutation_ids, 120,
                   NULL);
  HARNESS_ADD_CASE(su, offline_orders_survive_kill_9_and_land_exactly_once, 300,
                   NULL);
  HARNESS_ADD_CASE(su, a_folder_is_uploaded_by_hash_once_each, 300, NULL);
  HARNESS_ADD_CASE(su, realtime_starts_pulls_and_the_poll_survives_without_it,
                   300, NULL);
  int failed = harness_run_shared(su);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_rt, 15000);
  harness_service_stop(&g_gw, 15000);
  harness_service_stop(&g_sync, 15000);
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  curl_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
