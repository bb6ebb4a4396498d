/*
 * openapi_test.c - docs/openapi.json and the route table (routes.c) must
 * describe the same API. For every row: an operation with the same method
 * and path, the same backend RPC (x-rpc) and minimum role (x-min-role),
 * bearer security exactly when a token is needed, the path parameters of
 * the template, X-Tenant where the call names its tenant, the success
 * status (204 without content), query parameters = the request fields a
 * GET may set, and request and response schemas whose properties are
 * exactly the JSON the gateway reads and writes (message fields minus
 * hidden/omitted ones, plus the extra call's member), recursively, with
 * compatible JSON types. And no operation without a row.
 *
 * (The OpenAPI file is JSON so that this test reads it with jansson, the
 * JSON library the project already has; see docs/adr/0004.)
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/route.h"
#include "services/gateway/routes.h"

static json_t *doc;

static json_t *resolve(json_t *schema) {
  for (int i = 0; i < 8 && schema != NULL; i++) {
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    if (ref == NULL) return schema;
    const char *prefix = "#/components/schemas/";
    ck_assert_msg(strncmp(ref, prefix, strlen(prefix)) == 0, "odd $ref %s",
                  ref);
    schema = json_object_get(
        json_object_get(json_object_get(doc, "components"), "schemas"),
        ref + strlen(prefix));
    ck_assert_msg(schema != NULL, "dangling $ref %s", ref);
  }
  return schema;
}

static const char *json_type_of(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_ENUM:
    return "string";
  case PROTOBUF_C_TYPE_BOOL:
    return "boolean";
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE:
    return "number";
  case PROTOBUF_C_TYPE_MESSAGE:
    return "object";
  default:
    return "integer";
  }
}

/* True when name is excluded at this level by omit (NULL-terminated list
 * of paths relative to this level; '?' entries stay documented). */
static bool excluded(const char *const *omit, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (omit[i][0] != '?' && strchr(omit[i], '.') == NULL &&
        strcmp(omit[i], name) == 0)
      return true;
  return false;
}

/* The omit entries below field `name` ("name.x" or "name[].x" -> "x"),
 * but for '?' entries. */
static size_t below(const char *const *omit, size_t n, const char *name,
                    const char **out) {
  size_t k = 0, nl = strlen(name);
  for (size_t i = 0; i < n; i++) {
    /* '?' entries (left out only when empty) stay documented at every
     * depth, so they are not passed down. */
    if (omit[i][0] == '?') continue;
    const char *o = omit[i];
    if (strncmp(o, name, nl) != 0) continue;
    if (o[nl] == '.')
      out[k++] = o + nl + 1;
    else if (strncmp(o + nl, "[].", 3) == 0)
      out[k++] = o + nl + 3;
  }
  return k;
}

/* The schema's properties must be exactly the message's JSON members. */
/* A map<K, V>: protoc-c's repeated "<Field>Entry" of key and value. */
static bool is_map(const ProtobufCFieldDescriptor *f) {
  const ProtobufCMessageDescriptor *d = f->descriptor;
  size_t n = d != NULL ? strlen(d->name) : 0;
  return f->label == PROTOBUF_C_LABEL_REPEATED &&
         f->type == PROTOBUF_C_TYPE_MESSAGE && n > 5 &&
         strcmp(d->name + n - 5, "Entry") == 0 && d->n_fields == 2;
}

static void shape(const char *where, json_t *schema,
                  const ProtobufCMessageDescriptor *d, const char *const *omit,
                  size_t nomit, const char *extra_key, int depth) {
  ck_assert_msg(depth < 8, "%s: too deep", where);
  schema = resolve(schema);
  json_t *props = json_object_get(schema, "properties");
  ck_assert_msg(json_is_object(props), "%s: schema without properties", where);
  size_t expected = 0;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (excluded(omit, nomit, f->name)) {
      ck_assert_msg(json_object_get(props, f->name) == NULL,
                    "%s: documents %s, which the gateway leaves out", where,
                    f->name);
      continue;
    }
    expected++;
    json_t *p = json_object_get(props, f->name);
    ck_assert_msg(p != NULL, "%s: %s (%s) is not documented", where, f->name,
                  d->name);
    json_t *item = p;
    p = resolve(p);
    const char *t = json_string_value(json_object_get(p, "type"));
    if (is_map(f)) { /* pbjson writes a map as a JSON object */
      ck_assert_msg(t && strcmp(t, "object") == 0, "%s.%s: should be an object",
                    where, f->name);
      continue;
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      ck_assert_msg(t && strcmp(t, "array") == 0, "%s.%s: should be an array",
                    where, f->name);
      item = json_object_get(p, "items");
      ck_assert_msg(item != NULL, "%s.%s: array without items", where, f->name);
      p = resolve(item);
      t = json_string_value(json_object_get(p, "type"));
    }
    /* A oneof of messages that the route answers as the selected one
     * (route.unwrap): "oneOf" lists each member's schema, in order. */
    json_t *alts = json_object_get(p, "oneOf");
    if (alts != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
      const ProtobufCMessageDescriptor *w = f->descriptor;
      ck_assert_msg(json_array_size(alts) == w->n_fields,
                    "%s.%s: oneOf of %zu, the message has %u members", where,
                    f->name, json_array_size(alts), w->n_fields);
      for (unsigned k = 0; k < w->n_fields; k++) {
        char wk[256];
        snprintf(wk, sizeof wk, "%s.%s(%s)", where, f->name, w->fields[k].name);
        shape(wk, json_array_get(alts, k), w->fields[k].descriptor, NULL, 0,
              NULL, depth + 1);
      }
      continue;
    }
    const char *want = json_type_of(f);
    /* A route's json_text member (route.h): any JSON the client sends,
     * carried to the backend as text in a string field; documented with
     * "x-json-text": true. */
    bool as_text = f->type == PROTOBUF_C_TYPE_STRING &&
                   json_is_true(json_object_get(p, "x-json-text"));
    ck_assert_msg(as_text || (t != NULL && strcmp(t, want) == 0),
                  "%s.%s: type %s, want %s", where, f->name, t ? t : "(none)",
                  want);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
      const char *sub[16];
      size_t nsub = below(omit, nomit, f->name, sub);
      char w[256];
      snprintf(w, sizeof w, "%s.%s", where, f->name);
      shape(w, p, f->descriptor, sub, nsub, NULL, depth + 1);
    }
  }
  if (extra_key != NULL) {
    ck_assert_msg(json_object_get(props, extra_key) != NULL,
                  "%s: %s (the extra call) is not documented", where,
                  extra_key);
    expected++;
  }
  ck_assert_msg(json_object_size(props) == expected,
                "%s: %zu documented properties, the gateway has %zu", where,
                json_object_size(props), expected);
}

static size_t count(const char *const *list) {
  size_t n = 0;
  while (list != NULL && list[n] != NULL) n++;
  return n;
}

static bool in_list(const char *const *list, const char *name) {
  for (size_t i = 0; list != NULL && list[i] != NULL; i++)
    if (strcmp(list[i], name) == 0) return true;
  return false;
}

/* Template parameters of path: up to 8 names into out. */
static size_t path_params(const char *path, char out[8][64]) {
  size_t n = 0;
  for (const char *p = strchr(path, '{'); p && n < 8; p = strchr(p + 1, '{')) {
    const char *e = strchr(p, '}');
    snprintf(out[n++], 64, "%.*s", (int)(e - p - 1), p + 1);
  }
  return n;
}

static json_t *param(json_t *op, const char *in, const char *name) {
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(op, "parameters"), i, p) {
    json_t *r = p;
    const char *ref = json_string_value(json_object_get(p, "$ref"));
    if (ref != NULL) {
      const char *prefix = "#/components/parameters/";
      ck_assert(strncmp(ref, prefix, strlen(prefix)) == 0);
      r = json_object_get(
          json_object_get(json_object_get(doc, "components"), "parameters"),
          ref + strlen(prefix));
      ck_assert_msg(r != NULL, "dangling %s", ref);
    }
    if (strcmp(json_string_value(json_object_get(r, "in")), in) == 0 &&
        strcmp(json_string_value(json_object_get(r, "name")), name) == 0)
      return r;
  }
  return NULL;
}

static size_t count_in(json_t *op, const char *in) {
  size_t n = 0, i;
  json_t *p;
  json_array_foreach(json_object_get(op, "parameters"), i, p) {
    json_t *r = p;
    const char *ref = json_string_value(json_object_get(p, "$ref"));
    if (ref != NULL) continue; /* shared header parameters */
    if (strcmp(json_string_value(json_object_get(r, "in")), in) == 0) n++;
  }
  return n;
}

static bool has_body(const route *r) {
  return strcmp(r->method, "GET") != 0 && strcmp(r->method, "DELETE") != 0;
}

static void check_row(const route *r) {
  char lower[16];
  size_t k = 0;
  for (; r->method[k] && k < sizeof lower - 1; k++)
    lower[k] = (char)(r->method[k] - 'A' + 'a');
  lower[k] = '\0';
  char where[160];
  snprintf(where, sizeof where, "%s %s", r->method, r->path);
  json_t *op = json_object_get(
      json_object_get(json_object_get(doc, "paths"), r->path), lower);
  ck_assert_msg(op != NULL, "%s: no operation in docs/openapi.json", where);
  ck_assert_msg(
      json_is_string(json_object_get(op, "x-rpc")) &&
          strcmp(json_string_value(json_object_get(op, "x-rpc")), r->rpc) == 0,
      "%s: x-rpc is not %s", where, r->rpc);
  const char *role = json_string_value(json_object_get(op, "x-min-role"));
  ck_assert_msg(role && strcmp(role, route_role_name(r->min_role)) == 0,
                "%s: x-min-role %s, want %s", where, role ? role : "(none)",
                route_role_name(r->min_role));
  json_t *sec = json_object_get(op, "security");
  ck_assert_msg(json_is_array(sec), "%s: no security", where);
  if (r->min_role == ROUTE_ANYONE) {
    ck_assert_msg(json_array_size(sec) == 0, "%s: anonymous, but secured",
                  where);
  } else {
    ck_assert_msg(json_array_size(sec) == 1 &&
                      json_object_get(json_array_get(sec, 0), "bearer") != NULL,
                  "%s: needs bearer security", where);
  }
  ck_assert_msg((param(op, "header", "X-Tenant") != NULL) ==
                    (r->tenant == ROUTE_TENANT_NAMED),
                "%s: X-Tenant documented iff the call names its tenant", where);
  ck_assert_msg((param(op, "header", "Idempotency-Key") != NULL) ==
                    ((r->flags & ROUTE_KEYED) != 0),
                "%s: Idempotency-Key documented iff the route is keyed", where);

  char names[8][64];
  size_t np = path_params(r->path, names);
  ck_assert_msg(count_in(op, "path") == np, "%s: path parameters differ",
                where);
  for (size_t i = 0; i < np; i++) {
    json_t *p = param(op, "path", names[i]);
    ck_assert_msg(p && json_is_true(json_object_get(p, "required")),
                  "%s: path parameter %s missing or optional", where, names[i]);
  }

  /* What the client may set besides the path: body or query. */
  const char *omit_req[24];
  size_t nreq = 0;
  for (size_t i = 0; r->hidden && r->hidden[i]; i++)
    omit_req[nreq++] = r->hidden[i];
  for (size_t i = 0; i < np; i++) omit_req[nreq++] = names[i];
  omit_req[nreq] = NULL;
  json_t *body = json_object_get(op, "requestBody");
  if (has_body(r) && r->raw_body != NULL) {
    /* Raw bytes (sync's files): the body is not JSON. */
    ck_assert_msg(json_object_get(json_object_get(body, "content"),
                                  "application/octet-stream") != NULL,
                  "%s: raw body not documented as octet-stream", where);
  } else if (has_body(r)) {
    ck_assert_msg(body != NULL, "%s: no requestBody", where);
    json_t *schema = json_object_get(
        json_object_get(json_object_get(body, "content"), "application/json"),
        "schema");
    ck_assert_msg(schema != NULL, "%s: requestBody without a JSON schema",
                  where);
    shape(where, schema, r->request, omit_req, nreq, NULL, 0);
    ck_assert_msg(count_in(op, "query") == 0, "%s: query on a body call",
                  where);
  } else {
    ck_assert_msg(body == NULL, "%s: requestBody on %s", where, r->method);
    size_t nq = 0;
    for (unsigned i = 0; i < r->request->n_fields; i++) {
      const ProtobufCFieldDescriptor *f = &r->request->fields[i];
      if (in_list(omit_req, f->name) || f->type == PROTOBUF_C_TYPE_MESSAGE)
        continue;
      nq++;
      ck_assert_msg(param(op, "query", f->name) != NULL,
                    "%s: query parameter %s not documented", where, f->name);
    }
    ck_assert_msg(count_in(op, "query") == nq,
                  "%s: %zu query parameters, want %zu", where,
                  count_in(op, "query"), nq);
  }

  char st[8];
  snprintf(st, sizeof st, "%d", r->status);
  json_t *resps = json_object_get(op, "responses");
  json_t *ok = json_object_get(resps, st);
  ck_assert_msg(ok != NULL, "%s: no %s response", where, st);
  const char *key;
  json_t *v;
  json_object_foreach(resps, key, v) {
    if (key[0] == '2')
      ck_assert_msg(strcmp(key, st) == 0 ||
                        (r->existed_field != NULL && strcmp(key, "200") == 0),
                    "%s: documents success %s, the gateway answers %s", where,
                    key, st);
  }
  json_t *content = json_object_get(ok, "content");
  if (r->status == 204) {
    ck_assert_msg(content == NULL, "%s: 204 with content", where);
    return;
  }
  if (r->raw_reply != NULL) {
    ck_assert_msg(json_object_get(content, "application/octet-stream") != NULL,
                  "%s: raw answer not documented as octet-stream", where);
    return;
  }
  json_t *schema =
      json_object_get(json_object_get(content, "application/json"), "schema");
  ck_assert_msg(schema != NULL, "%s: %s without a JSON schema", where, st);
  const ProtobufCMessageDescriptor *out = r->response;
  if (r->reply_field != NULL) {
    for (unsigned i = 0; i < out->n_fields; i++)
      if (strcmp(out->fields[i].name, r->reply_field) == 0)
        out = out->fields[i].descriptor;
  }
  shape(where, schema, out, r->omit, count(r->omit),
        r->extra ? r->extra->key : NULL, 0);
  if (r->extra != NULL) {
    json_t *props = json_object_get(resolve(schema), "properties");
    const ProtobufCMessageDescriptor *x = r->extra->response;
    if (r->extra->reply_field != NULL)
      for (unsigned i = 0; i < x->n_fields; i++)
        if (strcmp(x->fields[i].name, r->extra->reply_field) == 0)
          x = x->fields[i].descriptor;
    char w[200];
    snprintf(w, sizeof w, "%s.%s", where, r->extra->key);
    shape(w, json_object_get(props, r->extra->key), x, NULL, 0, NULL, 1);
  }
}

START_TEST(every_route_is_documented_as_it_behaves) {
  size_t n;
  const route *rows = routes_public(&n);
  ck_assert_uint_gt(n, 0);
  for (size_t i = 0; i < n; i++) check_row(&rows[i]);
}
END_TEST

START_TEST(every_documented_operation_is_a_route) {
  size_t n;
  const route *rows = routes_public(&n);
  size_t ops = 0;
  const char *path;
  json_t *item;
  json_object_foreach(json_object_get(doc, "paths"), path, item) {
    const char *m;
    json_t *op;
    json_object_foreach(item, m, op) {
      ops++;
      bool found = false;
      for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].path, path) != 0 ||
            strlen(rows[i].method) != strlen(m))
          continue;
        size_t k = 0;
        while (m[k] && m[k] == rows[i].method[k] - 'A' + 'a') k++;
        if (m[k] == '\0') found = true;
      }
      ck_assert_msg(found, "%s %s is documented but not routed", m, path);
    }
  }
  ck_assert_uint_eq(ops, n);
}
END_TEST

START_TEST(the_route_table_compiles) {
  size_t n, bad = 0;
  const route *rows = routes_public(&n);
  route_table *t = NULL;
  ck_assert_msg(route_table_new(rows, n, &t, &bad) == ERR_OK, "row %zu is bad",
                bad);
  route_table_free(t);
}
END_TEST

/* Route roles come from the backends' declarations, and a method the
 * gateway may not call has none. */
START_TEST(route_roles_are_the_declared_ones) {
  ck_assert_int_eq(routes_declared_role("auth.v1.Auth/Login"), ROUTE_ANYONE);
  ck_assert_int_eq(routes_declared_role("auth.v1.Auth/CreateUser"),
                   ROUTE_ADMIN);
  ck_assert_int_eq(routes_declared_role("orders.v1.Orders/ListTables"),
                   ROUTE_STAFF);
  ck_assert_int_eq(routes_declared_role("auth.v1.Auth/DeleteTenantUsers"), -1);
  ck_assert_int_eq(routes_declared_role("tenants.v1.Tenants/Suspend"), -1);
  ck_assert_int_eq(routes_declared_role("tenants.v1.Tenants/Resolve"), -1);
  ck_assert_int_eq(routes_declared_role("nope.v1.Nope/Nope"), -1);
  size_t n = 0;
  const route *rows = routes_public(&n);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(rows[i].min_role >= ROUTE_ANYONE, "%s %s: no declared role",
                  rows[i].method, rows[i].path);
}
END_TEST

/* HTTP-API.md: Idempotency-Key on every POST that creates (answers 201).
 * Creates that do not honour it yet would be listed below (with the
 * reason in docs/SECURITY.md, "Still open"); the list is exact, so keying
 * one fails here until it is taken off, and a new create cannot ship
 * without a key unless it is added here. Today every create is keyed. */
static const char *const kCreatesNotYetKeyed[] = {NULL};

static bool not_yet_keyed(const char *path) {
  for (size_t i = 0; kCreatesNotYetKeyed[i] != NULL; i++)
    if (strcmp(kCreatesNotYetKeyed[i], path) == 0) return true;
  return false;
}

START_TEST(every_create_honours_idempotency_key) {
  size_t n = 0, creates = 0, exempt = 0;
  const route *rows = routes_public(&n);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(rows[i].method, "POST") != 0 || rows[i].status != 201) continue;
    creates++;
    bool keyed = (rows[i].flags & ROUTE_KEYED) != 0;
    if (not_yet_keyed(rows[i].path)) {
      exempt++;
      ck_assert_msg(!keyed, "POST %s is keyed now: take it off the list",
                    rows[i].path);
    } else {
      ck_assert_msg(keyed, "POST %s creates without Idempotency-Key",
                    rows[i].path);
    }
  }
  ck_assert_uint_gt(creates, exempt);
  size_t listed = 0;
  while (kCreatesNotYetKeyed[listed] != NULL) listed++;
  ck_assert_uint_eq(exempt, listed);
}
END_TEST

START_TEST(the_document_is_openapi_3) {
  const char *v = json_string_value(json_object_get(doc, "openapi"));
  ck_assert_ptr_nonnull(v);
  ck_assert(strncmp(v, "3.", 2) == 0);
  ck_assert_ptr_nonnull(json_object_get(json_object_get(doc, "info"), "title"));
  ck_assert_ptr_nonnull(json_object_get(
      json_object_get(json_object_get(doc, "components"), "securitySchemes"),
      "bearer"));
  /* The error body of HTTP-API.md. */
  json_t *ref = json_pack("{s:s}", "$ref", "#/components/schemas/Error");
  json_t *e = resolve(ref);
  json_t *inner = json_object_get(json_object_get(e, "properties"), "error");
  json_t *props = json_object_get(inner, "properties");
  ck_assert_ptr_nonnull(json_object_get(props, "code"));
  ck_assert_ptr_nonnull(json_object_get(props, "message"));
  ck_assert_ptr_nonnull(json_object_get(props, "request_id"));
  ck_assert_ptr_nonnull(json_object_get(props, "details"));
  json_decref(ref);
}
END_TEST

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "docs/openapi.json";
  json_error_t je;
  doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (doc == NULL) {
    fprintf(stderr, "%s: %s (line %d)\n", path, je.text, je.line);
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("openapi");
  TCase *tc = tcase_create("openapi");
  tcase_add_test(tc, the_document_is_openapi_3);
  tcase_add_test(tc, the_route_table_compiles);
  tcase_add_test(tc, route_roles_are_the_declared_ones);
  tcase_add_test(tc, every_create_honours_idempotency_key);
  tcase_add_test(tc, every_route_is_documented_as_it_behaves);
  tcase_add_test(tc, every_documented_operation_is_a_route);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  json_decref(doc);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
