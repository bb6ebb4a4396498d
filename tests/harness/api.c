/*
 * api.c - tenant and login fixtures over the public HTTP API.
 *
 * Design. Bodies are built with jansson, so any slug or e-mail is escaped
 * correctly, and sent through harness_http_request (no assertions: the
 * caller decides what a failure means). The values taken from an answer
 * are copied into fixed buffers sized by the API's own bounds, so the
 * fixture outlives the answer.
 */
#include "tests/harness/api.h"

#include <stdio.h>
#include <stdlib.h>

#include "libs/base/strutil.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"

/* POSTs body (a new reference, consumed); the answer, printed to stderr
 * when its status is not `want`. */
static harness_http_resp *post(int port, const char *path, json_t *body,
                               const char *const headers[], long want) {
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (text == NULL) abort();
  harness_http_resp *r =
      harness_http_request("POST", port, path, text, NULL, headers);
  free(text);
  if (r->status == want) return r;
  fprintf(stderr, "POST %s: status %ld, want %ld: %s\n", path, r->status, want,
          r->body);
  return r;
}

static void copy(char *dst, size_t cap, json_t *v, const char *path) {
  str_copy(dst, harness_json_str(v, path), cap);
}

long harness_api_create_tenant(int port, const char *prefix,
                               const char *password, harness_api_tenant *t) {
  harness_unique(t->slug, sizeof t->slug, prefix);
  snprintf(t->owner_email, sizeof t->owner_email, "Owner@%s.example.test",
           t->slug);
  char name[64];
  snprintf(name, sizeof name, "Cafe %s", t->slug);
  json_t *body = json_pack("{s:s,s:s,s:{s:s,s:s,s:s}}", "name", name, "slug",
                           t->slug, "owner", "email", t->owner_email,
                           "password", password, "name", "Olga Owner");
  harness_http_resp *r = post(port, "/v1/tenants", body, NULL, 201);
  long status = r->status;
  if (status == 201) {
    copy(t->id, sizeof t->id, r->json, "tenant.id");
    copy(t->owner_id, sizeof t->owner_id, r->json, "user.id");
    copy(t->owner_token, sizeof t->owner_token, r->json, "access_token");
    copy(t->refresh, sizeof t->refresh, r->json, "refresh_token");
  }
  harness_http_free(r);
  return status;
}

long harness_api_login(int port, const char *slug, const char *email,
                       const char *password, char *token, size_t cap,
                       char *refresh, size_t rcap) {
  char xt[96];
  snprintf(xt, sizeof xt, "X-Tenant: %s", slug);
  const char *headers[] = {xt, NULL};
  json_t *body = json_pack("{s:s,s:s}", "email", email, "password", password);
  harness_http_resp *r = post(port, "/v1/auth/login", body, headers, 200);
  long status = r->status;
  if (status == 200) {
    copy(token, cap, r->json, "access_token");
    if (refresh != NULL) copy(refresh, rcap, r->json, "refresh_token");
  }
  harness_http_free(r);
  return status;
}
