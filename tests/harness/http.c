/*
 * http.c - the tests' HTTP client (libcurl easy interface), JSON getters
 * and Check assertions for HTTP-API.md's answers.
 *
 * Design. A request is a fresh easy handle, used once and cleaned up: no
 * shared state, so concurrent requests from threads need no locking, and
 * no connection reuse, so every request is seen by the server as a new
 * client would send it. The body and the header block are collected into
 * buffers with a cap each (a server that streams without end fails the
 * transfer instead of the test's memory); the header buffer is reset at
 * every status line, so only the final answer's headers remain after a
 * 100-continue. Headers are split into name/value pairs once, after the
 * transfer, so lookups return pointers owned by the answer instead of a
 * static buffer.
 *
 * The assertion helpers take the caller's __FILE__/__LINE__ (through the
 * CK_ macros in http.h) and put them in the message, because Check
 * reports the line inside this file.
 */
#include "tests/harness/http.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_CAP (64u << 20) /* bytes of an answer's body */
#define HEAD_CAP (64u << 10) /* bytes of its header block */
#define TIMEOUT_MS 30000L

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n);
  if (q == NULL) abort(); /* a test cannot go on without memory */
  return q;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (d == NULL) abort();
  return d;
}

static double mono_secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ----------------------------------------------------------- transfer --- */

typedef struct buf {
  char *p;
  size_t len;
} buf;

/* Appends; false (and nothing appended) past cap. */
static bool buf_add(buf *b, const char *p, size_t k, size_t cap) {
  if (b->len + k > cap) return false;
  b->p = xrealloc(b->p, b->len + k + 1);
  memcpy(b->p + b->len, p, k);
  b->len += k;
  b->p[b->len] = '\0';
  return true;
}

typedef struct transfer {
  buf body;
  buf head;
} transfer;

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
  transfer *t = arg;
  return buf_add(&t->body, p, sz * n, BODY_CAP) ? sz * n : 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
  transfer *t = arg;
  size_t k = sz * n;
  if (k >= 5 && memcmp(p, "HTTP/", 5) == 0) t->head.len = 0;
  return buf_add(&t->head, p, k, HEAD_CAP) ? k : 0;
}

/* Splits r->head into r->headers (the status line is skipped). */
static void parse_headers(harness_http_resp *r) {
  const char *line = strchr(r->head, '\n');
  while (line != NULL && *++line != '\0') {
    size_t k = strcspn(line, "\r\n");
    const char *colon = memchr(line, ':', k);
    if (colon != NULL) {
      r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
      harness_http_field *h = &r->headers[r->nheaders++];
      h->name = xstrdup(line);
      h->name[colon - line] = '\0';
      const char *v = colon + 1;
      while (*v == ' ' || *v == '\t') v++;
      h->value = xstrdup(v);
      h->value[strcspn(h->value, "\r\n")] = '\0';
    }
    line = strchr(line, '\n');
  }
}

static bool names_content_type(const char *const headers[]) {
  for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
    if (strncasecmp(headers[i], "Content-Type:", 13) == 0) return true;
  return false;
}

harness_http_resp *harness_http_request(const char *method, int port,
                                        const char *path, const char *body,
                                        const char *token,
                                        const char *const headers[]) {
  return harness_http_request_bytes(method, port, path, body,
                                    body != NULL ? strlen(body) : 0, token,
                                    headers);
}

harness_http_resp *harness_http_request_bytes(const char *method, int port,
                                              const char *path,
                                              const char *body, size_t blen,
                                              const char *token,
                                              const char *const headers[]) {
  harness_http_resp *r = calloc(1, sizeof *r);
  CURL *c = curl_easy_init();
  if (r == NULL || c == NULL) abort();
  transfer t = {{NULL, 0}, {NULL, 0}};
  char url[1024];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  struct curl_slist *h = NULL;
  char *auth = NULL;
  if (token != NULL) {
    size_t cap = strlen(token) + 32;
    auth = xrealloc(NULL, cap);
    snprintf(auth, cap, "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
    h = curl_slist_append(h, headers[i]);
  if (body != NULL) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    if (!names_content_type(headers))
      h = curl_slist_append(h, "Content-Type: application/json");
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads */
  double t0 = mono_secs();
  r->curl_rc = (int)curl_easy_perform(c);
  r->secs = mono_secs() - t0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  free(auth);
  r->body = t.body.p != NULL ? t.body.p : xstrdup("");
  r->len = t.body.len;
  r->head = t.head.p != NULL ? t.head.p : xstrdup("");
  parse_headers(r);
  if (r->len > 0) r->json = json_loadb(r->body, r->len, 0, NULL);
  return r;
}

harness_http_resp *harness_http_call(const char *method, int port,
                                     const char *path, const char *body,
                                     const char *token,
                                     const char *const headers[]) {
  harness_http_resp *r =
      harness_http_request(method, port, path, body, token, headers);
  ck_assert_msg(r->curl_rc == CURLE_OK, "%s %s: %s", method, path,
                curl_easy_strerror((CURLcode)r->curl_rc));
  return r;
}

void harness_http_free(harness_http_resp *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  json_decref(r->json);
  free(r->head);
  free(r->body);
  free(r);
}

const char *harness_http_header(const harness_http_resp *r, const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}

/* The first detail whose field is field (prefix: starts with it). */
static json_t *find_detail(const harness_http_resp *r, const char *field,
                           bool prefix) {
  size_t i;
  json_t *e;
  json_array_foreach(harness_json_get(r->json, "error.details"), i, e) {
    const char *f = json_string_value(json_object_get(e, "field"));
    if (f == NULL) continue;
    if (prefix ? strncmp(f, field, strlen(field)) == 0 : strcmp(f, field) == 0)
      return e;
  }
  return NULL;
}

bool harness_http_has_detail(const harness_http_resp *r, const char *field) {
  return find_detail(r, field, false) != NULL;
}

bool harness_http_has_detail_prefix(const harness_http_resp *r,
                                    const char *prefix) {
  return find_detail(r, prefix, true) != NULL;
}

/* --------------------------------------------------------------- JSON --- */

json_t *harness_json_get(json_t *v, const char *path) {
  char steps[256];
  snprintf(steps, sizeof steps, "%s", path);
  char *save = NULL;
  for (char *t = strtok_r(steps, ".", &save); t != NULL && v != NULL;
       t = strtok_r(NULL, ".", &save))
    v = json_object_get(v, t);
  return v;
}

const char *harness_json_str(json_t *v, const char *path) {
  const char *s = json_string_value(harness_json_get(v, path));
  return s != NULL ? s : "<missing>";
}

long long harness_json_int(json_t *v, const char *path) {
  json_t *x = harness_json_get(v, path);
  ck_assert_msg(json_is_integer(x), "%s is not an integer", path);
  return json_integer_value(x);
}

/* --------------------------------------------------------- assertions --- */

void harness_http_check_status(const harness_http_resp *r, long want,
                               const char *file, int line) {
  ck_assert_msg(r->status == want, "%s:%d: status %ld, want %ld: %s", file,
                line, r->status, want, r->body);
}

void harness_http_check_error(const harness_http_resp *r, long status,
                              const char *code, const char *file, int line) {
  harness_http_check_status(r, status, file, line);
  ck_assert_msg(r->json != NULL, "%s:%d: error body is not JSON: %s", file,
                line, r->body);
  const char *got = harness_json_str(r->json, "error.code");
  ck_assert_msg(strcmp(got, code) == 0, "%s:%d: code %s, want %s: %s", file,
                line, got, code, r->body);
  ck_assert_msg(json_is_string(harness_json_get(r->json, "error.message")),
                "%s:%d: no error.message: %s", file, line, r->body);
  ck_assert_msg(json_is_array(harness_json_get(r->json, "error.details")),
                "%s:%d: no error.details: %s", file, line, r->body);
  const char *rid = harness_http_header(r, "X-Request-Id");
  ck_assert_msg(rid != NULL, "%s:%d: no X-Request-Id header", file, line);
  ck_assert_msg(strcmp(harness_json_str(r->json, "error.request_id"), rid) == 0,
                "%s:%d: error.request_id is not X-Request-Id %s: %s", file,
                line, rid, r->body);
  ck_assert_msg(json_object_size(r->json) == 1,
                "%s:%d: more than \"error\" in an error: %s", file, line,
                r->body);
  const char *ct = harness_http_header(r, "Content-Type");
  ck_assert_msg(ct != NULL && strcmp(ct, "application/json") == 0,
                "%s:%d: Content-Type %s", file, line, ct ? ct : "(none)");
}

void harness_json_check_keys(json_t *o, const char *const *keys,
                             const char *file, int line) {
  ck_assert_msg(json_is_object(o), "%s:%d: not an object", file, line);
  size_t n = 0;
  for (; keys[n] != NULL; n++)
    ck_assert_msg(json_object_get(o, keys[n]) != NULL, "%s:%d: missing %s",
                  file, line, keys[n]);
  if (json_object_size(o) != n) {
    char *dump = json_dumps(o, JSON_COMPACT);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s:%d: %zu keys, want %zu: %s", file, line,
             json_object_size(o), n, dump ? dump : "?");
    free(dump);
    ck_abort_msg("%s", msg);
  }
}

double harness_metric(int admin_port, const char *series) {
  harness_http_resp *r =
      harness_http_request("GET", admin_port, "/metrics", NULL, NULL, NULL);
  double v = r->status == 200 ? 0 : -1;
  size_t n = strlen(series);
  /* A line that starts with the series, then a space and the value. */
  for (const char *p = r->status == 200 ? r->body : NULL; p != NULL && *p;) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ') {
      v = strtod(p + n + 1, NULL);
      break;
    }
    p = strchr(p, '\n');
    if (p != NULL) p++;
  }
  harness_http_free(r);
  return v;
}
