/*
 * main.c - the orders service: configuration, start-up and shutdown; the
 * work is in handlers.c, store.c, menucache.c, tenantcur.c and janitor.c,
 * the relay and publisher in libs/svc's eventpub, Redis and the token
 * verifier opened through libs/svc (every setting: docs/CONFIG.md).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/bus/bus.h"
#include "libs/obs/log.h"
#include "libs/svc/eventpub.h"
#include "libs/svc/svc.h"
#include "services/orders/handlers.h"
#include "services/orders/janitor.h"
#include "services/orders/menucache.h"
#include "services/orders/store.h"
#include "services/orders/tenantcur.h"
#include "proto/orders/v1/orders_access.h"

#define SOURCE "orders"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "auth service RPC address list (token keys)"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "TENANTS_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "tenants service RPC address list (GetTenant: currency)"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .description = "Redis: menu cache, token revocations; unset: none"},
    {.name = "BUS_LISTEN",
     .kind = CFG_URL,
     .description = "nng URL the event publisher listens on; unset: "
                    "events only through Replay"},
    {.name = "AUTH_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "auth's bus publishers (auth.revoked), for authn"},
    {.name = "TENANTS_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "tenants' bus publishers (tenants.changed): "
                    "suspensions and currency changes at once"},
    {.name = "ORDERS_DB_ROLE",
     .kind = CFG_STRING,
     .def = "orders_app",
     .description = "role each transaction switches to (RLS); empty: none"},
    {.name = "ORDERS_MENU_CACHE_TTL",
     .kind = CFG_DURATION_MS,
     .def = "60s",
     .min = 1000,
     .max = 86400000,
     .description = "lifetime of a cached menu in Redis"},
    {.name = "ORDERS_CURRENCY_CACHE_TTL",
     .kind = CFG_DURATION_MS,
     .def = "60s",
     .min = 1000,
     .max = 86400000,
     .description = "how long a tenant's currency is remembered"},
    {.name = "ORDERS_TENANTS_TIMEOUT",
     .kind = CFG_DURATION_MS,
     .def = "2s",
     .min = 50,
     .max = 60000,
     .description = "deadline of a GetTenant call for the currency"},
    {.name = "ORDERS_IDEMPOTENCY_TTL",
     .kind = CFG_DURATION_MS,
     .def = "24h",
     .min = 1000,
     .max = 604800000,
     .description = "how long an Idempotency-Key and its answer are kept"},
    {.name = "ORDERS_MAX_PRODUCTS",
     .kind = CFG_INT,
     .def = "1000",
     .min = 1,
     .max = 10000,
     .description = "non-deleted products per tenant"},
    {.name = "ORDERS_CHANGES_RETENTION",
     .kind = CFG_DURATION_MS,
     .def = "720h",
     .min = 1000,
     .max = 315360000000,
     .description = "how long the change log (sync's pull) keeps finished "
                    "entities (delivered or cancelled orders, deleted "
                    "products); an older cursor is told to reset"},
    {.name = "ORDERS_CHANGES_PRUNE_EVERY",
     .kind = CFG_DURATION_MS,
     .def = "1h",
     .min = 100,
     .max = 86400000,
     .description = "how often the janitor prunes the change log"},
    {.name = "ORDERS_JANITOR_INTERVAL",
     .kind = CFG_DURATION_MS,
     .def = "60s",
     .min = 100,
     .max = 86400000,
     .description = "expired-key deletion / cache retry period"},
    {.name = "ORDERS_OUTBOX_POLL",
     .kind = CFG_DURATION_MS,
     .def = "1s",
     .min = 10,
     .max = 60000,
     .description = "relay poll period when not woken by a commit"},
    {.name = "ORDERS_OUTBOX_KEEP",
     .kind = CFG_DURATION_MS,
     .def = "168h",
     .min = 60000,
     .max = 31622400000LL,
     .description = "how long published events stay available to Replay"},
#ifdef TEST_HOOKS
    /* Only in the orders_testhooks binary (BUILD): the shipped binary has
     * neither the setting nor the code path. */
    {.name = "ORDERS_TEST_RELAY_DELAY",
     .kind = CFG_DURATION_MS,
     .def = "0",
     .min = 0,
     .max = 600000,
     .description = "TEST HOOK: every event waits this long before the "
                    "relay publishes it (kill -9 tests)"},
#endif
};

typedef struct app {
  cache *redis;     /* the runtime's; NULL without REDIS_URL */
  rpc_client *auth; /* the runtime's */
  authn *verifier;  /* the runtime's */
  store *store;
  rpc_client *tenants;
  bus_subscriber *events_in;
  menucache *menu;
  tenantcur *currency;
  eventpub *events;
  orders *handlers;
  janitor_options jo; /* borrowed by the janitor thread */
  periodic *janitor;
#ifdef TEST_HOOKS
  int64_t relay_delay_ms;
#endif
  atomic_bool stopping;
} app;

#ifdef TEST_HOOKS
/* ORDERS_TEST_RELAY_DELAY: every event waits this long before the relay
 * hands it to the bus - committed and sequenced by then, not yet
 * published: the window in which a test kills the process. Sleeping on
 * the relay thread delays exactly the publication. */
static void relay_delay(void *arg) {
  app *a = arg;
  for (int64_t left = a->relay_delay_ms; left > 0 && !atomic_load(&a->stopping);
       left -= 50)
    time_sleep_ms(left < 50 ? left : 50);
}
#endif

/* auth.revoked and tenants.changed: revocations and suspensions apply at
 * once; a tenant's change may be its currency. */
static int on_event(void *arg, const Rpc__V1__Event *ev) {
  app *a = arg;
  if (authn_apply_event(a->verifier, ev) != ERR_OK)
    log_warn("undecodable event", "topic", ev->topic);
  if (strcmp(ev->topic, AUTHN_TOPIC_TENANTS) == 0)
    tenantcur_forget(a->currency, ev->tenant_id);
  return ERR_OK;
}

static int subscribe(app *a, const cfg *c) {
  const char *au = cfg_str(c, "AUTH_EVENTS"),
             *te = cfg_str(c, "TENANTS_EVENTS");
  au = au ? au : "";
  te = te ? te : "";
  if (au[0] == '\0' && te[0] == '\0') {
    log_warn("AUTH_EVENTS/TENANTS_EVENTS not set: revocations are seen "
             "through Redis re-checks only");
    return ERR_OK;
  }
  char addr[2 * CFG_MAX_VALUE + 2];
  snprintf(addr, sizeof addr, "%s%s%s", au, au[0] && te[0] ? "," : "", te);
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  int rc = bus_subscriber_new(addr, on_event, a, &o, &a->events_in);
  if (rc == ERR_OK) rc = bus_subscribe_exact(a->events_in, AUTHN_TOPIC_REVOKED);
  if (rc == ERR_OK) rc = bus_subscribe_exact(a->events_in, AUTHN_TOPIC_TENANTS);
  if (rc == ERR_OK) rc = bus_subscriber_start(a->events_in);
  if (rc != ERR_OK)
    log_error("cannot subscribe to AUTH_EVENTS/TENANTS_EVENTS", "error",
              err_str(rc));
  return rc;
}

static int open_events(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  eventpub_options eo = {
      .schema = STORE_SCHEMA,
      .source = SOURCE,
      .bus_url = cfg_str(c, "BUS_LISTEN"),
      .poll_ms = cfg_duration_ms(c, "ORDERS_OUTBOX_POLL"),
      .keep_ms = cfg_duration_ms(c, "ORDERS_OUTBOX_KEEP"),
  };
#ifdef TEST_HOOKS
  a->relay_delay_ms = cfg_duration_ms(c, "ORDERS_TEST_RELAY_DELAY");
  if (a->relay_delay_ms > 0) {
    log_warn("TEST HOOK ORDERS_TEST_RELAY_DELAY is on: events wait before "
             "publication");
    eo.before_publish = relay_delay;
    eo.hook_arg = a;
  }
#endif
  return eventpub_open(svc_db(s), &eo, &a->events);
}

static int orders_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  int rc = store_new(svc_db(s), cfg_str(c, "ORDERS_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad ORDERS_DB_ROLE");
    return rc;
  }
  /* Short timeouts: a dead Redis must not eat a request's deadline (the
   * menu is then read from PostgreSQL). */
  cache_config cc = {.max_conns = 16,
                     .connect_timeout_ms = 250,
                     .command_timeout_ms = 500,
                     .acquire_timeout_ms = 250,
                     .max_value_bytes = 4u * 1024u * 1024u};
  rc = svc_redis_open(
      s, &cc, "REDIS_URL not set: no menu cache, no Redis revocation checks",
      &a->redis);
  if (rc == ERR_OK) rc = svc_verifier_open(s, a->redis, &a->auth, &a->verifier);
  if (rc != ERR_OK) return rc;
  rc = svc_rpc_client_new(s, cfg_str(c, "TENANTS_ADDR"), NULL, &a->tenants);
  if (rc != ERR_OK) {
    log_error("bad TENANTS_ADDR", "error", err_str(rc));
    return rc;
  }
  rc = menucache_new(a->redis, cfg_duration_ms(c, "ORDERS_MENU_CACHE_TTL"),
                     &a->menu);
  if (rc == ERR_OK)
    rc = tenantcur_new(
        a->tenants, cfg_duration_ms(c, "ORDERS_CURRENCY_CACHE_TTL"),
        (uint32_t)cfg_duration_ms(c, "ORDERS_TENANTS_TIMEOUT"), &a->currency);
  if (rc == ERR_OK) rc = subscribe(a, c);
  if (rc == ERR_OK) rc = open_events(s, a);
  if (rc != ERR_OK) return rc;
  orders_config oc = {
      .st = a->store,
      .verifier = a->verifier,
      .menu = a->menu,
      .currency = a->currency,
      .events = eventpub_outbox(a->events),
      .idem_ttl_ms = cfg_duration_ms(c, "ORDERS_IDEMPOTENCY_TTL"),
      .max_products = (size_t)cfg_int(c, "ORDERS_MAX_PRODUCTS"),
  };
  rc = orders_new(&oc, &a->handlers);
  if (rc == ERR_OK) rc = orders_register(a->handlers, svc_rpc(s));
  if (rc == ERR_OK) rc = eventpub_start(a->events, svc_rpc(s));
  if (rc != ERR_OK) return rc;
  a->jo = (janitor_options){
      .st = a->store,
      .menu = a->menu,
      .interval_ms = cfg_duration_ms(c, "ORDERS_JANITOR_INTERVAL"),
      .changes_retention_ms = cfg_duration_ms(c, "ORDERS_CHANGES_RETENTION"),
      .prune_every_ms = cfg_duration_ms(c, "ORDERS_CHANGES_PRUNE_EVERY"),
  };
  return janitor_start(&a->jo, &a->janitor);
}

/* Threads first (the janitor, the relay - cut short in a test delay -,
 * the subscriber feeding the verifier), then what they used. Redis, the
 * auth client and the verifier are the runtime's, freed after this. */
static void orders_fini(svc *s, void *arg) {
  (void)s;
  app *a = arg;
  atomic_store(&a->stopping, true);
  periodic_stop(a->janitor);
  eventpub_free(a->events);
  orders_free(a->handlers);
  bus_subscriber_free(a->events_in);
  tenantcur_free(a->currency);
  menucache_free(a->menu);
  rpc_client_free(a->tenants);
  store_free(a->store);
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &orders_v1_access,
      .name = "orders",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = STORE_SCHEMA,
      .init = orders_init,
      .fini = orders_fini,
      .arg = &a,
      .argc = argc,
      .argv = argv,
  };
  return svc_main(&spec);
}
