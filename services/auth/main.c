/*
 * main.c - the auth service: configuration, start-up and shutdown; the
 * work is in handlers.c (every setting: docs/CONFIG.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "libs/authn/authn.h"
#include "libs/base/uuid.h"
#include "libs/bus/bus.h"
#include "libs/cache/cache.h"
#include "libs/obs/log.h"
#include "libs/svc/svc.h"
#include "services/auth/handlers.h"
#include "services/auth/idem.h"
#include "services/auth/keys.h"
#include "services/auth/loginlock.h"
#include "services/auth/pwpool.h"
#include "services/auth/revoker.h"
#include "services/auth/store.h"
#include "proto/auth/v1/auth_access.h"

static const cfg_entry config[] = {
    {.name = "AUTH_SIGNING_KEYS",
     .kind = CFG_STRING,
     .secret = true,
     .description =
         "comma-separated hex secret keys (first signs, all verify)"},
    {.name = "AUTH_SIGNING_KEYS_FILE",
     .kind = CFG_STRING,
     .description =
         "file with one key per line (instead of AUTH_SIGNING_KEYS)"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "iss claim of issued tokens"},
    {.name = "AUTH_ACCESS_TTL",
     .kind = CFG_DURATION_MS,
     .def = "15m",
     .min = 10000,
     .max = 86400000,
     .description = "access-token lifetime"},
    {.name = "AUTH_REFRESH_TTL",
     .kind = CFG_DURATION_MS,
     .def = "720h",
     .min = 60000,
     .max = 31622400000LL,
     .description = "refresh-token lifetime"},
    {.name = "AUTH_REFRESH_REUSE_INTERVAL",
     .kind = CFG_DURATION_MS,
     .def = "0",
     .min = 0,
     .max = 600000,
     .description = "a spent refresh token is accepted again within this"},
    {.name = "AUTH_PWHASH_OPSLIMIT",
     .kind = CFG_INT,
     .def = "2",
     .min = 1,
     .max = 64,
     .description = "Argon2id passes (2 = libsodium INTERACTIVE)"},
    {.name = "AUTH_PWHASH_MEMLIMIT_KIB",
     .kind = CFG_INT,
     .def = "65536",
     .min = 8,
     .max = 4194304,
     .description = "Argon2id memory in KiB (65536 = INTERACTIVE)"},
    {.name = "AUTH_HASH_THREADS",
     .kind = CFG_INT,
     .def = "2",
     .min = 1,
     .max = 64,
     .description = "password hashing threads"},
    {.name = "AUTH_HASH_MAX_PENDING",
     .kind = CFG_INT,
     .def = "0",
     .min = 0,
     .max = 10000,
     .description = "password jobs admitted at once (0: half the RPC workers)"},
    {.name = "AUTH_DB_ROLE",
     .kind = CFG_STRING,
     .def = "auth_app",
     .description = "role each transaction switches to (RLS); empty: none"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .description = "Redis for revocations and tenant status"},
    {.name = "AUTH_VERIFY_LEEWAY",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 0,
     .max = 300000,
     .description = "clock skew allowed on tokens"},
    {.name = "AUTH_VERIFY_RECHECK",
     .kind = CFG_DURATION_MS,
     .def = "500ms",
     .min = 1,
     .max = 60000,
     .description = "how often a cached token's revocation state is re-read"},
    {.name = "AUTH_LOGIN_FAILURES_FREE",
     .kind = CFG_INT,
     .def = "5",
     .min = 1,
     .max = 1000,
     .description = "login attempts per account before the slowdown starts"},
    {.name = "AUTH_LOGIN_FAILURE_WINDOW",
     .kind = CFG_DURATION_MS,
     .def = "15m",
     .min = 1000,
     .max = 86400000,
     .description =
         "an account's failures are forgotten this long after the last"},
    {.name = "AUTH_LOGIN_LOCK_BASE_MS",
     .kind = CFG_INT,
     .def = "1000",
     .min = 1,
     .max = 86400000,
     .description = "first lock period, doubling after each failure"},
    {.name = "AUTH_LOGIN_LOCK_MAX_MS",
     .kind = CFG_INT,
     .def = "900000",
     .min = 1,
     .max = 86400000,
     .description = "longest lock period"},
    {.name = "AUTH_LOGIN_LOCK_FAIL",
     .kind = CFG_STRING,
     .def = "open",
     .description = "Redis down: open (logins go on) or closed (refused)"},
    {.name = "BUS_LISTEN",
     .kind = CFG_URL,
     .description = "bus publisher URL (auth.revoked events); unset: none"},
    {.name = "AUTH_BUS_SUBSCRIBE",
     .kind = CFG_STRING,
     .description = "bus publishers to follow (other auth replicas, tenants)"},
};

typedef struct app {
  bus_publisher *bus;
  bus_subscriber *sub;
  auth_keys *keys;
  cache *redis; /* the runtime's; NULL without REDIS_URL */
  pwpool *pw;
  authn *verifier;
  revoker *revoke;
  store *store;
  loginlock *login_lock;
  auth_ctx ctx;
} app;

/* revoker_publish_fn over the bus: sequence numbers in memory, under a
 * source name of this process's own (bus.h). */
static int publish(void *arg, const char *topic, const char *type,
                   const char *tenant_id, const void *payload, size_t len) {
  return bus_publish(arg, topic, type, tenant_id, payload, len, NULL);
}

static int load_keys(const cfg *c, auth_keys **out) {
  const char *list = cfg_str(c, "AUTH_SIGNING_KEYS");
  const char *file = cfg_str(c, "AUTH_SIGNING_KEYS_FILE");
  bool has_list = list != NULL && list[0] != '\0';
  bool has_file = file != NULL && file[0] != '\0';
  if (has_list == has_file) {
    log_error(
        "set exactly one of AUTH_SIGNING_KEYS and AUTH_SIGNING_KEYS_FILE");
    return ERR_INVAL;
  }
  int bad = -1;
  int rc = has_list ? auth_keys_parse(list, out, &bad)
                    : auth_keys_load_file(file, out, &bad);
  if (rc != ERR_OK) {
    char idx[16];
    snprintf(idx, sizeof idx, "%d", bad);
    /* The index of the bad entry, never its text. */
    log_error("signing keys not loaded", "error", err_str(rc), "entry", idx,
              "source", has_list ? "AUTH_SIGNING_KEYS" : file);
  }
  return rc;
}

/* The per-account login slowdown from configuration (loginlock.h). Fail
 * closed without any Redis would refuse every login: refused at start. */
static int open_login_lock(const cfg *c, cache *redis, loginlock **out) {
  const char *mode = cfg_str(c, "AUTH_LOGIN_LOCK_FAIL");
  bool closed = strcmp(mode, "closed") == 0;
  if (!closed && strcmp(mode, "open") != 0) {
    log_error("AUTH_LOGIN_LOCK_FAIL must be open or closed");
    return ERR_INVAL;
  }
  if (redis == NULL && closed) {
    log_error("AUTH_LOGIN_LOCK_FAIL=closed needs REDIS_URL");
    return ERR_INVAL;
  }
  if (redis == NULL)
    log_warn("REDIS_URL not set: no per-account login slowdown");
  loginlock_config lc = {
      .free_failures = (int)cfg_int(c, "AUTH_LOGIN_FAILURES_FREE"),
      .window_ms = cfg_duration_ms(c, "AUTH_LOGIN_FAILURE_WINDOW"),
      .base_ms = cfg_int(c, "AUTH_LOGIN_LOCK_BASE_MS"),
      .max_ms = cfg_int(c, "AUTH_LOGIN_LOCK_MAX_MS"),
      .fail_closed = closed,
  };
  int rc = loginlock_new(redis, &lc, out);
  if (rc != ERR_OK)
    log_error("login slowdown not set up (AUTH_LOGIN_LOCK_MAX_MS must be >= "
              "AUTH_LOGIN_LOCK_BASE_MS)",
              "error", err_str(rc));
  return rc;
}

static int auth_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  if (paseto_init() != ERR_OK || sodium_init() < 0) return ERR_INTERNAL;
  int rc = load_keys(c, &a->keys);
  if (rc != ERR_OK) return rc;
  for (size_t i = 0; i < auth_keys_count(a->keys); i++)
    log_info("signing key", "kid", auth_keys_kid(a->keys, i), "status",
             auth_keys_is_active(a->keys, i) ? "active" : "verify-only");

  cache_config cc = {.max_conns = 8};
  rc = svc_redis_open(
      s, &cc, "REDIS_URL not set: revocations stay in this process only",
      &a->redis);
  if (rc != ERR_OK) {
    /* libs/svc names the variable; the cache says why (a rediss:// URL,
     * say). Never the URL itself: it may hold the password. */
    log_error("Redis not opened", "detail", cache_last_error()->message);
    return rc;
  }

  rc = open_login_lock(c, a->redis, &a->login_lock);
  if (rc != ERR_OK) return rc;

  int workers = (int)cfg_int(c, "RPC_WORKERS");
  int threads = (int)cfg_int(c, "AUTH_HASH_THREADS");
  int pending = (int)cfg_int(c, "AUTH_HASH_MAX_PENDING");
  if (pending == 0) pending = workers / 2;
  if (pending < threads) pending = threads;
  if (pending >= workers && workers > 1)
    log_warn(
        "AUTH_HASH_MAX_PENDING >= RPC_WORKERS: logins can occupy every worker");
  pwpool_config pc = {
      .threads = threads,
      .max_pending = pending,
      .opslimit = (unsigned long long)cfg_int(c, "AUTH_PWHASH_OPSLIMIT"),
      .memlimit = (size_t)cfg_int(c, "AUTH_PWHASH_MEMLIMIT_KIB") * 1024u,
  };
  rc = pwpool_new(&pc, &a->pw);
  if (rc != ERR_OK) {
    log_error("password hashing pool not started", "error", err_str(rc));
    return rc;
  }

  int64_t access_ttl = cfg_duration_ms(c, "AUTH_ACCESS_TTL");
  int64_t leeway = cfg_duration_ms(c, "AUTH_VERIFY_LEEWAY");
  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = cfg_str(c, "AUTH_ISSUER");
  ac.leeway_ms = leeway;
  ac.recheck_ms = cfg_duration_ms(c, "AUTH_VERIFY_RECHECK");
  ac.redis = a->redis;
  rc = authn_new(&ac, &a->verifier);
  if (rc != ERR_OK) return rc;
  authn_key ak[AUTH_KEYS_MAX];
  size_t nk = auth_keys_count(a->keys);
  for (size_t i = 0; i < nk; i++) {
    ak[i].pk = *auth_keys_public(a->keys, i);
    ak[i].active = auth_keys_is_active(a->keys, i);
  }
  rc = authn_set_keys(a->verifier, ak, nk);
  if (rc != ERR_OK) return rc;

  const char *bus_url = cfg_str(c, "BUS_LISTEN");
  if (bus_url != NULL && bus_url[0] != '\0') {
    char source[64], id[UUID_STR_LEN + 1];
    uuid_v7_str(id);
    snprintf(source, sizeof source, "auth-%s", id);
    rc = bus_publisher_new(bus_url, source, 0, NULL, &a->bus);
    if (rc != ERR_OK) {
      log_error("cannot listen for bus subscribers", "url", bus_url, "error",
                err_str(rc));
      return rc;
    }
    log_info("publishing auth.revoked", "url", bus_url, "source", source);
  }
  const char *follow = cfg_str(c, "AUTH_BUS_SUBSCRIBE");
  if (follow != NULL && follow[0] != '\0') {
    rc = authn_subscribe(a->verifier, follow, &a->sub);
    if (rc != ERR_OK) {
      log_error("bad AUTH_BUS_SUBSCRIBE", "error", err_str(rc));
      return rc;
    }
  }
  rc = revoker_new(a->redis, access_ttl + leeway, a->verifier,
                   a->bus != NULL ? publish : NULL, a->bus, &a->revoke);
  if (rc != ERR_OK) return rc;

  rc = store_new(svc_db(s), cfg_str(c, "AUTH_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad AUTH_DB_ROLE");
    return rc;
  }
  const char *kids[AUTH_KEYS_MAX], *pubs[AUTH_KEYS_MAX];
  char b64[AUTH_KEYS_MAX][64];
  for (size_t i = 0; i < nk; i++) {
    kids[i] = auth_keys_kid(a->keys, i);
    sodium_bin2base64(b64[i], sizeof b64[i], auth_keys_public(a->keys, i)->b,
                      PASETO_PUBLICKEYBYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    pubs[i] = b64[i];
  }
  rc = store_keys_record(a->store, kids, pubs, nk);
  if (rc != ERR_OK) {
    log_error("cannot record signing keys", "error", err_str(rc), "detail",
              db_last_error()->message);
    return rc;
  }

  a->ctx = (auth_ctx){
      .store = a->store,
      .keys = a->keys,
      .pw = a->pw,
      .verifier = a->verifier,
      .redis = a->redis,
      .revoke = a->revoke,
      .login_lock = a->login_lock,
      .issuer = cfg_str(c, "AUTH_ISSUER"),
      .access_ttl_ms = access_ttl,
      .refresh_ttl_ms = cfg_duration_ms(c, "AUTH_REFRESH_TTL"),
      .reuse_interval_ms = cfg_duration_ms(c, "AUTH_REFRESH_REUSE_INTERVAL"),
  };
  rc = auth_keys_derive(a->keys, AUTH_IDEM_CONTEXT, a->ctx.idem_key);
  if (rc != ERR_OK) return rc;
  return auth_handlers_register(svc_rpc(s), &a->ctx);
}

static void auth_fini(svc *s, void *arg) {
  app *a = arg;
  store_free(a->store);
  loginlock_free(a->login_lock);
  revoker_free(a->revoke);
  bus_subscriber_free(a->sub);
  authn_free(a->verifier);
  bus_publisher_free(a->bus);
  pwpool_free(a->pw);
  auth_keys_free(a->keys); /* Redis is the runtime's, freed after this */
  a->keys = NULL;
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &auth_v1_access,
      .name = "auth",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = "auth",
      .init = auth_init,
      .fini = auth_fini,
      .arg = &a,
      .argc = argc,
      .argv = argv,
  };
  return svc_main(&spec);
}
