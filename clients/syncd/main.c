/*
 * main.c - the syncd command line.
 *
 *   syncd [--db FILE] init --url URL --tenant SLUG [--name NAME] [--device ID]
 *   syncd [--db FILE] run
 *   syncd [--db FILE] order add --product ID --qty N [--table T]
 *   syncd [--db FILE] order status ORDER_ID STATUS
 *   syncd [--db FILE] init --files DIR      (the folder to upload; also
 *                                            with the other init options)
 *   syncd [--db FILE] init --realtime URL   (ws://host:port/v1/realtime;
 *                                            "" forgets it)
 *   syncd [--db FILE] status | conflicts [--json] | orders [--json]
 *   syncd [--db FILE] files [--json]
 *
 * Every command is a process of its own on the same SQLite file (default
 * ./syncd.db, or SYNCD_DB); `run` is the long-lived one. Secrets come from
 * the environment (SYNCD_EMAIL and SYNCD_PASSWORD, or SYNCD_DEVICE_SECRET),
 * never from arguments, which other users can read in ps. Exit status: 0
 * done, 1 refused or failed, 2 usage.
 */
#include <curl/curl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clients/syncd/cli.h"
#include "clients/syncd/files.h"
#include "clients/syncd/local.h"
#include "clients/syncd/rt.h"
#include "clients/syncd/store.h"

static int usage(void) {
  fputs("usage: syncd [--db FILE] init --url URL --tenant SLUG [--name NAME] "
        "[--device ID]\n"
        "       syncd [--db FILE] init --files DIR | --realtime URL\n"
        "       syncd [--db FILE] run\n"
        "       syncd [--db FILE] order add --product ID --qty N [--table T]\n"
        "       syncd [--db FILE] order status ORDER_ID STATUS\n"
        "       syncd [--db FILE] status | conflicts [--json] | orders "
        "[--json]\n"
        "       syncd [--db FILE] files [--json]\n",
        stderr);
  return 2;
}

/* An environment number within [lo, hi], else dflt. */
static int64_t env_int(const char *name, int64_t dflt, int64_t lo, int64_t hi) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return dflt;
  char *end;
  long long n = strtoll(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi) {
    fprintf(stderr, "syncd: %s: must be between %lld and %lld; using %lld\n",
            name, (long long)lo, (long long)hi, (long long)dflt);
    return dflt;
  }
  return n;
}

/* The value after flag in argv[from..argc), NULL if absent. */
static const char *opt(int argc, char **argv, int from, const char *flag) {
  for (int i = from; i + 1 < argc; i++)
    if (strcmp(argv[i], flag) == 0) return argv[i + 1];
  return NULL;
}

static bool has(int argc, char **argv, int from, const char *flag) {
  for (int i = from; i < argc; i++)
    if (strcmp(argv[i], flag) == 0) return true;
  return false;
}

/* Records the folder to watch (as an absolute path: `run` may start
 * elsewhere). */
static int set_files_dir(sqlite3 *db, const char *dir) {
  char abs[PATH_MAX];
  struct stat sb;
  if (realpath(dir, abs) == NULL || stat(abs, &sb) != 0 ||
      !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "syncd: --files %s: not a folder\n", dir);
    return 1;
  }
  if (!files_dir_allowed(db, abs)) {
    fprintf(stderr,
            "syncd: --files %s: holds syncd's own file (its "
            "secret); choose another folder\n",
            dir);
    return 1;
  }
  return store_set(db, "files_dir", abs) == 0 ? 0 : 1;
}

static int register_device(sqlite3 *db, const sync_cfg *cfg, int argc,
                           char **argv, int i);

/* Records the realtime endpoint ("" forgets it: poll only). */
static int set_realtime(sqlite3 *db, const char *url) {
  char host[256], path[256];
  int port;
  if (*url != '\0' &&
      rt_parse_url(url, host, sizeof host, &port, path, sizeof path) != 0) {
    fprintf(stderr, "syncd: --realtime %s: not ws://host:port[/path]\n", url);
    return 1;
  }
  return store_set(db, "realtime_url", url) == 0 ? 0 : 1;
}

static int cmd_init(sqlite3 *db, const sync_cfg *cfg, int argc, char **argv,
                    int i) {
  const char *files = opt(argc, argv, i, "--files");
  const char *realtime = opt(argc, argv, i, "--realtime");
  if ((files != NULL || realtime != NULL) &&
      opt(argc, argv, i, "--url") == NULL) {
    int rc = realtime != NULL ? set_realtime(db, realtime) : 0;
    return rc == 0 && files != NULL ? set_files_dir(db, files) : rc;
  }
  int rc = register_device(db, cfg, argc, argv, i);
  if (rc == 0 && files != NULL) rc = set_files_dir(db, files);
  if (rc == 0 && realtime != NULL) rc = set_realtime(db, realtime);
  return rc;
}

static int register_device(sqlite3 *db, const sync_cfg *cfg, int argc,
                           char **argv, int i) {
  const char *url = opt(argc, argv, i, "--url");
  const char *tenant = opt(argc, argv, i, "--tenant");
  const char *name = opt(argc, argv, i, "--name");
  const char *device = opt(argc, argv, i, "--device");
  if (url == NULL || tenant == NULL) return usage();
  if (device != NULL) {
    const char *secret = getenv("SYNCD_DEVICE_SECRET");
    if (secret == NULL) {
      fputs("syncd: --device needs SYNCD_DEVICE_SECRET\n", stderr);
      return 2;
    }
    return sync_register(db, cfg, url, tenant, NULL, NULL, NULL, device,
                         secret) == 0
               ? 0
               : 1;
  }
  const char *email = getenv("SYNCD_EMAIL"), *pw = getenv("SYNCD_PASSWORD");
  if (email == NULL || pw == NULL) {
    fputs("syncd: init needs SYNCD_EMAIL and SYNCD_PASSWORD (staff), or "
          "--device with SYNCD_DEVICE_SECRET\n",
          stderr);
    return 2;
  }
  return sync_register(db, cfg, url, tenant, name ? name : "syncd", email, pw,
                       NULL, NULL) == 0
             ? 0
             : 1;
}

static int cmd_order(sqlite3 *db, int argc, char **argv, int i) {
  char err[256] = "";
  if (i < argc && strcmp(argv[i], "add") == 0) {
    const char *product = opt(argc, argv, i, "--product");
    const char *qty = opt(argc, argv, i, "--qty");
    if (product == NULL || qty == NULL) return usage();
    char *end;
    long long n = strtoll(qty, &end, 10);
    if (*end != '\0') n = 0;
    char oid[UUID_STR_LEN + 1];
    if (local_order_add(db, product, n, opt(argc, argv, i, "--table"), oid,
                        err) != 0) {
      fprintf(stderr, "syncd: %s\n", err);
      return 1;
    }
    puts(oid);
    return 0;
  }
  if (i + 2 < argc && strcmp(argv[i], "status") == 0) {
    if (local_order_status(db, argv[i + 1], argv[i + 2], err) != 0) {
      fprintf(stderr, "syncd: %s\n", err);
      return 1;
    }
    return 0;
  }
  return usage();
}

static int dispatch(sqlite3 *db, int argc, char **argv, int i) {
  const sync_cfg cfg = {
      .heartbeat_ms = env_int("SYNCD_HEARTBEAT", 30, 1, 3600) * 1000,
      .push_batch = (int)env_int("SYNCD_PUSH_BATCH", 100, 1, 500),
      .timeout_ms = (long)env_int("SYNCD_TIMEOUT_MS", 10000, 100, 600000),
      .upload_bps = env_int("SYNCD_UPLOAD_BPS", 0, 0, (int64_t)1 << 40)};
  const char *cmd = argv[i++];
  if (strcmp(cmd, "init") == 0) return cmd_init(db, &cfg, argc, argv, i);
  if (strcmp(cmd, "order") == 0) return cmd_order(db, argc, argv, i);
  if (strcmp(cmd, "status") == 0) return show_status(db);
  if (strcmp(cmd, "conflicts") == 0)
    return show_conflicts(db, has(argc, argv, i, "--json"));
  if (strcmp(cmd, "files") == 0)
    return files_show(db, has(argc, argv, i, "--json"));
  if (strcmp(cmd, "orders") == 0)
    return show_orders(db, has(argc, argv, i, "--json"));
  if (strcmp(cmd, "run") == 0) {
    sync_ctx x;
    if (!sync_load(&x, db, &cfg)) {
      fputs("syncd: not registered (syncd init)\n", stderr);
      return 1;
    }
    run_cfg rc = {
        .poll_ms = env_int("SYNCD_POLL_MS", 2000, 50, 3600000),
        .backoff_base_ms = env_int("SYNCD_BACKOFF_BASE_MS", 500, 10, 60000),
        .backoff_max_ms = env_int("SYNCD_BACKOFF_MAX_MS", 30000, 10, 3600000)};
    const char *rtu = getenv("SYNCD_REALTIME_URL");
    if (rtu != NULL && *rtu != '\0')
      snprintf(rc.realtime_url, sizeof rc.realtime_url, "%s", rtu);
    else if (!store_get(db, "realtime_url", rc.realtime_url,
                        sizeof rc.realtime_url))
      rc.realtime_url[0] = '\0';
    int r = run_loop(&x, &rc);
    sodium_memzero(&x, sizeof x);
    return r;
  }
  return usage();
}

int main(int argc, char **argv) {
  int i = 1;
  const char *path = getenv("SYNCD_DB");
  if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
    path = argv[i + 1];
    i += 2;
  }
  if (i >= argc) return usage();
  if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
    fputs("syncd: cannot initialise libsodium/libcurl\n", stderr);
    return 1;
  }
  sqlite3 *db = store_open(path != NULL ? path : "syncd.db");
  if (db == NULL) return 1;
  int rc = dispatch(db, argc, argv, i);
  store_close(db);
  curl_global_cleanup();
  return rc;
}
