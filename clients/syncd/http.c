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

static struct curl_slist *headers(const http_target *t) {
  char h[1200];
  struct curl_slist *l =
      curl_slist_append(NULL, "Content-Type: application/json");
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
  struct curl_slist *hs = headers(t);
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
