/*
 * gateway.c - see gateway.h. Construction is long but flat: each piece
 * is created from its settings and handed to the next; gateway_free
 * undoes it in reverse.
 */
#include "services/gateway/gateway.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn.h"
#include "libs/bus/bus.h"
#include "libs/cache/cache.h"
#include "libs/obs/admin.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/rpc/rpc.h"
#include "libs/svc/identity.h"
#include "libs/tenantdir/tenantdir.h"
#include "services/gateway/appfiles.h"
#include "services/gateway/clientaddr.h"
#include "services/gateway/cors.h"
#include "services/gateway/pipeline.h"
#include "services/gateway/ratelimit.h"
#include "services/gateway/routes.h"
#include "services/gateway/server.h"

static const cfg_entry kEntries[] = {
    {.name = "LOG_LEVEL",
     .kind = CFG_STRING,
     .def = "info",
     .description = "debug, info, warn or error"},
    {.name = "HTTP_ADDR",
     .kind = CFG_STRING,
     .def = "0.0.0.0",
     .description = "public HTTP bind address (IPv4 literal)"},
    {.name = "HTTP_PORT",
     .kind = CFG_INT,
     .def = "8080",
     .min = 0,
     .max = 65535,
     .description = "public HTTP port"},
    {.name = "ADMIN_ADDR",
     .kind = CFG_STRING,
     .def = "0.0.0.0",
     .description = "admin HTTP bind address"},
    {.name = "ADMIN_PORT",
     .kind = CFG_INT,
     .def = "9000",
     .min = 0,
     .max = 65535,
     .description = "admin port (/healthz /readyz /metrics)"},
    {.name = "AUTH_ADDR",
     .kind = CFG_URL,
     .def = "tcp://127.0.0.1:7101",
     .description = "auth service RPC address list"},
    {.name = "TENANTS_ADDR",
     .kind = CFG_URL,
     .def = "tcp://127.0.0.1:7102",
     .description = "tenants service RPC address list"},
    {.name = "ORDERS_ADDR",
     .kind = CFG_URL,
     .def = "tcp://127.0.0.1:7103",
     .description = "orders service RPC address list"},
    {.name = "SYNC_ADDR",
     .kind = CFG_URL,
     .def = "tcp://127.0.0.1:7104",
     .description = "sync service RPC address list"},
    {.name = "NOTIFICATIONS_ADDR",
     .kind = CFG_URL,
     .def = "tcp://127.0.0.1:7105",
     .description = "notifications service RPC address list"},
    {.name = "AUTH_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "auth's event publisher (auth.revoked); empty: none"},
    {.name = "TENANTS_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "tenants' event publisher (tenants.changed); empty: none"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .def = "redis://127.0.0.1:6379",
     .secret = false,
     .description = "Redis: rate limits, revocations, tenant status"},
    {.name = "GATEWAY_DEADLINE_MS",
     .kind = CFG_DURATION_MS,
     .def = "5000",
     .min = 1,
     .max = 600000,
     .description = "per request, arrival to answer, backends included"},
    {.name = "GATEWAY_ATTEMPT_TIMEOUT_MS",
     .kind = CFG_DURATION_MS,
     .def = "1000",
     .min = 0,
     .max = 600000,
     .description = "per attempt of a read (keyed writes wait their "
                    "deadline): a replica that answers nothing within it is "
                    "retried elsewhere and counts toward its ejection; 0: "
                    "off (ADR 0013; sync: always off)"},
    {.name = "GATEWAY_BASE_DOMAIN",
     .kind = CFG_STRING,
     .def = "localhost",
     .description = "tenants answer at <slug>.<base domain> (comma list)"},
    {.name = "GATEWAY_PUBLIC_HOSTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "the API's own host names (never a tenant's domain)"},
    {.name = "GATEWAY_CORS_ORIGINS",
     .kind = CFG_STRING,
     .def = "",
     .description = "allowed browser origins (comma list, or *)"},
    {.name = "GATEWAY_IO_THREADS",
     .kind = CFG_INT,
     .def = "2",
     .min = 1,
     .max = 64,
     .description = "HTTP I/O threads"},
    {.name = "GATEWAY_WORKERS",
     .kind = CFG_INT,
     .def = "64",
     .min = 1,
     .max = 1024,
     .description = "threads running requests to backends"},
    {.name = "GATEWAY_QUEUE",
     .kind = CFG_INT,
     .def = "4096",
     .min = 1,
     .max = 1000000,
     .description = "requests waiting for a worker"},
    {.name = "GATEWAY_MAX_BODY_BYTES",
     .kind = CFG_INT,
     .def = "1048576",
     .min = 1,
     .max = 67108864,
     .description = "request body limit of routes without their own (413)"},
    {.name = "GATEWAY_IDLE_TIMEOUT_S",
     .kind = CFG_INT,
     .def = "60",
     .min = 1,
     .max = 3600,
     .description = "idle keep-alive connections close after"},
    {.name = "GATEWAY_MAX_CONNECTIONS",
     .kind = CFG_INT,
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .description = "open client connections"},
    {.name = "GATEWAY_MAX_CONNECTIONS_PER_IP",
     .kind = CFG_INT,
     .def = "256",
     .min = 0,
     .max = 1000000,
     .description = "open connections per TCP peer address (0: no cap)"},
    {.name = "GATEWAY_REQUEST_TIMEOUT_MS",
     .kind = CFG_DURATION_MS,
     .def = "10000",
     .min = 100,
     .max = 600000,
     .description = "to receive one request, headers and body (then cut)"},
    {.name = "GATEWAY_ACCESS_LOG",
     .kind = CFG_BOOL,
     .def = "true",
     .description = "one JSON line per request"},
    {.name = "GATEWAY_RATE_LIMIT",
     .kind = CFG_BOOL,
     .def = "true",
     .description = "token buckets in Redis"},
    {.name = "GATEWAY_RATE_BURST",
     .kind = CFG_INT,
     .def = "120",
     .min = 1,
     .max = 1000000000,
     .description = "per tenant+caller bucket size"},
    {.name = "GATEWAY_RATE_PER_MIN",
     .kind = CFG_INT,
     .def = "600",
     .min = 1,
     .max = 1000000000,
     .description = "per tenant+caller refill per minute"},
    {.name = "GATEWAY_LOGIN_BURST",
     .kind = CFG_INT,
     .def = "5",
     .min = 1,
     .max = 1000000000,
     .description = "login attempts per tenant+e-mail"},
    {.name = "GATEWAY_LOGIN_PER_MIN",
     .kind = CFG_INT,
     .def = "10",
     .min = 1,
     .max = 1000000000,
     .description = "login refill per minute"},
    {.name = "GATEWAY_RATE_LIMIT_BATCH",
     .kind = CFG_INT,
     .def = "16",
     .min = 1,
     .max = 1000,
     .description = "tokens a replica takes from a Redis bucket at once "
                    "(at most a tenth of its burst; 1: exact, a Redis call "
                    "per request; docs/adr/0020)"},
    {.name = "GATEWAY_RATE_LIMIT_LEASE_MS",
     .kind = CFG_DURATION_MS,
     .def = "1000",
     .min = 10,
     .max = 60000,
     .description = "how long a replica keeps tokens taken ahead of use"},
    {.name = "GATEWAY_RATE_LIMIT_FAIL",
     .kind = CFG_STRING,
     .def = "open",
     .description = "Redis down: open (allow) or closed (503 + Retry-After)"},
    {.name = "GATEWAY_TRUSTED_PROXIES",
     .kind = CFG_STRING,
     .def = "",
     .description = "CIDRs whose X-Forwarded-For is believed (comma list)"},
    {.name = "AUTHN_REVOCATION_FAIL",
     .kind = CFG_STRING,
     .def = "open",
     .description = "Redis down in a revocation check: open or closed (503)"},
    {.name = "GATEWAY_TOKEN_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "required iss of access tokens (empty: any)"},
    {.name = "GATEWAY_TENANT_TTL_MS",
     .kind = CFG_DURATION_MS,
     .def = "30000",
     .min = 1,
     .max = 3600000,
     .description = "tenant resolution cache"},
    {.name = "GATEWAY_APP_DIR",
     .kind = CFG_STRING,
     .def = "",
     .description = "web console files served under /app/ (empty: none)"},
    {.name = "GATEWAY_APP_REALTIME_URL",
     .kind = CFG_STRING,
     .def = "",
     .description = "realtime ws(s):// URL the console uses (empty: same "
                    "origin /v1/realtime)"},
    {.name = "SHUTDOWN_GRACE_MS",
     .kind = CFG_DURATION_MS,
     .def = "10000",
     .min = 0,
     .max = 600000,
     .description = "drain time after SIGTERM"},
    {.name = "SERVICE_KEY_FILE",
     .kind = CFG_STRING,
     .description = "the gateway's own Ed25519 key (service identity)"},
    {.name = "SERVICE_TRUST_FILE",
     .kind = CFG_STRING,
     .description = "every service's public key, '<service> <key>' lines"},
};

const cfg_entry *gateway_config_entries(size_t *n) {
  *n = sizeof kEntries / sizeof kEntries[0];
  return kEntries;
}

/* The backends route rows name (route.service), each with the setting
 * holding its address list. Every one gets an RPC client. Adding a
 * backend = a row here, an enum value and its *_ADDR entry in kEntries.
 *
 * /readyz checks only the backends every route needs (docs/adr/0006):
 * auth (token keys) and tenants (tenant resolution). A domain backend
 * being down (orders) is answered per route with 503; taking every
 * gateway out of the load balancer for it would also take down the
 * routes that still work. */
enum {
  BACKEND_AUTH,
  BACKEND_TENANTS,
  BACKEND_ORDERS,
  BACKEND_NOTIFICATIONS,
  BACKEND_SYNC,
  NBACKENDS
};

static const struct {
  const char *name;     /* as in route rows and /readyz */
  const char *addr;     /* configuration entry */
  bool gates_readiness; /* a /readyz check */
} kBackends[NBACKENDS] = {
    [BACKEND_AUTH] = {"auth", "AUTH_ADDR", true},
    [BACKEND_TENANTS] = {"tenants", "TENANTS_ADDR", true},
    [BACKEND_ORDERS] = {"orders", "ORDERS_ADDR", false},
    [BACKEND_SYNC] = {"sync", "SYNC_ADDR", false},
    [BACKEND_NOTIFICATIONS] = {"notifications", "NOTIFICATIONS_ADDR", false},
};

struct gateway {
  svc_identity *identity;         /* the credential on every backend call */
  rpc_client *clients[NBACKENDS]; /* by BACKEND_* */
  pipeline_backend backends[NBACKENDS];
  cache *redis;
  authn *authn;
  tenantdir *dir;
  ratelimit *limits;
  route_table *routes;
  cors *cors;
  clientaddr_trust *proxies;
  appfiles *app; /* NULL: no console */
  pipeline *pipe;
  server *http;
  admin *admin;
  bus_subscriber *events;
};

/* auth.revoked and tenants.changed: revocations apply at once, tenant
 * answers are dropped so a suspension is seen on the next request. Lost
 * events are not backfilled: Redis (authn's recheck) and the directory's
 * TTL bound the staleness. */
static int on_event(void *arg, const Rpc__V1__Event *ev) {
  gateway *g = arg;
  if (authn_apply_event(g->authn, ev) != ERR_OK)
    log_warn("undecodable event", "topic", ev->topic);
  tenantdir_on_event(g->dir, ev->topic, ev);
  return ERR_OK;
}

static int subscribe(gateway *g, const cfg *c) {
  const char *a = cfg_str(c, "AUTH_EVENTS"), *t = cfg_str(c, "TENANTS_EVENTS");
  a = a ? a : "";
  t = t ? t : "";
  if (a[0] == '\0' && t[0] == '\0') return ERR_OK;
  char addr[2 * CFG_MAX_VALUE + 2];
  snprintf(addr, sizeof addr, "%s%s%s", a, a[0] && t[0] ? "," : "", t);
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  int rc = bus_subscriber_new(addr, on_event, g, &o, &g->events);
  if (rc == ERR_OK) rc = bus_subscribe_exact(g->events, AUTHN_TOPIC_REVOKED);
  if (rc == ERR_OK) rc = bus_subscribe_exact(g->events, TENANTDIR_TOPIC);
  if (rc == ERR_OK) rc = bus_subscriber_start(g->events);
  return rc;
}

/* The web console (appfiles.h), when GATEWAY_APP_DIR names one. */
static int load_app(gateway *g, const cfg *c) {
  const char *dir = cfg_str(c, "GATEWAY_APP_DIR");
  if (dir == NULL || dir[0] == '\0') return ERR_OK;
  int rc = appfiles_load(dir, cfg_str(c, "GATEWAY_APP_REALTIME_URL"), &g->app);
  if (rc != ERR_OK) return rc;
  char n[24];
  snprintf(n, sizeof n, "%zu", appfiles_count(g->app));
  log_info("web console loaded", "dir", dir, "files", n);
  return ERR_OK;
}

static int backend_ready(void *arg) {
  return rpc_client_connected(arg) > 0 ? 0 : 1;
}

void gateway_free(gateway *g) {
  if (g == NULL) return;
  server_free(g->http);
  bus_subscriber_free(g->events);
  admin_free(g->admin);
  pipeline_free(g->pipe);
  cors_free(g->cors);
  clientaddr_trust_free(g->proxies);
  appfiles_free(g->app);
  route_table_free(g->routes);
  ratelimit_free(g->limits);
  tenantdir_free(g->dir);
  authn_free(g->authn);
  cache_free(g->redis);
  for (size_t i = 0; i < NBACKENDS; i++) rpc_client_free(g->clients[i]);
  svc_identity_free(g->identity); /* after the clients using it */
  free(g);
}

static int fail(gateway *g, int rc, const char *what) {
  log_error("gateway start-up failed", "step", what, "error", err_str(rc));
  gateway_free(g);
  return rc;
}

int gateway_new(const cfg *c, const route *rows, size_t nrows, gateway **out) {
  *out = NULL;
  gateway *g = calloc(1, sizeof *g);
  if (g == NULL) return ERR_NOMEM;
  if (rows == NULL) rows = routes_public(&nrows);
  int rc = metrics_register_process();
  if (rc != ERR_OK) return fail(g, rc, "metrics");

  rc = svc_identity_open("gateway", cfg_str(c, "SERVICE_KEY_FILE"),
                         cfg_str(c, "SERVICE_TRUST_FILE"), &g->identity);
  if (rc != ERR_OK) return fail(g, rc, "SERVICE_KEY_FILE/SERVICE_TRUST_FILE");
  for (size_t i = 0; i < NBACKENDS; i++) {
    rpc_client_options ro;
    rpc_client_options_init(&ro);
    ro.default_deadline_ms =
        (uint32_t)cfg_duration_ms(c, "GATEWAY_DEADLINE_MS");
    /* A hung replica costs one attempt, not the deadline (ADR 0013). */
    ro.attempt_timeout_ms =
        (uint32_t)cfg_duration_ms(c, "GATEWAY_ATTEMPT_TIMEOUT_MS");
    rc = svc_identity_client(g->identity, &ro);
    if (rc == ERR_OK)
      rc = rpc_client_new(cfg_str(c, kBackends[i].addr), &ro, &g->clients[i]);
    if (rc != ERR_OK) return fail(g, rc, kBackends[i].addr);
    g->backends[i] = (pipeline_backend){kBackends[i].name, g->clients[i]};
  }

  /* Redis answers within a few ms or not at all: a short command timeout
   * keeps a dead Redis from eating the request's deadline (limits and
   * revocation checks then fail open). */
  cache_config cc = {.url = cfg_str(c, "REDIS_URL"),
                     .max_conns = 32,
                     .connect_timeout_ms = 200,
                     .command_timeout_ms = 200,
                     .acquire_timeout_ms = 200};
  rc = cache_new(&cc, &g->redis);
  if (rc != ERR_OK) return fail(g, rc, "REDIS_URL");

  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = cfg_str(c, "GATEWAY_TOKEN_ISSUER");
  ac.redis = g->redis;
  if (authn_fail_mode_parse(cfg_str(c, "AUTHN_REVOCATION_FAIL"),
                            &ac.fail_closed) != ERR_OK)
    return fail(g, ERR_INVAL, "AUTHN_REVOCATION_FAIL (open or closed)");
  ac.keys_client = g->clients[BACKEND_AUTH];
  rc = authn_new(&ac, &g->authn);
  if (rc != ERR_OK) return fail(g, rc, "authn");

  tenantdir_options to = TENANTDIR_OPTIONS_INIT;
  to.client = g->clients[BACKEND_TENANTS];
  to.ttl_ms = cfg_duration_ms(c, "GATEWAY_TENANT_TTL_MS");
  rc = tenantdir_new(&to, &g->dir);
  if (rc != ERR_OK) return fail(g, rc, "tenantdir");

  rc = subscribe(g, c);
  if (rc != ERR_OK) return fail(g, rc, "AUTH_EVENTS/TENANTS_EVENTS");

  if (cfg_bool(c, "GATEWAY_RATE_LIMIT")) {
    bool closed = false;
    if (authn_fail_mode_parse(cfg_str(c, "GATEWAY_RATE_LIMIT_FAIL"), &closed) !=
        ERR_OK)
      return fail(g, ERR_INVAL, "GATEWAY_RATE_LIMIT_FAIL (open or closed)");
    ratelimit_config rl = {
        .fail_closed = closed,
        .redis = g->redis,
        .caller = {cfg_int(c, "GATEWAY_RATE_BURST"),
                   cfg_int(c, "GATEWAY_RATE_PER_MIN")},
        .login = {cfg_int(c, "GATEWAY_LOGIN_BURST"),
                  cfg_int(c, "GATEWAY_LOGIN_PER_MIN")},
        .batch = cfg_int(c, "GATEWAY_RATE_LIMIT_BATCH"),
        .lease_ms = cfg_duration_ms(c, "GATEWAY_RATE_LIMIT_LEASE_MS"),
    };
    rc = ratelimit_new(&rl, &g->limits);
    if (rc != ERR_OK) return fail(g, rc, "rate limits");
  }

  size_t bad = 0;
  rc = route_table_new(rows, nrows, &g->routes, &bad);
  if (rc != ERR_OK) {
    if (bad < nrows)
      log_error("bad route row", "method",
                rows[bad].method ? rows[bad].method : "", "path",
                rows[bad].path ? rows[bad].path : "");
    return fail(g, rc, "routes");
  }
  rc = cors_new(cfg_str(c, "GATEWAY_CORS_ORIGINS"), &g->cors);
  if (rc != ERR_OK) return fail(g, rc, "GATEWAY_CORS_ORIGINS");
  char bad_net[80];
  rc = clientaddr_trust_new(cfg_str(c, "GATEWAY_TRUSTED_PROXIES"), &g->proxies,
                            bad_net, sizeof bad_net);
  if (rc != ERR_OK) {
    log_error("bad GATEWAY_TRUSTED_PROXIES entry", "entry", bad_net);
    return fail(g, rc, "GATEWAY_TRUSTED_PROXIES");
  }

  rc = load_app(g, c);
  if (rc != ERR_OK)
    return fail(g, rc, "GATEWAY_APP_DIR/GATEWAY_APP_REALTIME_URL");

  pipeline_config pc = {
      .backends = g->backends,
      .nbackends = NBACKENDS,
      .authn = g->authn,
      .tenants = g->dir,
      .limits = g->limits,
      .base_domains = cfg_str(c, "GATEWAY_BASE_DOMAIN"),
      .public_hosts = cfg_str(c, "GATEWAY_PUBLIC_HOSTS"),
      .deadline_ms = cfg_duration_ms(c, "GATEWAY_DEADLINE_MS"),
  };
  rc = pipeline_new(&pc, &g->pipe);
  if (rc != ERR_OK) return fail(g, rc, "pipeline");

  server_config sc = {
      .bind_addr = cfg_str(c, "HTTP_ADDR"),
      .port = (int)cfg_int(c, "HTTP_PORT"),
      .io_threads = (int)cfg_int(c, "GATEWAY_IO_THREADS"),
      .workers = (int)cfg_int(c, "GATEWAY_WORKERS"),
      .queue_depth = (size_t)cfg_int(c, "GATEWAY_QUEUE"),
      .max_body = (size_t)cfg_int(c, "GATEWAY_MAX_BODY_BYTES"),
      .conn_timeout_s = (unsigned)cfg_int(c, "GATEWAY_IDLE_TIMEOUT_S"),
      .max_conns = (unsigned)cfg_int(c, "GATEWAY_MAX_CONNECTIONS"),
      .max_conns_per_ip =
          (unsigned)cfg_int(c, "GATEWAY_MAX_CONNECTIONS_PER_IP"),
      .request_timeout_ms = cfg_duration_ms(c, "GATEWAY_REQUEST_TIMEOUT_MS"),
      .authn = g->authn,
      .access_log = cfg_bool(c, "GATEWAY_ACCESS_LOG"),
      .routes = g->routes,
      .pipeline = g->pipe,
      .cors = g->cors,
      .trusted_proxies = g->proxies,
      .app = g->app,
  };
  rc = server_new(&sc, &g->http);
  if (rc != ERR_OK) return fail(g, rc, "http server");

  admin_options ao = {.bind_addr = cfg_str(c, "ADMIN_ADDR"),
                      .port = (int)cfg_int(c, "ADMIN_PORT")};
  rc = admin_new(&ao, &g->admin);
  for (size_t i = 0; rc == ERR_OK && i < NBACKENDS; i++)
    if (kBackends[i].gates_readiness)
      rc = admin_add_check(g->admin, kBackends[i].name, backend_ready,
                           g->clients[i]);
  if (rc != ERR_OK) return fail(g, rc, "admin server");
  *out = g;
  return ERR_OK;
}

int gateway_start(gateway *g) {
  int rc = admin_start(g->admin);
  if (rc != ERR_OK) {
    log_error("admin server did not start", "error", err_str(rc));
    return rc == ERR_EXISTS ? ERR_UNAVAILABLE : rc;
  }
  rc = server_start(g->http);
  if (rc != ERR_OK) {
    log_error("HTTP server did not start", "error", err_str(rc));
    return rc;
  }
  char port[16];
  snprintf(port, sizeof port, "%d", server_port(g->http));
  log_info("gateway listening", "http_port", port);
  return ERR_OK;
}

int gateway_drain(gateway *g, int64_t grace_ms) {
  admin_set_draining(g->admin);
  return server_drain(g->http, grace_ms);
}
