/*
 * main.c - the tenants service: configuration, start-up and shutdown; the
 * work is in handlers.c, provision.c and janitor.c, the events' relay and
 * publisher in libs/svc's eventpub, Redis and the token verifier opened
 * through libs/svc (every setting: docs/CONFIG.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/obs/log.h"
#include "libs/svc/eventpub.h"
#include "libs/svc/svc.h"
#include "services/tenants/access.h"
#include "services/tenants/events.h"
#include "services/tenants/handlers.h"
#include "services/tenants/janitor.h"
#include "services/tenants/rescache.h"
#include "proto/tenants/v1/tenants_access.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "auth service RPC address list (CreateUser, Keys)"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .description = "Redis: Resolve cache and tenant:status keys"},
    {.name = "BUS_LISTEN",
     .kind = CFG_URL,
     .description = "nng URL the tenants.changed publisher listens on"},
    {.name = "TENANTS_DB_ROLE",
     .kind = CFG_STRING,
     .def = "tenants_app",
     .description = "role each transaction switches to (RLS); empty: none"},
    {.name = "TENANTS_BASE_DOMAINS",
     .kind = CFG_STRING,
     .def = "localhost",
     .description = "comma-separated base domains of <slug>.<base> hosts"},
    {.name = "TENANTS_DEFAULT_CURRENCY",
     .kind = CFG_STRING,
     .def = "EUR",
     .description = "currency of tenants created without one"},
    {.name = "TENANTS_OPERATOR_SECRET",
     .kind = CFG_STRING,
     .secret = true,
     .description = "operator secret for Suspend/Resume (>= 16 bytes); "
                    "unset: disabled"},
    {.name = "TENANTS_RESOLVE_CACHE_TTL",
     .kind = CFG_DURATION_MS,
     .def = "60s",
     .min = 1000,
     .max = 86400000,
     .description = "Redis Resolve cache TTL"},
    {.name = "TENANTS_OWNER_TIMEOUT",
     .kind = CFG_DURATION_MS,
     .def = "10s",
     .min = 100,
     .max = 120000,
     .description = "deadline of auth CreateUser for a new tenant's owner"},
    {.name = "TENANTS_PROVISIONING_MAX_AGE",
     .kind = CFG_DURATION_MS,
     .def = "60s",
     .min = 0,
     .max = 86400000,
     .description = "unfinished tenants older than this are reaped"},
    {.name = "TENANTS_JANITOR_INTERVAL",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 100,
     .max = 86400000,
     .description = "reaper / status resync period"},
    {.name = "TENANTS_STATUS_RESYNC_WINDOW",
     .kind = CFG_DURATION_MS,
     .def = "10m",
     .min = 0,
     .max = 604800000,
     .description = "active tenants changed this recently get their Redis "
                    "status rewritten (suspended ones always)"},
    {.name = "TENANTS_OUTBOX_KEEP",
     .kind = CFG_DURATION_MS,
     .def = "168h",
     .min = 60000,
     .max = 31622400000LL,
     .description = "how long published events stay available to Replay"},
    {.name = "TENANTS_OUTBOX_POLL",
     .kind = CFG_DURATION_MS,
     .def = "1s",
     .min = 10,
     .max = 60000,
     .description = "relay poll period when not woken by a commit"},
    {.name = "TENANTS_DOMAIN_VERIFY_CONNECT_TO",
     .kind = CFG_STRING,
     .description = "host:port every domain verification connects to "
                    "instead of the domain's address (egress proxy, "
                    "tests); unset: the domain, public addresses only"},
    {.name = "TENANTS_DOMAIN_VERIFY_TIMEOUT",
     .kind = CFG_DURATION_MS,
     .def = "5s",
     .min = 100,
     .max = 30000,
     .description = "whole HTTP fetch of a domain's verification token"},
    {.name = "TENANTS_IDEMPOTENCY_TTL",
     .kind = CFG_DURATION_MS,
     .def = "24h",
     .min = 60000,
     .max = 604800000,
     .description = "how long an Idempotency-Key and its answer are kept"},
#ifdef TEST_HOOKS
    /* Only in the tenants_testhooks binary (BUILD): the shipped binary has
     * neither the setting nor the code path. */
    {.name = "TENANTS_TEST_CRASH_AFTER_OWNER",
     .kind = CFG_BOOL,
     .def = "false",
     .description = "TEST HOOK: _exit(137) after an owner was created"},
#endif
};

#ifdef TEST_HOOKS
/* TENANTS_TEST_CRASH_AFTER_OWNER: dies between the saga's owner and
 * activation steps, as a crash would. */
static void crash_after_owner(const char *tenant_id) {
  log_warn("TENANTS_TEST_CRASH_AFTER_OWNER: exiting between the owner and "
           "activation steps",
           "tenant_id", tenant_id);
  fflush(stdout);
  _exit(137);
}
#endif

typedef struct app {
  cache *redis;     /* the runtime's; NULL without REDIS_URL */
  rpc_client *auth; /* the runtime's */
  authn *verifier;  /* the runtime's */
  store *store;
  access_operator *op;
  rescache *rcache;
  eventpub *events;
  tenants *handlers;
  janitor_options jo; /* borrowed by the janitor thread */
  periodic *janitor;
  provision_deps deps;
} app;

static int tenants_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  int rc = store_new(svc_db(s), cfg_str(c, "TENANTS_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad TENANTS_DB_ROLE");
    return rc;
  }
  cache_config cc = {.max_conns = 8};
  rc = svc_redis_open(
      s, &cc, "REDIS_URL not set: no Resolve cache, no tenant:status keys",
      &a->redis);
  if (rc == ERR_OK) rc = svc_verifier_open(s, a->redis, &a->auth, &a->verifier);
  if (rc != ERR_OK) return rc;
  eventpub_options eo = {
      .schema = EVENTS_SCHEMA,
      .source = EVENTS_SOURCE,
      .bus_url = cfg_str(c, "BUS_LISTEN"),
      .poll_ms = cfg_duration_ms(c, "TENANTS_OUTBOX_POLL"),
      .keep_ms = cfg_duration_ms(c, "TENANTS_OUTBOX_KEEP"),
  };
  rc = eventpub_open(svc_db(s), &eo, &a->events);
  if (rc != ERR_OK) return rc;
  rc = access_operator_new(cfg_str(c, "TENANTS_OPERATOR_SECRET"), &a->op);
  if (rc != ERR_OK) {
    log_error("TENANTS_OPERATOR_SECRET must be at least 16 bytes");
    return rc;
  }
  if (!access_operator_enabled(a->op))
    log_warn("TENANTS_OPERATOR_SECRET not set: Suspend/Resume disabled");
  rc = rescache_new(a->redis, cfg_duration_ms(c, "TENANTS_RESOLVE_CACHE_TTL"),
                    &a->rcache);
  if (rc != ERR_OK) return rc;

  a->deps = (provision_deps){
      .st = a->store,
      .auth = a->auth,
      .cache = a->rcache,
      .events = eventpub_outbox(a->events),
      .owner_timeout_ms = (uint32_t)cfg_duration_ms(c, "TENANTS_OWNER_TIMEOUT"),
  };
#ifdef TEST_HOOKS
  if (cfg_bool(c, "TENANTS_TEST_CRASH_AFTER_OWNER")) {
    a->deps.after_owner = crash_after_owner;
    log_warn("TEST HOOK TENANTS_TEST_CRASH_AFTER_OWNER is on: CreateTenant "
             "kills this process");
  }
#endif
  tenants_config tc = {
      .deps = a->deps,
      .verifier = a->verifier,
      .op = a->op,
      .base_domains = cfg_str(c, "TENANTS_BASE_DOMAINS"),
      .default_currency = cfg_str(c, "TENANTS_DEFAULT_CURRENCY"),
      .verify = {.connect_to = cfg_str(c, "TENANTS_DOMAIN_VERIFY_CONNECT_TO"),
                 .timeout_ms =
                     cfg_duration_ms(c, "TENANTS_DOMAIN_VERIFY_TIMEOUT")},
      .idem_ttl_ms = cfg_duration_ms(c, "TENANTS_IDEMPOTENCY_TTL"),
  };
  rc = tenants_new(&tc, &a->handlers);
  if (rc != ERR_OK) {
    log_error("bad TENANTS_BASE_DOMAINS, TENANTS_DEFAULT_CURRENCY or "
              "TENANTS_DOMAIN_VERIFY_CONNECT_TO");
    return rc;
  }
  rc = tenants_register(a->handlers, svc_rpc(s));
  if (rc == ERR_OK) rc = eventpub_start(a->events, svc_rpc(s));
  if (rc != ERR_OK) return rc;
  a->jo = (janitor_options){
      .deps = &a->deps,
      .interval_ms = cfg_duration_ms(c, "TENANTS_JANITOR_INTERVAL"),
      .provisioning_max_age_ms =
          cfg_duration_ms(c, "TENANTS_PROVISIONING_MAX_AGE"),
      .status_recent_ms = cfg_duration_ms(c, "TENANTS_STATUS_RESYNC_WINDOW"),
  };
  return janitor_start(&a->jo, &a->janitor);
}

/* Threads first (the janitor, the relay), then what they used. Redis,
 * the auth client and the verifier are the runtime's. */
static void tenants_fini(svc *s, void *arg) {
  app *a = arg;
  periodic_stop(a->janitor);
  eventpub_free(a->events);
  tenants_free(a->handlers);
  rescache_free(a->rcache);
  access_operator_free(a->op);
  store_free(a->store);
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &tenants_v1_access,
      .name = "tenants",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = "tenants",
      .init = tenants_init,
      .fini = tenants_fini,
      .arg = &a,
      .argc = argc,
      .argv = argv,
  };
  return svc_main(&spec);
}
