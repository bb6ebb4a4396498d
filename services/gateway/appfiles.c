/*
 * appfiles.c - see appfiles.h. Loading walks the directory once with
 * openat(O_NOFOLLOW) + fstat, so what is checked is what is read (no
 * window between a stat and an open for a swapped symlink). Lookups are
 * a linear scan of at most APPFILES_MAX_FILES names: a console has a
 * handful of files, and a scan of exact names has nothing to get wrong.
 */
#include "services/gateway/appfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libs/obs/log.h"

#define MAX_NAME 100

struct appfiles {
  appfile files[APPFILES_MAX_FILES];
  size_t n;
  size_t total;
  char csp[512 + APPFILES_MAX_URL];
};

static const struct {
  const char *ext;
  const char *type;
} kTypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".webmanifest", "application/manifest+json"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof kTypes / sizeof kTypes[0]; i++) {
    size_t e = strlen(kTypes[i].ext);
    if (n > e && strcmp(name + n - e, kTypes[i].ext) == 0)
      return kTypes[i].type;
  }
  return NULL;
}

static bool safe_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > MAX_NAME || name[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

static bool safe_url(const char *u) {
  size_t n = strlen(u);
  if (n > APPFILES_MAX_URL) return false;
  if (strncmp(u, "ws://", 5) != 0 && strncmp(u, "wss://", 6) != 0) return false;
  for (size_t i = 0; i < n; i++) {
    char c = u[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '/' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* FNV-1a 64: a validator for If-None-Match, not a security boundary. */
static void set_etag(appfile *f) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < f->len; i++) {
    h ^= (unsigned char)f->data[i];
    h *= 1099511628211ULL;
  }
  snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)h);
}

static int add(appfiles *a, const char *name, const char *type, char *data,
               size_t len) {
  if (a->n == APPFILES_MAX_FILES || len > APPFILES_MAX_TOTAL - a->total) {
    free(data);
    log_warn("app file skipped: over the limits", "file", name);
    return ERR_OK;
  }
  char *nm = strdup(name);
  if (nm == NULL) {
    free(data);
    return ERR_NOMEM;
  }
  appfile *f = &a->files[a->n++];
  *f = (appfile){.name = nm, .type = type, .data = data, .len = len};
  a->total += len;
  set_etag(f);
  return ERR_OK;
}

/* Reads one entry of dfd into the table; skips (with a warning) what is
 * not a plain file of a known kind within the bounds. */
static int load_one(appfiles *a, int dfd, const char *name) {
  const char *type = type_of(name);
  if (!safe_name(name) || type == NULL || strcmp(name, "config.json") == 0) {
    log_warn("app file skipped: name or extension not served", "file", name);
    return ERR_OK;
  }
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    log_warn("app file skipped: cannot open (a symlink?)", "file", name);
    return ERR_OK;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      sb.st_size > APPFILES_MAX_FILE) {
    close(fd);
    log_warn("app file skipped: not a regular file within the size limit",
             "file", name);
    return ERR_OK;
  }
  size_t len = (size_t)sb.st_size;
  char *data = malloc(len ? len : 1);
  if (data == NULL) {
    close(fd);
    return ERR_NOMEM;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, data + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != len) {
    free(data);
    log_error("app file could not be read", "file", name);
    return ERR_IO;
  }
  return add(a, name, type, data, len);
}

static int add_config(appfiles *a, const char *url) {
  char buf[64 + APPFILES_MAX_URL];
  int n = url[0] ? snprintf(buf, sizeof buf, "{\"realtime_url\":\"%s\"}\n", url)
                 : snprintf(buf, sizeof buf, "{\"realtime_url\":null}\n");
  char *data = strndup(buf, (size_t)n);
  if (data == NULL) return ERR_NOMEM;
  return add(a, "config.json", "application/json", data, (size_t)n);
}

static void make_csp(appfiles *a, const char *url) {
  snprintf(a->csp, sizeof a->csp,
           "default-src 'self'; script-src 'self'; style-src 'self'; "
           "img-src 'self' data:; connect-src 'self'%s%s; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; "
           "frame-ancestors 'none'",
           url[0] ? " " : "", url);
}

int appfiles_load(const char *dir, const char *realtime_url, appfiles **out) {
  *out = NULL;
  const char *url = realtime_url ? realtime_url : "";
  if (url[0] && !safe_url(url)) return ERR_INVAL;
  appfiles *a = calloc(1, sizeof *a);
  if (a == NULL) return ERR_NOMEM;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (d == NULL) {
    if (dfd >= 0) close(dfd);
    free(a);
    return ERR_INVAL;
  }
  int rc = ERR_OK;
  struct dirent *e;
  while (rc == ERR_OK && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    rc = load_one(a, dirfd(d), e->d_name);
  }
  closedir(d);
  if (rc == ERR_OK) rc = add_config(a, url);
  if (rc == ERR_OK && appfiles_find(a, "/app/", 5) == NULL) rc = ERR_INVAL;
  if (rc != ERR_OK) {
    appfiles_free(a);
    return rc;
  }
  make_csp(a, url);
  *out = a;
  return ERR_OK;
}

void appfiles_free(appfiles *a) {
  if (a == NULL) return;
  for (size_t i = 0; i < a->n; i++) {
    free((char *)a->files[i].name);
    free((char *)a->files[i].data);
  }
  free(a);
}

bool appfiles_owns(const char *path, size_t len) {
  size_t p = strlen(APPFILES_PREFIX);
  return len >= p && memcmp(path, APPFILES_PREFIX, p) == 0 &&
         (len == p || path[p] == '/');
}

const appfile *appfiles_find(const appfiles *a, const char *path, size_t len) {
  if (!appfiles_owns(path, len)) return NULL;
  size_t p = strlen(APPFILES_PREFIX);
  const char *name = path + p;
  size_t n = len - p;
  if (n > 0) { /* skip the '/' */
    name++;
    n--;
  }
  if (n == 0) {
    name = "index.html";
    n = strlen(name);
  }
  for (size_t i = 0; i < a->n; i++)
    if (strlen(a->files[i].name) == n && memcmp(a->files[i].name, name, n) == 0)
      return &a->files[i];
  return NULL;
}

const char *appfiles_csp(const appfiles *a) { return a->csp; }

size_t appfiles_count(const appfiles *a) { return a->n; }
