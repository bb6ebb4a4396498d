/*
 * http.c - one JSON request to the gateway (see http.h).
 *
 * A fresh easy handle per request keeps this simple; syncd makes a few
 * requests a second at most. Tokens travel only in the Authorization
 * header and are never printed.
 */
#include "clients/syncd/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ANSWER_MAX (8u << 20)

typedef struct buf {
  char *p;
  size_t n;
  int too_big;
} buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  buf *b = ud;
  size_t add = size * nmemb;
  if (b->n + add > ANSWER_MAX) {
    b->too_big = 1;
    return 0;
  }
  char *np = realloc(b->p, b->n + add + 1);
  if (np == NULL) return 0;
  memcpy(np + b->n, ptr, add);
  b->p = np;
  b->n += add;
  b->p[b->n] = '\0';
  return add;
}

static struct curl_slist *headers(const http_target *t, const char *type) {
  char h[1200];
  struct curl_slist *l = curl_slist_append(NULL, type);
  l = curl_slist_append(l, "Accept: application/json");
  snprintf(h, sizeof h, "X-Tenant: %s", t->tenant);
  l = curl_slist_append(l, h);
  if (t->token != NULL) {
    snprintf(h, sizeof h, "Authorization: Bearer %s", t->token);
    l = curl_slist_append(l, h);
  }
  return l;
}

long http_json(const http_target *t, const char *method, const char *path,
               const json_t *body, json_t **out) {
  if (out != NULL) *out = NULL;
  CURL *c = curl_easy_init();
  if (c == NULL) return 0;
  char url[1024];
  snprintf(url, sizeof url, "%s%s", t->base_url, path);
  char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
  struct curl_slist *hs = headers(t, "Content-Type: application/json");
  buf b = {0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t->timeout_ms);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  if (text != NULL) curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0 && out != NULL && b.p != NULL)
    *out = json_loadb(b.p, b.n, 0, NULL);
  free(b.p);
  free(text);
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  return status;
}

typedef struct upload {
  int fd;
  int64_t left; /* bytes still to send: a file grown meanwhile is cut */
} upload;

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud) {
  upload *u = ud;
  size_t want = size * nmemb;
  if ((int64_t)want > u->left) want = (size_t)u->left;
  if (want == 0) return 0;
  ssize_t n = read(u->fd, ptr, want);
  /* A file cut short meanwhile: abort rather than send a short body. */
  if (n <= 0) return CURL_READFUNC_ABORT;
  u->left -= n;
  return (size_t)n;
}

long http_put_file(const http_target *t, const char *path, int fd, int64_t size,
                   int64_t max_bps, json_t **out) {
  if (out != NULL) *out = NULL;
  CURL *c = curl_easy_init();
  if (c == NULL) return 0;
  char url[1024];
  snprintf(url, sizeof url, "%s%s", t->base_url, path);
  struct curl_slist *hs = headers(t, "Content-Type: application/octet-stream");
  /* No "Expect: 100-continue" round trip before the body. */
  hs = curl_slist_append(hs, "Expect:");
  upload u = {.fd = fd, .left = size};
  buf b = {0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(c, CURLOPT_READDATA, &u);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  /* A 25 MiB body on a slow line: the timeout is for silence, not for
   * the whole transfer (under 1 KiB/s for timeout_ms ends it). */
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t->timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                   t->timeout_ms / 1000 > 0 ? t->timeout_ms / 1000 : 1L);
  if (max_bps > 0)
    curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)max_bps);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0 && out != NULL && b.p != NULL)
    *out = json_loadb(b.p, b.n, 0, NULL);
  free(b.p);
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  return status;
}
