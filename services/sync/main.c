/*
 * main.c - the sync service: configuration, start-up and shutdown; the
 * work is in handlers.c and store.c. libs/svc's svc_main does the rest
 * (common settings, logging, database and migrations, the RPC server with
 * the service-identity guard over sync_v1_access, the admin port,
 * drain on SIGTERM); Redis and the token verifier are opened through it
 * (see README.md for every setting), and the device secrets' key comes
 * from SYNC_DEVICE_PEPPER. Events (DeviceOnline/DeviceOffline) go through
 * libs/svc's eventpub (outbox relay, bus publisher, Events/Replay); the
 * heartbeat round runs on its own thread (heartbeat.c).
 */
#include "libs/idem/expiry.h"
#include "libs/obs/log.h"
#include "libs/svc/svc.h"
#include "proto/sync/v1/sync_access.h"
#include "libs/svc/eventpub.h"
#include "services/sync/events.h"
#include "services/sync/files.h"
#include "services/sync/handlers.h"
#include "services/sync/heartbeat.h"
#include "services/sync/retention.h"
#include "services/sync/store.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "auth service RPC address list (token keys)"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .description = "Redis: token revocations and tenant status"},
    {.name = "ORDERS_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "orders service RPC address list (pushed mutations, "
                    "conflicts)"},
    {.name = "BUS_LISTEN",
     .kind = CFG_STRING,
     .def = "",
     .description = "where the event publisher listens (devices.*); empty: "
                    "Replay only"},
    {.name = "SYNC_HEARTBEAT_INTERVAL",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 1000,
     .max = 3600000,
     .description = "the beat interval devices are told; offline after "
                    "twice this without a beat"},
    {.name = "SYNC_HEARTBEAT_FLUSH",
     .kind = CFG_DURATION_MS,
     .def = "1s",
     .min = 10,
     .max = 60000,
     .description = "how often buffered beats go to PostgreSQL and the "
                    "offline sweep runs"},
    {.name = "SYNC_MUTATIONS_RETENTION",
     .kind = CFG_DURATION_MS,
     .def = "168h",
     .min = 1000,
     .max = 315360000000,
     .description = "how long a pushed mutation's first result is kept for "
                    "a retried push (later: duplicate without it)"},
    {.name = "SYNC_RETENTION_SWEEP",
     .kind = CFG_DURATION_MS,
     .def = "10m",
     .min = 100,
     .max = 86400000,
     .description = "how often old mutation records are pruned"},
    {.name = "SYNC_FILES_QUOTA_BYTES",
     .kind = CFG_INT,
     .def = "1073741824",
     .min = 0,
     .max = 1099511627776LL,
     .description = "the most file bytes one tenant may store"},
    {.name = "SYNC_FILES_TTL",
     .kind = CFG_DURATION_MS,
     .def = "360h",
     .min = 1000,
     .max = 31622400000LL,
     .description = "a file unused (not uploaded, read or named in a "
                    "manifest) this long is removed (15 days)"},
    {.name = "SYNC_FILES_SWEEP",
     .kind = CFG_DURATION_MS,
     .def = "10m",
     .min = 100,
     .max = 86400000,
     .description = "how often the removal of unused files runs"},
    {.name = "SYNC_UPLOAD_IDLE",
     .kind = CFG_DURATION_MS,
     .def = "10m",
     .min = 1000,
     .max = 86400000,
     .description = "a streamed upload not advanced this long is removed "
                    "with its parts (an unfinished one's reserved bytes "
                    "given back); checked every SYNC_FILES_SWEEP"},
    {.name = "SYNC_DB_ROLE",
     .kind = CFG_STRING,
     .def = "sync_app",
     .description = "role each transaction switches to (RLS); empty: none"},
    {.name = "SYNC_DEVICE_PEPPER",
     .kind = CFG_STRING,
     .required = true,
     .secret = true,
     .description = "key of the device secrets' hashes, at least 32 bytes "
                    "(changing it invalidates every device secret)"},
};

typedef struct app {
  cache *redis;       /* the runtime's; NULL without REDIS_URL */
  rpc_client *auth;   /* the runtime's */
  rpc_client *orders; /* ours: freed in fini */
  authn *verifier;    /* the runtime's */
  store *store;
  secret_key key;
  eventpub *events;
  heartbeat *beats;
  retention *retention;
  sync *handlers;
  files *files;
  idem_expiry *idem_expiry; /* expired Idempotency-Keys deleted */
} app;

static int sync_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  int rc = store_new(svc_db(s), cfg_str(c, "SYNC_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad SYNC_DB_ROLE");
    return rc;
  }
  cache_config cc = {.max_conns = 8};
  rc = svc_redis_open(s, &cc, "REDIS_URL not set: no revocation checks",
                      &a->redis);
  if (rc == ERR_OK) rc = svc_verifier_open(s, a->redis, &a->auth, &a->verifier);
  if (rc != ERR_OK) return rc;
  rc = secret_key_init(&a->key, cfg_str(c, "SYNC_DEVICE_PEPPER"));
  if (rc != ERR_OK) {
    log_error("SYNC_DEVICE_PEPPER must be at least 32 bytes");
    return rc;
  }
  eventpub_options eo = {.schema = STORE_SCHEMA,
                         .source = EVENTS_SOURCE,
                         .bus_url = cfg_str(c, "BUS_LISTEN")};
  rc = eventpub_open(svc_db(s), &eo, &a->events);
  if (rc != ERR_OK) return rc;
  int64_t interval = cfg_duration_ms(c, "SYNC_HEARTBEAT_INTERVAL");
  heartbeat_config bc = {.store = a->store,
                         .events = eventpub_outbox(a->events),
                         .interval_ms = interval,
                         .flush_ms =
                             cfg_duration_ms(c, "SYNC_HEARTBEAT_FLUSH")};
  rc = heartbeat_new(&bc, &a->beats);
  if (rc != ERR_OK) {
    log_error("cannot start the heartbeat round");
    return rc;
  }
  rc = svc_rpc_client_new(s, cfg_str(c, "ORDERS_ADDR"), NULL, &a->orders);
  if (rc != ERR_OK) {
    log_error("bad ORDERS_ADDR");
    return rc;
  }
  sync_config hc = {.store = a->store,
                    .verifier = a->verifier,
                    .auth = a->auth,
                    .key = &a->key,
                    .beats = a->beats,
                    .orders = a->orders,
                    .interval_ms = interval};
  rc = sync_new(&hc, &a->handlers);
  if (rc == ERR_OK) rc = sync_register(a->handlers, svc_rpc(s));
  files_config fc = {.store = a->store,
                     .verifier = a->verifier,
                     .quota_bytes = cfg_int(c, "SYNC_FILES_QUOTA_BYTES"),
                     .ttl_ms = cfg_duration_ms(c, "SYNC_FILES_TTL"),
                     .sweep_ms = cfg_duration_ms(c, "SYNC_FILES_SWEEP"),
                     .upload_idle_ms = cfg_duration_ms(c, "SYNC_UPLOAD_IDLE")};
  if (rc == ERR_OK) rc = files_new(&fc, &a->files);
  if (rc == ERR_OK) rc = files_register(a->files, svc_rpc(s));
  retention_config rtc = {
      .store = a->store,
      .mutations_keep_ms = cfg_duration_ms(c, "SYNC_MUTATIONS_RETENTION"),
      .interval_ms = cfg_duration_ms(c, "SYNC_RETENTION_SWEEP")};
  if (rc == ERR_OK) rc = retention_new(&rtc, &a->retention);
  if (rc == ERR_OK) rc = eventpub_start(a->events, svc_rpc(s));
  if (rc == ERR_OK) {
    idem_expiry_options io = {.store = a->store,
                              .table = "sync.idempotency",
                              .setting = "app.sync_sweeper",
                              .interval_ms = IDEM_EXPIRY_INTERVAL_MS};
    rc = idem_expiry_start(&io, &a->idem_expiry);
  }
  return rc;
}

/* After the RPC server drained. Redis, the auth client and the verifier
 * are the runtime's. */
static void sync_fini(svc *s, void *arg) {
  (void)s;
  app *a = arg;
  idem_expiry_stop(a->idem_expiry);
  heartbeat_free(a->beats);
  retention_free(a->retention);
  files_free(a->files);
  eventpub_free(a->events);
  sync_free(a->handlers);
  rpc_client_free(a->orders);
  store_free(a->store);
  secret_key_wipe(&a->key);
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &sync_v1_access,
      .name = "sync",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = STORE_SCHEMA,
      /* A PutFilePart (its part of at most 1 MiB and the envelope) is
       * the largest request. */
      .max_recv_bytes = FILES_PART_MAX_MESSAGE,
      .init = sync_init,
      .fini = sync_fini,
      .argc = argc,
      .argv = argv,
      .arg = &a,
  };
  return svc_main(&spec);
}
