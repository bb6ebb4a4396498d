/*
 * svc.c - the shared service runtime (see svc.h).
 *
 * Start-up order matters: signals are blocked first (every thread created
 * later inherits the mask, so SIGTERM is only ever collected by the main
 * thread), then configuration, logging, the database (retried with backoff
 * for STARTUP_TIMEOUT_MS, because in Kubernetes and in tools/dev the
 * database may come up after the service), migrations, the service's own
 * init, and only then the RPC server and the admin port: /readyz never
 * answers 200 for a service that cannot yet serve.
 *
 * Shutdown is the reverse: /readyz goes 503 (draining), the RPC server stops
 * receiving and waits for in-flight handlers, fini stops the service's own
 * threads, then what init opened through the svc_*_open helpers (the
 * verifier before the client it uses), the admin server, Redis (its
 * readiness check runs on the admin server until that is freed) and the
 * pool close.
 */
#include "libs/svc/svc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/lifecycle.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/paseto/paseto.h"
#include "libs/svc/cfgdoc.h"

struct svc {
  const svc_spec *spec;
  cfg *cfg;
  db_pool *db;
  rpc_server *rpc;
  admin *admin;
  /* Opened by init through the svc_*_open helpers. */
  cache *redis;
  rpc_client *auth;
  authn *verifier;
  svc_identity *identity;
};

const cfg *svc_cfg(const svc *s) { return s->cfg; }
db_pool *svc_db(const svc *s) { return s->db; }
rpc_server *svc_rpc(const svc *s) { return s->rpc; }
const char *svc_name(const svc *s) { return s->spec->name; }

void svc_stop(void) { lifecycle_request_stop(); }

/* Time allowed for fini and freeing after the drain (lifecycle.h). */
#define SHUTDOWN_CLEANUP_MS 5000

/* The entries every service reads; the spec's own are appended. */
static const cfg_entry common_config[] = {
    {.name = "LOG_LEVEL",
     .kind = CFG_STRING,
     .def = "info",
     .description = "debug, info, warn or error"},
    {.name = "RPC_LISTEN",
     .kind = CFG_URL,
     .def = "tcp://0.0.0.0:7000",
     .description = "nng URL the RPC server listens on"},
    {.name = "RPC_WORKERS",
     .kind = CFG_INT,
     .def = "16",
     .min = 1,
     .max = 1024,
     .description = "RPC handler threads"},
    {.name = "ADMIN_ADDR",
     .kind = CFG_STRING,
     .def = "0.0.0.0",
     .description = "admin HTTP bind address"},
    {.name = "ADMIN_PORT",
     .kind = CFG_INT,
     .def = "9000",
     .min = 0,
     .max = 65535,
     .description = "admin HTTP port (/healthz /readyz /metrics)"},
    {.name = "DATABASE_URL",
     .kind = CFG_STRING,
     .secret = true,
     .description = "libpq connection string (services with a database)"},
    {.name = "DB_POOL_SIZE",
     .kind = CFG_INT,
     .def = "16",
     .min = 1,
     .max = 512,
     .description = "database connections"},
    {.name = "DB_STATEMENT_TIMEOUT_MS",
     .kind = CFG_DURATION_MS,
     .def = "5000",
     .min = 0,
     .max = 600000,
     .description = "server-side statement timeout"},
    {.name = "MIGRATIONS_DIR",
     .kind = CFG_STRING,
     .description = "migration files (default services/<name>/migrations)"},
    {.name = "STARTUP_TIMEOUT_MS",
     .kind = CFG_DURATION_MS,
     .def = "30000",
     .min = 0,
     .max = 600000,
     .description = "how long to retry the database at start-up"},
    {.name = "SHUTDOWN_GRACE_MS",
     .kind = CFG_DURATION_MS,
     .def = "10000",
     .min = 0,
     .max = 600000,
     .description = "drain time after SIGTERM"},
    {.name = "SERVICE_KEY_FILE",
     .kind = CFG_STRING,
     .description = "this service's own Ed25519 key (service identity)"},
    {.name = "SERVICE_TRUST_FILE",
     .kind = CFG_STRING,
     .description = "every service's public key, '<service> <key>' lines"},
    {.name = "RPC_ATTEMPT_TIMEOUT_MS",
     .kind = CFG_DURATION_MS,
     .def = "1000",
     .min = 0,
     .max = 600000,
     .description = "per-attempt timeout of this service's reads from other "
                    "services: a replica that does not answer in time is "
                    "given up for another (keyed writes never; 0: off)"},
    {.name = "AUTHN_REVOCATION_FAIL",
     .kind = CFG_STRING,
     .def = "open",
     .description = "Redis down during a revocation check: open (accept "
                    "the token) or closed (refuse, UNAVAILABLE)"},
};
#define NCOMMON (sizeof common_config / sizeof common_config[0])

/* The merged table must outlive the cfg (cfg_load keeps pointers into
 * it), and svc_main runs once per process: a static table does both. */
static cfg_entry all_config[CFG_MAX_ENTRIES];

static int load_config(const svc_spec *spec, cfg **out) {
  size_t n = NCOMMON + spec->nconfig;
  if (n > CFG_MAX_ENTRIES) {
    log_error("invalid configuration", "error", "too many entries");
    return ERR_INVAL;
  }
  memcpy(all_config, common_config, sizeof common_config);
  if (spec->nconfig > 0)
    memcpy(all_config + NCOMMON, spec->config,
           spec->nconfig * sizeof *all_config);
  char err[1024];
  int rc = cfg_load(all_config, n, out, err, sizeof err);
  if (rc != ERR_OK) log_error("invalid configuration", "error", err);
  return rc;
}

static int check_db(void *arg) { return db_ping(arg) == ERR_OK ? 0 : 1; }

static int check_redis(void *arg) { return cache_ping(arg) == ERR_OK ? 0 : 1; }

int svc_redis_open(svc *s, const cache_config *cc, const char *unset_warning,
                   cache **out) {
  *out = NULL;
  const char *url = cfg_str(s->cfg, "REDIS_URL");
  if (url == NULL || url[0] == '\0') {
    log_warn(unset_warning != NULL ? unset_warning : "REDIS_URL not set");
    return ERR_OK;
  }
  if (s->redis != NULL) return ERR_EXISTS;
  cache_config c = {0};
  if (cc != NULL) c = *cc;
  c.url = url;
  int rc = cache_new(&c, &s->redis);
  if (rc != ERR_OK) {
    log_error("bad REDIS_URL", "error", err_str(rc));
    return rc;
  }
  rc = admin_add_check(s->admin, "redis", check_redis, s->redis);
  if (rc == ERR_OK) *out = s->redis;
  return rc;
}

int svc_verifier_open(svc *s, cache *redis, rpc_client **auth,
                      authn **verifier) {
  *auth = NULL;
  *verifier = NULL;
  if (s->auth != NULL) return ERR_EXISTS;
  if (paseto_init() != ERR_OK) return ERR_INTERNAL;
  int rc = svc_rpc_client_new(s, cfg_str(s->cfg, "AUTH_ADDR"), NULL, &s->auth);
  if (rc != ERR_OK) {
    log_error("bad AUTH_ADDR", "error", err_str(rc));
    return rc;
  }
  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = cfg_str(s->cfg, "AUTH_ISSUER");
  ac.redis = redis;
  if (authn_fail_mode_parse(cfg_str(s->cfg, "AUTHN_REVOCATION_FAIL"),
                            &ac.fail_closed) != ERR_OK) {
    log_error("bad AUTHN_REVOCATION_FAIL", "error", "open or closed");
    return ERR_INVAL;
  }
  ac.keys_client = s->auth;
  /* Declared by a service whose live tokens outnumber libs/authn's
   * default (realtime); 0 for the others: the default. */
  ac.cache_entries = (size_t)cfg_int(s->cfg, "AUTHN_CACHE_ENTRIES");
  rc = authn_new(&ac, &s->verifier);
  if (rc != ERR_OK) {
    log_error("cannot create the token verifier", "error", err_str(rc));
    return rc;
  }
  *auth = s->auth;
  *verifier = s->verifier;
  return ERR_OK;
}

int svc_rpc_client_new(svc *s, const char *address,
                       const rpc_client_options *opts, rpc_client **out) {
  *out = NULL;
  rpc_client_options o;
  if (opts != NULL)
    o = *opts;
  else
    rpc_client_options_init(&o);
  /* A hung replica (alive, connected, not answering) must cost a read one
   * attempt, not the whole deadline: libs/rpc gives the attempt up and
   * asks another replica (reads only; see rpc_client_options). */
  if (o.attempt_timeout_ms == 0)
    o.attempt_timeout_ms =
        (uint32_t)cfg_duration_ms(s->cfg, "RPC_ATTEMPT_TIMEOUT_MS");
  int rc = svc_identity_client(s->identity, &o);
  if (rc != ERR_OK) return rc;
  return rpc_client_new(address, &o, out);
}

/* The identity and its guard on the RPC server (before init registers
 * handlers). */
static int open_identity(svc *s) {
  if (s->spec->access == NULL) {
    log_error("no access table: every service declares who may call it");
    return ERR_INVAL;
  }
  int rc =
      svc_identity_open(s->spec->name, cfg_str(s->cfg, "SERVICE_KEY_FILE"),
                        cfg_str(s->cfg, "SERVICE_TRUST_FILE"), &s->identity);
  if (rc == ERR_OK)
    rc = svc_identity_guard(s->identity, s->rpc, s->spec->access);
  return rc;
}

/* Opens the pool and applies migrations, retrying while the database is
 * unreachable (it may still be starting), up to STARTUP_TIMEOUT_MS. */
static int open_database(svc *s) {
  const char *url = cfg_str(s->cfg, "DATABASE_URL");
  if (url == NULL || url[0] == '\0') {
    log_error("DATABASE_URL is required");
    return ERR_INVAL;
  }
  db_config dc = {
      .conninfo = url,
      .max_conns = (int)cfg_int(s->cfg, "DB_POOL_SIZE"),
      .statement_timeout_ms =
          (int)cfg_duration_ms(s->cfg, "DB_STATEMENT_TIMEOUT_MS"),
      .application_name = s->spec->name,
  };
  int rc = db_pool_new(&dc, &s->db);
  if (rc != ERR_OK) return rc;

  char dir[512];
  const char *cfg_dir = cfg_str(s->cfg, "MIGRATIONS_DIR");
  if (cfg_dir != NULL && cfg_dir[0] != '\0')
    str_copy(dir, cfg_dir, sizeof dir);
  else
    snprintf(dir, sizeof dir, "services/%s/migrations", s->spec->name);
  const char *schema = s->spec->schema ? s->spec->schema : s->spec->name;

  int64_t give_up =
      time_mono_ms() + cfg_duration_ms(s->cfg, "STARTUP_TIMEOUT_MS");
  int64_t backoff = 100;
  for (;;) {
    int applied = 0;
    rc = db_migrate(s->db, dir, schema, &applied);
    if (rc == ERR_OK) {
      char n[16];
      snprintf(n, sizeof n, "%d", applied);
      log_info("migrations applied", "schema", schema, "applied", n);
      return ERR_OK;
    }
    if (rc != ERR_UNAVAILABLE || time_mono_ms() >= give_up ||
        lifecycle_stopping()) {
      log_error("database start-up failed", "error", err_str(rc), "detail",
                db_last_error()->message, "dir", dir);
      return rc;
    }
    log_warn("database not reachable yet, retrying", "detail",
             db_last_error()->message);
    time_sleep_ms(backoff);
    backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
  }
}

static int drain_rpc(void *arg) {
  svc *s = arg;
  rpc_server_close(s->rpc);
  s->rpc = NULL;
  return ERR_OK;
}

/* --print-config, or a usage error for anything else; -1: no arguments,
 * start the service. */
static int handle_args(const svc_spec *spec) {
  if (spec->argc <= 1) return -1;
  if (!cfgdoc_requested(spec->argc, spec->argv)) {
    fprintf(stderr, "usage: %s [--print-config]\n", spec->name);
    return 2;
  }
  cfgdoc_print_header(stdout);
  if (cfgdoc_print(stdout, "libs/svc", common_config, NCOMMON) != 0 ||
      cfgdoc_print(stdout, spec->name, spec->config, spec->nconfig) != 0 ||
      fflush(stdout) != 0)
    return 1;
  return 0;
}

int svc_main(const svc_spec *spec) {
  svc s = {.spec = spec};
  int status = 1;

  int args_rc = handle_args(spec);
  if (args_rc >= 0) return args_rc;

  if (lifecycle_init() != ERR_OK) {
    fprintf(stderr, "%s: cannot set up signal handling\n", spec->name);
    return 1;
  }
  log_init(spec->name, LOG_INFO);
  if (load_config(spec, &s.cfg) != ERR_OK) return 1;
  int level = log_level_parse(cfg_str(s.cfg, "LOG_LEVEL"));
  log_init(spec->name, level < 0 ? LOG_INFO : (enum log_level)level);
  cfg_print(s.cfg);
  (void)metrics_register_process();

  if (spec->uses_db && open_database(&s) != ERR_OK) goto out;

  rpc_server_options ro;
  rpc_server_options_init(&ro);
  ro.workers = (int)cfg_int(s.cfg, "RPC_WORKERS");
  if (spec->max_recv_bytes > 0) ro.max_recv_bytes = spec->max_recv_bytes;
  if (rpc_server_new(&ro, &s.rpc) != ERR_OK) {
    log_error("cannot create the RPC server");
    goto out;
  }
  if (open_identity(&s) != ERR_OK) goto out;
  admin_options ao = {.bind_addr = cfg_str(s.cfg, "ADMIN_ADDR"),
                      .port = (int)cfg_int(s.cfg, "ADMIN_PORT")};
  if (admin_new(&ao, &s.admin) != ERR_OK) {
    log_error("cannot create the admin server");
    goto out;
  }
  if (s.db != NULL &&
      admin_add_check(s.admin, "postgres", check_db, s.db) != ERR_OK)
    goto out;

  if (spec->init != NULL && spec->init(&s, spec->arg) != ERR_OK) {
    log_error("service init failed");
    goto out_fini;
  }
  if (svc_identity_check_methods(s.identity, s.rpc) != ERR_OK) goto out_fini;
  const char *listen = cfg_str(s.cfg, "RPC_LISTEN");
  int rc = rpc_server_start(s.rpc, listen);
  if (rc != ERR_OK) {
    log_error("cannot listen for RPC", "url", listen, "error", err_str(rc));
    goto out_fini;
  }
  rc = admin_start(s.admin);
  if (rc != ERR_OK) {
    log_error("cannot start the admin server", "error", err_str(rc));
    goto out_fini;
  }
  char port[16];
  snprintf(port, sizeof port, "%d", admin_port(s.admin));
  log_info("service ready", "rpc", listen, "admin_port", port);

  int sig = 0;
  if (lifecycle_wait_for_stop(-1, &sig) != ERR_OK)
    log_warn("signal wait failed; stopping");
  log_info("stopping", "signal", sig == SIGINT ? "INT" : "TERM");
  admin_set_draining(s.admin);
  int drain_rc = ERR_OK;
  rc = lifecycle_drain(cfg_duration_ms(s.cfg, "SHUTDOWN_GRACE_MS"), drain_rpc,
                       &s, &drain_rc);
  if (rc != ERR_OK) {
    /* The drain thread still uses the server: exit without freeing. */
    log_warn("drain did not finish in time; exiting", "error", err_str(rc));
    fflush(stdout);
    _Exit(1);
  }
  status = 0;
  /* Freeing closes nng sockets, which nng 1.5.2 can hang in (see
   * lifecycle_exit_watchdog): bound it. */
  if (lifecycle_exit_watchdog(SHUTDOWN_CLEANUP_MS) != ERR_OK)
    log_warn("no shutdown watchdog");

out_fini:
  if (spec->fini != NULL) spec->fini(&s, spec->arg);
out:
  rpc_server_close(s.rpc);
  authn_free(s.verifier); /* before the client it fetches keys with */
  rpc_client_free(s.auth);
  admin_free(s.admin);
  cache_free(s.redis);           /* after the admin server's readiness checks */
  svc_identity_free(s.identity); /* after every client and the server */
  db_pool_free(s.db);
  lifecycle_exit_watchdog_cancel(); /* cleanup finished */
  if (status == 0) log_info("stopped");
  cfg_free(s.cfg);
  return status;
}
