/*
 * main.c - the notifications service: configuration, start-up and shutdown; the
 * work is in handlers.c and store.c. libs/svc's svc_main does the rest
 * (common settings, logging, database and migrations, the RPC server with
 * the service-identity guard over notifications_v1_access, the admin port,
 * drain on SIGTERM); Redis and the token verifier are opened through it
 * (see README.md for every setting).
 */
#include "libs/obs/log.h"
#include "libs/svc/svc.h"
#include "proto/notifications/v1/notifications_access.h"
#include "services/notifications/handlers.h"
#include "services/notifications/store.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR", .kind = CFG_URL, .required = true,
     .description = "auth service RPC address list (token keys)"},
    {.name = "AUTH_ISSUER", .kind = CFG_STRING, .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "REDIS_URL", .kind = CFG_URL,
     .description = "Redis: token revocations and tenant status"},
    {.name = "NOTIFICATIONS_DB_ROLE", .kind = CFG_STRING, .def = "notifications_app",
     .description = "role each transaction switches to (RLS); empty: none"},
};

typedef struct app {
  cache *redis;     /* the runtime's; NULL without REDIS_URL */
  rpc_client *auth; /* the runtime's */
  authn *verifier;  /* the runtime's */
  store *store;
  notifications *handlers;
} app;

static int notifications_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  int rc = store_new(svc_db(s), cfg_str(c, "NOTIFICATIONS_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad NOTIFICATIONS_DB_ROLE");
    return rc;
  }
  cache_config cc = {.max_conns = 8};
  rc = svc_redis_open(s, &cc, "REDIS_URL not set: no revocation checks",
                      &a->redis);
  if (rc == ERR_OK)
    rc = svc_verifier_open(s, a->redis, &a->auth, &a->verifier);
  if (rc != ERR_OK)
    return rc;
  notifications_config hc = {.store = a->store, .verifier = a->verifier};
  rc = notifications_new(&hc, &a->handlers);
  if (rc != ERR_OK)
    return rc;
  return notifications_register(a->handlers, svc_rpc(s));
}

/* After the RPC server drained. Redis, the auth client and the verifier
 * are the runtime's. */
static void notifications_fini(svc *s, void *arg) {
  (void)s;
  app *a = arg;
  notifications_free(a->handlers);
  store_free(a->store);
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &notifications_v1_access,
      .name = "notifications",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = STORE_SCHEMA,
      .init = notifications_init,
      .fini = notifications_fini,
      .argc = argc,
      .argv = argv,
      .arg = &a,
  };
  return svc_main(&spec);
}
