/*
 * main.c - the tenants service: configuration, start-up and shutdown; the
 * work is in handlers.c, provision.c and janitor.c, the events' relay in
 * libs/outbox (see README.md for every setting).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn.h"
#include "libs/bus/bus.h"
#include "libs/cache/cache.h"
#include "libs/obs/log.h"
#include "libs/outbox/outbox.h"
#include "libs/paseto/paseto.h"
#include "libs/svc/svc.h"
#include "services/tenants/access.h"
#include "services/tenants/events.h"
#include "services/tenants/handlers.h"
#include "services/tenants/janitor.h"
#include "services/tenants/rescache.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR", .kind = CFG_URL, .required = true,
     .description = "auth service RPC address list (CreateUser, Keys)"},
    {.name = "AUTH_ISSUER", .kind = CFG_STRING, .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "REDIS_URL", .kind = CFG_URL,
     .description = "Redis: Resolve cache and tenant:status keys"},
    {.name = "BUS_LISTEN", .kind = CFG_URL,
     .description = "nng URL the tenants.changed publisher listens on"},
    {.name = "TENANTS_DB_ROLE", .kind = CFG_STRING, .def = "tenants_app",
     .description = "role each transaction switches to (RLS); empty: none"},
    {.name = "TENANTS_BASE_DOMAINS", .kind = CFG_STRING, .def = "localhost",
     .description = "comma-separated base domains of <slug>.<base> hosts"},
    {.name = "TENANTS_DEFAULT_CURRENCY", .kind = CFG_STRING, .def = "EUR",
     .description = "currency of tenants created without one"},
    {.name = "TENANTS_OPERATOR_SECRET", .kind = CFG_STRING, .secret = true,
     .description = "operator secret for Suspend/Resume (>= 16 bytes); "
                    "unset: disabled"},
    {.name = "TENANTS_RESOLVE_CACHE_TTL", .kind = CFG_DURATION_MS, .def = "60s",
     .min = 1000, .max = 86400000, .description = "Redis Resolve cache TTL"},
    {.name = "TENANTS_OWNER_TIMEOUT", .kind = CFG_DURATION_MS, .def = "10s",
     .min = 100, .max = 120000,
     .description = "deadline of auth CreateUser for a new tenant's owner"},
    {.name = "TENANTS_PROVISIONING_MAX_AGE", .kind = CFG_DURATION_MS,
     .def = "60s", .min = 0, .max = 86400000,
     .description = "unfinished tenants older than this are reaped"},
    {.name = "TENANTS_JANITOR_INTERVAL", .kind = CFG_DURATION_MS, .def = "30s",
     .min = 100, .max = 86400000,
     .description = "reaper / status resync period"},
    {.name = "TENANTS_STATUS_RESYNC_WINDOW", .kind = CFG_DURATION_MS,
     .def = "10m", .min = 0, .max = 604800000,
     .description = "active tenants changed this recently get their Redis "
                    "status rewritten (suspended ones always)"},
    {.name = "TENANTS_OUTBOX_KEEP", .kind = CFG_DURATION_MS, .def = "168h",
     .min = 60000, .max = 31622400000LL,
     .description = "how long published events stay available to Replay"},
    {.name = "TENANTS_OUTBOX_POLL", .kind = CFG_DURATION_MS, .def = "1s",
     .min = 10, .max = 60000,
     .description = "relay poll period when not woken by a commit"},
    {.name = "TENANTS_TEST_CRASH_AFTER_OWNER", .kind = CFG_BOOL,
     .def = "false",
     .description = "TEST HOOK: _exit(137) after an owner was created"},
};

typedef struct app {
  cache *redis;
  store *store;
  rpc_client *auth;
  authn *verifier;
  access_operator *op;
  rescache *rcache;
  bus_publisher *bus;
  outbox *events;
  tenants *handlers;
  janitor *janitor;
  provision_deps deps;
} app;

static int check_redis(void *arg) { return cache_ping(arg) == ERR_OK ? 0 : 1; }

/* The relay's publish function: a->bus is set before the relay starts. */
static int publish(void *arg, const Rpc__V1__Event *ev) {
  const app *a = arg;
  return bus_publish_event(a->bus, ev);
}

static int open_redis(svc *s, app *a) {
  const char *url = cfg_str(svc_cfg(s), "REDIS_URL");
  if (url == NULL || url[0] == '\0') {
    log_warn("REDIS_URL not set: no Resolve cache, no tenant:status keys");
    return ERR_OK;
  }
  cache_config cc = {.url = url, .max_conns = 8};
  int rc = cache_new(&cc, &a->redis);
  if (rc != ERR_OK) {
    log_error("bad REDIS_URL", "error", err_str(rc));
    return rc;
  }
  return admin_add_check(svc_admin(s), "redis", check_redis, a->redis);
}

/* The relay (not started yet), then the publisher, which continues the
 * sequence the outbox already handed out. Without BUS_LISTEN the relay
 * still numbers the events, for Replay. */
static int open_events(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  const char *url = cfg_str(c, "BUS_LISTEN");
  bool bus = url != NULL && url[0] != '\0';
  outbox_options o = {
      .schema = EVENTS_SCHEMA,
      .source = EVENTS_SOURCE,
      .publish = bus ? publish : NULL,
      .publish_arg = a,
      .poll_ms = cfg_duration_ms(c, "TENANTS_OUTBOX_POLL"),
      .keep_ms = cfg_duration_ms(c, "TENANTS_OUTBOX_KEEP"),
  };
  int rc = outbox_new(svc_db(s), &o, &a->events);
  if (rc != ERR_OK)
    return rc;
  if (!bus) {
    log_warn("BUS_LISTEN not set: tenants.changed only through Replay");
    return ERR_OK;
  }
  uint64_t last = 0;
  rc = outbox_last_seq(a->events, &last);
  if (rc == ERR_OK)
    rc = bus_publisher_new(url, EVENTS_SOURCE, last, NULL, &a->bus);
  if (rc != ERR_OK)
    log_error("cannot start the event publisher", "url", url, "error",
              err_str(rc));
  return rc;
}

static int tenants_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  if (paseto_init() != ERR_OK)
    return ERR_INTERNAL;
  int rc = store_new(svc_db(s), cfg_str(c, "TENANTS_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad TENANTS_DB_ROLE");
    return rc;
  }
  rc = open_redis(s, a);
  if (rc == ERR_OK)
    rc = open_events(s, a);
  if (rc != ERR_OK)
    return rc;

  rc = rpc_client_new(cfg_str(c, "AUTH_ADDR"), NULL, &a->auth);
  if (rc != ERR_OK) {
    log_error("bad AUTH_ADDR", "error", err_str(rc));
    return rc;
  }
  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = cfg_str(c, "AUTH_ISSUER");
  ac.redis = a->redis;
  ac.keys_client = a->auth;
  rc = authn_new(&ac, &a->verifier);
  if (rc != ERR_OK)
    return rc;
  rc = access_operator_new(cfg_str(c, "TENANTS_OPERATOR_SECRET"), &a->op);
  if (rc != ERR_OK) {
    log_error("TENANTS_OPERATOR_SECRET must be at least 16 bytes");
    return rc;
  }
  if (!access_operator_enabled(a->op))
    log_warn("TENANTS_OPERATOR_SECRET not set: Suspend/Resume disabled");
  rc = rescache_new(a->redis, cfg_duration_ms(c, "TENANTS_RESOLVE_CACHE_TTL"),
                    &a->rcache);
  if (rc != ERR_OK)
    return rc;

  a->deps = (provision_deps){
      .st = a->store,
      .auth = a->auth,
      .cache = a->rcache,
      .events = a->events,
      .owner_timeout_ms = (uint32_t)cfg_duration_ms(c, "TENANTS_OWNER_TIMEOUT"),
      .crash_after_owner = cfg_bool(c, "TENANTS_TEST_CRASH_AFTER_OWNER"),
  };
  if (a->deps.crash_after_owner)
    log_warn("TEST HOOK TENANTS_TEST_CRASH_AFTER_OWNER is on: CreateTenant "
             "kills this process");
  tenants_config tc = {
      .deps = a->deps,
      .verifier = a->verifier,
      .op = a->op,
      .base_domains = cfg_str(c, "TENANTS_BASE_DOMAINS"),
      .default_currency = cfg_str(c, "TENANTS_DEFAULT_CURRENCY"),
  };
  rc = tenants_new(&tc, &a->handlers);
  if (rc != ERR_OK) {
    log_error("bad TENANTS_BASE_DOMAINS or TENANTS_DEFAULT_CURRENCY");
    return rc;
  }
  rc = tenants_register(a->handlers, svc_rpc(s));
  if (rc == ERR_OK)
    rc = outbox_register_replay(a->events, svc_rpc(s));
  if (rc == ERR_OK)
    rc = outbox_start(a->events);
  if (rc != ERR_OK)
    return rc;
  janitor_options jo = {
      .deps = &a->deps,
      .interval_ms = cfg_duration_ms(c, "TENANTS_JANITOR_INTERVAL"),
      .provisioning_max_age_ms =
          cfg_duration_ms(c, "TENANTS_PROVISIONING_MAX_AGE"),
      .status_recent_ms = cfg_duration_ms(c, "TENANTS_STATUS_RESYNC_WINDOW"),
  };
  return janitor_start(&jo, &a->janitor);
}

static void tenants_fini(svc *s, void *arg) {
  app *a = arg;
  janitor_stop(a->janitor);
  outbox_free(a->events);
  tenants_free(a->handlers);
  rescache_free(a->rcache);
  access_operator_free(a->op);
  authn_free(a->verifier);
  rpc_client_free(a->auth);
  bus_publisher_free(a->bus);
  store_free(a->store);
  a->store = NULL;
  a->janitor = NULL;
  a->events = NULL;
  a->handlers = NULL;
  a->rcache = NULL;
  a->op = NULL;
  a->verifier = NULL;
  a->auth = NULL;
  a->bus = NULL;
}

int main(void) {
  static app a;
  svc_spec spec = {
      .name = "tenants",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = "tenants",
      .init = tenants_init,
      .fini = tenants_fini,
      .arg = &a,
  };
  int status = svc_main(&spec);
  /* The admin server's Redis check may run until svc frees it, so the
   * cache outlives fini. */
  cache_free(a.redis);
  return status;
}
