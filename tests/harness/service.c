/*
 * service.c - our services as child processes with the standard
 * environment (see service.h for the variables).
 *
 * Design. The environment is built as one list, standard variables first
 * and the caller's extras after them, and then reduced so that the last
 * entry for a key wins and an entry without '=' deletes the key: one rule
 * covers "this gateway has its own REDIS_URL", "this instance logs at
 * debug" and "this one publishes no bus", with no per-variable flags. The
 * list is handed to harness_spawn, which adds it over the test's own
 * environment; every key is in it once, so which copy a service sees never
 * depends on getenv's order.
 *
 * The strings are the harness's copies, wiped when freed, because a signing
 * key passes through them. Ports are chosen once per harness_service and
 * reused by restarts: a restart is how tests model a crashed process
 * coming back where its peers expect it.
 */
#include "tests/harness/service.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/err.h"
#include "libs/base/strutil.h"
#include "libs/paseto/paseto.h"
#include "tests/harness/identity.h"

#define DEFAULT_READY_TIMEOUT_MS 30000
#define RESTART_STOP_TIMEOUT_MS 15000
#define MAX_ENV 64 /* standard + extras; more is a test bug */

/* malloc'd printf, or NULL. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  char *out = NULL;
  int n = vasprintf(&out, f, ap);
  va_end(ap);
  return n < 0 ? NULL : out;
}

static void wipe_free(char *s) {
  if (s == NULL) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

/* The length of entry's key: up to '=' or the whole entry. */
static size_t key_len(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool same_key(const char *a, const char *b) {
  size_t n = key_len(a);
  return n == key_len(b) && strncmp(a, b, n) == 0;
}

char **harness_service_env(const harness_service *s, const char *bin,
                           const harness_service_opts *o, char *const extra[]) {
  char *all[MAX_ENV];
  size_t n = 0;
  bool ok = true;
  char cwd[512];
  if (getcwd(cwd, sizeof cwd) == NULL) return NULL;
  /* The service's directory: bin without its last component. */
  const char *slash = strrchr(bin, '/');
  int dirlen = slash ? (int)(slash - bin) : 0;

#define ADD(expr)                                                              \
  do {                                                                         \
    if (n < MAX_ENV) {                                                         \
      all[n] = (expr);                                                         \
      if (all[n++] == NULL) ok = false;                                        \
    } else {                                                                   \
      ok = false;                                                              \
    }                                                                          \
  } while (0)

  if (o->pg != NULL) ADD(fmt("DATABASE_URL=%s", o->pg->url));
  if (o->redis != NULL) ADD(fmt("REDIS_URL=%s", o->redis->url));
  ADD(fmt("RPC_LISTEN=%s", s->rpc_url));
  ADD(fmt("BUS_LISTEN=%s", s->bus_url));
  ADD(fmt("ADMIN_ADDR=127.0.0.1"));
  ADD(fmt("ADMIN_PORT=%d", s->admin_port));
  ADD(fmt("HTTP_ADDR=127.0.0.1"));
  ADD(fmt("HTTP_PORT=%d", s->http_port));
  if (o->rpc_workers > 0) ADD(fmt("RPC_WORKERS=%d", o->rpc_workers));
  if (o->db_pool_size > 0) ADD(fmt("DB_POOL_SIZE=%d", o->db_pool_size));
  ADD(fmt("MIGRATIONS_DIR=%s/%.*s/migrations", cwd, dirlen, bin));
  ADD(fmt("LOG_LEVEL=%s", o->log_level ? o->log_level : "info"));
  /* The service's identity: the key named after the binary's directory
   * (services/tenants/tenants_testhooks is tenants). */
  char service[64];
  snprintf(service, sizeof service, "%.*s", dirlen, bin);
  const char *last = strrchr(service, '/');
  ADD(fmt("SERVICE_KEY_FILE=%s",
          harness_identity_key_file(last ? last + 1 : service)));
  ADD(fmt("SERVICE_TRUST_FILE=%s", harness_identity_trust_file()));
  for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
    ADD(strdup(extra[i]));
#undef ADD

  char **env = calloc(n + 1, sizeof *env);
  if (env == NULL) ok = false;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bool keep = ok && all[i] != NULL && strchr(all[i], '=') != NULL;
    for (size_t j = i + 1; keep && j < n; j++)
      if (all[j] != NULL && same_key(all[i], all[j])) keep = false;
    if (keep)
      env[k++] = all[i];
    else
      wipe_free(all[i]);
  }
  if (!ok) {
    for (size_t i = 0; i < k; i++) wipe_free(env[i]);
    free(env);
    fprintf(stderr,
            "harness: environment for %s: out of memory or over %d "
            "entries\n",
            bin, MAX_ENV);
    return NULL;
  }
  return env;
}

void harness_service_env_free(char **env) {
  if (env == NULL) return;
  for (size_t i = 0; env[i] != NULL; i++) wipe_free(env[i]);
  free(env);
}

/* Spawns s->bin with the environment and waits for readiness. */
static bool launch(harness_service *s, const char *name,
                   const harness_service_opts *o, char *const extra[]) {
  char **env = harness_service_env(s, s->bin, o, extra);
  if (env == NULL) return false;
  char path[512];
  str_copy(path, harness_bin_path(s->bin), sizeof path);
  char *argv[] = {path, NULL};
  s->proc = harness_spawn(name, argv, env);
  harness_service_env_free(env);
  if (s->proc == NULL) return false;
  int timeout =
      o->ready_timeout_ms > 0 ? o->ready_timeout_ms : DEFAULT_READY_TIMEOUT_MS;
  return harness_service_ready(s, timeout);
}

bool harness_service_start(harness_service *s, const char *name,
                           const char *bin, const harness_service_opts *o,
                           char *const extra[]) {
  str_copy(s->bin, bin, sizeof s->bin);
  s->proc = NULL;
  s->rpc_port = harness_free_port();
  s->admin_port = harness_free_port();
  s->bus_port = harness_free_port();
  s->http_port = harness_free_port();
  snprintf(s->rpc_url, sizeof s->rpc_url, "tcp://127.0.0.1:%d", s->rpc_port);
  snprintf(s->bus_url, sizeof s->bus_url, "tcp://127.0.0.1:%d", s->bus_port);
  return launch(s, name, o, extra);
}

bool harness_service_restart(harness_service *s, const char *name,
                             const harness_service_opts *o,
                             char *const extra[]) {
  harness_service_stop(s, RESTART_STOP_TIMEOUT_MS);
  return launch(s, name, o, extra);
}

void harness_service_stop(harness_service *s, int timeout_ms) {
  if (s == NULL || s->proc == NULL) return;
  harness_stop(s->proc, timeout_ms);
  s->proc = NULL;
}

bool harness_service_ready(const harness_service *s, int timeout_ms) {
  char url[128];
  return harness_wait_http_ok(
      harness_service_admin_url(s, "/readyz", url, sizeof url), timeout_ms);
}

const char *harness_service_admin_url(const harness_service *s,
                                      const char *path, char *out, size_t cap) {
  snprintf(out, cap, "http://127.0.0.1:%d%s", s->admin_port, path);
  return out;
}

const char *harness_service_http_url(const harness_service *s, const char *path,
                                     char *out, size_t cap) {
  snprintf(out, cap, "http://127.0.0.1:%d%s", s->http_port, path);
  return out;
}

bool harness_service_start_auth(harness_service *s, const char *name,
                                const harness_service_opts *o,
                                char *const extra[]) {
  if (paseto_init() != ERR_OK) {
    fprintf(stderr, "harness: paseto_init failed\n");
    return false;
  }
  paseto_secret_key sk;
  paseto_keygen(&sk, NULL);
  char keys[32 + PASETO_SECRET_HEX_LEN + 1] = "AUTH_SIGNING_KEYS=";
  size_t used = strlen(keys);
  paseto_secret_key_to_hex(&sk, keys + used);
  paseto_secret_key_wipe(&sk);
  /* The key and cheap hashing first, so the caller's extras can replace
   * either. */
  char *all[MAX_ENV];
  size_t n = 0;
  all[n++] = keys;
  all[n++] = "AUTH_PWHASH_OPSLIMIT=1";
  all[n++] = "AUTH_PWHASH_MEMLIMIT_KIB=8192";
  for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
    if (n == MAX_ENV - 1) {
      explicit_bzero(keys, sizeof keys);
      fprintf(stderr, "harness: over %d extras for auth\n", MAX_ENV);
      return false;
    }
    all[n++] = extra[i];
  }
  all[n] = NULL;
  bool ok = harness_service_start(s, name, "services/auth/auth", o, all);
  explicit_bzero(keys, sizeof keys);
  return ok;
}
