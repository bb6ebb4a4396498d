/*
 * gateway_fuzz.c - libFuzzer entry point for the gateway's request path
 * (clang only; see BUILD): route matching, query parsing and JSON ->
 * protobuf transcoding, over the real route table and the test table, and
 * the reply side (protobuf bytes -> JSON) on the same input.
 *
 * Input: byte 0 picks the table and the method, then the request target
 * ("/v1/tenant/members/x?limit=3") up to the first '\n', then the body.
 * Properties checked beyond "no crash, leak or UB" (ASan/UBSan):
 *   - a matched route either decodes into a message that packs, or fails
 *     with at least one field error whose path and description are
 *     printable ASCII or UTF-8 that jansson accepts;
 *   - the error body built from those errors is valid JSON;
 *   - a reply that transcodes is valid JSON.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/err.h"
#include "services/gateway/arena.h"
#include "services/gateway/httperr.h"
#include "services/gateway/route.h"
#include "services/gateway/routes.h"
#include "services/gateway/testdata/gwtest.pb-c.h"
#include "services/gateway/transcode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQ (&gwtest__v1__echo_request__descriptor)
#define REP (&gwtest__v1__echo_reply__descriptor)

static const char *const kHidden[] = {"tenant_id", NULL};
static const char *const kOmit[] = {"?request.cursor", "item.quantity", NULL};
static const route kTest[] = {
    {.method = "GET",
     .path = "/v1/echo/{id}",
     .service = "e",
     .rpc = "e/E",
     .request = REQ,
     .response = REP,
     .status = 200,
     .hidden = kHidden,
     .omit = kOmit},
    {.method = "POST",
     .path = "/v1/echo/{id}/{name}",
     .service = "e",
     .rpc = "e/E",
     .request = REQ,
     .response = REP,
     .status = 201,
     .reply_field = "item",
     .hidden = kHidden},
    {.method = "PATCH",
     .path = "/v1/echo",
     .service = "e",
     .rpc = "e/E",
     .request = REQ,
     .response = REP,
     .status = 200},
};

static const char *const kMethods[] = {"GET",    "POST", "PATCH",   "PUT",
                                       "DELETE", "HEAD", "OPTIONS", "BREW"};

static route_table *pub, *test;

static void init(void) {
  size_t n;
  const route *rows = routes_public(&n);
  if (route_table_new(rows, n, &pub, NULL) != ERR_OK ||
      route_table_new(kTest, sizeof kTest / sizeof kTest[0], &test, NULL) !=
          ERR_OK)
    abort();
}

static void check_json_text(const char *s) {
  json_t *v = json_string(s);
  if (v == NULL) abort(); /* not valid UTF-8: would break the error body */
  json_decref(v);
}

static void check_reply(const route *r, const uint8_t *b, size_t n) {
  char *json = NULL;
  size_t len = 0;
  json_t *extra = json_object();
  if (transcode_reply(r, b, n, "extra", extra, &json, &len) == ERR_OK) {
    json_error_t je;
    json_t *v = json_loadb(json, len, 0, &je);
    if (v == NULL) abort();
    json_decref(v);
    free(json);
  } else if (json != NULL) {
    abort();
  }
  json_decref(extra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (pub == NULL) init();
  if (size < 2) return 0;
  route_table *t = (data[0] & 0x80) ? test : pub;
  const char *method = kMethods[data[0] & 7];
  const char *target = (const char *)data + 1;
  size_t rest = size - 1;
  const char *nl = memchr(target, '\n', rest);
  size_t tlen = nl ? (size_t)(nl - target) : rest;
  const char *body = nl ? nl + 1 : NULL;
  size_t blen = nl ? rest - tlen - 1 : 0;
  const char *q = memchr(target, '?', tlen);
  size_t plen = q ? (size_t)(q - target) : tlen;

  arena a;
  arena_init(&a, 1024, 1024 * 1024);
  route_match m;
  int rc = route_match_path(t, method, target, plen, &a, &m);
  if (rc == ERR_INVAL && m.bad_param == NULL) abort();
  if (rc == ERR_OK && m.result == ROUTE_FOUND) {
    ProtobufCMessage *msg = NULL;
    json_t *fields = NULL;
    pbjson_error err;
    rc = transcode_request(&m, q ? q + 1 : NULL, q ? tlen - plen - 1 : 0, body,
                           blen, &a, &msg, &fields, &err);
    if (rc == ERR_OK) {
      if (msg == NULL || fields == NULL) abort();
      size_t n = protobuf_c_message_get_packed_size(msg);
      uint8_t *buf = malloc(n ? n : 1);
      if (buf == NULL || protobuf_c_message_pack(msg, buf) != n) abort();
      free(buf);
      pbjson_free(msg);
      json_decref(fields);
    } else if (rc == ERR_INVAL) {
      if (msg != NULL || err.count == 0) abort();
      rpc_violation v[PBJSON_MAX_ERRORS];
      for (size_t i = 0; i < err.count; i++) {
        check_json_text(err.errors[i].path);
        check_json_text(err.errors[i].description);
        v[i].field = err.errors[i].path;
        v[i].description = err.errors[i].description;
      }
      size_t len;
      char *e = httperr_body(RPC_INVALID_ARGUMENT, "invalid request", "rid", v,
                             err.count, &len);
      if (e == NULL) abort();
      json_error_t je;
      json_t *j = json_loadb(e, len, 0, &je);
      if (j == NULL) abort();
      json_decref(j);
      free(e);
    }
    /* The reply side: the body bytes as the backend's payload. */
    check_reply(m.route, body ? (const uint8_t *)body : (const uint8_t *)"",
                blen);
  }
  arena_release(&a);
  return 0;
}
