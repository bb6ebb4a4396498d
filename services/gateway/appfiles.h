/*
 * appfiles.h - the web console's static files, served by the gateway
 * under /app/ (GATEWAY_APP_DIR; clients/web in this repository).
 *
 * Design: every file is read into memory once, at start-up, from one flat
 * directory. A request never touches the file system: its path is looked
 * up by exact name in the loaded table, so no request can reach outside
 * the directory whatever it spells ("..", %2e%2e, symlinks), and a file
 * changed on disk after start is not served until a restart (deployments
 * replace the pod, tools/dev restarts the gateway). Loading accepts only
 * regular files (opened with O_NOFOLLOW: a symlink is skipped, never
 * followed), names of [A-Za-z0-9._-] not starting with '.', known
 * extensions (each with its Content-Type), at most APPFILES_MAX_FILE
 * bytes each and APPFILES_MAX_TOTAL in all; anything else is skipped
 * with a warning. Subdirectories are not served.
 *
 * "/app/config.json" is generated, not read: {"realtime_url": <the
 * configured WebSocket URL, or null: same origin>}. The console learns
 * where realtime listens from it. The URL is also the one connect-src of
 * the Content-Security-Policy besides 'self'.
 */
#ifndef GATEWAY_APPFILES_H
#define GATEWAY_APPFILES_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

#define APPFILES_PREFIX "/app"
#define APPFILES_MAX_FILES 256
#define APPFILES_MAX_FILE (1024 * 1024)
#define APPFILES_MAX_TOTAL (16 * 1024 * 1024)
#define APPFILES_MAX_URL 256

typedef struct appfile {
  const char *name; /* "app.js" */
  const char *type; /* Content-Type */
  const char *data;
  size_t len;
  char etag[24]; /* "\"<16 hex>\"" */
} appfile;

typedef struct appfiles appfiles;

/* Loads dir (see the top). realtime_url: "ws://..." or "wss://..." (at
 * most APPFILES_MAX_URL bytes of [A-Za-z0-9.:/_-]), or NULL/"" for the
 * same origin. Errors: ERR_INVAL (a bad URL, dir not a directory, no
 * index.html), ERR_NOMEM, ERR_IO. *out is the caller's (appfiles_free). */
int appfiles_load(const char *dir, const char *realtime_url,
                  appfiles **out) WARN_UNUSED;
void appfiles_free(appfiles *a); /* NULL-safe */

/* True when the request path (without the query) is under the prefix:
 * "/app" or "/app/...". */
bool appfiles_owns(const char *path, size_t len);

/* The file for a path under the prefix ("/app/" and "/app" are
 * index.html), or NULL. */
const appfile *appfiles_find(const appfiles *a, const char *path, size_t len);

/* The Content-Security-Policy of every file. */
const char *appfiles_csp(const appfiles *a);

/* Files loaded (config.json included). */
size_t appfiles_count(const appfiles *a);

#endif
