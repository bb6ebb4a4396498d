/*
 * xfer.c - see xfer.h. The answer is gathered by a write callback that
 * refuses to grow past the cap (returning a short count makes libcurl end
 * the transfer with CURLE_WRITE_ERROR, recorded as too_big), and
 * Retry-After is read by a header callback so a 429 can be honoured.
 */
#include "tools/multi/xfer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "libs/base/timeutil.h"

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t k = size * n;
  if (x->len + k > x->max) {
    x->too_big = true;
    return 0;
  }
  char *nb = realloc(x->buf, x->len + k + 1);
  if (nb == NULL) return 0;
  x->buf = nb;
  memcpy(x->buf + x->len, p, k);
  x->len += k;
  x->buf[x->len] = '\0';
  return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  xfer *x = ud;
  size_t k = size * n;
  static const char kName[] = "retry-after:";
  if (k > sizeof kName && strncasecmp(p, kName, sizeof kName - 1) == 0) {
    long v = strtol(p + sizeof kName - 1, NULL, 10);
    x->retry_after_s = v < 0 ? 0 : v;
  }
  return k;
}

static int add_header(xfer *x, const char *name, const char *value) {
  char line[1024];
  if (snprintf(line, sizeof line, "%s: %s", name, value) >= (int)sizeof line)
    return -1;
  struct curl_slist *h = curl_slist_append(x->hdrs, line);
  explicit_bzero(line, sizeof line);
  if (h == NULL) return -1;
  x->hdrs = h;
  return 0;
}

static int set_headers(xfer *x, const xfer_req *r) {
  if (r->token != NULL) {
    char v[1024];
    if (snprintf(v, sizeof v, "Bearer %s", r->token) >= (int)sizeof v)
      return -1;
    int rc = add_header(x, "Authorization", v);
    explicit_bzero(v, sizeof v);
    if (rc != 0) return -1;
  }
  if (r->idem_key != NULL && add_header(x, "Idempotency-Key", r->idem_key))
    return -1;
  if (r->tenant != NULL && add_header(x, "X-Tenant", r->tenant)) return -1;
  if (r->body != NULL && add_header(x, "Content-Type", "application/json"))
    return -1;
  /* No "Expect: 100-continue" round trip on bodies. */
  return add_header(x, "Expect", "");
}

int xfer_init(xfer *x, const xfer_req *r) {
  memset(x, 0, sizeof *x);
  x->max = r->max_resp ? r->max_resp : XFER_MAX_RESP_DEFAULT;
  x->easy = curl_easy_init();
  char url[2048];
  if (x->easy == NULL ||
      snprintf(url, sizeof url, "%s%s", r->base, r->path) >= (int)sizeof url ||
      set_headers(x, r) != 0)
    goto fail;
  if (r->body != NULL && (x->body = strdup(r->body)) == NULL) goto fail;
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  if (x->body != NULL) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
  } else if (strcmp(r->method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  x->start_ns = time_mono_ns();
  return 0;
fail:
  xfer_free(x);
  return -1;
}

void xfer_done(xfer *x, CURLcode rc) {
  x->end_ns = time_mono_ns();
  x->rc = rc;
  x->status = 0;
  if (rc == CURLE_OK)
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
}

void xfer_perform(xfer *x) {
  x->start_ns = time_mono_ns();
  xfer_done(x, curl_easy_perform(x->easy));
}

void xfer_free(xfer *x) {
  if (x->easy != NULL) curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->hdrs);
  if (x->body != NULL) {
    explicit_bzero(x->body, strlen(x->body)); /* may hold a password */
    free(x->body);
  }
  free(x->buf);
  x->easy = NULL;
  x->hdrs = NULL;
  x->body = x->buf = NULL;
}

bool xfer_ok(const xfer *x) {
  return x->rc == CURLE_OK && x->status >= 200 && x->status < 300;
}

bool xfer_retryable(const xfer *x) {
  if (x->too_big) return false;
  if (x->rc != CURLE_OK) return true;
  return x->status == 429 || x->status == 502 || x->status == 503 ||
         x->status == 504;
}

json_t *xfer_json(const xfer *x) {
  if (x->buf == NULL) return NULL;
  return json_loadb(x->buf, x->len, 0, NULL);
}

double xfer_ms(const xfer *x) {
  return (double)(x->end_ns - x->start_ns) / 1e6;
}

const char *xfer_describe(const xfer *x, char *out, size_t cap) {
  if (x->too_big) {
    snprintf(out, cap, "answer over %zu bytes", x->max);
  } else if (x->rc != CURLE_OK) {
    snprintf(out, cap, "%s", x->err[0] ? x->err : curl_easy_strerror(x->rc));
  } else {
    json_t *j = xfer_json(x);
    const char *code = j ? xfer_str(json_object_get(j, "error"), "code") : NULL;
    if (code != NULL)
      snprintf(out, cap, "%ld %s", x->status, code);
    else
      snprintf(out, cap, "%ld", x->status);
    json_decref(j);
  }
  return out;
}

const char *xfer_str(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}
