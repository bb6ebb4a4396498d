/*
 * system.c - see system.h.
 *
 * Design. The wiring is one table, kWires: for each service, the
 * variables it reads to find a peer (its RPC address or its bus
 * endpoint), as the services' configs and deploy/k8s name them. A
 * service gets a row's variable only when the peer runs in this system,
 * so a suite that runs no orders starts a gateway without ORDERS_ADDR
 * rather than one dialling nothing. A service's environment is then the
 * wiring followed by the suite's own entries, and service.c lets the last
 * entry for a key win: the suite can replace or remove any wire without
 * this file knowing. The same builder serves the first start, a restart
 * and an added gateway, so all three are wired alike.
 */
#include "tests/harness/system.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP_TIMEOUT_MS 15000
#define PORT_WAIT_MS 10000 /* WebSocket port, gateway /healthz */
#define MAX_EXTRA 64       /* wiring + the suite's entries */
#define ENTRY_LEN 160

static const char *const kNames[HARNESS_PARTS] = {
    "auth", "tenants",  "orders", "notifications",
    "sync", "realtime", "gateway"};

/* consumer reads key to find peer (its RPC address, or its bus when
 * bus is true). */
typedef struct wire {
  harness_part consumer, peer;
  const char *key;
  bool bus;
} wire;

static const wire kWires[] = {
    {HARNESS_TENANTS, HARNESS_AUTH, "AUTH_ADDR", false},
    {HARNESS_ORDERS, HARNESS_AUTH, "AUTH_ADDR", false},
    {HARNESS_ORDERS, HARNESS_AUTH, "AUTH_EVENTS", true},
    {HARNESS_ORDERS, HARNESS_TENANTS, "TENANTS_ADDR", false},
    {HARNESS_ORDERS, HARNESS_TENANTS, "TENANTS_EVENTS", true},
    {HARNESS_NOTIFICATIONS, HARNESS_AUTH, "AUTH_ADDR", false},
    {HARNESS_NOTIFICATIONS, HARNESS_ORDERS, "ORDERS_ADDR", false},
    {HARNESS_NOTIFICATIONS, HARNESS_ORDERS, "ORDERS_EVENTS", true},
    {HARNESS_SYNC, HARNESS_AUTH, "AUTH_ADDR", false},
    {HARNESS_SYNC, HARNESS_ORDERS, "ORDERS_ADDR", false},
    {HARNESS_REALTIME, HARNESS_AUTH, "AUTH_ADDR", false},
    {HARNESS_REALTIME, HARNESS_AUTH, "AUTH_EVENTS", true},
    {HARNESS_REALTIME, HARNESS_TENANTS, "TENANTS_EVENTS", true},
    {HARNESS_REALTIME, HARNESS_ORDERS, "ORDERS_ADDR", false},
    {HARNESS_REALTIME, HARNESS_ORDERS, "ORDERS_EVENTS", true},
    {HARNESS_REALTIME, HARNESS_NOTIFICATIONS, "NOTIFICATIONS_ADDR", false},
    {HARNESS_REALTIME, HARNESS_NOTIFICATIONS, "NOTIFICATIONS_EVENTS", true},
    {HARNESS_REALTIME, HARNESS_SYNC, "SYNC_ADDR", false},
    {HARNESS_REALTIME, HARNESS_SYNC, "SYNC_EVENTS", true},
    {HARNESS_GATEWAY, HARNESS_AUTH, "AUTH_ADDR", false},
    {HARNESS_GATEWAY, HARNESS_AUTH, "AUTH_EVENTS", true},
    {HARNESS_GATEWAY, HARNESS_TENANTS, "TENANTS_ADDR", false},
    {HARNESS_GATEWAY, HARNESS_TENANTS, "TENANTS_EVENTS", true},
    {HARNESS_GATEWAY, HARNESS_ORDERS, "ORDERS_ADDR", false},
    {HARNESS_GATEWAY, HARNESS_NOTIFICATIONS, "NOTIFICATIONS_ADDR", false},
    {HARNESS_GATEWAY, HARNESS_SYNC, "SYNC_ADDR", false},
};

/* A service's extra environment: formatted entries, then pointers to the
 * suite's (which need no copy). */
typedef struct env_list {
  char own[MAX_EXTRA][ENTRY_LEN];
  size_t n_own;
  char *list[MAX_EXTRA + 1];
  size_t n;
  bool overflow;
} env_list;

static void env_add(env_list *e, char *entry) {
  if (e->n >= MAX_EXTRA) {
    e->overflow = true;
    return;
  }
  e->list[e->n++] = entry;
  e->list[e->n] = NULL;
}

static void env_addf(env_list *e, const char *key, const char *value) {
  if (e->n_own >= MAX_EXTRA) {
    e->overflow = true;
    return;
  }
  char *slot = e->own[e->n_own++];
  int n = snprintf(slot, ENTRY_LEN, "%s=%s", key, value);
  if (n < 0 || n >= ENTRY_LEN) e->overflow = true; /* never cut a value */
  env_add(e, slot);
}

/* False (and says so) when the entries did not fit. */
static bool env_ok(const env_list *e, const char *name) {
  if (e->overflow)
    fprintf(stderr, "harness: the environment of %s does not fit\n", name);
  return !e->overflow;
}

static void env_add_all(env_list *e, char *const *entries) {
  for (size_t i = 0; entries != NULL && entries[i] != NULL; i++)
    env_add(e, entries[i]);
}

static bool runs(const harness_system *s, harness_part part) {
  return part == HARNESS_AUTH || (s->opts.parts & HARNESS_WITH(part)) != 0;
}

harness_service *harness_system_part(harness_system *s, harness_part part) {
  switch (part) {
  case HARNESS_AUTH:
    return &s->auth;
  case HARNESS_TENANTS:
    return &s->tenants;
  case HARNESS_ORDERS:
    return &s->orders;
  case HARNESS_NOTIFICATIONS:
    return &s->notifications;
  case HARNESS_SYNC:
    return &s->sync;
  case HARNESS_REALTIME:
    return &s->realtime;
  default:
    return &s->gateway[0];
  }
}

/* The wiring of part, then the suite's settings for it (env, or the
 * options' when env is NULL). */
static void build_env(harness_system *s, harness_part part, env_list *e,
                      char *const *env) {
  memset(e, 0, sizeof *e);
  for (size_t i = 0; i < sizeof kWires / sizeof kWires[0]; i++) {
    const wire *w = &kWires[i];
    if (w->consumer != part || !runs(s, w->peer)) continue;
    const harness_service *peer = harness_system_part(s, w->peer);
    env_addf(e, w->key, w->bus ? peer->bus_url : peer->rpc_url);
  }
  if (part == HARNESS_REALTIME) {
    char port[16];
    snprintf(port, sizeof port, "%d", s->ws_port);
    env_addf(e, "WS_ADDR", "127.0.0.1");
    env_addf(e, "WS_PORT", port);
  }
  env_add_all(e, env != NULL ? env : s->opts.env[part]);
}

static const char *log_name(const harness_system *s, const char *name,
                            char *out, size_t cap) {
  if (s->opts.tag != NULL)
    snprintf(out, cap, "%s-%s", s->opts.tag, name);
  else
    snprintf(out, cap, "%s", name);
  return out;
}

static const char *bin_of(const harness_system *s, harness_part part, char *out,
                          size_t cap) {
  if (s->opts.bin[part] != NULL)
    snprintf(out, cap, "%s", s->opts.bin[part]);
  else
    snprintf(out, cap, "services/%s/%s", kNames[part], kNames[part]);
  return out;
}

static bool gateway_healthy(const harness_service *g) {
  char url[128];
  return harness_wait_http_ok(
      harness_service_http_url(g, "/healthz", url, sizeof url), PORT_WAIT_MS);
}

/* A gateway's: the wiring and the shared settings, then go's Redis
 * database and own (own_env) settings. */
static void build_gateway_env(harness_system *s, env_list *e,
                              const harness_gateway_opts *go,
                              char *const *own_env) {
  build_env(s, HARNESS_GATEWAY, e, NULL);
  if (go->redis_db > 0) {
    char redis[sizeof s->redis.url + 16];
    snprintf(redis, sizeof redis, "%s/%d", s->redis.url, go->redis_db);
    env_addf(e, "REDIS_URL", redis);
  }
  env_add_all(e, own_env);
}

static bool launch_gateway(harness_system *s, harness_service *g,
                           const harness_gateway_opts *go) {
  env_list *e = malloc(sizeof *e);
  if (e == NULL) return false;
  build_gateway_env(s, e, go, go->env);
  char name[64], bin[256];
  log_name(s, go->name != NULL ? go->name : kNames[HARNESS_GATEWAY], name,
           sizeof name);
  bool ok = env_ok(e, name) &&
            harness_service_start(g, name,
                                  bin_of(s, HARNESS_GATEWAY, bin, sizeof bin),
                                  &s->svc, e->list) &&
            gateway_healthy(g);
  free(e);
  return ok;
}

static bool launch(harness_system *s, harness_part part) {
  env_list *e = malloc(sizeof *e);
  if (e == NULL) return false;
  build_env(s, part, e, NULL);
  harness_service *svc = harness_system_part(s, part);
  char name[64], bin[256];
  log_name(s, kNames[part], name, sizeof name);
  bin_of(s, part, bin, sizeof bin);
  bool ok = env_ok(e, name);
  if (ok && part == HARNESS_AUTH)
    ok = harness_service_start_auth(svc, name, &s->svc, e->list);
  else if (ok)
    ok = harness_service_start(
        svc, name, bin, part == HARNESS_REALTIME ? &s->rt : &s->svc, e->list);
  if (ok && part == HARNESS_REALTIME)
    ok = harness_wait_port(s->ws_port, PORT_WAIT_MS);
  free(e);
  return ok;
}

static bool start_gateways(harness_system *s) {
  s->n_gateways = 0;
  for (int i = 0; i < HARNESS_MAX_GATEWAYS; i++) {
    if (i > 0 && s->opts.gateways[i].name == NULL) break;
    if (!launch_gateway(s, &s->gateway[i], &s->opts.gateways[i])) {
      fprintf(stderr, "harness: gateway %d did not get ready\n", i);
      return false;
    }
    s->n_gateways = i + 1;
  }
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d",
           s->gateway[0].http_port);
  return true;
}

static bool start_all(harness_system *s) {
  if (harness_pg_start(&s->pg) != 0 || harness_redis_start(&s->redis) != 0) {
    fprintf(stderr, "harness: PostgreSQL or Redis did not start\n");
    return false;
  }
  for (harness_part p = HARNESS_AUTH; p < HARNESS_GATEWAY; p++) {
    if (!runs(s, p)) continue;
    if (!launch(s, p)) {
      fprintf(stderr, "harness: %s did not get ready\n", kNames[p]);
      return false;
    }
  }
  if (runs(s, HARNESS_GATEWAY)) return start_gateways(s);
  return true;
}

void harness_system_init(harness_system *s, const harness_system_opts *o) {
  memset(s, 0, sizeof *s);
  s->opts = *o;
  s->svc = (harness_service_opts){.pg = &s->pg,
                                  .redis = &s->redis,
                                  .rpc_workers = o->rpc_workers,
                                  .log_level = o->log_level};
  s->rt = (harness_service_opts){.redis = &s->redis, .log_level = o->log_level};
  if (runs(s, HARNESS_REALTIME)) {
    s->ws_port = o->ws_port > 0 ? o->ws_port : harness_free_port();
    snprintf(s->ws_url, sizeof s->ws_url, "ws://127.0.0.1:%d", s->ws_port);
  }
}

bool harness_system_start(harness_system *s, const harness_system_opts *o) {
  harness_system_init(s, o);
  if (start_all(s)) return true;
  harness_dump_logs();
  fprintf(stderr, "cannot start the system\n");
  harness_system_stop(s);
  return false;
}

bool harness_system_restart(harness_system *s, harness_part part,
                            const char *name, char *const env[]) {
  if (part == HARNESS_AUTH || !runs(s, part)) return false;
  env_list *e = malloc(sizeof *e);
  if (e == NULL) return false;
  const harness_gateway_opts *go = &s->opts.gateways[0];
  if (part == HARNESS_GATEWAY)
    build_gateway_env(s, e, go, env != NULL ? env : go->env);
  else
    build_env(s, part, e, env);
  char own[64];
  const char *base =
      part == HARNESS_GATEWAY && go->name != NULL ? go->name : kNames[part];
  if (name == NULL) name = log_name(s, base, own, sizeof own);
  harness_service *svc = harness_system_part(s, part);
  bool ok = env_ok(e, name) &&
            harness_service_restart(svc, name,
                                    part == HARNESS_REALTIME ? &s->rt : &s->svc,
                                    e->list);
  if (ok && part == HARNESS_REALTIME)
    ok = harness_wait_port(s->ws_port, PORT_WAIT_MS);
  if (ok && part == HARNESS_GATEWAY) ok = gateway_healthy(svc);
  free(e);
  return ok;
}

char **harness_system_env(harness_system *s, harness_part part) {
  env_list *e = malloc(sizeof *e);
  if (e == NULL) return NULL;
  if (part == HARNESS_GATEWAY)
    build_gateway_env(s, e, &s->opts.gateways[0], s->opts.gateways[0].env);
  else
    build_env(s, part, e, NULL);
  char bin[256];
  char **env =
      env_ok(e, kNames[part])
          ? harness_service_env(
                harness_system_part(s, part), bin_of(s, part, bin, sizeof bin),
                part == HARNESS_REALTIME ? &s->rt : &s->svc, e->list)
          : NULL;
  free(e);
  return env;
}

bool harness_system_start_gateway(harness_system *s, harness_service *g,
                                  const harness_gateway_opts *g_opts) {
  memset(g, 0, sizeof *g);
  return launch_gateway(s, g, g_opts);
}

void harness_system_stop(harness_system *s) {
  for (int i = HARNESS_MAX_GATEWAYS - 1; i >= 0; i--)
    harness_service_stop(&s->gateway[i], STOP_TIMEOUT_MS);
  for (int p = HARNESS_GATEWAY - 1; p >= (int)HARNESS_AUTH; p--)
    harness_service_stop(harness_system_part(s, (harness_part)p),
                         STOP_TIMEOUT_MS);
  harness_redis_stop(&s->redis);
  harness_pg_stop(&s->pg);
}

int harness_system_end(harness_system *s, int failed) {
  if (failed != 0) harness_dump_logs();
  harness_system_stop(s);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
